"""Calls through the B2BUA between real SIP peers: sipp as caller and callee,
scripted raw-socket phones for ringing, busy, forking, cancel and transfer."""

from __future__ import annotations

import json
import shutil
import struct
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile

from media.g711 import ulaw_decode
from pbx.models import Cdr
from pbx.sip.auth import build_authorization
from pbx.sip.message import Request, Response
from pbx.store import Store
from tests.integration.audio import key_in, level, tone_wav
from tests.integration.peers import Pbx, baresip_phone, run_sipp, running_pbx, sipp_callee
from tests.integration.sipclient import SipClient, answer, place_call, register, uas_dialog

pytestmark = pytest.mark.integration

USERS = {n: f"pw-{n}-secret" for n in ("1001", "1002", "1003", "1004", "1005", "1006", "1007",
                                       "1008")}
SECTIONS = """
[1005]
secret = pw-1005-secret
voicemail = no
ring_timeout = 5

[1006]
secret = pw-1006-secret
voicemail = no
forward_busy = 1007

[1008]
secret = pw-1008-secret
voicemail = no
dnd = yes

[+4681234567]
type = number
target = 1004

[600]
type = ringgroup
strategy = linear
members = 1003, 1004
member_timeout = 5
"""


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    users = {n: p for n, p in USERS.items() if n not in ("1005", "1006", "1008")}
    with running_pbx(tmp_path_factory.mktemp("calls"), users, sections=SECTIONS) as server:
        yield server


def cdrs(pbx: Pbx, limit: int = 100) -> list[Cdr]:
    time.sleep(0.3)  # CDRs are written off the event loop
    store = Store(f"sqlite:///{pbx.data_dir / 'pbx.sqlite3'}")
    try:
        return store.cdrs(limit)
    finally:
        store.close()


@pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed")
def test_sipp_calls_sipp_with_audio_both_ways(pbx: Pbx, tmp_path: Path) -> None:
    """sipp (PCMA) → PBX → sipp uas (PCMU, echoing RTP): set-up, transcoded RTP, BYE."""
    with sipp_callee(tmp_path, pbx, "1002", USERS["1002"], ["-m", "1", "-timeout", "20s"]) as uas:
        result = run_sipp(
            "call_uac.xml", pbx, [("1001", USERS["1001"], "1002")], tmp=tmp_path,
            extra=["-d", "2000"],
        )
        assert result.returncode == 0 and result.successful == 1, result.output[-2000:]
        assert uas.wait(15) == 0
    record = next(c for c in cdrs(pbx) if c.caller == "1001" and c.callee == "1002")
    assert record.disposition == "answered" and record.billsec >= 1.5
    quality = json.loads(record.quality)
    # the caller's pcap went out to the callee and its echo came back, both transcoded
    assert quality["1001"]["packets_in"] > 40 and quality["1001"]["packets_out"] > 40
    assert quality["1002"]["packets_in"] > 40 and quality["1002"]["packets_out"] > 40
    assert quality["1001"]["malformed"] == 0 and quality["1001"]["mos"] > 4.0


def test_all_devices_ring_and_the_first_answer_wins(pbx: Pbx) -> None:
    desk, dect, caller = (SipClient(pbx.host, pbx.sip_port) for _ in range(3))
    try:
        register(desk, "1003", USERS["1003"])
        register(dect, "1003", USERS["1003"])
        register(caller, "1001", USERS["1001"])
        caller.invite_text = caller.request(
            "INVITE", "1001", to="1003", body=caller.sdp(), headers={"Content-Type": "application/sdp"}
        )
        challenge = caller.receive()
        assert challenge is not None and challenge.status == 407
        caller.ack_failure(challenge)
        _auth_invite(caller, "1003", challenge)
        ring_desk = desk.receive_request(5, "INVITE")
        ring_dect = dect.receive_request(5, "INVITE")
        assert ring_desk is not None and ring_dect is not None
        desk.respond(ring_desk, 180)
        assert caller.receive(5).status == 180  # type: ignore[union-attr]
        dect.respond(ring_dect, 200, body=dect.sdp(41002))
        final = caller.receive(5)
        assert final is not None and final.status == 200
        assert b"m=audio" in final.body and final.to_addr.tag
        caller.in_dialog("ACK", final, cseq=final.cseq.number)
        cancel = desk.receive_request(5, "CANCEL")
        assert cancel is not None  # the desk phone stops ringing
        desk.respond(cancel, 200)
        desk.respond(ring_desk, 487)
        assert dect.receive_request(3, "ACK") is not None
        caller.in_dialog("BYE", final)
        bye = dect.receive_request(5, "BYE")
        assert bye is not None
        dect.respond(bye, 200)
        assert caller.receive(5).status == 200  # type: ignore[union-attr]
    finally:
        for phone in (desk, dect, caller):
            phone.close()
    record = next(c for c in cdrs(pbx) if c.callee == "1003")
    assert record.disposition == "answered" and "ring:1003x2" in record.path


def _auth_invite(caller: SipClient, target: str, challenge: Response) -> None:
    """Send the INVITE again with credentials (the test then reads the answers itself)."""
    authorization = build_authorization(
        challenge.headers.get("Proxy-Authenticate") or "", method="INVITE",
        uri=f"sip:{target}@{caller.host}:{caller.port}", username="1001", password=USERS["1001"],
    )
    caller.invite_text = caller.request(
        "INVITE", "1001", to=target, body=caller.sdp(), authorization=authorization,
        headers={"Content-Type": "application/sdp"},
    )


