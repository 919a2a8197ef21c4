"""The SIP server: asyncio glue around the pure stack.

Bytes arrive from a transport → parse → transaction layer → validation
(RFC 3261 §8.2, §16.3) → the handler for the method (registrar, OPTIONS, later
the B2BUA) → responses back through the transaction layer → the transport.
This module owns the clock and the one timer; everything it calls is pure.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
import socket
import ssl
import time
from collections.abc import Callable
from typing import Protocol
from pathlib import Path

import soundfile

from media.engine import MediaEngine, MusicClass
from media.ports import PortPool
from media.prompts import PromptLibrary, build_prompts
from media.relay import MediaRelay
from pbx.authn import RequestAuthenticator
from pbx.calendars import CalendarSync
from pbx.calls.b2bua import B2BUA, CallSettings
from pbx.calls.offer_answer import SrtpPolicy
from pbx.calls.media_paths import MediaPaths, RecordingSettings
from pbx.calls.ports import LoopClock
from pbx.calls.records import CdrWriter
from pbx.cluster import BINDINGS_CHANNEL, MUSIC_CHANNEL, bindings_note, music_note
from pbx.config import WILDCARDS, Config, ConfigError
from pbx.directory import Directory, Tenant
from pbx.events import NODE, EventBus, MailboxChanged, OverloadChanged, Registered
from pbx.location import LocationService
from pbx.models import ConferenceRoom, Extension, Recording
from pbx.mqtt import MqttPublisher
from pbx.overload import (
    LoadGovernor, LoadSample, OverloadChange, OverloadLimits, udp_wait_ms,
)
from pbx.overload_watch import OverloadWatch
from pbx.pike import SourceGuard, scanner_pattern
from pbx.registrar import Registrar, RegistrarPolicy
from pbx.router import Router
from pbx.sip.auth import DigestAuthenticator
from pbx.sip.errors import ParseError, SipError
from pbx.sip.flow import Flow
from pbx.sip.message import URI, Request, Response, make_response, new_tag
from pbx.sip.parser import parse_message
from pbx.sip.transaction import (
    AckReceived, RequestReceived, ResponseReceived, StrayResponse, TransactionLayer,
    TransactionTimeout, TransportError,
)
from pbx.sip.validate import SUPPORTED, check_request
from pbx.store import Store
from pbx.planner import OutboundPlanner
from pbx.tasks import Tasks
from pbx.trunks.service import TrunkService
from pbx.presence import PresenceWatch
from pbx.subscriptions import ALLOW_EVENTS, Notifier
from pbx.transport.stream import StreamTransport, TlsPeer
from pbx.transport.tls import client_context, self_signed, server_context
from pbx.transport.udp import UdpTransport
from pbx.transport.ws import WebSocketTransport

log = logging.getLogger("pbx.server")

# Methods of RFC 3261 and its extensions that we recognise: a recognised method
# we do not serve gets 405, anything else 501 (§8.2.1, §21.5.2).
KNOWN_METHODS = frozenset(
    "INVITE ACK CANCEL BYE OPTIONS REGISTER PRACK SUBSCRIBE NOTIFY PUBLISH INFO REFER "
    "MESSAGE UPDATE".split()
)

Handler = Callable[[Request, Flow, object], None]

# Requests a node serves before it is ready (prompts still being rendered) and
# while it stops: everything in a dialog, and what never starts one.  A new
# INVITE, SUBSCRIBE... then gets 503 with Retry-After (RFC 3261 §21.5.4), which
# sends a phone to its next server or back later; a 405 would be final.
STARTING_SERVES = frozenset({"ACK", "CANCEL", "OPTIONS", "REGISTER"})
STOPPING_SERVES = frozenset({"ACK", "CANCEL"})
RETRY_AFTER_STARTING = 5  # s: prompts take a few seconds on a first start
RETRY_AFTER_STOPPING = 60  # s: a restart, or another node takes over meanwhile


class Steerer(Protocol):
    """Moves messages between the workers of a node (``pbx.steering``)."""

    def elsewhere(self, message: Request | Response, data: bytes, flow: Flow) -> bool: ...

    def send(self, data: bytes, flow: Flow) -> bool: ...

    def at_home(self, organisation: int, name: str, *args: object) -> bool: ...

    def everywhere(self, name: str, *args: object) -> None: ...


class ResponseOwner(Protocol):
    """Who started a client transaction and hears how it ends."""

    def on_response(self, tx: object, response: Response) -> None: ...

    def on_timeout(self, tx: object) -> None: ...


def own_address(config: Config) -> str:
    """The host's address by its name, for a PBX bound to a wildcard address: a
    blocking resolver call, made once at start (ConfigError if the name does not resolve)."""
    name = socket.gethostname()
    try:
        return socket.gethostbyname(name)
    except OSError as exc:
        raise ConfigError(config.path, "general", "external_address", f"needed: bound to "
                          f"{config.general.bind} and host name {name!r} does not resolve "
                          f"({exc})") from None


def load_secret(path: Path) -> bytes:
    """The server's nonce secret, made once and kept so nonces survive a restart."""
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_bytes(32)
    path.write_bytes(value)
    path.chmod(0o600)
    return value


