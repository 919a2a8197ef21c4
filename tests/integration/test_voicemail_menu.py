"""The voicemail menu with real SIP peers: a message is left with a tone of
its own; its owner dials 133 (the phones' message key) and hears that tone
come back, keys 7 (an RFC 4733 event) and the message is gone from the API
and the disk, while the phone's message-waiting lamp goes out.  A mailbox
with nothing in it says so, offers its options and, no key pressed, hangs up."""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from media.audiofile import read_audio
from media.g711 import ulaw_decode
from pbx.sip.message import Request, Response
from tests.integration.peers import ADMIN_PASSWORD, Pbx, running_pbx
from tests.integration.sipclient import SipClient
from tests.integration.test_conference import key_in
from tests.integration.test_profiles import USERS, leave_message, tone_share
from tests.integration.test_subscriptions import summary

pytestmark = pytest.mark.integration
MESSAGE_HZ = 700.0  # the tone the caller leaves


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    with running_pbx(tmp_path_factory.mktemp("voicemail-menu"), USERS,
                     admin_password=ADMIN_PASSWORD) as server:
        yield server


def lamp_until(lamp: SipClient, voice_message: str) -> dict[str, str]:
    """Answer the lamp's NOTIFYs (retransmissions too) until one counts ``voice_message``."""
    deadline = time.monotonic() + 15
    seen = []
    while time.monotonic() < deadline:
        notify = lamp.receive_request(1, "NOTIFY")
        if notify is None:
            continue
        lamp.respond(notify, 200)
        seen.append(summary(notify))
        if seen[-1]["Voice-Message"] == voice_message:
            return seen[-1]
    raise AssertionError(f"the lamp never showed {voice_message}: {seen}")


def dial_menu(phone: SipClient, number: str, rtp: socket.socket) -> tuple[Response, int]:
    """``number`` dials 133; the PBX answers.  Returns the 200 and the PBX's RTP port."""
    phone.call_id += "-menu"
    _, ok = phone.invite(number, USERS[number], "133",
                         body=phone.sdp(rtp.getsockname()[1], codecs="0 101"))
    assert ok is not None and ok.status == 200, ok
    phone.in_dialog("ACK", ok, cseq=ok.cseq.number)
    return ok, int(ok.body.decode().split("m=audio ")[1].split()[0])


def tone_frames(rtp: socket.socket, frequency: float) -> int:
    """Read the PBX's audio until a tone of ``frequency`` has played and
    stopped; how many 20 ms frames it lasted."""
    toned = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            frame = ulaw_decode(rtp.recv(2048)[12:]).astype(np.float64)
        except TimeoutError:
            continue
        if len(frame) == 160 and tone_share(frame, frequency) > 0.8:
            toned += 1
        elif toned >= 5:
            return toned
    raise AssertionError(f"no {frequency:.0f} Hz tone came ({toned} frames)")


