"""The browser softphone with several calls, against real peers: headless
Chromium logged in as 1001, scripted SIP phones (1002, 1003) with real RTP.
Call waiting (a second call rings while on one; answering it holds the
first; the page switches between them), the far end holding the page, and
attended transfer (a consultation call, then the held caller joined to the
consulted party with REFER/Replaces, the PBX's own transfer code)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.integration.audio import RtpPhone, tone_share, tone_wav, voiced_frames
from tests.integration.browser import Page, chromium_page, chromium_path
from tests.integration.peers import ADMIN_PASSWORD, Pbx, free_ports, running_pbx, user_of
from tests.integration.sipclient import SipClient, register
from tests.integration.test_softphone_page import PAGE_TONE, SECRETS, log_in, text, toned_frames
from pbx.sip.message import Response
from softphone.gateway import MEDIA_CLOSED

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(chromium_path() is None, reason="chromium not installed"),
]

PHONE_TONE = 600.0
STATUS = "document.querySelector('#status').textContent"


@contextlib.contextmanager
def logged_in_page(tmp_path: Path, **general: object) -> Iterator[tuple[Pbx, Page]]:
    """A PBX and a page logged in as 1001 whose microphone plays PAGE_TONE."""
    microphone = tone_wav(tmp_path / "microphone.wav", PAGE_TONE, 60)
    flags = (f"--use-file-for-fake-audio-capture={microphone}",
             "--autoplay-policy=no-user-gesture-required")
    with running_pbx(tmp_path, SECRETS, admin_password=ADMIN_PASSWORD, **general) as pbx, \
            chromium_page(flags) as page:
        user_of(pbx, "1001")
        log_in(page, f"http://{pbx.host}:{pbx.http_port}/softphone/", "user1001",
               "user1001-Pass-12345")
        page.wait_for("document.querySelector('#line').textContent === 'Line 1001 ready'")
        yield pbx, page


def answer_in_page(caller: SipClient, number: str, media: RtpPhone, page: Page,
                   dialled: str = "1001") -> Response:
    """``number`` calls ``dialled``; the page rings and the test clicks Answer;
    the caller's final response."""
    first = caller.start_invite(number, SECRETS[number], dialled, body=caller.sdp(media.port))
    assert first is not None and first.status < 300, first
    page.wait_for("!document.querySelector('#ringing').hidden")
    assert number in text(page, "#caller")
    page.eval("document.querySelector('#answer').click()")
    final = caller.final(first)
    assert final is not None, "no final answer"
    return final


def call_page(caller: SipClient, number: str, media: RtpPhone, page: Page) -> Response:
    """``number`` calls 1001 and the page answers; the 200 (ACKed)."""
    final = answer_in_page(caller, number, media, page)
    assert final.status == 200, final
    caller.in_dialog("ACK", final, cseq=final.cseq.number)
    media.answered(final.body)
    return final


def hears_the_page(media: RtpPhone) -> bool:
    """The page's tone arrives at this phone (what was on its way dropped first)."""
    media.listen(0.5)
    return toned_frames(media.listen(1.5))[0] > 25


def hears_music_not_the_page(media: RtpPhone) -> bool:
    media.listen(0.5)
    held = media.listen(1.5)
    return toned_frames(held)[0] < 5 and voiced_frames(held) > 25


def listed(number: str, state: str) -> str:
    """An expression: the page lists the call with ``number`` in ``state``."""
    return (f"[...document.querySelectorAll('#call-list li')].some(li => "
            f"li.textContent.includes('({number}): {state}'))")


def calls_list(page: Page) -> list[str]:
    return list(page.eval("[...document.querySelectorAll('#call-list li')].map(li => li.textContent)"))


def talk_in(page: Page, number: str) -> None:
    """Click Talk beside the call with ``number`` in the page's list of calls."""
    page.eval(f"""[...document.querySelectorAll('#call-list li')]
        .find(li => li.textContent.includes({number!r})).querySelector('button').click()""")


