"""Queue statistics on a real Mosquitto: a retained snapshot per queue and the
change events; a broker that stops and comes back gets them again, and the
statistics go on meanwhile."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from pbx.events import AgentStateChanged, EventBus, QueueAnswered, QueueJoined
from pbx.mqtt import MqttPublisher
from queues.live import QueueStatistics, retained_snapshots
from tests.integration.peers import free_ports, start_mosquitto

pytestmark = pytest.mark.integration


async def first(port: int, topic: str, check: Any, timeout: float = 20.0) -> dict[str, Any]:
    """The first message on ``topic`` (retained ones included) that ``check`` likes;
    a broker that is not up yet is tried again."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            async with aiomqtt.Client("127.0.0.1", port) as client:
                await client.subscribe(topic)
                async with asyncio.timeout(deadline - time.monotonic()):
                    async for message in client.messages:
                        payload = json.loads(message.payload)  # type: ignore[arg-type]
                        if check(payload):
                            return {"topic": str(message.topic), "retain": message.retain,
                                    **payload}
        except aiomqtt.MqttError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def test_snapshots_are_retained_and_come_back_after_a_broker_restart(
        tmp_path: Path) -> None:
    port = free_ports(1)
    broker = start_mosquitto(tmp_path, port)
    bus = EventBus()
    stats = QueueStatistics(bus)
    mqtt = MqttPublisher(f"mqtt://127.0.0.1:{port}", bus, lambda organisation: "acme")
    stats.listeners.append(retained_snapshots(mqtt))
    mqtt.start()
    now = time.time()
    try:
        joined = asyncio.create_task(first(port, "pbx/acme/queue/joined", lambda e: True))
        await asyncio.sleep(0.5)  # the listener subscribes; the publisher connects
        bus.publish(AgentStateChanged(1, "1002", "available", "", ("700",), now))
        bus.publish(QueueJoined(1, "700", "c1", "+4611", 1, 0, now + 1))
        event = await joined
        assert (event["type"], event["call_id"], event["queue"]) == ("queue.joined", "c1", "700")
        # a subscriber coming later gets the retained snapshot at once
        snapshot = await first(port, "pbx/acme/queue-stats/700", lambda s: s["waiting"] == 1)
        assert snapshot["retain"] and snapshot["agents"]["available"] == 1
        agent = await first(port, "pbx/acme/agent-stats/1002", lambda a: True)
        assert agent["state"] == "available"

        broker.terminate()
        broker.wait(10)
        bus.publish(QueueJoined(1, "700", "c2", "+4612", 2, 0, now + 2))  # nobody to send to
        assert stats.live.queue_snapshot(1, "700", now + 3)["waiting"] == 2  # counting goes on
        broker = start_mosquitto(tmp_path, port)  # back, and empty (no persistence)
        await first(port, "pbx/acme/queue-stats/700", lambda s: s["waiting"] == 2)  # resent
        snapshot = await first(port, "pbx/acme/queue-stats/700", lambda s: True)
        assert snapshot["retain"] and snapshot["waiting"] == 2  # and retained again
        answered = asyncio.create_task(first(port, "pbx/acme/queue/answered", lambda e: True))
        await asyncio.sleep(0.5)
        bus.publish(QueueAnswered(1, "700", "c1", "1002", 3, now + 4))
        assert (await answered)["call_id"] == "c1"
        later = await first(port, "pbx/acme/queue-stats/700", lambda s: s["answered"] == 1)
        assert later["waiting"] == 1
    finally:
        await mqtt.stop()
        broker.terminate()
        broker.wait(10)