def test_busy_callee(pbx: Pbx) -> None:
    with SipClient(pbx.host, pbx.sip_port) as phone, SipClient(pbx.host, pbx.sip_port) as caller:
        register(phone, "1004", USERS["1004"])
        caller.call_id += "-busy"
        invite_seen: list = []  # type: ignore[type-arg]

        def busy() -> None:
            invite = phone.receive_request(5, "INVITE")
            invite_seen.append(invite)
            phone.respond(invite, 486)  # type: ignore[arg-type]

        worker = threading.Thread(target=busy)
        worker.start()
        _, final = caller.invite("1001", USERS["1001"], "1004")
        worker.join()
        assert final is not None and final.status == 486
        assert phone.receive_request(3, "ACK") is not None  # the PBX ACKs the 486
    assert any(c.callee == "1004" and c.disposition == "busy" for c in cdrs(pbx))


def test_no_answer_times_out(tmp_path: Path) -> None:
    with running_pbx(tmp_path, {"1001": USERS["1001"]}, sections=SECTIONS) as server:
        with SipClient(server.host, server.sip_port) as phone, SipClient(
            server.host, server.sip_port
        ) as caller:
            register(phone, "1005", USERS["1005"])
            started = time.monotonic()

            def ring() -> None:
                invite = phone.receive_request(5, "INVITE")
                phone.respond(invite, 180)  # type: ignore[arg-type]
                cancel = phone.receive_request(10, "CANCEL")
                phone.respond(cancel, 200)  # type: ignore[arg-type]
                phone.respond(invite, 487)  # type: ignore[arg-type]

            worker = threading.Thread(target=ring)
            worker.start()
            provisional, final = caller.invite("1001", USERS["1001"], "1005", wait=10)
            worker.join()
            assert [p.status for p in provisional] == [180]
            assert final is not None and final.status == 480
            assert 4.5 < time.monotonic() - started < 9  # ring_timeout = 5
        assert any(c.callee == "1005" and c.disposition == "noanswer" for c in cdrs(server))


def test_caller_cancels(pbx: Pbx) -> None:
    with SipClient(pbx.host, pbx.sip_port) as phone, SipClient(pbx.host, pbx.sip_port) as caller:
        register(phone, "1002", USERS["1002"])
        caller.call_id += "-cancel"
        caller.invite_text = caller.request(
            "INVITE", "1001", to="1002", body=caller.sdp(), headers={"Content-Type": "application/sdp"}
        )
        challenge = caller.receive()
        caller.ack_failure(challenge)  # type: ignore[arg-type]
        _auth_invite(caller, "1002", challenge)
        invite = phone.receive_request(5, "INVITE")
        assert invite is not None
        phone.respond(invite, 180)
        assert caller.receive(5).status == 180  # type: ignore[union-attr]
        caller.cancel()
        answers = sorted(r.status for r in (caller.receive(5), caller.receive(5)) if r)
        assert answers == [200, 487]
        cancel = phone.receive_request(5, "CANCEL")
        assert cancel is not None
        phone.respond(cancel, 200)
        phone.respond(invite, 487)
    assert any(c.callee == "1002" and c.disposition == "cancelled" for c in cdrs(pbx))


@pytest.mark.parametrize("target, status", [("4711", 404), ("1007", 480)])
def test_unknown_and_unregistered(pbx: Pbx, target: str, status: int) -> None:
    with SipClient(pbx.host, pbx.sip_port) as caller:
        caller.call_id += f"-{target}"
        _, final = caller.invite("1001", USERS["1001"], target)
        assert final is not None and final.status == status


def test_no_calls_without_credentials(pbx: Pbx) -> None:
    """No open relay: unauthenticated or wrongly authenticated INVITEs never ring anyone."""
    with SipClient(pbx.host, pbx.sip_port) as phone, SipClient(pbx.host, pbx.sip_port) as caller:
        register(phone, "1004", USERS["1004"])
        caller.request("INVITE", "1001", to="1004", body=caller.sdp(),
                       headers={"Content-Type": "application/sdp"})
        challenge = caller.receive()
        assert challenge is not None and challenge.status == 407
        caller.call_id += "-wrong"
        _, final = caller.invite("1001", "not-the-password", "1004")
        assert final is not None and final.status == 403
        assert phone.receive_request(1.0, "INVITE") is None


def test_bad_requests_get_clear_answers(pbx: Pbx) -> None:
    with SipClient(pbx.host, pbx.sip_port) as caller:
        # a BYE for a dialog that does not exist
        caller.request("BYE", "1001", to="1002", headers={})
        response = caller.receive()
        assert response is not None and response.status == 481
        # a broken SDP body
        caller.call_id += "-sdp"
        _, final = caller.invite("1001", USERS["1001"], "1002", body=b"v=0\r\nthis is not sdp\r\n")
        assert final is not None and final.status == 400 and "SDP" in final.reason


