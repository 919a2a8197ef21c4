#!/usr/bin/env python3
"""Queue statistics under load: from an event on the bus to the wallboard's
WebSocket, and what folding it costs.

The admin API of a node is served in this process (tests/integration/
queue_node.py: uvicorn on loopback, the statistics, the event store) with
``--queues`` queues of ``--agents`` agents each, all logged in.  Then
``--callers`` callers join (spread over the queues), and each is answered and
completed, at ``--rate`` events a second, published on the node's event loop
as the queue engine will.  A WebSocket client (the wallboard's feed) stamps
each update as it arrives.

Printed: event → WebSocket latency (from just before ``publish`` to the
client's receipt, both clocks of this process: median, p99, max) and the
time the statistics take per event (folding it and the snapshots it changed:
median, p99), and how many updates arrived.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from websockets.sync.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pbx.events import (  # noqa: E402
    AgentStateChanged, Event, QueueAnswered, QueueCompleted, QueueJoined, event_type,
)
from tests.integration.queue_node import StatsNode, stats_node  # noqa: E402


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def script(org: int, queues: int, agents: int, callers: int) -> list[Event]:
    now = time.time()
    events: list[Event] = [
        AgentStateChanged(org, f"{q}{a:03d}", "available", "", (f"7{q:02d}",), now)
        for q in range(queues) for a in range(agents)]
    for c in range(callers):
        queue = f"7{c % queues:02d}"
        events.append(QueueJoined(org, queue, f"c{c}", f"+46{c}", 1, 0, now))
    for c in range(callers):
        queue, agent = f"7{c % queues:02d}", f"{c % queues}{c % agents:03d}"
        events.append(QueueAnswered(org, queue, f"c{c}", agent, 5, now))
        events.append(QueueCompleted(org, queue, f"c{c}", agent, 60, "caller", now))
    return events


def run(node: StatsNode, events: list[Event], rate: float) -> None:
    sent: dict[tuple[str, str], float] = {}
    fold: list[float] = []
    latencies: list[float] = []
    stats, bus = node.stats, node.sip.events
    inner = stats.on_event

    def timed(event: Event) -> None:
        start = time.perf_counter()
        inner(event)
        fold.append(time.perf_counter() - start)

    bus.unsubscribe(inner)
    bus.subscribe(timed)
    token = node.headers("sue")["Authorization"][7:]
    url = node.url.replace("http", "ws") + f"/api/queue-stats/feed?token={token}"
    wanted = sum(not isinstance(e, AgentStateChanged) for e in events)
    with connect(url, max_size=None) as feed:
        json.loads(feed.recv(timeout=10))  # the first snapshot

        def receive() -> None:
            while len(latencies) < wanted:
                update = json.loads(feed.recv(timeout=30))
                event = update["event"]
                key = (event["type"], event.get("call_id", ""))
                if key in sent:
                    latencies.append(time.perf_counter() - sent.pop(key))

        def publish(event: Event) -> None:
            if not isinstance(event, AgentStateChanged):
                sent[(event_type(event), event.call_id)] = time.perf_counter()
            bus.publish(event)

        reader = threading.Thread(target=receive)
        reader.start()
        gap = 1.0 / rate
        next_at = time.perf_counter()
        for event in events:
            node.loop.call_soon_threadsafe(publish, event)
            next_at += gap
            time.sleep(max(0.0, next_at - time.perf_counter()))
        reader.join(60)
    ms = [x * 1000 for x in latencies]
    us = [x * 1e6 for x in fold]
    print(f"{len(events)} events at {rate:.0f}/s; {len(latencies)} of {wanted} updates arrived")
    print(f"event -> WebSocket ms: median {statistics.median(ms):.2f}  "
          f"p99 {percentile(ms, 0.99):.2f}  max {max(ms):.2f}")
    print(f"statistics per event µs: median {statistics.median(us):.0f}  "
          f"p99 {percentile(us, 0.99):.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queues", type=int, default=50)
    parser.add_argument("--agents", type=int, default=10, help="per queue")
    parser.add_argument("--callers", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=500.0, help="events a second")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, stats_node(Path(tmp)) as node:
        events = script(node.organisation, args.queues, args.agents, args.callers)
        print(f"{args.queues} queues x {args.agents} agents, {args.callers} callers")
        run(node, events, args.rate)


if __name__ == "__main__":
    main()
