"""The demo dial plan of ``sip.conf.example``, as a newcomer starts it, with
real peers: the IVR on 500 (and its DID) sends callers on by their keys,
times out into voicemail, passes invalid keys to the operator, and follows
the switchboard closed by one API call."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.integration.audio import RtpPhone, heard, level, tone_wav
from tests.integration.peers import Pbx, baresip_phone, running_demo
from tests.integration.sipclient import SipClient
from tests.integration.voicemail_calls import BEEP_HZ

SECRETS = {n: f"demo-{n}-Pw" for n in ("1001", "1002", "1003", "1004")}


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    with running_demo(tmp_path_factory.mktemp("demo")) as server:
        yield server


def switchboard(pbx: Pbx, action: str) -> None:
    """Open, close or give back to its schedule the demo's office hours."""
    reply = httpx.post(f"{pbx.api}/schedules/office-hours/override",
                       headers=pbx.admin_headers(), json={"action": action})
    assert reply.status_code == 200, reply.text


def paths_of(pbx: Pbx, caller: str) -> list[list[str]]:
    time.sleep(0.5)  # records are written off the call
    page = httpx.get(f"{pbx.api}/cdrs", headers=pbx.admin_headers(), params={"limit": 20})
    return [c["path"] for c in page.json()["items"] if c["caller"] == caller]


def dial(phone: SipClient, rtp: RtpPhone, number: str, target: str) -> None:
    _, ok = phone.invite(number, SECRETS[number], target, body=phone.sdp(rtp.port, "0 101"))
    assert ok is not None and ok.status == 200, ok
    phone.in_dialog("ACK", ok, cseq=ok.cseq.number)
    rtp.answered(ok.body)
    phone.answer = ok  # type: ignore[attr-defined]


@pytest.mark.skipif(shutil.which("baresip") is None, reason="baresip not installed")
def test_key_2_in_the_ivr_reaches_bertil_and_they_hear_each_other(pbx: Pbx,
                                                                  tmp_path: Path) -> None:
    switchboard(pbx, "open")
    caller_tone, callee_tone = tone_wav(tmp_path / "a.wav", 440, 16), tone_wav(tmp_path / "b.wav",
                                                                               1000, 25)
    with baresip_phone(tmp_path, pbx, "1002", SECRETS["1002"], audio_file=callee_tone,
                       seconds=30) as bertil:
        time.sleep(1.5)  # registered
        with baresip_phone(tmp_path, pbx, "1001", SECRETS["1001"], audio_file=caller_tone,
                           seconds=25, control=True,
                           command=f"/dial sip:500@{pbx.host}:{pbx.sip_port}") as alice:
            deadline = time.monotonic() + 15
            while pbx.health()["calls"] < 1:
                assert time.monotonic() < deadline, alice.log()
                time.sleep(0.2)
            time.sleep(2.5)  # the greeting plays; the key cuts it short
            alice.command("sndcode", "2")
            deadline = time.monotonic() + 30
            while not (list(bertil.directory.glob("dump-*-dec.wav"))
                       and list(alice.directory.glob("dump-*-dec.wav"))
                       and pbx.health()["calls"] == 0):
                assert time.monotonic() < deadline, alice.log() + bertil.log() + pbx.log()[-3000:]
                time.sleep(0.3)
    by_bertil = heard(next(bertil.directory.glob("dump-*-dec.wav")))
    by_alice = heard(next(alice.directory.glob("dump-*-dec.wav")))
    talk = by_bertil[8000:]
    assert level(talk, 440) > 20 * max(level(talk, 1000), 1e-3)  # Alice's voice, not his own
    tail = by_alice[-5 * 8000:]
    assert level(tail, 1000) > 20 * max(level(tail, 440), 1e-3)  # Bertil's voice at the end
    assert np.sqrt(np.mean(by_alice[: 2 * 8000] ** 2)) > 0.01  # the greeting before
    (path,) = paths_of(pbx, "1001")[:1]
    assert "ivr:500" in path and "redirect:1002" in path and "answer:1002" in path