def test_a_second_call_rings_while_on_one_answering_holds_the_first_and_the_page_switches(
        tmp_path: Path) -> None:
    with logged_in_page(tmp_path) as (pbx, page), \
            SipClient(pbx.host, pbx.sip_port) as first, RtpPhone() as first_media, \
            SipClient(pbx.host, pbx.sip_port) as second, RtpPhone() as second_media:
        ok = call_page(first, "1002", first_media, page)
        page.wait_for(f"{STATUS} === 'In call (opus)'")
        assert hears_the_page(first_media)

        # the far end holds the page (re-INVITE sendonly to the PBX): the page hears
        # the PBX's music, then the far end resumes
        sdp = first.sdp(first_media.port)
        first.in_dialog("INVITE", ok, body=sdp.replace(b"m=audio", b"a=sendonly\r\nm=audio"))
        held = first.receive(5)
        assert held is not None and held.status == 200, held
        first.in_dialog("ACK", ok, cseq=held.cseq.number)
        page.wait_for("window.softphone.meter.rms() > 0.01")  # music on hold in the page
        first.in_dialog("INVITE", ok, body=sdp)
        resumed = first.receive(5)
        assert resumed is not None and resumed.status == 200, resumed
        first.in_dialog("ACK", ok, cseq=resumed.cseq.number)

        # 1003 calls while 1001 talks to 1002: it rings in the page (call waiting)
        first_invite = second.start_invite("1003", SECRETS["1003"], "1001",
                                           body=second.sdp(second_media.port))
        assert first_invite is not None and first_invite.status < 300, first_invite
        page.wait_for("!document.querySelector('#ringing').hidden")
        assert "1003" in text(page, "#caller")
        assert text(page, "#status") == "In call (opus)"  # still talking to 1002
        assert page.eval("window.softphone.ringer.ringing") is True
        assert hears_the_page(first_media)

        # answering it holds 1002 (who hears music), 1003 hears the page
        page.eval("document.querySelector('#answer').click()")
        final = second.answered(first_invite)
        second_media.answered(final.body)
        page.wait_for(f"{STATUS} === 'In call (opus)'")
        page.wait_for("document.querySelectorAll('#call-list li').length === 2")
        assert hears_the_page(second_media)
        assert hears_music_not_the_page(first_media)
        page.wait_for(listed("1002", "on hold"))

        # switch: talk to 1002 again, 1003 waits
        talk_in(page, "1002")
        assert hears_the_page(first_media)
        assert hears_music_not_the_page(second_media)
        page.wait_for(listed("1003", "on hold"))

        # hang up 1002: 1003 stays on hold until the page talks to it
        page.eval("document.querySelector('#hangup').click()")
        assert first.hung_up()
        page.wait_for(f"{STATUS} === 'Call ended: hung up'")
        assert page.eval("document.querySelector('#in-call').hidden") is False
        assert [item for item in calls_list(page) if "1003" in item]
        page.eval("document.querySelector('#hold').click()")  # Hold pressed: resume it
        assert hears_the_page(second_media)
        page.eval("document.querySelector('#hangup').click()")
        assert second.hung_up()
        page.wait_for("document.querySelector('#in-call').hidden")


