"""The trunks of one node at run time: each registering trunk kept registered
with its carrier, every trunk's addresses known, and a request's source told
to be a carrier's or not (no credentials are asked of a carrier; anybody
else is a phone and must authenticate: no open relay).

The registrations themselves are pure (:mod:`pbx.trunks.registration`); this
is the asyncio glue: one timer for the next due REGISTER, name resolution
off the loop, responses back from the SIP server, events on the bus.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from pbx.directory import Directory
from pbx.events import EventBus, TrunkStatus
from pbx.sip.flow import Flow
from pbx.sip.message import Request, Response
from pbx.tasks import Tasks

from pbx.trunks.registration import Registration, State, Status
from pbx.trunks.settings import TrunkSettings

log = logging.getLogger("pbx.trunks")

Key = tuple[int, str]  # (organisation, trunk name)


class TrunkSip(Protocol):
    """What trunks need of the SIP server."""

    def send_request(self, request: Request, flow: Flow, owner: object = None) -> object: ...

    def sent_by(self, transport: str) -> str: ...

    def expect_tls(self, flow: Flow, server_name: str, ca_file: str = "",
                   verify: bool = True) -> None: ...


@dataclass
class Carrier:
    """One trunk as the node knows it: settings, resolved addresses, registration."""

    organisation: int
    settings: TrunkSettings
    addresses: set[str] = field(default_factory=set)  # of its host and outbound proxy
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(default_factory=list)
    registration: Registration | None = None

    def sends_from(self, host: str) -> bool:
        if host in self.addresses:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)


class TrunkService:
    """Registrations, addresses and the carrier check of one node's trunks."""

    def __init__(self, directory: Directory, sip: TrunkSip, events: EventBus,
                 now: Callable[[], float]) -> None:
        # which organisations' trunks this process registers: all, unless it is
        # one of several workers (each registers those of its organisations)
        self.registers: Callable[[int], bool] = lambda organisation: True
        self.directory = directory
        self.sip = sip
        self.events = events
        self.now = now
        self.carriers: dict[Key, Carrier] = {}
        self.pending: dict[int, Carrier] = {}  # id(REGISTER transaction) → its trunk
        self.tasks = Tasks(log, "trunk upkeep")
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Follow the directory (trunks added, changed, removed) from now on."""
        self._loop = asyncio.get_running_loop()
        self.directory.on_reload(lambda: self._loop.call_soon_threadsafe(self.sync)  # type: ignore[union-attr]
                                 if self._loop is not None else None)
        self.sync()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def sync(self) -> None:
        """Match the carriers to the directory's trunks: new ones are resolved
        (and registered), changed ones start over, removed ones are forgotten."""
        wanted = {(org, s.name): s for org, s in self.directory.trunks if s.enabled}
        for key in set(self.carriers) - set(wanted):
            del self.carriers[key]
            log.info("trunk %s of organisation %d removed", key[1], key[0])
        for key, settings in wanted.items():
            known = self.carriers.get(key)
            if known is not None and known.settings == settings:
                continue
            carrier = Carrier(key[0], settings, networks=[
                ipaddress.ip_network(a, strict=False) for a in settings.addresses])
            if settings.transport == "tls" and not settings.tls_verify:
                log.warning("trunk %s: TLS certificate verification is off (tls_verify = no): "
                            "anyone on the path can pose as the carrier", settings.name)
            self.carriers[key] = carrier
            self.tasks.spawn(self._resolve(carrier))

    async def _resolve(self, carrier: Carrier) -> None:
        """The addresses of the carrier's host and proxy (off the loop), then,
        for a registering trunk, its first REGISTER."""
        settings = carrier.settings
        hosts = {settings.registrar[0], settings.next_hop[0]}
        loop = asyncio.get_running_loop()
        for host in hosts:
            try:
                infos = await loop.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
            except OSError as exc:
                log.warning("trunk %s: cannot resolve %s: %s", settings.name, host, exc)
                continue
            carrier.addresses.update(str(info[4][0]) for info in infos)
        if settings.auth == "register" and carrier.registration is None \
                and self.registers(carrier.organisation):
            carrier.registration = Registration(settings, self._contact(settings))
        self._arm()

    def _contact(self, settings: TrunkSettings) -> str:
        sent_by = self.sip.sent_by(settings.transport.upper())
        return f"<sip:{settings.username}@{sent_by};transport={settings.transport}>"

    # ------------------------------------------------------------ registering

    def _arm(self) -> None:
        """One timer: the next due registration."""
        if self._loop is None:
            return
        due = [c.registration.next_at for c in self.carriers.values()
               if c.registration is not None and c.registration.state is not State.REGISTERING]
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if due:
            delay = max(0.0, min(due) - self.now())
            self._timer = self._loop.call_later(delay, self._tick)

    def _tick(self) -> None:
        self._timer = None
        now = self.now()
        for carrier in list(self.carriers.values()):
            registration = carrier.registration
            if registration is not None and registration.due(now):
                self._send(carrier, registration.request(self._sent_by(carrier), now))
        self._arm()

    def _sent_by(self, carrier: Carrier) -> str:
        return self.sip.sent_by(carrier.settings.transport.upper())

    def _flow(self, carrier: Carrier) -> Flow:
        """Where requests over the trunk go: its outbound proxy or host, by address
        once resolved; over TLS the certificate must name that host (RFC 5922 §7.2)."""
        settings = carrier.settings
        host, port = settings.next_hop
        address = next(iter(sorted(carrier.addresses)), host)
        flow = Flow(settings.transport.upper(), address, port)
        if settings.transport == "tls":
            self.sip.expect_tls(flow, host, settings.tls_ca_file, settings.tls_verify)
        return flow

    def _send(self, carrier: Carrier, request: Request) -> None:
        settings = carrier.settings
        flow = self._flow(carrier)
        tx = self.sip.send_request(request, flow, owner=self)
        self.pending[id(tx)] = carrier
        log.debug("trunk %s: REGISTER %s via %s", settings.name, request.uri, flow)

    def on_response(self, tx: object, response: Response) -> None:
        carrier = self.pending.pop(id(tx), None)
        if carrier is None or carrier.registration is None:
            return
        registration = carrier.registration
        before = registration.status
        retry = registration.on_response(response, self._sent_by(carrier), self.now())
        if retry is not None:
            self._send(carrier, retry)
            return
        self._changed(carrier, before)
        self._arm()

    def on_timeout(self, tx: object) -> None:
        carrier = self.pending.pop(id(tx), None)
        if carrier is None or carrier.registration is None:
            return
        before = carrier.registration.status
        carrier.registration.on_timeout(self.now())
        self._changed(carrier, before)
        self._arm()

    def _changed(self, carrier: Carrier, before: Status) -> None:
        status = carrier.registration.status  # type: ignore[union-attr]
        name = carrier.settings.name
        if status.state is State.REGISTERED:
            log.info("trunk %s registered (%d s)", name, (status.expires_at or 0) - self.now())
        else:
            log.warning("trunk %s: %s %d %s; again in %.0f s", name, status.state.value,
                        status.code, status.reason, (status.retry_at or self.now()) - self.now())
        if (status.state, status.code) != (before.state, before.code):
            self.events.publish(TrunkStatus(carrier.organisation, name, status.state.value,
                                            status.code, status.reason, self.now()))

    # ------------------------------------------------------------ what others ask

    def carrier_of(self, flow: Flow) -> Carrier | None:
        """The trunk a request came from, by its source address; None: not a carrier's."""
        return next((c for c in self.carriers.values() if c.sends_from(flow.host)), None)

    def flow_to(self, organisation: int, name: str) -> tuple[Carrier, Flow] | None:
        """Where requests over trunk ``name`` go (its outbound proxy or host)."""
        carrier = self.carriers.get((organisation, name))
        if carrier is None:
            shared = next((c for (org, n), c in self.carriers.items()
                           if n == name and c.settings.shared), None)
            carrier = shared
        if carrier is None:
            return None
        return carrier, self._flow(carrier)

    def status(self, organisation: int, name: str) -> Status | None:
        carrier = self.carriers.get((organisation, name))
        if carrier is None:
            return None
        if carrier.registration is None:  # an IP trunk has nothing to register
            return Status(State.REGISTERED if carrier.addresses or carrier.networks
                          else State.UNREGISTERED, reason="ip authentication")
        return carrier.registration.status

