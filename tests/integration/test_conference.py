"""Conference rooms in the media engine, with real baresip phones.

Three phones dial the same room, each sending its own tone; what each one
hears must hold the other two tones and not its own (N−1 mixing), and the
room's recording must hold all three."""

from __future__ import annotations

import shutil
import socket
import struct
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile

from media.g711 import ulaw_decode
from tests.integration.audio import key_event, key_in, level, tone_wav
from tests.integration.peers import baresip_phone, running_pbx
from tests.integration.sipclient import SipClient

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("baresip") is None, reason="baresip not installed"),
]

USERS = {"1001": "pw-1001-secret", "1002": "pw-1002-secret", "1003": "pw-1003-secret"}
TONES = {"1001": 500.0, "1002": 900.0, "1003": 1300.0}
ROOMS = """
[800]
type = conference
record = yes

[801]
type = conference
pin = 4711
"""


def test_three_phones_hear_each_other_not_themselves(tmp_path: Path) -> None:
    with running_pbx(tmp_path, USERS, sections=ROOMS) as pbx:
        phones = []
        try:
            for number, frequency in TONES.items():
                wav = tone_wav(tmp_path / f"tone-{number}.wav", frequency, 7.0, amplitude=6000)
                phone = baresip_phone(
                    tmp_path, pbx, number, USERS[number], audio_file=wav, seconds=15,
                    command=f"/dial sip:800@{pbx.host}:{pbx.sip_port}",
                )
                phones.append((number, phone.__enter__(), phone))
                time.sleep(0.3)
            deadline = time.monotonic() + 20
            while not all(list(p.directory.glob("dump-*-dec.wav")) for _, p, _ in phones) or (
                pbx.health()["calls"] > 0
            ):
                assert time.monotonic() < deadline, pbx.log()[-3000:]
                time.sleep(0.3)
        finally:
            for _, _, manager in phones:
                manager.__exit__(None, None, None)
        for number, phone, _ in phones:
            heard, rate = soundfile.read(next(phone.directory.glob("dump-*-dec.wav")),
                                         dtype="float64")
            assert rate == 8000
            middle = heard[int(2.5 * rate) : int(5.5 * rate)]  # everyone is in the room
            own = level(middle, TONES[number])
            others = [level(middle, f) for n, f in TONES.items() if n != number]
            assert min(others) > 20 * max(own, 1e-3), (number, own, others)
        listed = httpx.get(f"{pbx.api}/recordings", headers=pbx.admin_headers()).json()["items"]
        (row,) = [r for r in listed if r["kind"] == "conference"]
        assert row["parties"] == ["800"] and row["duration"] > 5
        audio_file = tmp_path / "room.wav"
        audio_file.write_bytes(httpx.get(f"{pbx.api}/recordings/{row['id']}/audio",
                                         headers=pbx.admin_headers()).content)
        audio, _ = soundfile.read(audio_file, dtype="float64")
        window = audio[int(2.5 * 8000) : int(5.5 * 8000)]
        assert all(level(window, f) > 50 for f in TONES.values())


def test_pin_protected_room(tmp_path: Path) -> None:
    """A wrong PIN three times ends the call; without one the caller never joins."""
    with running_pbx(tmp_path, USERS, sections=ROOMS) as pbx:
        with SipClient(pbx.host, pbx.sip_port) as caller:
            _, ok = caller.invite("1001", USERS["1001"], "801")
            assert ok is not None and ok.status == 200
            caller.in_dialog("ACK", ok, cseq=ok.cseq.number)
            media = ok.body.decode()
            port = int(media.split("m=audio ")[1].split()[0])
            rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            rtp.bind(("127.0.0.1", 40000))  # the port our SDP announced
            rtp.settimeout(0.2)
            try:
                # the PBX asks for the PIN: a spoken prompt arrives
                prompt = []
                deadline = time.monotonic() + 2
                while time.monotonic() < deadline:
                    try:
                        prompt.append(ulaw_decode(rtp.recv(2048)[12:]).astype(float))
                    except socket.timeout:
                        pass
                assert prompt and np.sqrt(np.mean(np.concatenate(prompt) ** 2)) > 300
                for attempt, digit in enumerate("123"):
                    for seq in range(4):  # a wrong 4-digit PIN, each digit as RFC 4733 end packets
                        packet = key_event(digit, seq, 1000 * (attempt * 10 + seq), 1234)
                        for _ in range(3):
                            rtp.sendto(packet, ("127.0.0.1", port))
                bye = caller.receive_request(5, "BYE")
                assert bye is not None  # three wrong PINs: the PBX hangs up
            finally:
                rtp.close()
        assert "wrong PIN for room 801" in pbx.log()


