"""The softphone page's presence and self-service parts in a headless Chromium
with real SIP peers: the colleague 1002 goes to Lunch (switched over the API)
and makes a call, and the page shows it as the gateway pushes it; the agent
switches their own profile in the page (to Meeting); a caller then reaches
their voicemail, and the page lists the message (pushed), plays it, marks it
heard and deletes it; the call history shows that call."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.integration.browser import chromium_page, chromium_path
from tests.integration.peers import ADMIN_PASSWORD, login_once, running_pbx, user_of
from tests.integration.sipclient import SipClient, register
from tests.integration.test_softphone_page import log_in, text
from tests.integration.voicemail_calls import leave_message

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(chromium_path() is None, reason="chromium not installed"),
]

SECRETS = {"1001": "pw-1001-secret", "1002": "pw-1002-secret", "1003": "pw-1003-secret"}
BADGE = "document.querySelector('[data-presence=\"{}\"]').textContent"


def profile_id(api: str, headers: dict[str, str], extension: str, name: str) -> int:
    items = httpx.get(f"{api}/extensions/{extension}/profiles", headers=headers).json()["items"]
    return next(p["id"] for p in items if p["name"] == name)


def test_the_page_shows_colleagues_presence_switches_profile_and_plays_voicemail(
        tmp_path: Path) -> None:
    with running_pbx(tmp_path, SECRETS, admin_password=ADMIN_PASSWORD) as pbx, \
            chromium_page(("--autoplay-policy=no-user-gesture-required",)) as page, \
            SipClient(pbx.host, pbx.sip_port) as desk, SipClient(pbx.host, pbx.sip_port) as far:
        me = user_of(pbx, "1001")
        admin = login_once(pbx, "admin", ADMIN_PASSWORD)
        register(desk, "1002", SECRETS["1002"])
        register(far, "1003", SECRETS["1003"])
        log_in(page, f"http://{pbx.host}:{pbx.http_port}/softphone/", "user1001",
               "user1001-Pass-12345")
        page.wait_for("document.querySelector('#line').textContent === 'Line 1001 ready'")
        colleague = BADGE.format("1002")
        page.wait_for(f"{colleague} === 'available'")
        assert page.eval(BADGE.format("1001")) == "available"  # the page itself is a device

        # 1002 goes to Lunch for an hour (the API), then calls 1003
        until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        switched = httpx.post(f"{pbx.api}/extensions/1002/profile", headers=admin, json={
            "profile_id": profile_id(pbx.api, admin, "1002", "Lunch"), "until": until})
        assert switched.status_code == 200, switched.text
        page.wait_for(f"{colleague}.startsWith('available · Lunch until ')")
        rang, final = desk.call("1002", SECRETS["1002"], "1003", far)
        assert rang is not None and final is not None and final.status == 200, final
        page.wait_for(f"{colleague}.startsWith('on a call · Lunch until ')")
        desk.in_dialog("BYE", final)
        assert far.hung_up()
        page.wait_for(f"{colleague}.startsWith('available · Lunch')")

        # the agent switches their own profile in the page: Meeting takes no calls
        page.wait_for("!document.querySelector('#my-profile').hidden")
        page.wait_for("document.querySelector('#profile-now').textContent === 'none'")
        page.eval("""(() => {
            const choice = document.querySelector('#profile-choice');
            choice.value = [...choice.options].find((o) => o.text === 'Meeting').value;
            document.querySelector('#profile-form').requestSubmit(); })()""")
        page.wait_for("document.querySelector('#profile-now').textContent === 'Meeting'")
        active = httpx.get(f"{pbx.api}/extensions/1001/profile", headers=me).json()
        assert (active["profile"]["name"], active["reason"]) == ("Meeting", "manual")
        page.wait_for(f"{BADGE.format('1001')} === 'available · Meeting'")

        # so 1003's call reaches voicemail: the page lists the message as it is stored
        assert page.eval("document.querySelectorAll('#messages li').length") == 0
        leave_message(pbx, "1003", SECRETS["1003"], "1001", seconds=2.0, frequency=700.0)
        page.wait_for("document.querySelectorAll('#messages li').length === 1", 15)
        item = "document.querySelector('#messages li')"
        assert text(page, "#messages li").startswith("New: 1003")
        assert page.eval(f"{item}.dataset.heard") == "false"
        message = int(page.eval(f"{item}.dataset.message"))

        page.eval(f"{item}.querySelector('.play').click()")
        player = "document.querySelector('#voicemail-player')"
        page.wait_for(f"{player}.dataset.message === '{message}' && {player}.currentTime > 0.3")
        duration = page.eval(f"{player}.duration")  # the browser decoded the WAV
        assert 1.5 < duration < 3.0, duration
        page.wait_for(f"{item}.dataset.heard === 'true'")  # marked heard, the list reloaded
        stored = httpx.get(f"{pbx.api}/voicemail", headers=me).json()["items"]
        assert [(m["id"], m["heard"]) for m in stored] == [(message, True)]

        page.eval(f"{item}.querySelector('.delete').click()")
        page.wait_for("document.querySelectorAll('#messages li').length === 0")
        assert httpx.get(f"{pbx.api}/voicemail", headers=me).json()["items"] == []

        # the call history: 1003's call to 1001, newest first
        page.wait_for("document.querySelector('#calls li') !== null"
                      " && document.querySelector('#calls li').textContent.includes('← 1003')")
        httpx.post(f"{pbx.api}/extensions/1001/profile", headers=me, json={"profile_id": None})