def test_hold_and_blind_transfer(pbx: Pbx) -> None:
    """1001 calls 1002; 1002 holds, resumes, then REFERs 1001 to 1003, who answers."""
    with SipClient(pbx.host, pbx.sip_port) as alice, SipClient(
        pbx.host, pbx.sip_port
    ) as bob, SipClient(pbx.host, pbx.sip_port) as carol:
        register(bob, "1002", USERS["1002"])
        register(carol, "1003", USERS["1003"])
        ok, (invite, bob_ok) = place_call(alice, "1001", USERS["1001"], bob, "1002", 41010,
                                          "transfer")
        picked: list = []  # type: ignore[type-arg]
        # Bob's dialog with the PBX: he is the UAS, so From/To are swapped for his requests
        bob_dialog = uas_dialog(invite, bob_ok)
        assert bob.receive_request(3, "ACK") is not None
        # hold: Bob sends a re-INVITE with a=sendonly
        hold_sdp = bob.sdp(41010).replace(b"a=fmtp:101 0-15\r\n", b"a=fmtp:101 0-15\r\na=sendonly\r\n")
        bob.in_dialog("INVITE", bob_dialog, body=hold_sdp)
        held = bob.receive(5)
        assert held is not None and held.status == 200 and b"a=recvonly" in held.body
        bob.in_dialog("ACK", bob_dialog, cseq=held.cseq.number)
        bob.in_dialog("INVITE", bob_dialog, body=bob.sdp(41010))
        resumed = bob.receive(5)
        assert resumed is not None and resumed.status == 200 and b"a=sendrecv" in resumed.body
        bob.in_dialog("ACK", bob_dialog, cseq=resumed.cseq.number)
        # blind transfer: REFER to 1003
        worker = threading.Thread(target=lambda: picked.append(answer(carol, 41020)))
        worker.start()
        bob.in_dialog("REFER", bob_dialog, headers={
            "Refer-To": f"<sip:1003@{pbx.host}>", "Referred-By": f"<sip:1002@{pbx.host}>",
        })
        accepted = bob.receive(5)
        assert accepted is not None and accepted.status == 202
        worker.join()
        carol_invite, carol_ok = picked[0]
        assert carol.receive_request(3, "ACK") is not None
        notes = transfer_progress(bob)
        assert notes[0].startswith("SIP/2.0 100") and notes[1].startswith("SIP/2.0 200")
        bye = bob.receive_request(5, "BYE")
        assert bye is not None  # Bob is out of the call
        bob.respond(bye, 200)
        # Alice now talks to Carol: her hang-up reaches Carol
        alice.in_dialog("BYE", ok)
        carol_bye = carol.receive_request(5, "BYE")
        assert carol_bye is not None
        carol.respond(carol_bye, 200)
    record = next(c for c in cdrs(pbx) if c.callee == "1002" and "transfer:1003" in c.path)
    assert record.disposition == "answered"


def test_blind_transfer_to_a_do_not_disturb_extension_is_refused(pbx: Pbx) -> None:
    """DND (or a profile that takes no direct calls) holds for transferred calls
    too: the referrer hears 486 in the NOTIFY and keeps the call."""
    with SipClient(pbx.host, pbx.sip_port) as alice, SipClient(pbx.host, pbx.sip_port) as bob:
        register(bob, "1002", USERS["1002"])
        ok, (invite, bob_ok) = place_call(alice, "1001", USERS["1001"], bob, "1002", 41030,
                                          "transfer-dnd")
        bob_dialog = uas_dialog(invite, bob_ok)
        assert bob.receive_request(3, "ACK") is not None
        bob.in_dialog("REFER", bob_dialog, headers={"Refer-To": f"<sip:1008@{pbx.host}>"})
        accepted = bob.receive(5)
        assert accepted is not None and accepted.status == 202
        notes = transfer_progress(bob)
        assert notes[0].startswith("SIP/2.0 100") and notes[1].startswith("SIP/2.0 486")
        assert bob.receive_request(1, "BYE") is None  # Bob still has Alice
        alice.in_dialog("BYE", ok)
        bye = bob.receive_request(5, "BYE")
        assert bye is not None
        bob.respond(bye, 200)


def transfer_progress(referrer: SipClient) -> list[str]:
    """The two NOTIFY sipfrags a blind transfer's referrer gets (100, then the
    outcome), each answered 200."""
    notes = []
    for _ in range(2):
        notify = referrer.receive_request(5, "NOTIFY")
        assert notify is not None
        referrer.respond(notify, 200)
        notes.append(notify.body.decode())
    return notes


def _dominant_frequency(path: Path) -> float:
    audio, rate = soundfile.read(path, dtype="float64")
    if audio.ndim > 1:
        audio = audio[:, 0]
    audio = audio[int(rate * 0.5):]  # skip the first half second (set-up, jitter buffer)
    assert np.sqrt(np.mean(audio**2)) > 0.01, f"{path.name} is silent"
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.fft.rfftfreq(len(audio), 1 / rate)[np.argmax(spectrum)])


@pytest.mark.skipif(shutil.which("baresip") is None, reason="baresip not installed")
def test_baresip_phones_hear_each_other(pbx: Pbx, tmp_path: Path) -> None:
    """1001 dials 1002 (auto-answer); each phone's tone arrives at the other."""
    low, high = tone_wav(tmp_path / "low.wav", 600, 4.0), tone_wav(tmp_path / "high.wav", 1000,
                                                                    4.0)
    before = {c.id for c in cdrs(pbx)}
    with baresip_phone(tmp_path, pbx, "1002", USERS["1002"], audio_file=low, seconds=25) as callee:
        deadline = time.monotonic() + 10
        while not _registered(pbx, "1002", callee.port):
            assert time.monotonic() < deadline, callee.log()
            time.sleep(0.2)
        with baresip_phone(
            tmp_path, pbx, "1001", USERS["1001"], audio_file=high, seconds=20,
            command=f"/dial sip:1002@{pbx.host}:{pbx.sip_port}",
        ) as caller:
            deadline = time.monotonic() + 20
            while not (list(caller.directory.glob("dump-*-dec.wav"))
                       and list(callee.directory.glob("dump-*-dec.wav"))
                       and _call_over(pbx, before)):
                assert time.monotonic() < deadline, caller.log() + callee.log() + pbx.log()[-3000:]
                time.sleep(0.3)
        heard_by_callee = next(callee.directory.glob("dump-*-dec.wav"))
        heard_by_caller = next(caller.directory.glob("dump-*-dec.wav"))
        assert abs(_dominant_frequency(heard_by_callee) - 1000) < 15
        assert abs(_dominant_frequency(heard_by_caller) - 600) < 15


def _registered(pbx: Pbx, number: str, port: int) -> bool:
    with SipClient(pbx.host, pbx.sip_port) as client:
        response = client.register(number, USERS[number], contacts=[], expires=None)
    return response is not None and any(c.uri.port == port for c in response.contacts)


def _call_over(pbx: Pbx, before: set[int | None]) -> bool:
    """The call has ended and has its record (the caller hangs up when its file ends)."""
    return any(
        c.id not in before and c.caller == "1001" and c.callee == "1002" and c.answered_by
        for c in cdrs(pbx)
    )


@pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed")
def test_media_ports_and_calls_are_freed_after_1000_calls(tmp_path: Path) -> None:
    users = {"1001": USERS["1001"], "1002": USERS["1002"]}
    # what leaks is the question here, not load: on a busy machine the
    # governor's 503s (tests/integration/test_overload.py) would fail calls
    with running_pbx(tmp_path, users, rtp_ports="30000-32000", log_level="INFO",
                     overload_control="no") as server:
        with sipp_callee(tmp_path, server, "1002", USERS["1002"], ["-l", "1000"]):
            result = run_sipp(
                "call_uac.xml", server, [("1001", USERS["1001"], "1002")], tmp=tmp_path,
                calls=1000, rate=150, timeout=90, extra=["-d", "100", "-l", "100"],
            )
            assert result.successful == 1000 and result.failed == 0, result.output[-2000:]
        deadline = time.monotonic() + 10
        while True:
            health = server.health()
            if health["calls"] == 0 and health["media_ports_free"] == health["media_ports_total"]:
                break
            assert time.monotonic() < deadline, health
            time.sleep(0.2)
        assert health["media_ports_total"] == 1000
        records = cdrs(server, limit=2000)
        assert len(records) == 1000 and all(c.disposition == "answered" for c in records)


def _ring_and(phone: SipClient, then: int, port: int = 41100) -> threading.Thread:
    """In the background: the phone rings (180) and then answers ``then`` (200, 486…)."""

    def run() -> None:
        invite = phone.receive_request(10, "INVITE")
        if invite is None:
            return
        phone.seen.append(invite)  # type: ignore[attr-defined]
        phone.respond(invite, 180)
        phone.respond(invite, then, body=phone.sdp(port) if then == 200 else b"")

    phone.seen = []  # type: ignore[attr-defined]
    worker = threading.Thread(target=run)
    worker.start()
    return worker


def test_forward_on_busy_with_diversion(pbx: Pbx) -> None:
    with SipClient(pbx.host, pbx.sip_port) as busy, SipClient(pbx.host, pbx.sip_port) as other, \
            SipClient(pbx.host, pbx.sip_port) as caller:
        register(busy, "1006", USERS["1006"])
        register(other, "1007", USERS["1007"])
        workers = [_ring_and(busy, 486), _ring_and(other, 200)]
        caller.call_id += "-fwd"
        _, final = caller.invite("1001", USERS["1001"], "1006", wait=8)
        for worker in workers:
            worker.join()
        assert final is not None and final.status == 200
        diverted = other.seen[0]  # type: ignore[attr-defined]
        assert "reason=user-busy" in (diverted.headers.get("Diversion") or "")
        assert "1006" in diverted.headers.get("Diversion")
        caller.in_dialog("ACK", final, cseq=final.cseq.number)
        caller.in_dialog("BYE", final)
    record = next(c for c in cdrs(pbx) if c.callee == "1006")
    assert record.answered_by == "1007" and "user-busy:1007" in record.path


def test_do_not_disturb(pbx: Pbx) -> None:
    with SipClient(pbx.host, pbx.sip_port) as caller:
        caller.call_id += "-dnd"
        _, final = caller.invite("1001", USERS["1001"], "1008")
        assert final is not None and final.status == 486 and "disturb" in final.reason


def test_linear_ring_group_hunts_to_the_next_member(pbx: Pbx) -> None:
    with SipClient(pbx.host, pbx.sip_port) as first, SipClient(pbx.host, pbx.sip_port) as second, \
            SipClient(pbx.host, pbx.sip_port) as caller:
        register(first, "1003", USERS["1003"])
        register(second, "1004", USERS["1004"])
        ignored = threading.Thread(target=lambda: first.receive_request(8, "INVITE"))
        ignored.start()
        picker = _ring_and(second, 200)
        caller.call_id += "-group"
        started = time.monotonic()
        _, final = caller.invite("1001", USERS["1001"], "600", wait=12)
        ignored.join()
        picker.join()
        assert final is not None and final.status == 200
        assert 4.5 < time.monotonic() - started < 9  # member_timeout = 5 on the first member
        assert first.receive_request(5, "CANCEL") is not None
        caller.in_dialog("ACK", final, cseq=final.cseq.number)
        caller.in_dialog("BYE", final)
    record = next(c for c in cdrs(pbx) if c.callee == "600")
    assert record.answered_by == "1004"


def test_pickup_of_a_ringing_colleague(pbx: Pbx) -> None:
    with SipClient(pbx.host, pbx.sip_port) as ringing, SipClient(pbx.host, pbx.sip_port) as picker, \
            SipClient(pbx.host, pbx.sip_port) as caller:
        register(ringing, "1004", USERS["1004"])
        caller.call_id += "-pickup"
        results: list = []  # type: ignore[type-arg]
        worker = threading.Thread(
            target=lambda: results.append(caller.invite("1001", USERS["1001"], "1004", wait=10))
        )
        worker.start()
        invite = ringing.receive_request(5, "INVITE")
        assert invite is not None
        ringing.respond(invite, 180)
        time.sleep(0.3)
        picker.call_id += "-picker"
        _, picked = picker.invite("1003", USERS["1003"], "**1004")
        worker.join()
        assert picked is not None and picked.status == 200 and b"m=audio" in picked.body
        _, final = results[0]
        assert final is not None and final.status == 200
        assert ringing.receive_request(5, "CANCEL") is not None
        picker.in_dialog("ACK", picked, cseq=picked.cseq.number)
        caller.in_dialog("ACK", final, cseq=final.cseq.number)
        caller.in_dialog("BYE", final)
        assert picker.receive_request(5, "BYE") is not None


