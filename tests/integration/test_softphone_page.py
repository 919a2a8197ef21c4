"""The browser softphone with real peers: a headless Chromium logs in as the
user of extension 1001 at /softphone/, a SIP phone (1002) calls 1001, the
desk phone of 1001 and the page ring together, the page answers, audio
flows both ways over WebRTC (Opus), the page hangs up, and the call record
says 1001 answered."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.integration.audio import EVENTS, RtpPhone, tone_share, tone_wav, voiced_frames
from tests.integration.browser import Page, chromium_page, chromium_path
from tests.integration.peers import ADMIN_PASSWORD, login_once, running_pbx, user_of
from pbx.sip.message import Request
from tests.integration.sipclient import SipClient, register, uas_dialog

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(chromium_path() is None, reason="chromium not installed"),
]

SECRETS = {"1001": "pw-1001-secret", "1002": "pw-1002-secret", "1003": "pw-1003-secret"}
PAGE_TONE = 1000.0  # the page's microphone (Chromium's fake capture device plays a file)
PHONE_TONE = 600.0  # what the SIP phone says


def log_in(page: Page, url: str, username: str, password: str) -> None:
    page.goto(url)
    page.eval(f"""(() => {{
        const form = document.querySelector('#login');
        form.username.value = {username!r}; form.password.value = {password!r};
        form.requestSubmit(); }})()""")


def text(page: Page, selector: str) -> str:
    return str(page.eval(f"document.querySelector({selector!r}).textContent"))


def test_a_call_to_the_extension_rings_the_page_which_answers_talks_and_hangs_up(
        tmp_path: Path) -> None:
    microphone = tone_wav(tmp_path / "microphone.wav", PAGE_TONE, 10)
    flags = (f"--use-file-for-fake-audio-capture={microphone}",
             "--autoplay-policy=no-user-gesture-required")
    with running_pbx(tmp_path, SECRETS, admin_password=ADMIN_PASSWORD) as pbx, \
            chromium_page(flags) as page, \
            SipClient(pbx.host, pbx.sip_port) as desk, \
            SipClient(pbx.host, pbx.sip_port) as caller, RtpPhone() as talk:
        user_of(pbx, "1001")  # the login user1001 owns extension 1001
        register(desk, "1001", SECRETS["1001"])
        log_in(page, f"http://{pbx.host}:{pbx.http_port}/softphone/", "user1001",
               "user1001-Pass-12345")
        page.wait_for("document.querySelector('#line').textContent === 'Line 1001 ready'")

        first = caller.start_invite("1002", SECRETS["1002"], "1001", body=caller.sdp(talk.port))
        assert first is not None and first.status < 300, first
        rang = desk.receive_request(5, "INVITE")
        assert rang is not None  # the desk phone rings too
        page.wait_for("!document.querySelector('#ringing').hidden")
        assert "1002" in text(page, "#caller")
        assert page.eval("window.softphone.ringer.ringing") is True  # the ringtone plays
        page.eval("document.querySelector('#answer').click()")
        final = caller.answered(first)
        assert desk.receive_request(5, "CANCEL") is not None  # first answer wins
        page.wait_for("document.querySelector('#status').textContent === 'In call (opus)'")
        assert page.eval("window.softphone.ringer.ringing") is False
        page.wait_for("document.querySelector('#mic-level').value > 0.01")  # the meter moves

        # audio both ways: the phone talks while it listens to the page
        talk.answered(final.body)
        talker = threading.Thread(target=talk.send_tone, args=(PHONE_TONE, 4.0))
        talker.start()
        toned, frames = toned_frames(talk.listen(3.0))
        assert toned > 50, f"the page's {PAGE_TONE:.0f} Hz tone in {toned} of {frames} frames"
        loudest = page.wait_for("""(() => { const l = window.softphone.meter.loudest();
            return l && Math.abs(l.frequency - 600) < 20 && l.level > -60 ? l : null; })()""")
        talker.join()
        assert loudest["level"] > -60
        assert page.eval("document.querySelector('#no-audio').hidden") is True  # no false alarm

        # hold: the far end hears the PBX's music instead of the page; resume: the page again
        page.eval("document.querySelector('#hold').click()")
        page.wait_for("document.querySelector('#status').textContent === 'On hold'")
        talk.listen(0.5)  # what was on its way before
        held = talk.listen(1.5)
        assert toned_frames(held)[0] < 5 and voiced_frames(held) > 25
        page.eval("document.querySelector('#hold').click()")
        page.wait_for("document.querySelector('#status').textContent === 'In call (opus)'")
        talk.listen(0.5)
        assert toned_frames(talk.listen(1.5))[0] > 25

        page.eval("document.querySelector('#hangup').click()")
        assert caller.hung_up()
        page.wait_for("document.querySelector('#status').textContent.startsWith('Call ended')")
        assert page.eval("document.querySelector('#dial').hidden") is False

        # a second call: the page rejects it; the desk phone rings on and takes it
        caller.call_id += "-again"
        first = caller.start_invite("1002", SECRETS["1002"], "1001", body=caller.sdp(talk.port))
        assert first is not None and first.status < 300, first
        invite = desk.receive_request(5, "INVITE")
        while invite is not None and invite.call_id == rang.call_id:  # the first's, resent
            invite = desk.receive_request(5, "INVITE")
        assert invite is not None
        page.wait_for("!document.querySelector('#ringing').hidden")
        page.eval("document.querySelector('#reject').click()")
        page.wait_for("document.querySelector('#status').textContent === 'Call ended: rejected'")
        desk.respond(invite, 200, body=desk.sdp(talk.port + 2))
        final = caller.answered(first)

        record = answered_record(pbx.api, login_once(pbx, "admin", ADMIN_PASSWORD))
        assert record["disposition"] == "answered", record


SUPPORT = """
[700]
type = queue
name = Support
members = 1001
"""


def queue_panel(page: Page, api: str, me: dict[str, str]) -> None:
    """1001 is an agent of queue 700 (a member: logged in from the start): the
    page's queues panel pauses for lunch, resumes, logs out and in again, and
    the agent's state in the API follows."""
    shown = "document.querySelector('#agent-state').textContent"

    def state() -> tuple[str, str | None]:
        agent = httpx.get(f"{api}/agents/1001", headers=me).json()
        return agent["state"], agent["pause_reason"]

    page.wait_for(f"{shown} === 'available'")
    page.wait_for("document.querySelector('#waiting').textContent"
                  ".startsWith('Support (700): 0 waiting')")
    page.eval("""(() => { document.querySelector('#pause-reason').value = 'lunch';
        document.querySelector('#pause').click(); })()""")
    page.wait_for(f"{shown} === 'paused (lunch)'")
    assert state() == ("paused", "lunch")
    page.eval("document.querySelector('#pause').click()")
    page.wait_for(f"{shown} === 'available'")
    assert state() == ("available", None)
    page.eval("document.querySelector('#queue-login').click()")
    page.wait_for(f"{shown} === 'logged out'")
    assert state() == ("logged_out", None)
    page.eval("document.querySelector('#queue-login').click()")
    page.wait_for(f"{shown} === 'available'")
    assert state() == ("available", None)