def test_pin_keyed_in_band(tmp_path: Path) -> None:
    """A phone without RFC 4733 plays the PIN as tones in the audio; the engine hears it."""
    from media.dtmf import dtmf_tone
    from media.g711 import ulaw_encode

    with running_pbx(tmp_path, USERS, sections=ROOMS) as pbx:
        with SipClient(pbx.host, pbx.sip_port) as caller:
            rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            rtp.bind(("127.0.0.1", 0))
            port = rtp.getsockname()[1]
            _, ok = caller.invite("1001", USERS["1001"], "801", body=caller.sdp(port, codecs="0"))
            assert ok is not None and ok.status == 200 and b"telephone-event" not in ok.body
            caller.in_dialog("ACK", ok, cseq=ok.cseq.number)
            pbx_port = int(ok.body.decode().split("m=audio ")[1].split()[0])
            audio = np.concatenate(
                [np.concatenate([dtmf_tone(d, 100), np.zeros(800)]) for d in "4711#"]
            )
            audio = np.concatenate([np.zeros(1600), audio, np.zeros(1600)])
            payload = ulaw_encode(np.clip(audio, -32768, 32767).astype(np.int16))
            try:
                for seq, start in enumerate(range(0, len(payload) - 159, 160)):
                    header = struct.pack("!BBHII", 0x80, 0, seq, 160 * seq, 4321)
                    rtp.sendto(header + payload[start : start + 160].tobytes(), ("127.0.0.1", pbx_port))
                    time.sleep(0.02)
                deadline = time.monotonic() + 3
                while "room 801: " not in pbx.log():
                    assert time.monotonic() < deadline, pbx.log()[-2000:]
                    time.sleep(0.1)
            finally:
                rtp.close()
            caller.in_dialog("BYE", ok)


MODERATED = """
[802]
type = conference
pin = 1111
moderator_pin = 2222
"""


def test_moderator_mutes_and_locks(tmp_path: Path) -> None:
    with running_pbx(tmp_path, USERS, sections=MODERATED) as pbx:
        phones = []
        try:
            for number, keys in (("1001", "1111"), ("1002", "2222")):
                client = SipClient(pbx.host, pbx.sip_port)
                rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                rtp.bind(("127.0.0.1", 0))
                _, ok = client.invite(number, USERS[number], "802",
                                      body=client.sdp(rtp.getsockname()[1]))
                assert ok is not None and ok.status == 200
                client.in_dialog("ACK", ok, cseq=ok.cseq.number)
                media_port = int(ok.body.decode().split("m=audio ")[1].split()[0])
                key_in(rtp, media_port, keys, 100)
                phones.append((client, rtp, media_port, ok))

            headers = pbx.admin_headers()

            def rooms() -> list[dict]:  # type: ignore[type-arg]
                return httpx.get(f"{pbx.api}/conferences", headers=headers).json()

            deadline = time.monotonic() + 3
            while not rooms() or len(rooms()[0]["participants"]) < 2:
                assert time.monotonic() < deadline, pbx.log()[-2000:]
                time.sleep(0.1)
            (room,) = rooms()
            roles = sorted((p["moderator"], p["muted"]) for p in room["participants"])
            assert roles == [(False, False), (True, False)]
            moderator = phones[1]
            key_in(moderator[1], moderator[2], "1", 200)  # mute the others
            key_in(moderator[1], moderator[2], "2", 300)  # lock the room
            time.sleep(0.3)
            (room,) = rooms()
            assert room["locked"] is True
            assert sorted((p["moderator"], p["muted"]) for p in room["participants"]) == [
                (False, True), (True, False)]
            # a latecomer with the right PIN is turned away from a locked room
            late = SipClient(pbx.host, pbx.sip_port)
            rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            rtp.bind(("127.0.0.1", 0))
            _, ok = late.invite("1003", USERS["1003"], "802", body=late.sdp(rtp.getsockname()[1]))
            assert ok is not None and ok.status == 200
            late.in_dialog("ACK", ok, cseq=ok.cseq.number)
            key_in(rtp, int(ok.body.decode().split("m=audio ")[1].split()[0]), "1111", 400)
            assert late.receive_request(5, "BYE") is not None
            phones.append((late, rtp, 0, ok))
        finally:
            for client, rtp, _, _ in phones:
                client.close()
                rtp.close()