def test_attended_transfer_with_replaces(pbx: Pbx) -> None:
    """Bob talks to Alice, calls Carol, then joins Alice and Carol (REFER with Replaces)."""
    with SipClient(pbx.host, pbx.sip_port) as alice, SipClient(pbx.host, pbx.sip_port) as bob, \
            SipClient(pbx.host, pbx.sip_port) as carol:
        register(bob, "1002", USERS["1002"])
        register(carol, "1003", USERS["1003"])
        alice_ok, (bob_invite, bob_ok) = place_call(alice, "1001", USERS["1001"], bob, "1002",
                                                    41030, "attended")
        bob_dialog = uas_dialog(bob_invite, bob_ok)
        # Bob calls Carol on a second line
        consulted: list[tuple[Request, Response]] = []
        worker = threading.Thread(target=lambda: consulted.append(answer(carol, 41040)))
        worker.start()
        second = SipClient(pbx.host, pbx.sip_port)
        try:
            second.call_id += "-consult"
            _, consult_ok = second.invite("1002", USERS["1002"], "1003")
            worker.join()
            assert consult_ok is not None and consult_ok.status == 200
            second.in_dialog("ACK", consult_ok, cseq=consult_ok.cseq.number)
            replaces = (f"{consult_ok.call_id}%3Bto-tag%3D{consult_ok.to_addr.tag}"
                        f"%3Bfrom-tag%3D{consult_ok.from_addr.tag}")
            bob.in_dialog("REFER", bob_dialog, headers={
                "Refer-To": f"<sip:1003@{pbx.host}?Replaces={replaces}>",
            })
            accepted = bob.receive(5)
            assert accepted is not None and accepted.status == 202
            notify = bob.receive_request(5, "NOTIFY")
            assert notify is not None and notify.body.startswith(b"SIP/2.0 200")
            bob.respond(notify, 200)
            assert bob.receive_request(5, "BYE") is not None  # Bob leaves the first call
            assert second.receive_request(5, "BYE") is not None  # and the consultation
        finally:
            second.close()
        # Alice and Carol now talk: Alice's hang-up reaches Carol
        alice.in_dialog("BYE", alice_ok)
        assert carol.receive_request(5, "BYE") is not None


def test_session_timer_is_granted(pbx: Pbx) -> None:
    with SipClient(pbx.host, pbx.sip_port) as phone, SipClient(pbx.host, pbx.sip_port) as caller:
        register(phone, "1004", USERS["1004"])
        worker = threading.Thread(target=lambda: answer(phone, 41050))
        worker.start()
        caller.call_id += "-timer"
        caller.invite_text = caller.request(
            "INVITE", "1001", to="1004", body=caller.sdp(),
            headers={"Content-Type": "application/sdp", "Supported": "timer",
                     "Session-Expires": "120"},
        )
        challenge = caller.receive()
        caller.ack_failure(challenge)  # type: ignore[arg-type]
        authorization = build_authorization(
            challenge.headers.get("Proxy-Authenticate") or "", method="INVITE",  # type: ignore[union-attr]
            uri=f"sip:1004@{caller.host}:{caller.port}", username="1001", password=USERS["1001"],
        )
        caller.invite_text = caller.request(
            "INVITE", "1001", to="1004", body=caller.sdp(), authorization=authorization,
            headers={"Content-Type": "application/sdp", "Supported": "timer",
                     "Session-Expires": "120"},
        )
        final = caller.final(caller.receive(5), 5)
        worker.join()
        assert final is not None and final.status == 200
        assert final.headers.get("Session-Expires") == "120;refresher=uac"
        assert "timer" in final.headers.get_all("Require")
        caller.in_dialog("ACK", final, cseq=final.cseq.number)
        caller.in_dialog("UPDATE", final)  # the refresh
        refreshed = caller.receive(5)
        assert refreshed is not None and refreshed.status == 200
        caller.in_dialog("BYE", final)
        assert phone.receive_request(5, "BYE") is not None


@pytest.mark.skipif(shutil.which("baresip") is None, reason="baresip not installed")
@pytest.mark.parametrize("mix", ["stereo", "mono"])
def test_recorded_call_has_caller_left_and_callee_right(tmp_path: Path, mix: str) -> None:
    """Stereo: caller left, callee right; mono (recording_mix = mono): both in one."""
    users = {"1001": USERS["1001"]}
    sections = "\n[1002]\nsecret = pw-1002-secret\nrecord = yes\n"
    low, high = tone_wav(tmp_path / "low.wav", 600, 4.0), tone_wav(tmp_path / "high.wav", 1000,
                                                                    4.0)
    with running_pbx(tmp_path, users, sections=sections, recording_mix=mix) as server:
        with baresip_phone(tmp_path, server, "1002", USERS["1002"], audio_file=low, seconds=25) as callee:
            deadline = time.monotonic() + 10
            while not _registered(server, "1002", callee.port):
                assert time.monotonic() < deadline, callee.log()
                time.sleep(0.2)
            with baresip_phone(
                tmp_path, server, "1001", USERS["1001"], audio_file=high, seconds=20,
                command=f"/dial sip:1002@{server.host}:{server.sip_port}",
            ):
                deadline = time.monotonic() + 20
                while not _call_over(server, set()):
                    assert time.monotonic() < deadline, server.log()[-3000:]
                    time.sleep(0.3)
        time.sleep(0.5)
        store = Store(f"sqlite:///{server.data_dir / 'pbx.sqlite3'}")
        try:
            (recording,) = store.recordings()
        finally:
            store.close()
        assert recording.parties == "1001,1002" and recording.duration > 2.5
        assert recording.retain_until - recording.started_at > 700 * 86400  # 24 months
        audio, rate = soundfile.read(recording.path, dtype="float64", always_2d=True)
        assert rate == 8000 and audio.shape[1] == (2 if mix == "stereo" else 1)
        middle = audio[int(0.5 * rate) : int(3 * rate)]

        def peaks(channel: np.ndarray) -> list[float]:
            """The two strongest tones, strongest first."""
            spectrum = np.abs(np.fft.rfft(channel * np.hanning(len(channel))))
            freqs = np.fft.rfftfreq(len(channel), 1 / rate)
            first = int(np.argmax(spectrum))
            spectrum[max(first - 40, 0) : first + 40] = 0  # ±50 Hz around it
            return [float(freqs[first]), float(freqs[int(np.argmax(spectrum))])]

        if mix == "stereo":
            assert abs(peaks(middle[:, 0])[0] - 1000) < 15  # the caller, left
            assert abs(peaks(middle[:, 1])[0] - 600) < 15  # the callee, right
        else:
            assert sorted(round(f, -1) for f in peaks(middle[:, 0])) == [600, 1000]