def toned_frames(heard: np.ndarray) -> tuple[int, int]:
    """How many 20 ms frames of ``heard`` carry the page's tone, of how many."""
    frames = heard[: len(heard) // 160 * 160].reshape(-1, 160)
    return sum(tone_share(frame, PAGE_TONE) > 0.5 for frame in frames), len(frames)


def answered_record(api: str, headers: dict[str, str]) -> dict[str, object]:
    """The call record of 1002's call answered by 1001 (written as the call ends)."""
    for _ in range(50):
        items = httpx.get(f"{api}/cdrs", headers=headers).json()["items"]
        found = [r for r in items if r["caller"] == "1002" and r["answered_by"] == "1001"]
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"no record of 1002 answered by 1001 in {items}")


def keys_heard(sock: socket.socket, timeout: float = 5.0) -> str:
    """The RFC 4733 keys arriving on a phone's RTP socket until ``timeout`` passes
    without a new one (each key once, however many end packets it had)."""
    keys, last = "", None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            packet = sock.recv(2048)
        except TimeoutError:
            continue
        if packet[1] & 0x7F == 101 and packet[13] & 0x80:  # an event's end
            stamp = struct.unpack_from("!I", packet, 4)[0]
            if stamp != last:
                keys += EVENTS[packet[12]]
                last = stamp
                deadline = time.monotonic() + 1.0
    return keys