class SipServer:
    """One PBX node's SIP side: transports, transactions, registrar, handlers."""

    def __init__(self, config: Config, store: Store) -> None:
        general = config.general
        self.config = config
        self.store = store
        hostname = socket.gethostname().lower()
        self.directory = Directory(store, general.realm, (*general.domains, hostname),
                                   language=general.language, tone_country=general.tone_country,
                                   policy=general)
        self.location = LocationService()
        # this node's name in the bindings notes of a cluster (None: alone on its store)
        self.announce: str | None = None
        self.registrar = Registrar(
            self.location,
            RegistrarPolicy(
                general.min_expires, general.max_expires, general.default_expires,
                general.max_contacts,
            ),
        )
        self.guard = SourceGuard(
            general.auth_max_failures, general.auth_failure_window, general.auth_block_time
        )
        self.flood = SourceGuard(
            general.flood_max_requests + 1, general.flood_window, general.flood_ban_time,
            what="requests and connections", trusted=self._trusted,
        ) if general.flood_max_requests else None
        self._trusted_networks = [ipaddress.ip_network(n, strict=False)
                                  for n in general.flood_trusted]
        self.scanners = scanner_pattern(general.scanner_user_agents)
        digest = DigestAuthenticator(
            general.realm,
            load_secret(config.data_path / "nonce.secret"),
            nonce_ttl=general.nonce_ttl,
            algorithms=general.auth_algorithms,
        )
        self.authenticator = RequestAuthenticator(digest, self.guard)
        self.transactions = TransactionLayer()
        self.transports: dict[str, UdpTransport | StreamTransport | WebSocketTransport] = {}
        self.router = Router(general.personal_room_prefix, general.voicemail_number,
                             voicemail_main=general.voicemail_main)
        self.events = EventBus()
        self.mqtt: MqttPublisher | None = None
        self.engine = MediaEngine()
        self.prompts = PromptLibrary(config.data_path / "prompts", config.general.language)
        self.relay = MediaRelay(general.bind, PortPool(general.rtp_port_min, general.rtp_port_max))
        media = MediaPaths(self.relay, self.engine, self, lambda: self.prompts,
                           RecordingSettings(general.recording_mix, general.record_announce))
        self.trunks = TrunkService(self.directory, self, self.events, time.time)
        self.b2bua = B2BUA(
            sip=self, ports=self.relay, media=media, engine=self.engine,
            prompts=lambda: self.prompts, directory=self.directory, location=self.location,
            router=self.router, events=self.events, clock=LoopClock(),
            settings=CallSettings(tuple(general.codecs), general.language,
                                  SrtpPolicy(general.media_encryption, general.srtp_require_tls)),
            carriers=self.trunks, planner=OutboundPlanner(self.events),
        )
        self.cdrs = CdrWriter(store.add_cdr)
        self.events.subscribe(self.cdrs.on_event)
        self.presence = PresenceWatch(self.directory, self.location, self.events,
                                      self.b2bua.live_calls)
        self.notifier = Notifier(self, self.b2bua.live_calls, self.presence)
        b2bua = self.b2bua
        self.handlers: dict[str, Handler] = {
            "REGISTER": self._on_register,
            "OPTIONS": self._on_options,
            "INVITE": b2bua.on_invite, "BYE": b2bua.on_bye, "CANCEL": b2bua.on_cancel,
            "REFER": b2bua.on_refer, "INFO": b2bua.on_info, "NOTIFY": b2bua.on_notify,
            "UPDATE": b2bua.on_update, "SUBSCRIBE": self.notifier.on_subscribe,
        }
        self.tasks = Tasks(log, "storing a recording's facts")
        self._owners: dict[int, ResponseOwner] = {}  # id(client transaction) → its owner
        self._client_contexts: dict[tuple[str, bool], ssl.SSLContext] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._flush_task: asyncio.Task[None] | None = None
        self._calendar_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._media_address = general.external_address or general.bind  # a wildcard: see start()
        self.phase = "starting"  # then "ready", and "stopping" once asked to stop
        self.steering: Steerer | None = None  # one of several workers (pbx serve --workers)
        self.jobs = True  # runs the store-wide jobs (calendar sync); one worker of a node does
        self.governor = LoadGovernor(OverloadLimits(
            general.overload_loop_lag_ms, general.overload_udp_wait_ms,
            general.overload_transactions, general.overload_media_tick_ms,
            general.overload_retry_after, general.overload_busy_cpu))
        self.overload = (OverloadWatch(self.governor, self._load_sample, self._overload_changed)
                         if general.overload_control else None)

    # ---------------------------------------------------------------- life cycle

    async def start(self) -> None:
        general = self.config.general
        self._loop = asyncio.get_running_loop()
        if self._media_address in WILDCARDS:
            self._media_address = await asyncio.to_thread(own_address, self.config)
            log.info("bound to %s: phones are told %s (set external_address to change it)",
                     general.bind, self._media_address)
        self.location.load(await asyncio.to_thread(self.store.load_bindings, time.time()))
        log.info("restored %d registrations", len(self.location))
        shared = self.steering is not None  # the ports are the node's, every worker's
        if "udp" in general.transports:
            self.transports["UDP"] = await UdpTransport.listen(
                general.bind, general.udp_port, self.receive, reuse_port=shared
            )
        if "tcp" in general.transports:
            tcp = StreamTransport("TCP", self.receive, idle_timeout=general.tcp_idle_timeout,
                                  refuse=self._reject_unparsable, admit=self._admit)
            await tcp.listen(general.bind, general.tcp_port, reuse_port=shared)
            self.transports["TCP"] = tcp
        if "tls" in general.transports:
            tls = StreamTransport(
                "TLS", self.receive, self._tls_context(), idle_timeout=general.tcp_idle_timeout,
                refuse=self._reject_unparsable, admit=self._admit,
            )
            await tls.listen(general.bind, general.tls_port, reuse_port=shared)
            tls.on_error = self._transport_failed
            self.transports["TLS"] = tls
        for name, port in (("ws", general.ws_port), ("wss", general.wss_port)):
            if name in general.transports:
                ws = WebSocketTransport(self.receive,
                                        self._tls_context() if name == "wss" else None,
                                        admit=self._admit)
                await ws.listen(general.bind, port, reuse_port=shared)
                self.transports[ws.name] = ws
        for name, transport in self.transports.items():
            log.info("listening on %s %s:%d", name, general.bind, transport.local_port)
        prompts = self.config.data_path / "prompts"
        made = await asyncio.to_thread(build_prompts, prompts, self.directory.languages)
        if made:
            log.info("rendered %d system prompts with espeak-ng", len(made))
        self.prompts = PromptLibrary(prompts, general.language)
        moh = self.config.data_path / "moh"
        for folder in [moh / "default", *sorted(p for p in moh.glob("*") if p.is_dir())]:
            await self.load_music(folder.name)
        self.trunks.start()  # registrations to carriers, once we can send
        if self.overload is not None:
            self.overload.start()
        self.phase = "ready"
        log.info("SIP ready: taking calls")
        self._flush_task = asyncio.create_task(self._flush_loop())
        if self.jobs:
            self._calendar_task = asyncio.create_task(
                CalendarSync(self.store, self.directory.reload,
                             allow_private=general.calendar_private_hosts).run())
        if general.mqtt_url:
            self.mqtt = MqttPublisher(general.mqtt_url, self.events, self._slug_of)
            self.mqtt.start()

    def _slug_of(self, organisation: int) -> str:
        tenant = self.directory.tenants.get(organisation)
        return tenant.slug if tenant is not None else str(organisation)

    async def drain(self) -> None:
        """Stop taking new calls, subscriptions and registrations (503 with
        Retry-After) and give live calls up to ``drain_time`` seconds to end:
        their BYEs, re-INVITEs and media are still served."""
        self.phase = "stopping"
        deadline = time.monotonic() + self.config.general.drain_time
        if self.b2bua.active_calls:
            log.info("draining %d call(s), at most %d s", self.b2bua.active_calls,
                     self.config.general.drain_time)
        while self.b2bua.active_calls and time.monotonic() < deadline:
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self.mqtt is not None:
            await self.mqtt.stop()
        for task in (self._flush_task, self._calendar_task):
            if task is not None:
                task.cancel()
        if self._timer is not None:
            self._timer.cancel()
        if self.overload is not None:
            self.overload.stop()
        self.trunks.stop()
        for transport in self.transports.values():
            if isinstance(transport, UdpTransport):
                transport.close()
            else:
                await transport.close()
        await self._flush_once()
        await self.cdrs.tasks.drain()
        await self.tasks.drain()

    def tls_files(self) -> tuple[Path, Path]:
        """Certificate and key for SIP over TLS and HTTPS: configured, or a
        self-signed pair made once in the data directory."""
        general = self.config.general
        if general.tls_cert == "auto":
            return self_signed(
                self.config.data_path / "tls", general.realm,
                sorted({general.realm, general.bind, "localhost", "127.0.0.1", "::1"}),
            )
        return Path(general.tls_cert), Path(general.tls_key)

    def _tls_context(self) -> ssl.SSLContext:
        return server_context(*self.tls_files())

    # ------------------------------------------------------------------- input

    def receive(self, data: bytes, flow: Flow, steered: bool = False) -> None:
        """Entry point for every message from every transport (``steered``: handed
        over by the worker that received it): whatever one message causes stays
        with it, never reaching the transport (a TCP connection carries other
        transactions)."""
        try:
            self._receive(data, flow, steered)
        except Exception:
            log.exception("error on a message from %s:%d", flow.host, flow.port)

    def _receive(self, data: bytes, flow: Flow, steered: bool) -> None:
        now = time.time()
        if self._dropped(data, flow.host, now):
            return
        if self.governor.overloaded:  # new work refused unparsed (pbx/overload.py)
            refusal = self.governor.refusal(data, new_tag(), self.config.general.user_agent)
            if refusal is not None:
                self._send_bytes(refusal, flow)
                return
        try:
            message = parse_message(data)
        except ParseError as exc:
            self._reject_unparsable(exc, flow)
            return
        if self.steering is not None and not steered \
                and self.steering.elsewhere(message, data, flow):
            return
        if isinstance(message, Request):
            if self.scanners is not None and self.scanners.search(
                    message.headers.get("User-Agent") or ""):
                log.debug("scanner %s dropped: %s", flow.host, message.headers.get("User-Agent"))
                return
            self._stamp_via(message, flow)
        reliable = flow.transport != "UDP"
        assert self._loop is not None
        self.transactions.receive(message, flow, reliable, self._loop.time())
        self._process()

    def _dropped(self, data: bytes, host: str, now: float) -> bool:
        """Sources banned for a flood or for failing authentication hear nothing;
        every request counts towards a flood (responses do not: a phone answering
        a burst of NOTIFYs is no flood)."""
        return self._banned(host, now, counts=not data.startswith(b"SIP/"))

    def _admit(self, host: str) -> bool:
        """A new TCP, TLS or WebSocket connection counts towards a flood like a
        request (a source opening connections without end is banned like one
        sending requests without end); a banned source's is closed at once."""
        return not self._banned(host, time.time(), counts=True)

    def _banned(self, host: str, now: float, counts: bool) -> bool:
        if self.guard.is_blocked(host, now):
            return True
        if self.flood is None:
            return False
        if counts:
            self.flood.record(host, now)
        return self.flood.is_blocked(host, now)

    def _trusted(self, host: str) -> bool:
        """Never banned for a flood: the PBX itself, a trunk's carrier, ``flood_trusted``."""
        general = self.config.general
        if host in ("127.0.0.1", "::1", general.bind, self._media_address):
            return True
        if self._trusted_networks:
            address = ipaddress.ip_address(host)
            if any(address in network for network in self._trusted_networks):
                return True
        return self.trunks.carrier_of(Flow("UDP", host, 0)) is not None

    def _reject_unparsable(self, exc: ParseError, flow: Flow) -> None:
        """400 (or 505) where a response can be built, else drop (RFC 3261 §16.3)."""
        request = exc.request
        log.info("bad message from %s:%d (%s)", flow.host, flow.port, exc.reason)
        if not isinstance(request, Request) or request.method == "ACK":
            return
        self._send_direct(make_response(request, exc.status, exc.reason, to_tag=new_tag()), flow)

    def _stamp_via(self, request: Request, flow: Flow) -> None:
        """RFC 3581 §4 / RFC 3261 §18.2.1: record where the request really came from."""
        top = request.vias[0]
        changed = False
        if top.host != flow.host:
            top.params["received"] = flow.host
            changed = True
        if "rport" in top.params:
            top.params["rport"] = str(flow.port)
            changed = True
        if changed:
            request.rewrite_top_via()

    # -------------------------------------------------------------- processing

    def _process(self) -> None:
        """Drain the transaction layer: dispatch events, send, re-arm the timer."""
        b2bua, owners = self.b2bua, self._owners
        while (event := self.transactions.next_event()) is not None:
            if isinstance(event, RequestReceived):
                self._dispatch(event.request, event.tx)
            elif isinstance(event, ResponseReceived):
                final = event.response.status >= 200
                owner = (owners.pop if final else owners.get)(id(event.tx), b2bua)
                self._guard(owner.on_response, event.tx, event.response)
            elif isinstance(event, AckReceived):
                self._guard(b2bua.on_ack, event.request, event.dest)
            elif isinstance(event, StrayResponse):
                self._guard(b2bua.on_stray_response, event.response)
            elif isinstance(event, TransactionTimeout):
                owner = owners.pop(id(event.tx), b2bua)
                self._guard(owner.on_timeout, event.tx)
            elif isinstance(event, TransportError):  # §8.1.3.1: as a 503 from the next hop
                owner = owners.pop(id(event.tx), b2bua)
                response = make_response(event.tx.request, 503,
                                         f"Service Unavailable - {event.reason}")
                self._guard(owner.on_response, event.tx, response)
        self._flush_output()
        self._arm_timer()

    def _dispatch(self, request: Request, tx: object) -> None:
        flow: Flow = tx.dest  # type: ignore[attr-defined]
        try:
            response = self._validate(request, flow) or self._unavailable(request)
            if response is None:
                handler = self.handlers.get(request.method)
                if handler is None:
                    response = self._not_allowed(request)
                else:
                    handler(request, flow, tx)
                    return
        except SipError as exc:
            log.info("%s from %s: %d %s", request.method, flow.host, exc.status, exc.reason)
            response = make_response(request, exc.status, exc.reason, to_tag=new_tag())
            for name, value in exc.headers:
                response.headers.add(name, value)
        except Exception:
            log.exception("error handling %s from %s", request.method, flow)
            response = make_response(request, 500, to_tag=new_tag())
        if tx.answered:  # type: ignore[attr-defined]
            # the handler answered, then failed: the peer has its answer, and a
            # second final on this transaction must not spill into others
            log.warning("%s from %s failed after its answer (%d %s not sent)",
                        request.method, flow.host, response.status, response.reason)
            return
        self.respond(response)

    def _load_sample(self, loop_lag_ms: float, seconds: float) -> LoadSample:
        """The overload probe's reading of this node (its lag measured by the probe,
        ``seconds`` after the last reading)."""
        udp = self.transports.get("UDP")
        wait = 0.0
        if isinstance(udp, UdpTransport):
            wait = udp_wait_ms(udp.backlog_bytes(), *udp.take_counts(), seconds)
        return LoadSample(
            loop_lag_ms, wait,
            self.transactions.unanswered,
            self.engine.tick_ms if self.engine.ports else 0.0,
        )

    def _overload_changed(self, change: OverloadChange) -> None:
        sample = change.sample
        self.events.publish(OverloadChanged(
            NODE, change.overloaded, change.reason, round(sample.loop_lag_ms, 1),
            round(sample.udp_wait_ms, 1), sample.transactions, round(sample.media_tick_ms, 2),
            change.shed, time.time()))

    @staticmethod
    def _guard(handler: Callable[..., None], *args: object) -> None:
        """A bug in one call's handling must not take the others down."""
        try:
            handler(*args)
        except SipError as exc:
            log.info("%s: %d %s", handler.__name__, exc.status, exc.reason)
        except Exception:
            log.exception("error in %s", handler.__name__)

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the SIP side runs on (for threads that must hand work to it)."""
        return self._loop

    def end_calls_of(self, organisation: int, number: str) -> None:
        """End the live calls of an organisation's extension ``number``; callable
        from any thread (the admin API's workers), the work runs on the SIP loop."""
        if self.steering is not None and self.steering.at_home(organisation, "end_calls_of",
                                                                number):
            return
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.b2bua.end_calls_of, organisation, number)

    def mailbox_changed(self, organisation: int, mailbox: str) -> None:
        """A message of ``mailbox`` was marked or deleted (the admin API): tell
        the event bus, so message-waiting lamps follow.  Callable from any thread."""
        if self.steering is not None and self.steering.at_home(organisation, "mailbox_changed",
                                                                mailbox):
            return
        if self._loop is not None:
            self._loop.call_soon_threadsafe(
                self.events.publish, MailboxChanged(organisation, mailbox, time.time()))

    def unregister(self, organisation: int, extension: str, login: str | None = None) -> None:
        """Drop an extension's registrations (only one device's, with ``login``)
        when it or the device is removed or its secret changes: a stolen phone
        stops ringing at once.  Callable from any thread."""
        if self.steering is not None and self.steering.at_home(organisation, "unregister",
                                                                extension, login):
            return
        tenant = self.directory.tenants.get(organisation)
        if tenant is None or self._loop is None:
            return
        aor = tenant.aor(extension)

        def drop() -> None:
            dropped = self.location.remove_all(aor, login)
            if dropped:
                log.info("dropped %d registration(s) of %s%s", dropped, aor,
                         f" by {login}" if login else "")
                self._registration_changed(aor, time.time())

        self._loop.call_soon_threadsafe(drop)

    def send_request(self, request: Request, flow: Flow,
                     owner: ResponseOwner | None = None) -> object:
        """Start a client transaction to ``flow``; returns it for matching
        responses, which go to ``owner`` (default: call control)."""
        assert self._loop is not None
        if self.config.general.user_agent and "User-Agent" not in request.headers:
            request.headers.add("User-Agent", self.config.general.user_agent)
        tx = self.transactions.send_request(
            request, flow, flow.transport != "UDP", self._loop.time()
        )
        if owner is not None:
            self._owners[id(tx)] = owner
        self._flush_output()
        self._arm_timer()
        return tx

    def send_direct(self, message: Request | Response, flow: Flow) -> None:
        """Send outside any transaction (ACK for a 2xx, a resent 2xx)."""
        self._send_direct(message, flow)

    def expect_tls(self, flow: Flow, server_name: str, ca_file: str = "",
                   verify: bool = True) -> None:
        """Requests to ``flow`` (a carrier) may open a TLS connection, whose
        certificate must be valid for ``server_name`` and chain to ``ca_file``
        (else the system's CAs); ``verify=False`` checks nothing."""
        transport = self.transports.get("TLS")
        if not isinstance(transport, StreamTransport):
            log.error("cannot reach %s over TLS: the tls transport is off", server_name)
            return
        key = (ca_file, verify)
        if key not in self._client_contexts:
            self._client_contexts[key] = client_context(ca_file, verify)
        transport.expect(flow, TlsPeer(self._client_contexts[key], server_name))

    def _transport_failed(self, flow: Flow, reason: str) -> None:
        """A connection to ``flow`` could not be made: its requests fail now."""
        self.transactions.transport_error(flow, reason)
        self._process()

    def sent_by(self, transport: str) -> str:
        """Our ``host:port`` for Via and Contact on ``transport``."""
        host = self.media_address()
        port = self.transports[transport].local_port if transport in self.transports else 0
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def contact(self, flow: Flow) -> str:
        """Our Contact for a dialog with a phone reached over ``flow``."""
        return f"<sip:pbx@{self.sent_by(flow.transport)};transport={flow.transport.lower()}>"

    def media_address(self) -> str:
        """The address phones reach us at (SDP c=, Contact, Via): ``external_address``,
        else the bound one, else (bound to a wildcard) the host's, found once at start."""
        return self._media_address

    def conference(self, tenant: Tenant, number: str) -> ConferenceRoom | None:
        """A tenant's conference room, or an extension's personal room (prefix + number)."""
        if number in tenant.rooms:
            return tenant.rooms[number]
        owner = self.router.room_owner(tenant, number)
        if owner is None:
            return None
        return ConferenceRoom(organisation_id=tenant.id, number=number,
                              name=f"Room of {owner}", owner=owner)

    def find_invite_server(self, cancel: Request) -> object | None:
        """The INVITE server transaction a CANCEL cancels (§9.2)."""
        return self.transactions.find_invite_server(cancel)

    def recording_path(self, name: str) -> Path:
        """Where a new recording goes: ``recordings/YYYY/MM/DD/<name>.<format>``."""
        general = self.config.general
        return (self.config.data_path / "recordings" / time.strftime("%Y/%m/%d")
                / f"{name}.{general.recording_format}")

    def write_recording(
        self, organisation: int, call_id: str, kind: str, parties: list[str], path: Path,
        started_at: float,
    ) -> None:
        """Store a finished recording's facts (``kind`` call or conference; a
        call's ``parties`` are its left and right channel); the retention job
        deletes it later."""
        info = soundfile.info(str(path))
        recording = Recording(
            call_id=call_id,
            organisation_id=organisation,
            kind=kind,
            parties=",".join(parties),
            path=str(path),
            started_at=started_at,
            duration=info.duration,
            size=path.stat().st_size,
            retain_until=time.time() + self.config.general.recording_retention_days * 86400,
        )
        self.tasks.thread(self.store.add_recording, recording)

    async def expire_recordings(self) -> None:
        """The retention job: delete recordings past their date, files and rows."""
        for name in await asyncio.to_thread(self.store.expire_recordings, time.time()):
            Path(name).unlink(missing_ok=True)
            log.info("recording %s deleted (retention)", name)

    def respond(self, response: Response) -> None:
        """Send a response through its server transaction."""
        if self.config.general.user_agent:
            response.headers.set("Server", self.config.general.user_agent)
        assert self._loop is not None
        self.transactions.send_response(response, self._loop.time())
        self._flush_output()
        self._arm_timer()

    def _validate(self, request: Request, flow: Flow) -> Response | None:
        """The checks every request passes before its handler (§8.2.1-§8.2.3, §16.3)."""
        check_request(request)  # malformed headers 400, Require 420, Session-Expires 422
        if request.uri.scheme not in ("sip", "sips"):
            response = make_response(request, 416, to_tag=new_tag())
            return response
        if self._is_loop(request):
            return make_response(request, 482, to_tag=new_tag())
        if request.max_forwards == 0 and request.method not in ("REGISTER", "OPTIONS"):
            return make_response(request, 483, to_tag=new_tag())
        return None

    def _unavailable(self, request: Request) -> Response | None:
        """503 with Retry-After for a request that would start something while
        the node is not ready or is stopping; None to serve it."""
        if self.phase == "ready" or request.to_addr.tag is not None:
            return None
        starting = self.phase == "starting"
        if request.method in (STARTING_SERVES if starting else STOPPING_SERVES):
            return None
        response = make_response(request, 503, "Service Unavailable - Starting" if starting
                                 else "Service Unavailable - Shutting down", to_tag=new_tag())
        response.headers.add("Retry-After", str(RETRY_AFTER_STARTING if starting
                                                else RETRY_AFTER_STOPPING))
        return response

    def _is_loop(self, request: Request) -> bool:
        """A request carrying one of our own Vias came back to us (§16.3 step 4)."""
        ours = {(t.local_port, name) for name, t in self.transports.items()}
        bind = self.config.general.bind
        for via in request.vias[1:]:
            if via.host == bind and (via.port, via.transport.upper()) in ours:
                return True
        return False

    def _not_allowed(self, request: Request) -> Response:
        status = 405 if request.method in KNOWN_METHODS else 501
        response = make_response(request, status, to_tag=new_tag())
        response.headers.add("Allow", self.allow_header())
        return response

    def allow_header(self) -> str:
        return ", ".join(sorted(set(self.handlers) | {"ACK"}))


    # ---------------------------------------------------------------- handlers

    def authenticate(
        self, request: Request, flow: Flow, tenant: Tenant, now: float,
    ) -> tuple[Extension, str] | None:
        """Who sends ``request`` in ``tenant``: its extension and the login used
        (the extension's or a device's).  None after answering the request
        with a challenge, a 403 for wrong credentials, or a 403 when the
        extension's user holds no active license."""
        decision = self.authenticator.check(request, flow.host, now, tenant.password_for)
        if decision.response is not None:
            self.respond(decision.response)
            return None
        assert decision.username is not None
        login = tenant.login(decision.username)
        assert login is not None
        ext = login[0]
        if ext.number in tenant.unlicensed:
            log.info("%s from %s@%s refused: no active license", request.method, ext.number,
                     tenant.domain)
            self.respond(make_response(request, 403, "Forbidden - No active license",
                                       to_tag=new_tag()))
            return None
        return ext, decision.username

    def _on_options(self, request: Request, flow: Flow, tx: object) -> None:
        """Phones ping with OPTIONS: answer 200 with what we can do (RFC 3261 §11.2)."""
        response = make_response(request, 200, to_tag=new_tag())
        response.headers.add("Allow", self.allow_header())
        response.headers.add("Accept", "application/sdp")
        response.headers.add("Supported", ", ".join(SUPPORTED))
        response.headers.add("Allow-Events", ALLOW_EVENTS)
        self.respond(response)

    def _on_register(self, request: Request, flow: Flow, tx: object) -> None:
        if any(addr.uri.scheme not in ("sip", "sips") for addr in (request.to_addr, request.from_addr)):
            self.respond(make_response(request, 416, "Unsupported URI Scheme - To/From",
                                       to_tag=new_tag()))
            return
        tenant = self.directory.tenant_for(request.uri.host)
        if tenant is None:
            log.info("REGISTER for foreign domain %s from %s", request.uri.host, flow.host)
            self.respond(make_response(request, 403, "Forbidden - Domain not served", to_tag=new_tag()))
            return
        now = time.time()
        found = self.authenticate(request, flow, tenant, now)
        if found is None:
            return
        ext, login = found
        aor = tenant.aor(ext.number)
        response = self.registrar.register(request, ext.number, aor, flow, now, login=login)
        self.respond(response)
        if response.status == 200:
            log.debug("REGISTER %s (%s) from %s:%d ok", ext.number, login, flow.host, flow.port)
            contacts = len(self.location.lookup(aor, now))
            self.events.publish(Registered(tenant.id, ext.number, contacts, now))

    def _registration_changed(self, aor: str, now: float) -> None:
        """Tell the bus how many devices an extension has left after some were
        dropped or expired (presence shows it offline at none)."""
        uri = URI.parse(aor)
        tenant = self.directory.tenant_for(uri.host)
        if tenant is not None and uri.user in tenant.extensions:
            contacts = len(self.location.lookup(aor, now))
            self.events.publish(Registered(tenant.id, uri.user, contacts, now))

    # ------------------------------------------------------------------ output

    def _flush_output(self) -> None:
        for dest, message in self.transactions.messages_to_send():
            self._send_direct(message, dest)

    def _send_direct(self, message: Request | Response, flow: Flow) -> None:
        self._send_bytes(bytes(message), flow)

    def _send_bytes(self, data: bytes, flow: Flow) -> None:
        if self.steering is not None and self.steering.send(data, flow):
            return  # over a connection another worker holds
        transport = self.transports.get(flow.transport)
        if transport is None or not transport.send(data, flow):
            log.info("cannot send to %s", flow)

    def _arm_timer(self) -> None:
        deadline = self.transactions.get_timer()
        if deadline is None or deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        assert self._loop is not None
        self._timer_at = deadline
        self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer, self._timer_at = None, None
        assert self._loop is not None
        self.transactions.handle_timer(self._loop.time())
        self._process()

    # ------------------------------------------------------------- persistence

    async def _flush_loop(self) -> None:
        """Write changed registrations to the store in batches, and expire old ones."""
        interval = self.config.general.location_flush_ms / 1000
        retention_due = 0.0
        while True:
            if self.jobs and time.monotonic() >= retention_due:
                retention_due = time.monotonic() + 3600
                try:
                    await self.expire_recordings()
                except Exception:
                    log.exception("recording retention job failed")
            await asyncio.sleep(interval)
            now = time.time()
            expired = self.location.expire(now)
            for binding in expired:
                log.info("registration of %s expired (%s)", binding.aor, binding.contact)
            for aor in {binding.aor for binding in expired}:
                self._registration_changed(aor, now)
            try:
                await self._flush_once()
            except Exception:
                log.exception("cannot save registrations; will retry")

    async def _flush_once(self) -> None:
        upserts, removals = self.location.take_changes()
        if not upserts and not removals:
            return
        notify = None
        if self.announce is not None:
            aors = {b.aor for b in upserts} | {ident.split("|", 1)[0] for ident in removals}
            notify = (BINDINGS_CHANNEL, bindings_note(self.announce, aors))
        try:
            await asyncio.to_thread(self.store.save_bindings, upserts, removals, notify)
        except Exception:
            self.location.restore_changes(upserts, removals)
            raise

    async def load_music(self, name: str) -> MusicClass:
        """Read music class ``name`` from its folder (again) and play it from now on."""
        folder = self.config.data_path / "moh" / name
        music = await asyncio.to_thread(MusicClass.from_folder, name, folder)
        self.engine.set_music(music)
        return music

    async def music_changed(self, name: str) -> MusicClass:
        """The admin API changed music class ``name``: play it here, and have the
        node's other workers (and a cluster's other nodes) read it again."""
        music = await self.load_music(name)
        if self.announce is not None:  # every worker of every node listens
            await asyncio.to_thread(self.store.notify, MUSIC_CHANNEL,
                                    music_note(self.announce, name))
        elif self.steering is not None:
            self.steering.everywhere("music", name)
        return music

    async def follow_bindings(self, aors: list[str] | None) -> None:
        """Another node saved bindings of ``aors`` (None: too many to name):
        take the store's, so calls reach those phones from this node too (it
        may be the one their organisation fails over to)."""
        saved = await asyncio.to_thread(self.store.bindings_of, aors, time.time())
        self.location.follow(aors, saved)
