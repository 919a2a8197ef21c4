"""``pbx softphone`` against a real PBX: it calls an extension and records the far
end's tone (over UDP, TCP and TLS), it answers a call and the caller hears the
file it plays, an agent drives it with keys (answer, DTMF both ways, hang up,
dial), and a wrong password or a failed call is said with the PBX's answer and
a non-zero exit."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile

from media.rtp import KeyListener, RtpPacket
from pbx.sip.message import Response
from tests.integration.audio import RtpPhone, level, tone_wav
from tests.integration.peers import REPO, Pbx, running_pbx
from tests.integration.sipclient import SipClient, register

USERS = {"1001": "softphone-secret", "1002": "desk-secret"}


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    with running_pbx(tmp_path_factory.mktemp("softphone"), USERS) as server:
        yield server


def softphone(pbx: Pbx, *args: str, password: str = USERS["1001"],
              server: str = "") -> subprocess.Popen[str]:
    return subprocess.Popen(  # stdin: the keys of an interactive phone
        [sys.executable, "-m", "pbx", "softphone", "--server", server or f"{pbx.host}:{pbx.sip_port}",
         "--user", "1001", "--password", password, *args],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)


def said(process: subprocess.Popen[str], text: str, timeout: float = 30.0) -> str:
    """Read the softphone's output up to the line with ``text`` (a softphone still
    silent after ``timeout`` is killed, which ends the reading)."""
    assert process.stdout is not None
    watchdog = threading.Timer(timeout, process.kill)
    watchdog.start()
    lines = []
    try:
        while text not in (line := process.stdout.readline()):
            assert line, f"the softphone ended before saying {text!r}: {lines}"
            lines.append(line)
    finally:
        watchdog.cancel()
    return line


def type_keys(process: subprocess.Popen[str], keys: str) -> None:
    assert process.stdin is not None
    process.stdin.write(keys)
    process.stdin.flush()


def keys_heard(media: RtpPhone, seconds: float) -> str:
    """RFC 4733 keys arriving at ``media`` within ``seconds``."""
    listener, keys = KeyListener(), []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            packet = RtpPacket.parse(media.sock.recv(2048))
        except TimeoutError:
            continue
        if packet is not None and packet.payload_type == 101 and (key := listener.feed(packet)):
            keys.append(key)
    return "".join(keys)


def finished(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=30)  # closing stdin quits an interactive one
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    return process.returncode, out, err


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_calls_an_extension_and_records_its_tone(pbx: Pbx, tmp_path: Path, transport: str) -> None:
    recording = tmp_path / "heard.wav"
    port = pbx.tls_port if transport == "tls" else pbx.sip_port
    with SipClient(pbx.host, pbx.sip_port) as desk, RtpPhone() as media:
        register(desk, "1002", USERS["1002"])
        cli = softphone(pbx, "--call", "1002", "--record", str(recording), "--hangup-after", "2",
                        "--transport", transport, "--insecure", server=f"{pbx.host}:{port}")
        invite = desk.receive_request(20, "INVITE")
        assert invite is not None, finished(cli)
        desk.respond(invite, 180)
        desk.respond(invite, 200, body=desk.sdp(media.port))
        media.answered(invite.body)
        media.send_tone(1000, 2.5)
        assert desk.hung_up()
        code, out, err = finished(cli)
    assert code == 0, err
    assert "answered: PCMU" in out and "recorded" in out
    heard, rate = soundfile.read(recording, dtype="float64")
    assert rate == 8000 and len(heard) > 8000
    assert level(heard, 1000) > 20 * level(heard, 600)


def test_answers_and_plays_a_file_to_the_caller(pbx: Pbx, tmp_path: Path) -> None:
    cli = softphone(pbx, "--answer", "--play", str(tone_wav(tmp_path / "tone.wav", 700, 2.0)))
    try:
        said(cli, "registered as 1001")
        with SipClient(pbx.host, pbx.sip_port) as caller, RtpPhone() as media:
            _, ok = caller.invite("1002", USERS["1002"], "1001", body=caller.sdp(media.port))
            assert ok is not None and ok.status == 200, ok
            caller.in_dialog("ACK", ok, cseq=ok.cseq.number)
            heard = media.listen(2.0)
            assert caller.hung_up()  # the file is played: the softphone hangs up
    finally:
        code, out, err = finished(cli)
    assert code == 0, err
    assert "incoming call from" in out and "call ended: hung up" in out
    assert level(heard, 700) > 20 * level(heard, 1000)


def test_an_agent_answers_keys_digits_hangs_up_and_dials(pbx: Pbx) -> None:
    cli = softphone(pbx, "--interactive")
    try:
        said(cli, "registered as 1001")
        with SipClient(pbx.host, pbx.sip_port) as caller, RtpPhone() as media:
            final: list[object] = []
            ringing = threading.Thread(target=lambda: final.append(caller.invite(
                "1002", USERS["1002"], "1001", body=caller.sdp(media.port), wait=10)[1]))
            ringing.start()
            assert "1002" in said(cli, "incoming call from")
            type_keys(cli, "a")
            ringing.join()
            ok = final[0]
            assert isinstance(ok, Response) and ok.status == 200, ok
            caller.in_dialog("ACK", ok, cseq=ok.cseq.number)
            said(cli, "answered: PCMU")
            media.answered(ok.body)
            media.keys("7")  # the caller keys: the agent sees it
            said(cli, "heard key 7")
            type_keys(cli, "42#")
            assert keys_heard(media, 1.5) == "42#"
            type_keys(cli, "h")
            assert caller.hung_up()
            said(cli, "call ended: hung up")
        with SipClient(pbx.host, pbx.sip_port) as desk:
            register(desk, "1002", USERS["1002"])
            type_keys(cli, "1002\n")  # no call: the digits dial
            desk.pick_up(41000)
            said(cli, "answered")
            type_keys(cli, "q")  # quitting hangs up
            assert desk.hung_up()
    finally:
        code, _, err = finished(cli)
    assert code == 0, err


def test_a_wrong_password_is_refused(pbx: Pbx) -> None:
    code, out, err = finished(softphone(pbx, "--call", "1002", password="wrong"))
    assert code == 1
    assert "registration refused: 401" in err or "registration refused: 403" in err, err


def test_a_call_to_nobody_says_why_it_failed(pbx: Pbx) -> None:
    code, out, err = finished(softphone(pbx, "--call", "1999"))
    assert code == 1 and "registered as 1001" in out
    assert "call to sip:1999@" in err and "failed: 404" in err, err