def test_music_on_hold(pbx: Pbx) -> None:
    """Bob holds: Alice hears music from the PBX; Bob resumes: the music stops."""
    with SipClient(pbx.host, pbx.sip_port) as alice, SipClient(pbx.host, pbx.sip_port) as bob:
        register(bob, "1002", USERS["1002"])
        media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        media.bind(("127.0.0.1", 0))
        media.settimeout(0.2)
        alice_port = media.getsockname()[1]
        ok, picked = place_call(alice, "1001", USERS["1001"], bob, "1002", 41060, "moh",
                                body=alice.sdp(alice_port))
        bob_dialog = uas_dialog(*picked)
        assert bob.receive_request(3, "ACK") is not None

        def heard(seconds: float) -> float:
            """RMS of what reaches Alice's RTP port (µ-law decoded)."""
            samples = []
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                try:
                    samples.append(ulaw_decode(media.recv(2048)[12:]).astype(float))
                except socket.timeout:
                    pass
            return float(np.sqrt(np.mean(np.concatenate(samples) ** 2))) if samples else 0.0

        try:
            assert heard(0.5) == 0.0  # Bob says nothing
            hold = bob.sdp(41060).replace(b"a=fmtp:101 0-15\r\n", b"a=fmtp:101 0-15\r\na=sendonly\r\n")
            bob.in_dialog("INVITE", bob_dialog, body=hold)
            held = bob.receive(5)
            assert held is not None and held.status == 200
            bob.in_dialog("ACK", bob_dialog, cseq=held.cseq.number)
            assert heard(1.5) > 300  # music
            bob.in_dialog("INVITE", bob_dialog, body=bob.sdp(41060))
            resumed = bob.receive(5)
            assert resumed is not None and resumed.status == 200
            bob.in_dialog("ACK", bob_dialog, cseq=resumed.cseq.number)
            time.sleep(0.3)
            heard(0.2)  # drain what was in flight
            assert heard(0.5) == 0.0
        finally:
            media.close()
        alice.in_dialog("BYE", ok)
        assert bob.receive_request(5, "BYE") is not None


def test_unknown_codec_and_reinvite_glare(pbx: Pbx) -> None:
    with SipClient(pbx.host, pbx.sip_port) as phone, SipClient(pbx.host, pbx.sip_port) as caller:
        # an offer with only codecs the PBX does not do: 488 with a reason
        caller.call_id += "-codec"
        gsm_only = caller.sdp(40100, codecs="3").replace(b"a=rtpmap:0 PCMU/8000\r\n", b"")
        _, final = caller.invite("1001", USERS["1001"], "1004", body=gsm_only)
        assert final is not None and final.status == 488 and "codec" in final.reason
        # a second re-INVITE while our 200 to the first is not yet ACKed: 491
        register(phone, "1004", USERS["1004"])
        ok, _ = place_call(caller, "1001", USERS["1001"], phone, "1004", 41070, "glare")
        caller.in_dialog("INVITE", ok, body=caller.sdp())
        first = caller.receive(5)
        assert first is not None and first.status == 200
        caller.in_dialog("INVITE", ok, body=caller.sdp())  # no ACK for the first yet
        second = caller.receive(5)
        assert second is not None and second.status == 491
        caller.in_dialog("ACK", ok, cseq=first.cseq.number)
        caller.in_dialog("BYE", ok)
        assert phone.receive_request(5, "BYE") is not None


@pytest.mark.skipif(shutil.which("baresip") is None, reason="baresip not installed")
def test_baresip_hold_and_blind_transfer(tmp_path: Path) -> None:
    """A (1001) calls B (1002); B holds (A hears music), resumes, and transfers A to C (1003)."""
    users = {n: USERS[n] for n in ("1001", "1002", "1003")}
    with running_pbx(tmp_path, users) as server:
        a_tone, b_tone, c_tone = (
            tone_wav(tmp_path / f"{n}.wav", f, 13.0) for n, f in (("a", 1000), ("b", 600), ("c", 1300))
        )
        with baresip_phone(tmp_path, server, "1002", users["1002"], audio_file=b_tone, seconds=30,
                           control=True) as b, \
                baresip_phone(tmp_path, server, "1003", users["1003"], audio_file=c_tone,
                              seconds=30) as c:
            deadline = time.monotonic() + 10
            while not (_registered(server, "1002", b.port) and _registered(server, "1003", c.port)):
                assert time.monotonic() < deadline, b.log() + c.log()
                time.sleep(0.2)
            with baresip_phone(tmp_path, server, "1001", users["1001"], audio_file=a_tone,
                               seconds=30, command=f"/dial sip:1002@{server.host}:{server.sip_port}") as a:
                time.sleep(3)
                b.command("hold")
                time.sleep(2)
                b.command("resume")
                time.sleep(2)
                b.command("transfer", f"sip:1003@{server.host}:{server.sip_port}")
                deadline = time.monotonic() + 15
                while not _call_over(server, set()):
                    assert time.monotonic() < deadline, server.log()[-3000:]
                    time.sleep(0.3)
            heard_by_a, _ = soundfile.read(next(a.directory.glob("dump-*-dec.wav")), dtype="float64")
            heard_by_c, _ = soundfile.read(next(c.directory.glob("dump-*-dec.wav")), dtype="float64")
        talk, held, after = heard_by_a[8000:20000], heard_by_a[28000:36000], heard_by_a[64000:88000]
        assert level(talk, 600) > 10 * level(talk, 1300)  # B
        assert level(held, 600) < level(talk, 600) / 10  # music, not B
        assert np.sqrt(np.mean(held**2)) > 0.003  # ... but not silence either
        assert level(after, 1300) > 10 * level(after, 600)  # C after the transfer
        assert level(heard_by_c[8000:], 1000) > 10 * level(heard_by_c[8000:], 600)  # C hears A
    record = next(r for r in cdrs(server) if r.callee == "1002")
    assert "transfer:1003" in record.path and record.disposition == "answered"