def test_invite_a_participant_out_of_the_room(tmp_path: Path) -> None:
    with running_pbx(tmp_path, USERS, sections=ROOMS) as pbx:
        api = f"{pbx.api}/conferences"
        headers = pbx.admin_headers()
        with SipClient(pbx.host, pbx.sip_port) as phone:
            response = phone.register("1003", USERS["1003"],
                                      contacts=[f"<sip:1003@{phone.host_port()}>"])
            assert response is not None and response.status == 200
            assert httpx.post(f"{api}/800/invite", json={"number": "1003"}).status_code == 401
            assert httpx.post(f"{api}/999/invite", json={"number": "1003"},
                              headers=headers).status_code == 404
            assert httpx.post(f"{api}/800/invite", json={"number": "no spaces"},
                              headers=headers).status_code == 422
            accepted = httpx.post(f"{api}/800/invite", json={"number": "1003"}, headers=headers)
            assert accepted.status_code == 202 and accepted.json()["call_id"]
            invite = phone.receive_request(5, "INVITE")
            assert invite is not None and invite.from_addr.uri.user == "800"
            phone.respond(invite, 200, body=phone.sdp(41200))
            assert phone.receive_request(3, "ACK") is not None
            deadline = time.monotonic() + 3
            while not httpx.get(api, headers=headers).json():
                assert time.monotonic() < deadline
                time.sleep(0.1)
            (room,) = httpx.get(api, headers=headers).json()
            assert room["room"] == "800" and len(room["participants"]) == 1


def test_pin_by_sip_info(tmp_path: Path) -> None:
    """The third way to send digits: SIP INFO (application/dtmf-relay)."""
    with running_pbx(tmp_path, USERS, sections=ROOMS) as pbx:
        with SipClient(pbx.host, pbx.sip_port) as caller:
            _, ok = caller.invite("1001", USERS["1001"], "801")
            assert ok is not None and ok.status == 200
            caller.in_dialog("ACK", ok, cseq=ok.cseq.number)
            for key in "4711":
                caller.in_dialog("INFO", ok, body=f"Signal={key}\r\nDuration=160\r\n".encode(),
                                 headers={"Content-Type": "application/dtmf-relay"})
                assert caller.receive(3).status == 200  # type: ignore[union-attr]
            caller.in_dialog("INFO", ok, body=b"<xml/>", headers={"Content-Type": "application/xml"})
            assert caller.receive(3).status == 415  # type: ignore[union-attr]
            deadline = time.monotonic() + 3
            while "room 801: " not in pbx.log():
                assert time.monotonic() < deadline, pbx.log()[-2000:]
                time.sleep(0.1)


def test_everyone_has_a_personal_room(tmp_path: Path) -> None:
    """8 + extension: the owner joins as moderator, colleagues as participants."""
    with running_pbx(tmp_path, USERS) as pbx:
        headers = pbx.admin_headers()
        with SipClient(pbx.host, pbx.sip_port) as guest, SipClient(pbx.host, pbx.sip_port) as owner:
            for client, number in ((guest, "1002"), (owner, "1001")):
                client.call_id += f"-{number}"
                _, ok = client.invite(number, USERS[number], "81001")
                assert ok is not None and ok.status == 200
                client.in_dialog("ACK", ok, cseq=ok.cseq.number)
            deadline = time.monotonic() + 3
            while True:
                rooms = httpx.get(f"{pbx.api}/conferences", headers=headers).json()
                if rooms and len(rooms[0]["participants"]) == 2:
                    break
                assert time.monotonic() < deadline, rooms
                time.sleep(0.1)
            assert rooms[0]["room"] == "81001"
            assert sorted(p["moderator"] for p in rooms[0]["participants"]) == [False, True]
        with SipClient(pbx.host, pbx.sip_port) as stranger:
            _, refused = stranger.invite("1003", USERS["1003"], "89999")  # nobody's room
            assert refused is not None and refused.status == 404
