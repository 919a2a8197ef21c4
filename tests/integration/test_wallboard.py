"""The supervisors' wallboard in a real headless Chromium against a running
PBX: a sipp caller joining the queue changes the waiting count, a click
pauses an agent in the queue engine, and the charts are drawn from the
history API."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import httpx
import pytest

from tests.integration.browser import chromium_page
from tests.integration.peers import ADMIN_PASSWORD, SippResult, run_sipp, running_pbx

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed")]

USERS = {n: f"pw-{n}-secret" for n in ("1001", "1002", "1003")}
QUEUE = """
[700]
type = queue
name = Support
members = 1002, 1003
"""


def test_wallboard_follows_a_sipp_caller_and_pauses_an_agent(tmp_path: Path) -> None:
    with running_pbx(tmp_path, USERS, sections=QUEUE, admin_password=ADMIN_PASSWORD) as pbx, \
            chromium_page() as page:
        page.send("Emulation.setDeviceMetricsOverride", width=1280, height=1100,
                  deviceScaleFactor=1, mobile=False)
        page.log_in(f"http://{pbx.host}:{pbx.http_port}/admin/", "admin", ADMIN_PASSWORD)
        page.goto(f"http://{pbx.host}:{pbx.http_port}/admin/wallboard.html")
        page.wait_for("document.querySelector('#feed-state').textContent === 'live'")
        page.wait_for("document.querySelector('#waiting-700')?.textContent === '0'")
        assert page.eval("document.querySelector('#agent-1002 [data-state]').dataset.state") \
            == "available"
        # neither agent has a phone: the caller waits on music for 8 s, then hangs up
        done: list[SippResult] = []
        sipp = threading.Thread(target=lambda: done.append(run_sipp(
            "call_uac.xml", pbx, [("1001", USERS["1001"], "700")], tmp=tmp_path,
            extra=["-d", "8000"])))
        sipp.start()
        try:
            page.wait_for("document.querySelector('#waiting-700').textContent === '1'")
            page.eval("document.querySelector('#pause-reason').value = 'training'")
            page.eval("document.querySelector('#agent-1002 button[data-action=Pause]').click()")
            page.wait_for("document.querySelector('#agent-1002 [data-state]').dataset.state"
                          " === 'paused'")
            agent = httpx.get(f"{pbx.api}/agents/1002", headers=pbx.admin_headers()).json()
            assert (agent["state"], agent["pause_reason"]) == ("paused", "training")
            page.wait_for("document.querySelectorAll('#chart-today canvas, #chart-weeks canvas')"
                          ".length === 2")
            assert page.eval("document.querySelector('#error').hidden")
            page.screenshot(str(tmp_path / "wallboard.png"))
        finally:
            sipp.join(60)
        assert done and done[0].successful == 1, done and done[0].output[-2000:]
        page.wait_for("document.querySelector('#waiting-700').textContent === '0'")
        assert (tmp_path / "wallboard.png").stat().st_size > 10_000
