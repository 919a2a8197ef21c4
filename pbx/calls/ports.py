"""What call control needs of the layers around it, as protocols: the SIP
server (send and answer), the media (ports, rooms), the store (records).
Call control depends on these, never on the concrete server, so no import
circle runs through it and tests hand it in-memory stand-ins."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from media.relay import RelayLeg
from pbx.directory import Tenant
from pbx.sip.flow import Flow
from pbx.models import ConferenceRoom, Extension
from pbx.sip.message import Request, Response
from pbx.trunks.settings import TrunkSettings

from pbx.calls.channel import Cancel, Clock


class Signalling(Protocol):
    """The SIP server as call control sees it: transactions and transports."""

    def respond(self, response: Response) -> None:
        """Send a response through its server transaction."""

    def send_request(self, request: Request, flow: Flow) -> object:
        """Start a client transaction; responses come back tagged with it."""

    def send_direct(self, message: Request | Response, flow: Flow) -> None:
        """Send outside any transaction (ACK to a 2xx, a resent 2xx)."""

    def sent_by(self, transport: str) -> str: ...

    def contact(self, flow: Flow) -> str: ...

    def allow_header(self) -> str: ...

    def media_address(self) -> str: ...

    def find_invite_server(self, cancel: Request) -> object | None: ...

    def authenticate(self, request: Request, flow: Flow, tenant: Tenant,
                     now: float) -> tuple[Extension, str] | None:
        """The caller's extension and login, or None after answering with a
        challenge or a refusal."""


class Ports(Protocol):
    """The relay's port pairs (``media.relay.MediaRelay``)."""

    async def open_leg(self, label: str = "") -> RelayLeg: ...

    async def close_leg(self, leg: RelayLeg) -> None: ...

    def bridge(self, a: RelayLeg, b: RelayLeg) -> None: ...

    def unbridge(self, leg: RelayLeg) -> None: ...


class Recordings(Protocol):
    """Where recordings go and how their facts are kept."""

    def recording_path(self, name: str) -> Path: ...

    def write_recording(self, organisation: int, call_id: str, kind: str, parties: list[str],
                        path: Path, started_at: float) -> None: ...


class Rooms(Protocol):
    """Conference rooms by number (the organisation's, and personal rooms)."""

    def conference(self, tenant: Tenant, number: str) -> ConferenceRoom | None: ...


class Carrier(Protocol):
    """A trunk as call control needs it."""

    organisation: int
    settings: TrunkSettings


class Carriers(Protocol):
    """The node's trunks: whose a request is, and where requests over one go."""

    def carrier_of(self, flow: Flow) -> Carrier | None: ...

    def flow_to(self, organisation: int, name: str) -> tuple[Carrier, Flow] | None: ...


class LoopClock:
    """The real :class:`~pbx.calls.channel.Clock`: wall time and the event loop's timers."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop

    def now(self) -> float:
        return time.time()

    def call_later(self, seconds: float, fn: Callable[[], None]) -> Cancel:
        loop = self._loop or asyncio.get_running_loop()
        return loop.call_later(seconds, fn)


__all__ = ["Carrier", "Carriers", "Clock", "LoopClock", "Ports", "Recordings", "Rooms", "Signalling"]