@pytest.mark.parametrize("transport", ["TCP", "TLS"])
def test_calls_reach_a_phone_over_the_connection_it_registered_on(
    pbx: Pbx, transport: str
) -> None:
    """RFC 5626 in spirit: the INVITE to a TCP/TLS phone comes down its own connection."""
    port = pbx.tls_port if transport == "TLS" else pbx.sip_port
    with SipClient(pbx.host, port, transport) as phone, SipClient(pbx.host, pbx.sip_port) as caller:
        response = phone.register(
            "1004", USERS["1004"],
            contacts=[f"<sip:1004@{phone.host_port()};transport={transport.lower()}>"],
        )
        assert response is not None and response.status == 200
        picked: list = []  # type: ignore[type-arg]
        worker = threading.Thread(target=lambda: picked.append(answer(phone, 41300)))
        worker.start()
        caller.call_id += f"-{transport}"
        _, ok = caller.invite("1001", USERS["1001"], "1004")
        worker.join()
        assert ok is not None and ok.status == 200
        invite, _ = picked[0]
        assert invite.vias[0].transport == transport
        caller.in_dialog("ACK", ok, cseq=ok.cseq.number)
        assert phone.receive_request(3, "ACK") is not None
        caller.in_dialog("BYE", ok)
        bye = phone.receive_request(5, "BYE")
        assert bye is not None
        phone.respond(bye, 200)
        phone.register("1004", USERS["1004"], contacts=[
            f"<sip:1004@{phone.host_port()};transport={transport.lower()}>"], expires=0)


def test_g722_phone_talks_to_a_g711_phone(pbx: Pbx) -> None:
    """Wideband against narrowband: the engine transcodes G.722 ↔ PCMU (the relay cannot)."""
    from media.codecs import WidebandChannel

    with SipClient(pbx.host, pbx.sip_port) as phone, SipClient(pbx.host, pbx.sip_port) as caller:
        register(phone, "1004", USERS["1004"])
        caller_rtp, phone_rtp = (socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2))
        for sock in (caller_rtp, phone_rtp):
            sock.bind(("127.0.0.1", 0))
        phone_rtp.setblocking(False)
        picked: list = []  # type: ignore[type-arg]
        worker = threading.Thread(target=lambda: picked.append(answer(phone, phone_rtp.getsockname()[1])))
        worker.start()
        caller.call_id += "-g722"
        wideband = caller.sdp(caller_rtp.getsockname()[1], codecs="9 101").replace(
            b"a=rtpmap:0 PCMU/8000\r\n", b"a=rtpmap:9 G722/8000\r\n")
        _, ok = caller.invite("1001", USERS["1001"], "1004", body=wideband)
        worker.join()
        assert ok is not None and ok.status == 200 and b"G722" in ok.body
        caller.in_dialog("ACK", ok, cseq=ok.cseq.number)
        pbx_port = int(ok.body.decode().split("m=audio ")[1].split()[0])
        encoder = WidebandChannel("G722")
        tone = np.sin(2 * np.pi * 1000 * np.arange(8000 * 2) / 8000) * 8000
        received = []
        try:
            for k in range(100):
                payload = encoder.encode(tone[k * 160 : (k + 1) * 160])
                caller_rtp.sendto(struct.pack("!BBHII", 0x80, 9, k, 160 * k, 99) + payload,
                                  ("127.0.0.1", pbx_port))
                time.sleep(0.02)
                try:
                    while True:  # drain what arrived meanwhile
                        packet = phone_rtp.recv(2048)
                        assert packet[1] & 0x7F == 0  # PCMU to the narrowband phone
                        received.append(ulaw_decode(packet[12:]).astype(float))
                except BlockingIOError:
                    pass
        finally:
            caller_rtp.close()
            phone_rtp.close()
        audio = np.concatenate(received[-50:])
        spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
        assert abs(np.fft.rfftfreq(len(audio), 1 / 8000)[np.argmax(spectrum)] - 1000) < 10
        caller.in_dialog("BYE", ok)
    record = next(c for c in cdrs(pbx) if c.callee == "1004" and "transcode" in c.path)
    assert "transcode:G722-PCMU" in record.path


def test_a_did_rings_its_extension(pbx: Pbx) -> None:
    with SipClient(pbx.host, pbx.sip_port) as phone, SipClient(pbx.host, pbx.sip_port) as caller:
        register(phone, "1004", USERS["1004"])
        worker = threading.Thread(target=lambda: answer(phone, 41400))
        worker.start()
        caller.call_id += "-did"
        _, ok = caller.invite("1001", USERS["1001"], "+4681234567")
        worker.join()
        assert ok is not None and ok.status == 200
        caller.in_dialog("ACK", ok, cseq=ok.cseq.number)
        caller.in_dialog("BYE", ok)
        assert phone.receive_request(5, "BYE") is not None


