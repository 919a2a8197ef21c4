"""The gateway's media bridge on the page's side: its offer holds every ICE
candidate (no trickle), which aiortc must be told, and an offer without any
candidate can never connect."""

import asyncio

import pytest

from aiortc import RTCPeerConnection

from softphone.bridge import MediaBridge, NoMediaPath, all_candidates

OFFER = ("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
         "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n"
         "a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host\r\n")


def test_every_media_section_is_marked_complete() -> None:
    two = OFFER + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\n"
    marked = all_candidates(two).splitlines()
    ends = [i for i, line in enumerate(marked) if line == "a=end-of-candidates"]
    assert len(ends) == 2 and marked[ends[0] + 1].startswith("m=video") and ends[1] == len(marked) - 1
    assert all_candidates(all_candidates(two)) == all_candidates(two)


def test_an_offer_without_candidates_is_no_media_path() -> None:
    async def answer() -> None:
        bridge = MediaBridge("127.0.0.1")
        try:
            await bridge.answer_page(OFFER.replace(OFFER.splitlines()[-1] + "\r\n", ""))
        finally:
            await bridge.close()

    with pytest.raises(NoMediaPath):
        asyncio.run(answer())


async def client_offer() -> tuple[RTCPeerConnection, str]:
    """An aiortc client standing in for the page: its offer, candidates in it."""
    pc = RTCPeerConnection()
    pc.addTransceiver("audio", direction="sendrecv")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


def test_a_renewed_media_path_is_a_new_peer_connection_on_the_same_rtp_leg() -> None:
    """The page's new offer replaces the peer connection (the old one
    closed); the RTP leg to the PBX, and so the
    SIP call's media, stays.  A refused offer leaves the old one in place."""
    async def renew() -> None:
        bridge = MediaBridge("127.0.0.1")
        first_client, offer = await client_offer()
        second_client, second_offer = await client_offer()
        try:
            await bridge.answer_page(offer)
            await bridge.open_rtp()
            first, rtp, socket = bridge.pc, bridge.rtp, bridge.rtp.transport
            answer = await bridge.renew(second_offer)
            assert "a=candidate:" in answer and bridge.pc is not first
            assert first.connectionState == "closed"
            assert bridge.rtp is rtp and rtp.transport is socket and rtp.track is bridge.from_pbx

            kept, track = bridge.pc, bridge.from_pbx
            with pytest.raises(NoMediaPath):
                await bridge.renew(OFFER.replace(OFFER.splitlines()[-1] + "\r\n", ""))
            assert bridge.pc is kept and rtp.track is track is bridge.from_pbx
            assert kept.connectionState != "closed"
        finally:
            await bridge.close()
            await first_client.close()
            await second_client.close()

    asyncio.run(renew())
