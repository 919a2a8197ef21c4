"""Publishes the event bus to an MQTT broker (aiomqtt), when ``mqtt_url`` is set.

Topics are ``pbx/<organisation slug>/<event type>`` (``call/started``,
``call/answered``, ``call/ended``, ``registration``) with the event as JSON,
QoS 0: live feeds for wallboards and integrations.  A broker that is down or
goes away is retried with back-off; events meanwhile are dropped (they are
live data; the store keeps the history), and no call is ever affected.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from urllib.parse import urlsplit

import aiomqtt

from pbx.events import EventBus, as_dict, event_type

log = logging.getLogger("pbx.mqtt")


def broker_address(url: str) -> tuple[str, int, str | None, str | None]:
    """``mqtt://user:pass@host:1883`` → host, port, user name, password."""
    parts = urlsplit(url)
    if parts.scheme != "mqtt" or not parts.hostname:
        raise ValueError(f"mqtt_url must look like mqtt://host:1883, not {url!r}")
    return parts.hostname, parts.port or 1883, parts.username, parts.password


class MqttPublisher:
    """One connection to the broker, fed by a queue subscription on the bus."""

    def __init__(self, url: str, bus: EventBus, slug_of: Callable[[int], str]) -> None:
        self.host, self.port, self.username, self.password = broker_address(url)
        self.bus = bus
        self.slug_of = slug_of
        self.published = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        delay = 1.0
        while True:
            subscription = self.bus.queue(10_000)
            try:
                async with aiomqtt.Client(self.host, self.port, username=self.username,
                                          password=self.password) as client:
                    log.info("publishing events to mqtt://%s:%d", self.host, self.port)
                    delay = 1.0
                    while True:
                        event = await subscription.get()
                        topic = f"pbx/{self.slug_of(event.organisation)}/" + \
                            event_type(event).replace(".", "/")
                        await client.publish(topic, json.dumps(as_dict(event)))
                        self.published += 1
            except aiomqtt.MqttError as exc:
                log.warning("MQTT broker %s:%d: %s; retrying in %.0f s",
                            self.host, self.port, exc, delay)
            finally:
                subscription.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)
