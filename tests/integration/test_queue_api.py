"""Queue statistics over the admin API of a served node: live figures, history
as JSON and CSV, raw events, roles, the supervisors' agent commands, the
WebSocket feed and the public wait-time widget."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from admin_api.security import RequestLimiter
from pbx.events import (
    AgentStateChanged, QueueAbandoned, QueueAnswered, QueueCompleted, QueueJoined,
)
from tests.integration.queue_node import QUEUE, StatsNode, stats_node

pytestmark = pytest.mark.integration


def morning(node: StatsNode) -> float:
    """Two answered calls (5 s and 40 s), one abandoned (8 s), one waiting: a
    little before now, all today (unless the test runs at midnight)."""
    t = time.time() - 120
    org = node.organisation
    node.publish(
        AgentStateChanged(org, "1002", "available", "", ("700",), t),
        AgentStateChanged(org, "1003", "paused", "lunch", ("700",), t),
        QueueJoined(org, "700", "c1", "+4611", 1, 0, t + 1),
        QueueAnswered(org, "700", "c1", "1002", 5, t + 6),
        QueueCompleted(org, "700", "c1", "1002", 30, "caller", t + 36),
        QueueJoined(org, "700", "c2", "+4612", 1, 0, t + 40),
        QueueAbandoned(org, "700", "c2", 1, 8, t + 48),
        QueueJoined(org, "700", "c3", "+4613", 1, 0, t + 50),
        QueueAnswered(org, "700", "c3", "1002", 40, t + 90),
        QueueJoined(org, "700", "c4", "+4614", 1, 0, t + 100),
    )
    return t


def test_live_figures_history_and_raw_events(tmp_path: Path) -> None:
    with stats_node(tmp_path) as node:
        sue = node.headers("sue")
        api = f"{node.url}/api/queue-stats"
        missing = httpx.get(f"{api}/700", headers=sue)
        assert missing.status_code == 404 and "no queue 700" in missing.json()["detail"]
        t = morning(node)
        live = httpx.get(f"{api}/700", headers=sue).json()
        assert (live["waiting"], live["answered"], live["abandoned"], live["service_level"],
                live["average_wait"], live["average_talk"]) == (1, 2, 1, 33.3, 22.5, 30.0)
        assert live["agents"]["available"] == 1 and live["agents"]["paused"] == 1
        everything = httpx.get(api, headers=sue).json()
        assert [q["queue"] for q in everything["queues"]] == ["700"]
        assert [a["agent"] for a in everything["agents"]] == ["1002", "1003"]
        agent = httpx.get(f"{api}/agents/1002", headers=sue).json()
        assert (agent["calls"], agent["talk_time"], agent["state"]) == (1, 30.0, "available")

        days = httpx.get(f"{api}/700/history", params={"period": "day"}, headers=sue).json()
        today = days[-1]
        assert (today["joined"], today["answered"], today["abandoned"], today["service_level"]) \
            == (4, 2, 1, 33.3)
        assert all(day["joined"] == 0 for day in days[:-1]) and len(days) >= 31
        hours = httpx.get(f"{api}/700/history", headers=sue,
                          params={"period": "hour", "since": t - 10, "until": t + 200}).json()
        assert sum(h["answered"] for h in hours) == 2
        busy = next(h for h in hours if h["joined"] and h["average_talk"])  # across an hour's end too
        assert busy["staffing"]["agents_needed"] >= 1
        # 1002 on duty for the last ~2 minutes (1003 paused): a few hundredths of an hour
        assert 0 < sum(h["agents_on_duty"] for h in hours) < 0.1
        text = httpx.get(f"{api}/700/history.csv", params={"period": "week"}, headers=sue)
        assert text.headers["content-type"].startswith("text/csv")
        header, *rows = text.text.splitlines()
        assert header.startswith("start,end,joined,answered,abandoned,overflowed,callbacks")
        assert rows[-1].split(",")[2:5] == ["4", "2", "1"]
        agent_days = httpx.get(f"{api}/agents/1002/history", headers=sue).json()
        assert (agent_days[-1]["calls"], agent_days[-1]["talk_time"]) == (1, 30.0)

        raw = httpx.get(f"{api}/events", params={"since": t - 1, "queue": "700"},
                        headers=sue).json()
        assert [e["type"] for e in raw] == ["queue.joined", "queue.answered", "queue.completed",
                                            "queue.joined", "queue.abandoned", "queue.joined",
                                            "queue.answered", "queue.joined"]
        assert raw[1]["wait"] == 5 and raw[1]["agent"] == "1002" and raw[1]["call_id"] == "c1"
        table = httpx.get(f"{api}/events.csv", params={"since": t - 1}, headers=sue).text
        assert table.splitlines()[0].startswith("id,time,type,organisation,queue,agent,call_id")
        assert len(table.splitlines()) == 1 + 10  # two agent states and eight queue events

        for params, reason in (({"period": "fortnight"}, "period"),
                               ({"period": "day", "since": t, "until": t - 5}, "start must come")):
            bad = httpx.get(f"{api}/700/history", params=params, headers=sue)
            assert bad.status_code == 422 and reason in json.dumps(bad.json())
        assert httpx.get(f"{api}/agents/9999", headers=sue).status_code == 404
        for who in ("al", "ulla"):
            refused = httpx.get(f"{api}/700", headers=node.headers(who))
            assert refused.status_code == 403 and "may not" in refused.json()["detail"]


def test_supervisors_steer_agents_through_the_engine(tmp_path: Path) -> None:
    """The agent commands act on the queue engine, and the statistics follow
    from the engine's own events."""
    with stats_node(tmp_path, QUEUE) as node:
        sue, al = node.headers("sue"), node.headers("al")
        api = f"{node.url}/api/agents"
        paused = httpx.post(f"{api}/1002/pause", json={"reason": "training"}, headers=sue)
        assert paused.status_code == 200 and paused.json()["state"] == "paused"
        node.publish()  # the engine's events stored and counted
        figures = httpx.get(f"{node.url}/api/queue-stats/agents/1002", headers=sue).json()
        assert (figures["state"], figures["reason"]) == ("paused", "training")
        again = httpx.post(f"{api}/1002/pause", headers=sue)
        assert again.status_code == 409 and "paused" in again.json()["detail"]
        assert httpx.post(f"{api}/1002/unpause", headers=sue).json()["state"] == "available"
        assert httpx.post(f"{api}/1002/logout", headers=al).json()["state"] == "logged_out"
        other = httpx.post(f"{api}/1003/pause", headers=al)
        assert other.status_code == 403
        unknown = httpx.post(f"{api}/4711/pause", headers=sue)
        assert unknown.status_code == 404 and "4711" in unknown.json()["detail"]
        # listening in rings the supervisor's phone first: sue's 1003 has none here
        listen = httpx.post(f"{api}/1002/monitor", json={"mode": "whisper"}, headers=sue)
        assert listen.status_code == 409 and "no phone registered" in listen.json()["detail"]
        assert httpx.post(f"{api}/1002/monitor", json={"mode": "shout"},
                          headers=sue).status_code == 422
        placed: list[tuple[int, str, str]] = []

        class Commands:  # call control that records the click-to-call it is asked for
            def click_to_call(self, organisation: int, extension: str, number: str) -> object:
                placed.append((organisation, extension, number))
                return type("Call", (), {"id": "call-1"})

        node.app.state.calls = Commands()
        for mode in ("listen", "whisper", "barge"):
            answer = httpx.post(f"{api}/1002/monitor", json={"mode": mode}, headers=sue)
            assert answer.status_code == 201 and answer.json() == {"call_id": "call-1"}
        assert placed == [(node.organisation, "1003", f"*551002*{key}") for key in "456"]
        assert httpx.post(f"{api}/1002/monitor", json={"mode": "listen"},
                          headers=al).status_code == 403


