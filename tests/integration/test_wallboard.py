"""The supervisors' wallboard in a real headless Chromium: it shows what the
WebSocket pushes, draws its charts from the history API, and its buttons reach
the queue engine's agent commands."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pbx.events import AgentStateChanged, QueueAnswered, QueueCompleted, QueueJoined
from tests.integration.browser import chromium_page
from tests.integration.queue_node import PASSWORD, stats_node

pytestmark = pytest.mark.integration


def test_wallboard_follows_the_feed_and_pauses_an_agent(tmp_path: Path) -> None:
    with stats_node(tmp_path) as node, chromium_page() as page:
        org, t = node.organisation, time.time() - 60
        node.publish(
            AgentStateChanged(org, "1002", "available", "", ("700",), t),
            AgentStateChanged(org, "1004", "on_queue_call", "", ("700",), t),
            QueueJoined(org, "700", "c1", "+4611", 1, 0, t + 1),
            QueueAnswered(org, "700", "c1", "1004", 4, t + 5),
            QueueCompleted(org, "700", "c1", "1004", 20, "caller", t + 25),
        )
        page.send("Emulation.setDeviceMetricsOverride", width=1280, height=1100,
                  deviceScaleFactor=1, mobile=False)
        page.log_in(f"{node.url}/admin/", "sue", PASSWORD)
        page.goto(f"{node.url}/admin/wallboard.html")
        page.wait_for("document.querySelector('#feed-state').textContent === 'live'")
        page.wait_for("document.querySelector('#waiting-700')?.textContent === '0'")
        assert page.eval("document.querySelector('#agent-1002 [data-state]').dataset.state") \
            == "available"
        node.publish(QueueJoined(org, "700", "c2", "+4612", 1, 0, time.time()))
        page.wait_for("document.querySelector('#waiting-700').textContent === '1'")
        page.eval("document.querySelector('#pause-reason').value = 'training'")
        page.eval("document.querySelector('#agent-1002 button[data-action=Pause]').click()")
        deadline = time.monotonic() + 10
        while ("pause", "1002", "training") not in node.control.done:
            assert time.monotonic() < deadline, "the click did not reach the engine"
            time.sleep(0.1)
        # the engine's answer comes back as an event, and the board shows it
        node.publish(AgentStateChanged(org, "1002", "paused", "training", ("700",), time.time()))
        page.wait_for("document.querySelector('#agent-1002 [data-state]').dataset.state"
                      " === 'paused'")
        page.wait_for("document.querySelectorAll('#chart-today canvas, #chart-weeks canvas')"
                      ".length === 2")
        assert page.eval("document.querySelector('#error').hidden")
        page.screenshot(str(tmp_path / "wallboard.png"))
        assert (tmp_path / "wallboard.png").stat().st_size > 10_000
