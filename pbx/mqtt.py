"""Publishes the event bus to an MQTT broker (aiomqtt), when ``mqtt_url`` is set.

Topics are ``pbx/<organisation slug>/<event type>`` (``call/started``,
``call/answered``, ``call/ended``, ``registration``) with the event as JSON,
QoS 0: live feeds for wallboards and integrations.  Services may also keep a
*retained* message per topic (:meth:`MqttPublisher.retain`: the queue statistics'
snapshots): only the latest of each is sent, and all of them again after every
(re)connection, so a broker that restarted without persistence has them back.
A broker that is down or goes away is retried with back-off; events meanwhile
are dropped (they are live data; the store keeps the history), and no call is
ever affected.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import aiomqtt

from pbx.events import EventBus, Subscription, as_dict, event_type

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
        self._retained: dict[str, str] = {}  # topic → its latest payload
        self._unsent: set[str] = set()
        self._wake = asyncio.Event()

    def retain(self, organisation: int, subtopic: str, payload: dict[str, Any]) -> None:
        """Keep ``payload`` as the retained message of ``pbx/<slug>/<subtopic>``."""
        topic = f"pbx/{self.slug_of(organisation)}/{subtopic}"
        self._retained[topic] = json.dumps(payload)
        self._unsent.add(topic)
        self._wake.set()

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
                    self._unsent.update(self._retained)  # the broker may have lost them
                    self._wake.set()
                    async with asyncio.TaskGroup() as group:
                        group.create_task(self._events(client, subscription))
                        group.create_task(self._snapshots(client))
                        group.create_task(self._watch(client))
            except* aiomqtt.MqttError as failed:
                log.warning("MQTT broker %s:%d: %s; retrying in %.0f s",
                            self.host, self.port, failed.exceptions[0], delay)
            finally:
                subscription.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)

    async def _events(self, client: aiomqtt.Client, subscription: Subscription) -> None:
        while True:
            event = await subscription.get()
            topic = f"pbx/{self.slug_of(event.organisation)}/" + \
                event_type(event).replace(".", "/")
            await client.publish(topic, json.dumps(as_dict(event)))
            self.published += 1

    @staticmethod
    async def _watch(client: aiomqtt.Client) -> None:
        """Notice a lost connection at once (the message iterator raises on it),
        not when the next publication times out."""
        async for _ in client.messages:
            pass  # nothing is subscribed: only the disconnection comes

    async def _snapshots(self, client: aiomqtt.Client) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._unsent:
                topic = self._unsent.pop()
                try:
                    await client.publish(topic, self._retained[topic], retain=True)
                except aiomqtt.MqttError:
                    self._unsent.add(topic)  # sent again once connected
                    raise
                self.published += 1