def test_the_websocket_pushes_each_queue_event_with_fresh_figures(tmp_path: Path) -> None:
    with stats_node(tmp_path) as node:
        token = node.headers("sue")["Authorization"][7:]
        url = node.url.replace("http", "ws") + "/api/queue-stats/feed"
        with pytest.raises(InvalidStatus):
            connect(f"{url}?token=forged").recv(timeout=5)
        agent_token = node.headers("al")["Authorization"][7:]
        with pytest.raises((InvalidStatus, ConnectionClosed)):
            connect(f"{url}?token={agent_token}").recv(timeout=5)
        with connect(f"{url}?token={token}") as feed:
            first = json.loads(feed.recv(timeout=5))
            assert first["type"] == "snapshot" and first["queues"] == []
            now = time.time()
            node.publish(QueueJoined(node.organisation, "700", "c9", "+46", 1, 0, now))
            update = json.loads(feed.recv(timeout=5))
            assert update["type"] == "update" and update["event"]["type"] == "queue.joined"
            assert [(q["queue"], q["waiting"]) for q in update["queues"]] == [("700", 1)]
            node.publish(QueueJoined(node.organisation + 1, "700", "x", "+46", 1, 0, now))
            node.publish(QueueAbandoned(node.organisation, "700", "c9", 1, 3, now + 3))
            update = json.loads(feed.recv(timeout=5))  # another organisation's never comes
            assert update["event"]["type"] == "queue.abandoned"
            assert (update["queues"][0]["waiting"], update["queues"][0]["abandoned"]) == (0, 1)
            assert len(node.stats.listeners) == 1
        deadline = time.monotonic() + 5
        while node.stats.listeners:  # the browser went: its listener goes, nothing else
            assert time.monotonic() < deadline, "a closed feed kept its listener"
            time.sleep(0.05)
        node.publish(QueueJoined(node.organisation, "700", "c10", "+46", 1, 0, now + 5))
        assert node.stats.live.queue_snapshot(node.organisation, "700", now + 6)["waiting"] == 1


