"""The browser softphone with real peers: a headless Chromium logs in as the
user of extension 1001 at /softphone/, a SIP phone (1002) calls 1001, the
desk phone of 1001 and the page ring together, the page answers, audio
flows both ways over WebRTC (Opus), the page hangs up, and the call record
says 1001 answered."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.audio import RtpPhone, tone_share, tone_wav
from tests.integration.browser import Page, chromium_page, chromium_path
from tests.integration.peers import ADMIN_PASSWORD, login_once, running_pbx, user_of
from tests.integration.sipclient import SipClient, register

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(chromium_path() is None, reason="chromium not installed"),
]

SECRETS = {"1001": "pw-1001-secret", "1002": "pw-1002-secret"}
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
        assert desk.receive_request(5, "INVITE") is not None  # the desk phone rings too
        page.wait_for("!document.querySelector('#ringing').hidden")
        assert "1002" in text(page, "#caller")
        page.eval("document.querySelector('#answer').click()")
        final = first
        while final is not None and final.status < 200:
            final = caller.receive(10)
        assert final is not None and final.status == 200, final
        caller.in_dialog("ACK", final, cseq=final.cseq.number)
        assert desk.receive_request(5, "CANCEL") is not None  # first answer wins
        page.wait_for("document.querySelector('#status').textContent === 'In call (opus)'")

        # audio both ways: the phone talks while it listens to the page
        talk.answered(final.body)
        talker = threading.Thread(target=talk.send_tone, args=(PHONE_TONE, 4.0))
        talker.start()
        heard = talk.listen(3.0)
        frames = heard[: len(heard) // 160 * 160].reshape(-1, 160)
        toned = sum(tone_share(frame, PAGE_TONE) > 0.5 for frame in frames)
        assert toned > 50, f"the page's {PAGE_TONE:.0f} Hz tone in {toned} of {len(frames)} frames"
        loudest = page.wait_for("""(() => { const l = window.softphone.meter.loudest();
            return l && Math.abs(l.frequency - 600) < 20 && l.level > -60 ? l : null; })()""")
        talker.join()
        assert loudest["level"] > -60

        page.eval("document.querySelector('#hangup').click()")
        assert caller.hung_up()
        page.wait_for("document.querySelector('#status').textContent.startsWith('Call ended')")
        assert page.eval("document.querySelector('#dial').hidden") is False

        record = answered_record(pbx.api, login_once(pbx, "admin", ADMIN_PASSWORD))
        assert record["disposition"] == "answered", record


def answered_record(api: str, headers: dict[str, str]) -> dict[str, object]:
    """The call record of 1002's call answered by 1001 (written as the call ends)."""
    for _ in range(50):
        items = httpx.get(f"{api}/cdrs", headers=headers).json()["items"]
        found = [r for r in items if r["caller"] == "1002" and r["answered_by"] == "1001"]
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"no record of 1002 answered by 1001 in {items}")
