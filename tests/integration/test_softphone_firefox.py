"""The browser softphone in Firefox (Debian's firefox-esr, headless, driven
over Marionette): logged in as 1001, a SIP phone (1002) calls 1001, the page
answers, audio flows both ways (Firefox's fake microphone, a 1 kHz tone,
found by FFT at the SIP phone; the phone's tone found by WebAudio in the
page), a network change renews the media path (Firefox's own peer
connection replaced, the SIP call untouched), the page hangs up."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.integration.audio import RtpPhone
from tests.integration.browser import firefox_page, firefox_path
from tests.integration.peers import ADMIN_PASSWORD, running_pbx, user_of
from tests.integration.sipclient import SipClient
from tests.integration.test_softphone_calls import (PHONE_TONE, STATUS, call_page, hears_the_page,
                                                    hears_the_phone)
from tests.integration.test_softphone_page import SECRETS, log_in

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(firefox_path() is None, reason="firefox not installed"),
]


def test_firefox_answers_talks_both_ways_renews_its_media_path_and_hangs_up(tmp_path: Path) -> None:
    with running_pbx(tmp_path, SECRETS, admin_password=ADMIN_PASSWORD) as pbx, \
            firefox_page() as page, \
            SipClient(pbx.host, pbx.sip_port) as caller, RtpPhone() as media:
        user_of(pbx, "1001")
        log_in(page, f"http://{pbx.host}:{pbx.http_port}/softphone/", "user1001",
               "user1001-Pass-12345")
        page.wait_for("document.querySelector('#line').textContent === 'Line 1001 ready'")
        call_page(caller, "1002", media, page)
        page.wait_for(f"{STATUS} === 'In call (opus)'", timeout=20)
        talker = threading.Thread(target=media.send_tone, args=(PHONE_TONE, 4.0))
        talker.start()
        assert hears_the_page(media), "Firefox's 1 kHz microphone tone did not arrive"
        hears_the_phone(page)
        talker.join()

        page.eval("window.firstPath = window.softphone.calls.active.pc;"
                  "window.dispatchEvent(new Event('online'))")
        page.wait_for("window.softphone.calls.active.pc !== window.firstPath"
                      " && window.firstPath.connectionState === 'closed'"
                      " && window.softphone.calls.active.pc.iceConnectionState === 'connected'",
                      timeout=20)
        assert hears_the_page(media), "no audio over the renewed path"
        assert caller.receive_request(0.5) is None  # the SIP leg saw nothing of it

        page.eval("document.querySelector('#hangup').click()")
        assert caller.hung_up()
        page.wait_for(f"{STATUS} === 'Call ended: hung up'")