def voiced_frames(audio: np.ndarray) -> int:
    """20 ms frames with speech in them (not silence)."""
    frames = audio[: len(audio) // 160 * 160].astype(np.float64).reshape(-1, 160)
    return int((np.sqrt((frames**2).mean(axis=1)) > 300).sum())


def until_bye(phone: SipClient, rtp: socket.socket) -> np.ndarray:
    """What the phone hears until the PBX hangs up (its BYE answered 200)."""
    heard: list[np.ndarray] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            heard.append(ulaw_decode(rtp.recv(2048)[12:]))
        except TimeoutError:
            pass
        bye: Request | None = phone.receive_request(0.001, "BYE")
        if bye is not None:
            phone.respond(bye, 200)
            return np.concatenate(heard)
    raise AssertionError("the PBX never hung up")


def test_the_owner_hears_the_message_deletes_it_and_the_lamp_goes_out(pbx: Pbx) -> None:
    admin = pbx.admin_headers()
    with SipClient(pbx.host, pbx.sip_port) as lamp, SipClient(pbx.host, pbx.sip_port) as phone:
        lamp.call_id += "-lamp"
        subscribed = lamp.subscribe("1003", USERS["1003"], "133", "message-summary")
        assert subscribed is not None and subscribed.status == 200, subscribed
        assert lamp_until(lamp, "0/0 (0/0)")["Messages-Waiting"] == "no"
        forwarded = httpx.patch(f"{pbx.api}/extensions/1003", headers=admin,
                                json={"forward_always": "voicemail"})
        assert forwarded.status_code == 200
        try:
            leave_message(pbx, "1001", "1003", seconds=2.0, frequency=MESSAGE_HZ)
        finally:
            httpx.patch(f"{pbx.api}/extensions/1003", headers=admin, json={"forward_always": ""})
        assert lamp_until(lamp, "1/0 (0/0)")["Messages-Waiting"] == "yes"
        (message,) = httpx.get(f"{pbx.api}/voicemail", headers=admin,
                               params={"mailbox": "1003"}).json()["items"]
        wavs = list((pbx.data_dir / "voicemail").rglob("*.wav"))
        assert len(wavs) == 1

        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind(("127.0.0.1", 0))
        rtp.settimeout(0.5)
        try:
            _, pbx_port = dial_menu(phone, "1003", rtp)
            # the counts, then the message: the caller's tone, for about its 2 s
            assert tone_frames(rtp, MESSAGE_HZ) >= 75
            assert lamp_until(lamp, "0/1 (0/0)")["Messages-Waiting"] == "no"  # heard now
            key_in(rtp, pbx_port, "7", 100)
            until_bye(phone, rtp)  # "message deleted, no more messages, goodbye"
        finally:
            rtp.close()
        assert lamp_until(lamp, "0/0 (0/0)")["Messages-Waiting"] == "no"
    listed = httpx.get(f"{pbx.api}/voicemail", headers=admin, params={"mailbox": "1003"})
    assert listed.json()["total"] == 0
    assert httpx.get(f"{pbx.api}/voicemail/{message['id']}/audio",
                     headers=admin).status_code == 404
    assert not wavs[0].exists()


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng renders the prompts")
def test_an_empty_mailbox_says_so_offers_the_options_and_hangs_up(pbx: Pbx) -> None:
    with SipClient(pbx.host, pbx.sip_port) as phone:
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind(("127.0.0.1", 0))
        rtp.settimeout(0.5)
        try:
            _, pbx_port = dial_menu(phone, "1002", rtp)
            key_in(rtp, pbx_port, "1", 100)  # means nothing here: the PBX still hangs up
            heard = until_bye(phone, rtp)
        finally:
            rtp.close()
    said = sum(voiced_frames(read_audio(pbx.data_dir / "prompts" / "en" / f"{name}.wav", 8000)
                             * 0.8)  # prompts play at 80 %
               for name in ("no_messages", "mailbox_options_key", "goodbye"))
    assert abs(voiced_frames(heard) - said) <= 8, (voiced_frames(heard), said)


def test_a_broken_message_is_skipped_not_the_call(pbx: Pbx) -> None:
    """The WAV of 1001's only message is damaged: the menu names it in the log,
    goes on to "no more messages" and hangs up; the message stays new.  (It
    was left through a forward to 133: a forward to voicemail.)"""
    admin = pbx.admin_headers()
    forwarded = httpx.patch(f"{pbx.api}/extensions/1001", headers=admin,
                            json={"forward_always": "133"})
    assert forwarded.status_code == 200
    try:
        leave_message(pbx, "1002", "1001", seconds=1.5, frequency=MESSAGE_HZ)
    finally:
        httpx.patch(f"{pbx.api}/extensions/1001", headers=admin, json={"forward_always": ""})
    (message,) = httpx.get(f"{pbx.api}/voicemail", headers=admin,
                           params={"mailbox": "1001"}).json()["items"]
    (wav,) = (pbx.data_dir / "voicemail").rglob("*.wav")
    wav.write_bytes(b"RIFF" + bytes(100))
    with SipClient(pbx.host, pbx.sip_port) as phone:
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind(("127.0.0.1", 0))
        rtp.settimeout(0.5)
        try:
            dial_menu(phone, "1001", rtp)
            until_bye(phone, rtp)
        finally:
            rtp.close()
    assert f"voicemail {message['id']} of mailbox 1001 skipped" in pbx.log()
    (still,) = httpx.get(f"{pbx.api}/voicemail", headers=admin,
                         params={"mailbox": "1001"}).json()["items"]
    assert still["heard"] is False
