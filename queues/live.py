"""The live statistics on the event bus (the glue around queues/stats.py): each
queue event is folded in as it is published, and listeners — the wallboard's
WebSocket, the MQTT publisher — get the event together with fresh snapshots of
the queues and agents it changed, so nobody polls."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pbx.events import Event, EventBus, as_dict
from queues.stats import LiveStatistics, Settings

log = logging.getLogger("queues.live")


@dataclass(frozen=True, slots=True)
class Update:
    """A queue event and the snapshots it changed."""

    organisation: int
    event: dict[str, Any]
    queues: list[dict[str, Any]]
    agents: list[dict[str, Any]]


class QueueStatistics:
    """Owns the :class:`LiveStatistics` of this node and tells its listeners."""

    def __init__(self, bus: EventBus, defaults: Settings | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.live = LiveStatistics(defaults)
        self.clock = clock
        self.listeners: list[Callable[[Update], None]] = []
        bus.subscribe(self.on_event)

    def on_event(self, event: Event) -> None:
        queues, agents = self.live.apply(event)
        if not queues and not agents:
            return
        org = event.organisation
        update = Update(org, as_dict(event),
                        [self.live.queue_snapshot(org, q, event.at) for q in sorted(queues)],
                        [self.live.agent_snapshot(org, a, event.at) for a in sorted(agents)])
        for listener in list(self.listeners):
            try:
                listener(update)
            except Exception:
                log.exception("queue statistics listener %r failed", listener)

    def snapshot(self, organisation: int) -> dict[str, Any]:
        """Every queue and agent of ``organisation`` now (a wallboard's first view)."""
        now = self.clock()
        live = self.live
        return {"queues": [live.queue_snapshot(organisation, q, now)
                           for q in live.queue_names(organisation)],
                "agents": [live.agent_snapshot(organisation, a, now)
                           for a in live.agent_names(organisation)],
                "at": now}


class Retainer(Protocol):
    """What keeps a retained message per topic (pbx.mqtt.MqttPublisher)."""

    def retain(self, organisation: int, subtopic: str, payload: dict[str, Any]) -> None: ...


def retained_snapshots(mqtt: Retainer) -> Callable[[Update], None]:
    """A listener keeping ``queue-stats/<queue>`` and ``agent-stats/<agent>``
    retained on the broker, so a subscriber sees the figures as soon as it comes."""

    def publish(update: Update) -> None:
        for queue in update.queues:
            mqtt.retain(update.organisation, f"queue-stats/{queue['queue']}", queue)
        for agent in update.agents:
            mqtt.retain(update.organisation, f"agent-stats/{agent['agent']}", agent)

    return publish