def test_pressing_nothing_ends_in_the_operators_mailbox(pbx: Pbx) -> None:
    """The greeting three times (5 s to answer each), then Alice's voicemail."""
    switchboard(pbx, "open")
    with SipClient(pbx.host, pbx.sip_port) as phone, RtpPhone() as rtp:
        dial(phone, rtp, "1003", "500")
        took = rtp.wait_for_tone(BEEP_HZ, timeout=90)
        assert took > 20  # three rounds of greeting and waiting came first
        rtp.send_tone(700, 2.0)
        phone.in_dialog("BYE", phone.answer)  # type: ignore[attr-defined]
    path = paths_of(pbx, "1003")[0]
    assert "ivr:500" in path and "redirect:voicemail:1001" in path


def test_invalid_keys_reach_the_operator(pbx: Pbx) -> None:
    switchboard(pbx, "open")
    with SipClient(pbx.host, pbx.sip_port) as operator:
        contact = [f"<sip:1001@{operator.host_port()}>"]
        assert operator.register("1001", SECRETS["1001"], contacts=contact).status == 200  # type: ignore[union-attr]
        try:
            with SipClient(pbx.host, pbx.sip_port) as phone, RtpPhone() as rtp:
                dial(phone, rtp, "1004", "500")
                rang = None
                for _ in range(3):  # one try and two retries
                    time.sleep(1.0)
                    rtp.keys("9")
                    rang = operator.receive_request(3, "INVITE")
                    if rang is not None:
                        break
                assert rang is not None and rang.from_addr.uri.user == "1004"
                operator.respond(rang, 486)
                phone.in_dialog("BYE", phone.answer)  # type: ignore[attr-defined]
        finally:
            operator.register("1001", SECRETS["1001"], contacts=contact, expires=0)


def test_the_switchboard_closed_by_the_api_takes_the_closed_branch(pbx: Pbx) -> None:
    switchboard(pbx, "close")
    try:
        with SipClient(pbx.host, pbx.sip_port) as phone, RtpPhone() as rtp:
            dial(phone, rtp, "1003", "+4681234567")  # the demo DID leads to the IVR
            took = rtp.wait_for_tone(BEEP_HZ, timeout=45)
            # the closed greeting, then the mailbox's greeting and the caller's
            # options (~16 s), then the tone: no menu (that would add three rounds)
            assert took < 30
            phone.in_dialog("BYE", phone.answer)  # type: ignore[attr-defined]
    finally:
        switchboard(pbx, "schedule")
    path = paths_of(pbx, "1003")[0]
    assert "ivr:500" in path and "redirect:voicemail:1001" in path


def test_the_demo_queue_answers_with_music_and_rings_an_agent(pbx: Pbx) -> None:
    """700: answered at once, music while Bertil's phone (the first agent) rings;
    the caller hanging up stops that ring, and the API saw them wait."""
    with SipClient(pbx.host, pbx.sip_port) as bertil:
        contact = [f"<sip:1002@{bertil.host_port()}>"]
        assert bertil.register("1002", SECRETS["1002"], contacts=contact).status == 200  # type: ignore[union-attr]
        try:
            with SipClient(pbx.host, pbx.sip_port) as phone, RtpPhone() as rtp:
                dial(phone, rtp, "1001", "700")
                rang = bertil.receive_request(5, "INVITE")
                assert rang is not None and rang.from_addr.uri.user == "1001"
                music = rtp.listen(2.0)
                assert np.sqrt(np.mean(music ** 2)) > 300  # music on hold, not silence
                queue = httpx.get(f"{pbx.api}/queues/700", headers=pbx.admin_headers()).json()
                assert [c["number"] for c in queue["callers"]] == ["1001"]
                assert queue["callers"][0]["ringing"] == ["1002"]
                phone.in_dialog("BYE", phone.answer)  # type: ignore[attr-defined]
                cancel = bertil.receive_request(5, "CANCEL")
                assert cancel is not None  # the caller left: the agent's ring stops at once
        finally:
            bertil.register("1002", SECRETS["1002"], contacts=contact, expires=0)
