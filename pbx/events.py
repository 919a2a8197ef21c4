"""The in-process event bus (ARCHITECTURE.md principle 4: events, not polling).

Call control publishes what happens as small immutable events; call records,
live statistics, the WebSocket feed of the admin API and the MQTT publisher
subscribe.  Publishing never blocks and never fails the publisher: a broken
subscriber is logged and the others still get the event; a slow queue
subscriber loses its oldest events, not the PBX its calls.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("pbx.events")


@dataclass(frozen=True, slots=True)
class CallStarted:
    """A call came in (or the PBX placed one) and is being routed: what a
    screen-pop shows (who calls, by name, and the organisation's number, the
    DID, they dialled when they came in on one)."""

    organisation: int
    call_id: str
    caller: str
    dialled: str
    at: float
    caller_name: str = ""
    did: str = ""


@dataclass(frozen=True, slots=True)
class CallRinging:
    """The PBX sent the INVITE to the devices of ``extension`` (a fork): its phones
    ring, showing ``caller`` (number and name); ``did`` is the organisation's
    number the caller dialled, when they came in on one."""

    organisation: int
    call_id: str
    extension: str
    at: float
    caller: str = ""
    caller_name: str = ""
    did: str = ""


@dataclass(frozen=True, slots=True)
class CallAnswered:
    organisation: int
    call_id: str
    answered_by: str
    at: float


@dataclass(frozen=True, slots=True)
class CallEnded:
    organisation: int
    call_id: str
    caller: str
    dialled: str
    answered_by: str
    disposition: str  # answered, busy, noanswer, cancelled, declined, failed
    status: int
    duration: float
    at: float
    started_at: float = 0.0
    answered_at: float | None = None
    hangup_by: str = ""  # caller, callee, pbx, transfer, admin …
    path: tuple[str, ...] = ()  # what happened: forks, forwards, services, transfers
    quality: dict[str, Any] = field(default_factory=dict)  # per leg: loss, jitter, MOS
    trunk: str = ""  # the trunk it came in or went out by
    direction: str = "internal"  # internal, inbound, outbound
    # False: no record of its own, folded into ``merged_into`` (a pickup, Replaces, a
    # service connecting its dial) or a service's ring given up; every call.started
    # still ends with one call.ended, so whoever follows calls by id can forget it
    recorded: bool = True
    merged_into: str = ""


@dataclass(frozen=True, slots=True)
class Registered:
    """An extension's set of registered devices changed: a REGISTER succeeded,
    or registrations expired or were dropped (``contacts``: how many are left)."""

    organisation: int
    extension: str
    contacts: int
    at: float


@dataclass(frozen=True, slots=True)
class MailboxChanged:
    """A voicemail message was stored, marked heard or unheard, or deleted."""

    organisation: int
    mailbox: str
    at: float


@dataclass(frozen=True, slots=True)
class VoicemailLeft:
    """A caller left a new message in ``mailbox`` (its emails are queued with it)."""

    organisation: int
    mailbox: str
    message_id: int
    caller: str
    duration: float
    at: float


@dataclass(frozen=True, slots=True)
class SwitchboardChanged:
    """An organisation's switchboard (one of its schedules) opened or closed:
    by its opening hours, a holiday, a dated exception or a manual override."""

    organisation: int
    schedule: str
    open: bool
    reason: str  # schedule, holiday, exception, override
    next_change: float | None
    at: float


@dataclass(frozen=True, slots=True)
class TrunkStatus:
    """A trunk's registration with its carrier changed state (registered,
    failed with the carrier's answer, …)."""

    organisation: int
    trunk: str
    state: str  # unregistered, registering, registered, failed
    code: int
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class CallRefused:
    """The PBX would not place a call to the public network: the caller's license,
    a toll-fraud limit, a number it cannot read, no route.  ``cause`` names the
    rule (``license``, ``international``, ``concurrent``, ``rate``, ``number``,
    ``route``) so a watcher counts toll-fraud refusals apart from typing errors."""

    organisation: int
    extension: str
    number: str  # as dialled
    status: int  # the SIP answer the phone got
    reason: str
    cause: str
    at: float


NODE = 0  # the organisation of node-wide events: no tenant's


@dataclass(frozen=True, slots=True)
class OverloadChanged:
    """The node started (``overloaded``) or stopped refusing new calls,
    registrations and subscriptions with 503 (pbx/overload.py).  ``reason`` names
    the signal that reached its limit; the measures are the probe's at the
    change; ``shed`` counts the refusals of an episode that ends.  Node-wide:
    ``organisation`` is :data:`NODE`."""

    organisation: int
    overloaded: bool
    reason: str
    loop_lag_ms: float
    udp_wait_ms: float
    transactions: int
    media_tick_ms: float
    shed: int
    at: float


# ------------------------------------------------------------------ ACD queues
# What queues publish (queues/): statistics, the wallboard, MQTT and webhooks
# are built from these alone.  ``queue`` is the queue's number; ``wait`` and
# ``talk`` are seconds; ``call_id`` is the caller's call.


@dataclass(frozen=True, slots=True)
class QueueJoined:
    """A caller entered a queue (``position`` 1 = next; priority callers go ahead)."""

    organisation: int
    queue: str
    call_id: str
    caller: str
    position: int
    priority: int
    at: float


@dataclass(frozen=True, slots=True)
class QueueOffered:
    """The queue rings an agent for a waiting caller."""

    organisation: int
    queue: str
    call_id: str
    agent: str
    at: float


@dataclass(frozen=True, slots=True)
class QueueAnswered:
    """An agent took the caller after ``wait`` seconds in the queue."""

    organisation: int
    queue: str
    call_id: str
    agent: str
    wait: float
    at: float