def test_the_wait_time_widget_is_public_cors_and_rate_limited(tmp_path: Path) -> None:
    with stats_node(tmp_path) as node:
        url = f"{node.url}/api/public/queues/default/700/wait"
        missing = httpx.get(url)
        assert missing.status_code == 404 and missing.headers["access-control-allow-origin"] == "*"
        morning(node)
        shown = httpx.get(url, headers={"Origin": "https://example.com"})
        assert shown.status_code == 200
        assert shown.headers["access-control-allow-origin"] == "*"
        body = shown.json()
        assert (body["queue"], body["open"], body["waiting"]) == ("700", True, 1)
        # one waits, one agent on duty (1002; 1003 is paused), 30 s of talk on average:
        # a new caller waits ceil((1 + 1) / 1) × 30 s
        assert body["estimated_wait"] == 60.0
        preflight = httpx.options(url, headers={"Origin": "https://example.com",
                                                "Access-Control-Request-Method": "GET"})
        assert preflight.status_code == 204
        assert "GET" in preflight.headers["access-control-allow-methods"]
        node.app.state.widget_limiter = RequestLimiter(requests=5, window=60)
        answers = [httpx.get(url) for _ in range(7)]
        assert [a.status_code for a in answers] == [200] * 5 + [429] * 2
        assert 1 <= int(answers[-1].headers["retry-after"]) <= 60
        assert answers[-1].headers["access-control-allow-origin"] == "*"


CLOSED_QUEUE = """
[701]
type = queue
members = 1002
schedule = never

[702]
type = queue
members = 1002

[never]
type = schedule
timezone = Europe/Stockholm
holidays = none
mon = closed
tue = closed
wed = closed
thu = closed
fri = closed
sat = closed
sun = closed
"""


def test_the_widget_shows_a_queue_closed_outside_its_opening_hours(tmp_path: Path) -> None:
    """Agent 1002 is on duty in both queues; 701 keeps the hours of a schedule
    that never opens, 702 has none."""
    with stats_node(tmp_path, CLOSED_QUEUE) as node:
        url = f"{node.url}/api/public/queues/default"
        assert httpx.get(f"{url}/701/wait").json()["open"] is False
        assert httpx.get(f"{url}/702/wait").json()["open"] is True
