"""SDP parsing and offer/answer with offers real phones send."""

from __future__ import annotations

import pytest

from pbx.sdp import (
    TELEPHONE_EVENT, Codec, SdpError, SessionDescription, hold_direction, make_answer, make_offer,
    negotiate,
)

BARESIP = (
    "v=0\r\no=- 1414398478 1906396102 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
    "t=0 0\r\nm=audio 10312 RTP/AVP 0 8 101\r\nb=AS:64\r\na=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"
    "a=sendrecv\r\na=label:1\r\na=ssrc:1916235345 cname:4f1f\r\na=rtcp-mux\r\n"
)
SIPP = (  # sipp's uac: static payload, no rtpmap, LF line ends
    "v=0\no=user1 53655765 2353687637 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\n"
    "m=audio 6000 RTP/AVP 0\na=rtpmap:0 PCMU/8000\n"
)
YEALINK = (
    "v=0\r\no=- 20034 20034 IN IP4 10.0.0.20\r\ns=SDP data\r\nc=IN IP4 10.0.0.20\r\nt=0 0\r\n"
    "m=audio 11796 RTP/AVP 9 0 8 18 96 101\r\na=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\na=rtpmap:18 G729/8000\r\na=fmtp:18 annexb=no\r\n"
    "a=rtpmap:96 opus/48000/2\r\na=fmtp:96 maxplaybackrate=16000\r\na=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n"
)
VIDEO = (
    "v=0\r\no=- 1 1 IN IP6 2001:db8::5\r\ns=-\r\nt=0 0\r\n"
    "m=video 5002 RTP/AVP 96\r\nc=IN IP6 2001:db8::5\r\na=rtpmap:96 H264/90000\r\n"
    "m=audio 5000 RTP/AVP 8 101\r\nc=IN IP6 2001:db8::5\r\na=rtpmap:101 telephone-event/8000\r\n"
)


def test_parse_baresip_offer() -> None:
    sdp = SessionDescription.parse(BARESIP)
    audio = sdp.audio
    assert audio is not None and audio.port == 10312 and sdp.connection == "127.0.0.1"
    assert [c.name for c in audio.codecs] == ["PCMU", "PCMA", "telephone-event"]
    assert audio.codecs[2].fmtp == "0-15"
    assert ("rtcp-mux", None) in audio.attributes


def test_static_payloads_and_lf_endings() -> None:
    sdp = SessionDescription.parse(SIPP)
    assert sdp.audio is not None and [c.name for c in sdp.audio.codecs] == ["PCMU"]


def test_round_trip() -> None:
    for text in (BARESIP, SIPP, YEALINK, VIDEO):
        once = SessionDescription.parse(text)
        twice = SessionDescription.parse(bytes(once))
        assert str(twice) == str(once)


def test_negotiate_keeps_offer_order_and_events() -> None:
    sdp = SessionDescription.parse(YEALINK)
    assert sdp.audio is not None
    chosen = negotiate(sdp.audio.codecs, ["PCMA", "PCMU", "telephone-event"])
    assert [(c.payload_type, c.name) for c in chosen] == [(0, "PCMU"), (101, "telephone-event")]
    with pytest.raises(SdpError, match="no common codec"):
        negotiate(sdp.audio.codecs, ["GSM"])


def test_answer_rejects_video_and_mirrors_hold() -> None:
    offer = SessionDescription.parse(VIDEO)
    answer = make_answer(offer, address="192.0.2.1", port=20000, supported=["PCMA", "PCMU",
                         "telephone-event"], session_id=5, version=1)
    assert [(m.kind, m.port) for m in answer.media] == [("video", 0), ("audio", 20000)]
    assert [c.name for c in answer.media[1].codecs] == ["PCMA", "telephone-event"]
    held = SessionDescription.parse(BARESIP.replace("a=sendrecv", "a=sendonly"))
    assert hold_direction(held) == "sendonly"
    answer = make_answer(held, address="192.0.2.1", port=20000, supported=["PCMU"],
                         session_id=5, version=2)
    assert answer.audio is not None and answer.audio.direction == "recvonly"
    old_style = SessionDescription.parse(SIPP.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0"))
    assert hold_direction(old_style) == "sendonly"


def test_offer_has_our_address_and_codecs() -> None:
    offer = make_offer(address="192.0.2.1", port=30000,
                       codecs=[Codec(8, "PCMA", 8000), TELEPHONE_EVENT], session_id=7, version=3)
    text = str(offer)
    assert "c=IN IP4 192.0.2.1" in text and "m=audio 30000 RTP/AVP 8 101" in text
    assert "a=fmtp:101 0-16" in text and "o=pbx 7 3 IN IP4 192.0.2.1" in text


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "v="),
        ("v=0\r\ns=-\r\nm=audio 1 RTP/AVP 0\r\n", "o="),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nm=audio abc RTP/AVP 0\r\n",
         "port"),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nm=audio 1 RTP/AVP 96\r\n"
         "a=rtpmap:96 garbage\r\n", "rtpmap"),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nm=audio 1000 RTP/AVP 0\r\n", "connection"),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN XX 1.2.3.4\r\n", "c="),
        ("v=0\r\nthis is not sdp\r\n", "Malformed"),
    ],
)
def test_broken_sdp(text: str, message: str) -> None:
    with pytest.raises(SdpError, match=message):
        SessionDescription.parse(text)