def test_attended_transfer_consults_1003_then_joins_the_waiting_caller_to_it(
        tmp_path: Path) -> None:
    with logged_in_page(tmp_path) as (pbx, page), \
            SipClient(pbx.host, pbx.sip_port) as caller, RtpPhone() as caller_media, \
            SipClient(pbx.host, pbx.sip_port) as colleague, RtpPhone() as colleague_media:
        register(colleague, "1003", SECRETS["1003"])
        call_page(caller, "1002", caller_media, page)
        page.wait_for(f"{STATUS} === 'In call (opus)'")

        # Consult: the page calls 1003, the caller waits on hold
        page.eval("""(() => { document.querySelector('#transfer-number').value = '1003';
            document.querySelector('#consult').click(); })()""")
        invite = colleague.receive_request(10, "INVITE")
        assert invite is not None and invite.from_addr.uri.user == "1001"
        colleague.respond(invite, 180)
        page.wait_for(f"{STATUS} === 'Ringing…'")
        colleague.respond(invite, 200, body=colleague.sdp(colleague_media.port))
        assert colleague.receive_request(5, "ACK") is not None
        colleague_media.answered(invite.body)
        page.wait_for(f"{STATUS}.startsWith('In call')")
        assert hears_the_page(colleague_media)
        assert hears_music_not_the_page(caller_media)
        page.wait_for("!document.querySelector('#complete-transfer').hidden")

        # Complete: the PBX joins 1002 and 1003 and hangs up both of the page's calls
        page.eval("document.querySelector('#complete-transfer').click()")
        page.wait_for(f"{STATUS} === 'Call ended: transferred' "
                      f"|| {STATUS} === 'Call ended: transferred to 1003'")
        page.wait_for("document.querySelector('#in-call').hidden")
        assert not calls_list(page)
        caller_media.listen(0.3)
        colleague_media.listen(0.3)
        talker = threading.Thread(target=caller_media.send_tone, args=(PHONE_TONE, 2.5))
        talker.start()
        heard = colleague_media.listen(2.0)
        talker.join()
        frames = heard[: len(heard) // 160 * 160].reshape(-1, 160)
        assert sum(tone_share(frame, PHONE_TONE) > 0.5 for frame in frames) > 40  # they talk
        assert toned_frames(heard)[0] < 5  # and the page is out of it


SUPPORT = """
[700]
type = queue
name = Support
members = 1001
wrapuptime = 4
"""


def test_a_queue_call_shows_the_queue_name_and_a_wrap_up_countdown_follows(
        tmp_path: Path) -> None:
    shown = "document.querySelector('#agent-state').textContent"
    with logged_in_page(tmp_path, sections=SUPPORT) as (pbx, page), \
            SipClient(pbx.host, pbx.sip_port) as caller, RtpPhone() as media:
        page.wait_for(f"{shown} === 'available'")
        first = caller.start_invite("1002", SECRETS["1002"], "700", body=caller.sdp(media.port))
        assert first is not None and first.status < 300, first
        page.wait_for("!document.querySelector('#ringing').hidden")
        assert text(page, "#caller") == "User 1002 (1002) via Support"
        page.wait_for(f"{shown} === 'ringing'", timeout=3)  # pushed (the poll is every 5 s)
        page.eval("document.querySelector('#answer').click()")
        caller.answered(first)
        page.wait_for(f"{STATUS}.startsWith('In call')")
        page.wait_for(f"{shown} === 'on a queue call'", timeout=3)
        page.eval("document.querySelector('#hangup').click()")
        assert caller.hung_up()

        counted = page.wait_for(f"{shown}.startsWith('in wrap-up (') && {shown}", timeout=3)
        agent = httpx.get(f"{pbx.api}/agents/1001", headers=user_of(pbx, "1001")).json()
        assert agent["state"] == "wrap_up" and 0 < agent["wrap_up_left"] <= 4, agent
        assert counted in ("in wrap-up (4 s left)", "in wrap-up (3 s left)"), counted
        page.wait_for(f"{shown} === 'in wrap-up (1 s left)'", timeout=4)
        page.wait_for(f"{shown} === 'available'", timeout=3)


class Cuttable:
    """A TCP relay between the browser and the PBX's HTTP port that the test can
    cut (every connection reset at once, as a dropped network does) and keep
    shut for a while (connections refused)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open = True
        self.links: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.links += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def cut(self, keep_shut: bool) -> None:
        self.open = not keep_shut
        with self.lock:
            links, self.links = self.links, []
        for link in links:  # the TCP connections end, without a WebSocket close frame
            with contextlib.suppress(OSError):
                link.shutdown(socket.SHUT_RDWR)
            link.close()

    def close(self) -> None:
        self.listener.close()
        self.cut(keep_shut=True)


@contextlib.contextmanager
def page_behind_relay(tmp_path: Path, **general: object) -> Iterator[tuple[Pbx, Page, Cuttable]]:
    microphone = tone_wav(tmp_path / "microphone.wav", PAGE_TONE, 60)
    flags = (f"--use-file-for-fake-audio-capture={microphone}",
             "--autoplay-policy=no-user-gesture-required")
    with running_pbx(tmp_path, SECRETS, admin_password=ADMIN_PASSWORD, sections=AGENT,
                     **general) as pbx, chromium_page(flags) as page:
        relay = Cuttable((pbx.host, pbx.http_port))
        try:
            user_of(pbx, "1001")
            log_in(page, f"http://127.0.0.1:{relay.port}/softphone/", "user1001",
                   "user1001-Pass-12345")
            page.wait_for("document.querySelector('#line').textContent === 'Line 1001 ready'")
            yield pbx, page, relay
        finally:
            relay.close()


AGENT = """
[700]
type = queue
name = Support
members = 1001
"""
LINE = "document.querySelector('#line').textContent"


def agent_state(pbx: Pbx) -> str:
    return str(httpx.get(f"{pbx.api}/agents/1001", headers=user_of(pbx, "1001")).json()["state"])


def test_a_dropped_websocket_reconnects_and_the_call_goes_on(tmp_path: Path) -> None:
    with page_behind_relay(tmp_path) as (pbx, page, relay), \
            SipClient(pbx.host, pbx.sip_port) as caller, RtpPhone() as media:
        call_page(caller, "1002", media, page)
        page.wait_for(f"{STATUS} === 'In call (opus)'")
        relay.cut(keep_shut=True)  # the network drops: the WebSocket is gone
        page.wait_for(f"{LINE} === 'Connection lost: reconnecting…'")
        assert hears_the_page(media)  # the media path is not the WebSocket's
        assert agent_state(pbx) == "on_direct_call"
        relay.open = True
        page.wait_for(f"{LINE} === 'Line 1001 ready'", timeout=10)
        assert text(page, "#status") == "In call (opus)"
        assert hears_the_page(media)
        page.eval("document.querySelector('#hangup').click()")  # signalling works again
        assert caller.hung_up()
        page.wait_for(f"{STATUS} === 'Call ended: hung up'")


def test_a_page_that_does_not_come_back_in_time_has_its_call_ended(tmp_path: Path) -> None:
    with page_behind_relay(tmp_path, webrtc_reconnect_grace=3) as (pbx, page, relay), \
            SipClient(pbx.host, pbx.sip_port) as caller, RtpPhone() as media:
        call_page(caller, "1002", media, page)
        page.wait_for(f"{STATUS} === 'In call (opus)'")
        assert agent_state(pbx) == "on_direct_call"
        relay.cut(keep_shut=True)
        started = time.monotonic()
        assert caller.hung_up()  # after the grace the PBX gets the page's BYE
        assert 2.0 < time.monotonic() - started < 6.0
        for _ in range(30):
            if agent_state(pbx) == "available":
                break
            time.sleep(0.1)
        assert agent_state(pbx) == "available"  # the agent is free for queue calls again
        page.wait_for(f"{STATUS} === 'Call ended: connection lost'", timeout=5)
        relay.open = True
        page.wait_for(f"{LINE} === 'Line 1001 ready'", timeout=10)  # a fresh line
        assert page.eval("document.querySelector('#in-call').hidden") is True


def test_logging_out_elsewhere_closes_the_page_and_its_token_is_refused(tmp_path: Path) -> None:
    with logged_in_page(tmp_path) as (pbx, page):
        token = page.eval("sessionStorage.getItem('pbx-token')")
        gone = httpx.post(f"{pbx.api}/logout", headers={"Authorization": f"Bearer {token}"})
        assert gone.status_code == 204
        page.wait_for(f"{LINE} === 'Not connected: logged out'", timeout=5)
        page.wait_for("!document.querySelector('#login').hidden")
        url = f"ws://{pbx.host}:{pbx.http_port}/api/softphone?token={token}"
        with connect(url) as refused, pytest.raises(ConnectionClosed):
            refused.recv(timeout=5)
        assert refused.close_code == 4401 and refused.close_reason == "invalid token"
        for _ in range(30):
            if pbx.health()["registrations"] == 0:
                break
            time.sleep(0.1)
        assert pbx.health()["registrations"] == 0  # the page's line is unregistered


def test_a_failed_ice_ends_the_call_with_a_clear_message(tmp_path: Path) -> None:
    """Media only through a TURN server (ice transport policy relay) that is not
    there: the page offers no candidate, so no media path can be found: the
    page refuses the call with a message saying so, rather than answering the
    caller into silence."""
    dead = free_ports(1)  # nothing listens there
    with logged_in_page(tmp_path, webrtc_ice_servers=f"turn:127.0.0.1:{dead}?transport=tcp",
                        webrtc_turn_username="agents", webrtc_turn_password="turn-secret",
                        webrtc_ice_transport_policy="relay") as (pbx, page), \
            SipClient(pbx.host, pbx.sip_port) as caller, RtpPhone() as media:
        assert page.eval("window.softphone.calls.options().iceTransportPolicy") == "relay"
        final = answer_in_page(caller, "1002", media, page)
        assert final.status == 486, final  # not answered into silence
        page.wait_for(f"{STATUS}.startsWith('Call ended: media path failed (ICE)')", timeout=15)
        assert "TURN" in text(page, "#status")
        assert page.eval("document.querySelector('#in-call').hidden") is True


def test_messages_about_no_call_or_without_an_id_get_a_clear_error(tmp_path: Path) -> None:
    with running_pbx(tmp_path, SECRETS, admin_password=ADMIN_PASSWORD) as pbx:
        token = user_of(pbx, "1001")["Authorization"].split()[1]
        with connect(f"ws://{pbx.host}:{pbx.http_port}/api/softphone?token={token}") as line:
            assert json.loads(line.recv(timeout=5))["type"] == "registered"
            for message, reason in (
                    ({"type": "hangup", "call": "nope"}, "'hangup': no such call"),
                    ({"type": "call", "number": "1002", "sdp": "v=0"},
                     "a new call needs an id of its own"),
                    ({"type": "transfer", "call": "nope", "number": "12a"},
                     "dial a number: digits, * and #")):
                line.send(json.dumps(message))
                answer = json.loads(line.recv(timeout=5))
                while answer["type"] == "presence":  # softphone.feeds, pushed meanwhile
                    answer = json.loads(line.recv(timeout=5))
                assert answer == {"type": "error", "reason": reason}


def test_a_media_path_lost_mid_call_ends_the_call_with_a_clear_message(tmp_path: Path) -> None:
    """The browser's side of the media goes (its peer connection closed): the
    gateway sees the DTLS close, or else its ICE consent checks fail
    (RFC 7675, ~30 s), and the call is hung up rather than left silent."""
    with logged_in_page(tmp_path) as (pbx, page), \
            SipClient(pbx.host, pbx.sip_port) as caller, RtpPhone() as media:
        call_page(caller, "1002", media, page)
        page.wait_for(f"{STATUS} === 'In call (opus)'")
        page.eval("window.softphone.calls.active.pc.close()")
        started = time.monotonic()
        bye = None
        while bye is None and time.monotonic() - started < 90:
            bye = caller.receive_request(5, "BYE")
        assert bye is not None, "the call was left up without media"
        caller.respond(bye, 200)
        page.wait_for(f"{STATUS} === 'Call ended: {MEDIA_CLOSED}' "
                      f"|| {STATUS}.startsWith('Call ended: media path failed (ICE)')")


def hears_the_phone(page: Page) -> dict[str, float]:
    """The phone's PHONE_TONE arrives in the page (WebAudio FFT there)."""
    return page.wait_for("""(() => { const l = window.softphone.meter.loudest();
        return l && Math.abs(l.frequency - 600) < 20 && l.level > -60 ? l : null; })()""")


def test_a_network_change_renews_the_media_path_and_the_sip_call_goes_on(tmp_path: Path) -> None:
    """The page sees its network change (``online``): it makes a new peer
    connection and sends its offer; the gateway answers it with a new one on
    the same RTP leg.  The old path is closed, audio flows both ways over the
    new one, and the SIP phone's call never noticed (no BYE, no re-INVITE).
    A renewal with an offer the gateway cannot use leaves the old path."""
    with logged_in_page(tmp_path) as (pbx, page), \
            SipClient(pbx.host, pbx.sip_port) as caller, RtpPhone() as media:
        call_page(caller, "1002", media, page)
        page.wait_for(f"{STATUS} === 'In call (opus)'")
        # a renewal the gateway cannot use is refused and the path stays
        page.eval("window.softphone.calls.send({type: 'renew', sdp: 'v=0',"
                  " call: window.softphone.calls.active.id})")
        page.wait_for(f"{STATUS}.startsWith('media path not renewed: ')")
        assert hears_the_page(media)

        page.eval("window.firstPath = window.softphone.calls.active.pc;"
                  "window.dispatchEvent(new Event('online'))")
        page.wait_for("window.softphone.calls.active.pc !== window.firstPath"
                      " && window.firstPath.connectionState === 'closed'"
                      " && window.softphone.calls.active.pc.iceConnectionState === 'connected'")
        page.wait_for(f"{STATUS} === 'In call (opus)'")
        talker = threading.Thread(target=media.send_tone, args=(PHONE_TONE, 4.0))
        talker.start()
        assert hears_the_page(media)
        hears_the_phone(page)
        talker.join()
        assert caller.receive_request(0.5) is None  # the SIP leg saw nothing of it
        page.eval("document.querySelector('#hangup').click()")  # still the same call
        assert caller.hung_up()
        page.wait_for(f"{STATUS} === 'Call ended: hung up'")


def test_a_failed_ice_mid_call_is_renewed_by_the_page(tmp_path: Path) -> None:
    """The page's ICE fails after it had connected (what a lost network
    does): the page renews the path at once instead of ending the call, and
    the far end hears it again.  (A path that is gone with no new offer still
    ends the call: the test below.)"""
    with logged_in_page(tmp_path) as (pbx, page), \
            SipClient(pbx.host, pbx.sip_port) as caller, RtpPhone() as media:
        call_page(caller, "1002", media, page)
        page.wait_for(f"{STATUS} === 'In call (opus)'")
        page.eval("""(() => { const calls = window.softphone.calls, call = calls.active;
            window.firstPath = call.pc;
            Object.defineProperty(call.pc, 'iceConnectionState', { get: () => 'failed' });
            calls.iceChanged(call, call.pc); })()""")
        page.wait_for("window.softphone.calls.active.pc !== window.firstPath"
                      " && window.firstPath.connectionState === 'closed'")
        page.wait_for(f"{STATUS} === 'In call (opus)'")
        assert hears_the_page(media)
        assert caller.receive_request(0.5) is None
        page.eval("document.querySelector('#hangup').click()")
        assert caller.hung_up()
