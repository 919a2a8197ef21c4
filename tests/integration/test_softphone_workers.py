"""The browser softphone of an organisation that lives on worker 1 of ``pbx
serve --workers 2``: the page is loaded from worker 0's HTTP port, its
WebSocket (and so the gateway and its WebRTC media) is passed to worker 1,
which holds the organisation's calls.  A SIP phone calls the page's
extension, the page rings and answers, its tone reaches the phone, and the
page hangs up."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.integration.audio import RtpPhone, tone_wav
from tests.integration.browser import chromium_page, chromium_path
from tests.integration.peers import ADMIN_PASSWORD, organisation, running_pbx
from tests.integration.sipclient import SipClient
from tests.integration.test_softphone_page import PAGE_TONE, log_in, text, toned_frames

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(chromium_path() is None, reason="chromium not installed"),
]


def test_the_softphone_of_an_organisation_on_the_second_worker(tmp_path: Path) -> None:
    microphone = tone_wav(tmp_path / "microphone.wav", PAGE_TONE, 10)
    flags = (f"--use-file-for-fake-audio-capture={microphone}",
             "--autoplay-policy=no-user-gesture-required")
    with running_pbx(tmp_path, {}, admin_password=ADMIN_PASSWORD, workers=2, rtp_ports="") as pbx:
        admin = organisation(pbx, "acme", "business")  # organisation 2: worker 1
        secrets = {}
        for number in ("2001", "2002"):
            made = httpx.post(f"{pbx.api}/extensions", headers=admin, json={"number": number})
            assert made.status_code == 201, made.text
            secrets[number] = made.json()["secret"]
        user = httpx.post(f"{pbx.api}/users", headers=admin, json={
            "username": "agent2001", "password": "agent2001-Pass-12345", "role": "user",
            "extension": "2001"})
        assert user.status_code == 201, user.text
        licensed = httpx.post(f"{pbx.api}/licenses", headers=admin,
                              json={"user_id": user.json()["id"]})
        assert licensed.status_code == 201, licensed.text

        with chromium_page(flags) as page, RtpPhone() as talk, \
                SipClient(pbx.host, pbx.sip_port, domain="acme.test") as caller:
            log_in(page, f"http://{pbx.host}:{pbx.http_port}/softphone/", "agent2001",
                   "agent2001-Pass-12345")
            page.wait_for("document.querySelector('#line').textContent === 'Line 2001 ready'")
            first = caller.start_invite("2002", secrets["2002"], "2001",
                                        body=caller.sdp(talk.port))
            assert first is not None and first.status < 300, first
            page.wait_for("!document.querySelector('#ringing').hidden")
            assert "2002" in text(page, "#caller")
            page.eval("document.querySelector('#answer').click()")
            final = caller.answered(first)
            page.wait_for("document.querySelector('#status').textContent === 'In call (opus)'")
            talk.answered(final.body)
            toned, frames = toned_frames(talk.listen(3.0))
            assert toned > 50, f"the page's {PAGE_TONE:.0f} Hz tone in {toned} of {frames} frames"
            page.eval("document.querySelector('#hangup').click()")
            assert caller.hung_up()
            page.wait_for("document.querySelector('#status').textContent.startsWith('Call ended')")
        log = pbx.log()
        assert " w1 aiortc.rtcpeerconnection: " in log  # the page's media ended on worker 1
        assert " w0 aiortc." not in log
        assert "token=" not in log  # the passed WebSocket's URL is not logged