@dataclass(frozen=True, slots=True)
class QueueCompleted:
    """A queue call between caller and agent ended after ``talk`` seconds."""

    organisation: int
    queue: str
    call_id: str
    agent: str
    talk: float
    hangup_by: str  # caller or agent
    at: float


@dataclass(frozen=True, slots=True)
class QueueAbandoned:
    """The caller hung up while waiting (at ``position``, after ``wait`` seconds)."""

    organisation: int
    queue: str
    call_id: str
    position: int
    wait: float
    at: float


@dataclass(frozen=True, slots=True)
class QueueOverflowed:
    """The caller left for the overflow destination (max wait, no agents, full)."""

    organisation: int
    queue: str
    call_id: str
    wait: float
    destination: str
    reason: str  # maxwait, noagents, full, joinempty
    at: float


@dataclass(frozen=True, slots=True)
class QueueCallback:
    """A caller's callback (Telavox "on hook waiting"): ``state`` requested (the
    caller hung up keeping their place), dialled, connected or failed."""

    organisation: int
    queue: str
    call_id: str  # the call that asked for it
    number: str
    state: str
    agent: str
    at: float


@dataclass(frozen=True, slots=True)
class AgentStateChanged:
    """A queue agent's state: logged_out, available, ringing, on_queue_call,
    on_direct_call, wrap_up, paused (``reason``: lunch, admin, training …)."""

    organisation: int
    agent: str
    state: str
    reason: str
    queues: tuple[str, ...]
    at: float


@dataclass(frozen=True, slots=True)
class SurveyAnswered:
    """A caller rated a queue call (1–5) after the agent hung up."""

    organisation: int
    queue: str
    call_id: str
    agent: str
    score: int
    at: float


QueueEvent = (QueueJoined | QueueOffered | QueueAnswered | QueueCompleted | QueueAbandoned
              | QueueOverflowed | QueueCallback | AgentStateChanged | SurveyAnswered)

Event = (CallStarted | CallRinging | CallAnswered | CallEnded | Registered | MailboxChanged
         | VoicemailLeft | SwitchboardChanged | TrunkStatus | CallRefused | OverloadChanged
         | QueueEvent)


_TYPES: dict[type, str] = {
    CallStarted: "call.started", CallRinging: "call.ringing", CallAnswered: "call.answered",
    CallEnded: "call.ended", CallRefused: "call.refused", Registered: "registration",
    MailboxChanged: "voicemail", VoicemailLeft: "voicemail.left",
    SwitchboardChanged: "switchboard", TrunkStatus: "trunk", OverloadChanged: "overload",
    QueueJoined: "queue.joined", QueueOffered: "queue.offered", QueueAnswered: "queue.answered",
    QueueCompleted: "queue.completed", QueueAbandoned: "queue.abandoned",
    QueueOverflowed: "queue.overflowed", QueueCallback: "queue.callback",
    AgentStateChanged: "agent.state", SurveyAnswered: "queue.survey",
}
EVENT_TYPES = tuple(_TYPES.values())


def event_type(event: Event) -> str:
    """``call.started``, ``call.ringing``, ``call.answered``, ``call.ended``,
    ``call.refused``, ``registration``, ``voicemail``, ``voicemail.left``, ``switchboard``,
    ``trunk``, ``overload``, ``queue.*``, ``agent.state``."""
    return _TYPES[type(event)]


def as_dict(event: Event) -> dict[str, Any]:
    """The event as JSON-ready fields, with its type."""
    return {"type": event_type(event), **dataclasses.asdict(event)}


_CLASSES: dict[str, type] = {name: cls for cls, name in _TYPES.items()}


def from_dict(data: dict[str, Any]) -> Event:
    """The event ``as_dict`` gave (a stored row read back); JSON lists become the
    tuples the event holds.  KeyError for a type that is not an event's."""
    cls = _CLASSES[data["type"]]
    values = {f.name: tuple(data[f.name]) if isinstance(data[f.name], list) else data[f.name]
              for f in dataclasses.fields(cls) if f.name in data}
    return cls(**values)  # type: ignore[no-any-return]


class Subscription:
    """A bounded queue of events for an asyncio consumer (a WebSocket, MQTT)."""

    def __init__(self, bus: EventBus, size: int) -> None:
        self.bus = bus
        self.queue: asyncio.Queue[Event] = asyncio.Queue(size)
        self.dropped = 0

    def put(self, event: Event) -> None:
        if self.queue.full():
            self.queue.get_nowait()  # the oldest goes: a stalled reader must not grow us
            self.dropped += 1
        self.queue.put_nowait(event)

    async def get(self) -> Event:
        return await self.queue.get()

    def close(self) -> None:
        self.bus.unsubscribe(self.put)


class EventBus:
    """Synchronous fan-out on the event loop's thread."""

    def __init__(self) -> None:
        self._handlers: list[Callable[[Event], None]] = []

    def subscribe(self, handler: Callable[[Event], None]) -> None:
        self._handlers.append(handler)

    def unsubscribe(self, handler: Callable[[Event], None]) -> None:
        if handler in self._handlers:
            self._handlers.remove(handler)

    def queue(self, size: int = 1000) -> Subscription:
        """A queue subscription; ``close()`` it when done."""
        subscription = Subscription(self, size)
        self.subscribe(subscription.put)
        return subscription

    def publish(self, event: Event) -> None:
        for handler in list(self._handlers):
            try:
                handler(event)
            except Exception:
                log.exception("event subscriber %r failed on %s", handler, event_type(event))