def test_offerless_invite(pbx: Pbx) -> None:
    """An INVITE without SDP: the PBX offers in its 200 and takes the answer from the ACK."""
    with SipClient(pbx.host, pbx.sip_port) as phone, SipClient(pbx.host, pbx.sip_port) as caller:
        register(phone, "1004", USERS["1004"])
        media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        media.bind(("127.0.0.1", 0))
        media.settimeout(2)
        picked: list = []  # type: ignore[type-arg]
        worker = threading.Thread(target=lambda: picked.append(answer(phone, 41500)))
        worker.start()
        caller.call_id += "-offerless"
        _, ok = caller.invite("1001", USERS["1001"], "1004", body=b"")
        worker.join()
        assert ok is not None and ok.status == 200 and b"m=audio" in ok.body  # the PBX's offer
        caller.in_dialog("ACK", ok, cseq=ok.cseq.number, body=caller.sdp(media.getsockname()[1], "0"))
        # the callee's audio now reaches the caller's answered address
        callee_invite, _ = picked[0]
        pbx_port = int(callee_invite.body.decode().split("m=audio ")[1].split()[0])
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sender.bind(("127.0.0.1", 41500))
        try:
            for seq in range(10):
                sender.sendto(struct.pack("!BBHII", 0x80, 0, seq, 160 * seq, 5) + b"\xff" * 160,
                              ("127.0.0.1", pbx_port))
            assert len(media.recv(2048)) == 172
        finally:
            sender.close()
            media.close()
        caller.in_dialog("BYE", ok)
        assert phone.receive_request(5, "BYE") is not None


FORWARDS = """
[3001]
secret = pw-3001
voicemail = no
forward_always = 3002

[3003]
secret = pw-3003
voicemail = no
ring_timeout = 5
forward_noanswer = 3002

[3004]
secret = pw-3004
voicemail = no
"""


def test_forward_always_no_answer_and_decline(tmp_path: Path) -> None:
    users = {"1001": USERS["1001"], "3002": "pw-3002"}
    with running_pbx(tmp_path, users, sections=FORWARDS) as server:
        with SipClient(server.host, server.sip_port) as target, \
                SipClient(server.host, server.sip_port) as slow, \
                SipClient(server.host, server.sip_port) as decliner, \
                SipClient(server.host, server.sip_port) as caller:
            for phone, number, secret in ((target, "3002", "pw-3002"), (slow, "3003", "pw-3003"),
                                          (decliner, "3004", "pw-3004")):
                response = phone.register(number, secret, contacts=[f"<sip:{number}@{phone.host_port()}>"])
                assert response is not None and response.status == 200
            # unconditional: 3001 has no phone at all, 3002 rings
            worker = _ring_and(target, 200)
            caller.call_id += "-always"
            _, ok = caller.invite("1001", USERS["1001"], "3001")
            worker.join()
            assert ok is not None and ok.status == 200
            assert "reason=unconditional" in (target.seen[0].headers.get("Diversion") or "")  # type: ignore[attr-defined]
            caller.in_dialog("ACK", ok, cseq=ok.cseq.number)
            caller.in_dialog("BYE", ok)
            bye = target.receive_request(5, "BYE")
            assert bye is not None
            target.respond(bye, 200)
            assert caller.receive(5).status == 200  # type: ignore[union-attr]
            # no answer: 3003 rings 5 s, then 3002
            ignored = threading.Thread(target=lambda: slow.receive_request(5, "INVITE"))
            ignored.start()
            worker = _ring_and(target, 200)
            caller.call_id += "-noanswer"
            started = time.monotonic()
            _, ok = caller.invite("1001", USERS["1001"], "3003", wait=12)
            worker.join()
            ignored.join()
            assert ok is not None and ok.status == 200 and time.monotonic() - started > 4.5
            assert "reason=no-answer" in (target.seen[0].headers.get("Diversion") or "")  # type: ignore[attr-defined]
            caller.in_dialog("ACK", ok, cseq=ok.cseq.number)
            caller.in_dialog("BYE", ok)
            bye = target.receive_request(5, "BYE")
            assert bye is not None
            target.respond(bye, 200)
            assert caller.receive(5).status == 200  # type: ignore[union-attr]
            # decline: 603 ends the call at once
            worker = _ring_and(decliner, 603)
            caller.call_id += "-decline"
            _, final = caller.invite("1001", USERS["1001"], "3004")
            worker.join()
            assert final is not None and final.status == 603
        dispositions = {c.callee: c.disposition for c in cdrs(server)}
        assert dispositions == {"3001": "answered", "3003": "answered", "3004": "declined"}



def test_recording_on_demand_with_star_one(tmp_path: Path) -> None:
    """*1 from the phone of an extension with record_on_demand starts recording the
    call, *1 again stops it; the recording is stored with its length."""
    users = {"1001": USERS["1001"]}
    sections = "\n[1006]\nsecret = pw-1006-secret\nrecord_on_demand = yes\n"
    with running_pbx(tmp_path, users, sections=sections) as server:
        with SipClient(server.host, server.sip_port) as caller, \
                SipClient(server.host, server.sip_port) as phone:
            response = phone.register("1006", "pw-1006-secret",
                                      contacts=[f"<sip:1006@{phone.host_port()}>"])
            assert response is not None and response.status == 200
            phone_rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            phone_rtp.bind(("127.0.0.1", 0))
            ok, (invite, _) = place_call(caller, "1001", USERS["1001"], phone, "1006",
                                         phone_rtp.getsockname()[1], "ondemand")
            pbx_port = int(invite.body.decode().split("m=audio ")[1].split()[0])

            def press(keys: str, base: int) -> None:
                """Keys as RFC 4733 events from the callee's phone."""
                key_in(phone_rtp, pbx_port, keys, base, ssrc=9, pause=0.1)

            try:
                press("*1", 10)
                time.sleep(1.0)
                press("*1", 20)
                time.sleep(0.3)
            finally:
                phone_rtp.close()
            caller.in_dialog("BYE", ok)
        time.sleep(0.5)
        store = Store(f"sqlite:///{server.data_dir / 'pbx.sqlite3'}")
        try:
            recordings = store.recordings()
        finally:
            store.close()
        assert len(recordings) == 1 and 0.5 < recordings[0].duration < 3, recordings
        assert "1006 stopped the recording" in server.log()