def test_the_page_dials_in_pcmu_sends_keys_transfers_and_is_hung_up_on(
        tmp_path: Path) -> None:
    with running_pbx(tmp_path, SECRETS, admin_password=ADMIN_PASSWORD, sections=SUPPORT) as pbx, \
            chromium_page() as page, SipClient(pbx.host, pbx.sip_port) as phone, \
            SipClient(pbx.host, pbx.sip_port) as colleague, RtpPhone() as media:
        user_of(pbx, "1001")
        url = f"ws://{pbx.host}:{pbx.http_port}/api/softphone"
        with connect(f"{url}?token=not-a-token") as refused, pytest.raises(ConnectionClosed):
            refused.recv(timeout=5)
        assert refused.close_code == 4401
        admin = login_once(pbx, "admin", ADMIN_PASSWORD)["Authorization"].split()[1]
        with connect(f"{url}?token={admin}") as refused, pytest.raises(ConnectionClosed):
            refused.recv(timeout=5)
        assert refused.close_code == 4403 and "no extension" in refused.close_reason
        user = user_of(pbx, "1001")["Authorization"].split()[1]
        with connect(f"{url}?token={user}") as line:  # a page sending a broken offer
            assert json.loads(line.recv(timeout=5)) == {
                "type": "registered", "extension": "1001", "ice_servers": [],
                "ice_transport_policy": "all", "calls": [], "reconnect_grace": 30.0}
            colleagues = json.loads(line.recv(timeout=5))  # softphone.feeds: presence first
            assert (colleagues["type"], colleagues["full"]) == ("presence", True)
            line.send(json.dumps({"type": "call", "id": "c1", "number": "1002", "sdp": "not sdp"}))
            ended = json.loads(line.recv(timeout=5))
            while ended["type"] in ("presence", "history"):  # 1001's line changes, the call ends
                ended = json.loads(line.recv(timeout=5))
            assert ended["type"] == "ended" and ended["call"] == "c1", ended
            assert ended["reason"].startswith("bad session description"), ended

        register(phone, "1002", SECRETS["1002"])
        register(colleague, "1003", SECRETS["1003"])
        log_in(page, f"http://{pbx.host}:{pbx.http_port}/softphone/", "user1001",
               "user1001-Pass-12345")
        page.wait_for("document.querySelector('#line').textContent === 'Line 1001 ready'")
        queue_panel(page, pbx.api, user_of(pbx, "1001"))
        page.eval("window.softphone.codecs = ['audio/PCMU']")  # a browser without Opus
        search = "document.querySelector('#search')"  # dial from the colleague directory
        page.eval(f"{search}.value = 'user 1002'; {search}.dispatchEvent(new Event('input'))")
        found = page.wait_for("""(() => { const found = document.querySelectorAll('#colleagues li');
            return found.length === 1 && found[0].firstChild.textContent; })()""")
        assert "User 1002" in found and found.endswith("(1002)")
        page.eval("document.querySelector('#colleagues li button').click()")
        invite = phone.receive_request(10, "INVITE")
        assert invite is not None and invite.from_addr.uri.user == "1001"  # the caller ID is 1001
        phone.respond(invite, 180)
        page.wait_for("document.querySelector('#status').textContent === 'Ringing…'")
        ok = phone.respond(invite, 200, body=phone.sdp(media.port))
        assert phone.receive_request(5, "ACK") is not None
        page.wait_for("document.querySelector('#status').textContent === 'In call (PCMU)'")

        media.answered(invite.body)
        page.eval("document.querySelector('#keypad [data-key=\"5\"]').click()")
        page.eval("document.querySelector('#keypad [data-key=\"#\"]').click()")
        assert keys_heard(media.sock) == "5#"

        phone.in_dialog("BYE", uas_dialog(invite, ok))
        assert phone.receive(5) is not None  # the PBX's 200 to the BYE
        page.wait_for("document.querySelector('#status').textContent === 'Call ended: hung up'")
        assert page.eval("document.querySelector('#in-call').hidden") is True

        # the page transfers 1002 (blind) to 1003: they talk, the page's call ends
        page.eval("document.querySelector('#dial').requestSubmit()")
        invite = phone.receive_request(10, "INVITE")
        assert invite is not None
        ok = phone.respond(invite, 200, body=phone.sdp(media.port))
        page.wait_for("document.querySelector('#status').textContent.startsWith('In call')")
        page.eval("""(() => { document.querySelector('#transfer-number').value = '1003';
            document.querySelector('#transfer').requestSubmit(); })()""")
        rung = colleague.receive_request(10, "INVITE")
        assert rung is not None
        colleague.respond(rung, 200, body=colleague.sdp(media.port + 2))
        page.wait_for(
            "document.querySelector('#status').textContent === 'Call ended: transferred to 1003'")
        phone.in_dialog("BYE", uas_dialog(invite, ok))
        assert colleague.hung_up()  # 1002 and 1003 were connected

        # a queue call: 1002 calls the Support queue, the page (its agent) answers
        with SipClient(pbx.host, pbx.sip_port) as caller:
            first = caller.start_invite("1002", SECRETS["1002"], "700",
                                        body=caller.sdp(media.port))
            assert first is not None and first.status < 300, first
            page.wait_for("!document.querySelector('#ringing').hidden")
            page.eval("document.querySelector('#answer').click()")
            caller.answered(first)
            page.wait_for("document.querySelector('#status').textContent.startsWith('In call')")
            page.eval("document.querySelector('#hangup').click()")
            assert caller.hung_up()
            page.wait_for("document.querySelector('#status').textContent.startsWith('Call ended')")

        # 1003 calls 1002, whose phone rings on: the page picks the call up from the directory
        rang: list[Request] = []

        def ring() -> None:  # 1002's phone rings (180) and is not answered
            invite = phone.receive_request(5, "INVITE")
            if invite is not None:
                rang.append(invite)
                phone.respond(invite, 180)

        with SipClient(pbx.host, pbx.sip_port) as caller:
            ringing = threading.Thread(target=ring)
            ringing.start()
            first = caller.start_invite("1003", SECRETS["1003"], "1002",
                                        body=caller.sdp(media.port))
            ringing.join()
            assert rang and first is not None and first.status == 180, first
            page.eval("document.querySelectorAll('#colleagues li button')[1].click()")
            caller.answered(first)
            page.wait_for("document.querySelector('#status').textContent.startsWith('In call')")
            assert phone.receive_request(5, "CANCEL") is not None  # 1002's phone stops ringing
            page.eval("document.querySelector('#hangup').click()")
            assert caller.hung_up()
            page.wait_for("document.querySelector('#status').textContent.startsWith('Call ended')")
        page.eval("document.querySelector('#number').value = '1002'")

        # logging out (the WebSocket closes) in the middle of a call hangs it up
        page.eval("document.querySelector('#dial').requestSubmit()")
        invite = phone.receive_request(10, "INVITE")
        assert invite is not None
        phone.respond(invite, 200, body=phone.sdp(media.port))
        page.wait_for("document.querySelector('#status').textContent.startsWith('In call')")
        page.eval("document.querySelector('#logout').click()")  # its line unregisters
        assert phone.hung_up()
        for _ in range(50):
            if pbx.health()["registrations"] == 2:
                break
            time.sleep(0.1)
        assert pbx.health()["registrations"] == 2  # 1002's and 1003's phones
        page.wait_for("!document.querySelector('#login').hidden")
