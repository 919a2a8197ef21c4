"""Calls and their legs: data only, no behaviour (the parts of
:mod:`pbx.calls` act on them).

A :class:`Call` has two sides: ``a``, who called (absent for calls the PBX
places), and ``b``, who answered (a phone, or nobody while a service such as
voicemail or an IVR holds the caller).  While a destination rings, a
:class:`Ring` holds the forks (one INVITE per registered device) and the
relay port they are offered; the fork that answers takes the port over.
Every media port belongs to exactly one leg or one ring, so ending the call
releases each exactly once.
"""

from __future__ import annotations

import enum
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from media.engine import MixPort
from media.relay import RelayLeg
from pbx.directory import Tenant
from pbx.sip.flow import Flow
from pbx.router import RingStep
from pbx.sdp import SessionDescription, SessionVersion
from pbx.sip.dialog import Dialog
from pbx.sip.message import Request, Response

from pbx.calls.channel import Cancel

if TYPE_CHECKING:
    from pbx.calls.channel import Channel

_session_ids = itertools.count(int(time.time()))


def new_session_version() -> SessionVersion:
    """The o= line of a new leg: a fresh session id, version 1 (RFC 4566 §5.2)."""
    return SessionVersion(next(_session_ids))


class LegState(enum.Enum):
    """Where a leg's INVITE stands (RFC 3261 §13): sent or received, ringing,
    answered, over."""

    TRYING = "trying"
    RINGING = "ringing"
    ANSWERED = "answered"
    ENDED = "ended"

    @property
    def pending(self) -> bool:
        return self in (LegState.TRYING, LegState.RINGING)


@dataclass(eq=False)
class Leg:
    """One party of a call: a dialog with one phone and its relay port."""

    call: Call
    flow: Flow
    number: str
    invite: Request
    outgoing: bool  # True: we sent the INVITE (a fork)
    tx: object = None
    dialog: Dialog | None = None
    media: RelayLeg | None = None
    offer: SessionDescription | None = None  # the phone's SDP (its offer, or its answer)
    local_sdp: SessionDescription | None = None
    version: SessionVersion = field(default_factory=new_session_version)
    state: LegState = LegState.TRYING
    ring: Ring | None = None  # the ring a fork belongs to
    ok: Response | None = None  # our 2xx to this phone, resent until ACK
    ok_timer: Cancel | None = None
    session_timer: Cancel | None = None
    session_expires: int | None = None
    held: bool = False
    early_sdp_sent: bool = False
    channel: Channel | None = None  # the service's view of this leg, while one holds it
    trunk: str = ""  # the trunk this leg runs over (a carrier's leg)
    challenged: bool = False  # our INVITE already answered a carrier's 401/407


@dataclass(frozen=True, slots=True)
class TrunkStep:
    """An external number over one trunk; the step after it is the next trunk
    of the route (failover on 5xx and timeout)."""

    trunk: str
    number: str  # as the carrier wants it
    caller_id: str  # the number shown: E.164 as the carrier's format wants, "" = anonymous
    timeout: float
    caller_name: str = ""


class RingOwner(Protocol):
    """Who started a ring and hears how it goes (sippy's call-control events):
    the caller waiting, a transfer, a service's dial."""

    def early(self, ring: Ring, leg: Leg, response: Response) -> None: ...

    def answered(self, ring: Ring, leg: Leg) -> None: ...

    def failed(self, ring: Ring, status: int, reason: str | None) -> None: ...


@dataclass(eq=False)
class Ring:
    """One attempt to reach a destination: ring steps, forks, a timer."""

    call: Call
    owner: RingOwner
    steps: list[RingStep | TrunkStep] = field(default_factory=list)
    media: RelayLeg | None = None  # offered to every fork; the answering fork takes it
    forks: list[Leg] = field(default_factory=list)
    timer: Cancel | None = None
    failure: int = 0  # the best final answer so far
    rung: str = ""  # the extension or group rung, for Diversion when it forwards
    group: str | None = None
    busy_target: str = ""
    noanswer_target: str = ""
    rang: bool = False  # a fork was sent (else no member had a device registered)
    done: bool = False


@dataclass(eq=False)
class Transfer:
    """A blind transfer in progress: ``keep`` waits while ``referrer`` is told how it goes."""

    referrer: Leg
    keep: Leg


@dataclass(eq=False)
class Call:
    """A call from side ``a`` to side ``b``."""

    id: str
    tenant: Tenant
    dialled: str = ""
    a: Leg | None = None
    b: Leg | None = None
    ring: Ring | None = None
    started_at: float = field(default_factory=time.time)
    answered_at: float | None = None
    answered_by: str = ""  # the extension, or the service (``voicemail:1002``), that answered
    ended: bool = False
    path: list[str] = field(default_factory=list)
    hops: int = 0
    caller_name: str = ""
    caller_number: str = ""
    diverted_from: str = ""
    diversion_reason: str = ""
    service: str = ""  # the service (number) that places this call, e.g. a queue ringing an agent
    service_name: str = ""
    transfer: Transfer | None = None
    recording: Path | None = None  # the file being written now
    recordings: list[Path] = field(default_factory=list)
    stereo: tuple[MixPort, MixPort] | None = None  # the call's room ports: left, right
    dialling: RingOwner | None = None  # set for calls a service places
    devices_only: bool = False  # ring an extension's phones, nothing else (a queue's offer)
    after_b: Callable[[Channel], None] | None = None  # b hangs up: a goes back to a service
    trunk: str = ""  # the trunk it came in or went out by
    direction: str = "internal"  # internal, inbound (from a carrier), outbound (to one)
    on_end: list[Callable[[], None]] = field(default_factory=list)
    write_cdr: bool = True  # False: merged into another call (one call, one record)
    merged_into: str = ""  # the call it was folded into (pickup, Replaces, connect)

    def legs(self) -> list[Leg]:
        forks = self.ring.forks if self.ring is not None else []
        return [leg for leg in (self.a, self.b, *forks) if leg is not None]
