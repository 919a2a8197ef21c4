"""An in-memory call-control harness: the real B2BUA and its parts, with the
SIP server, the relay's sockets and the clock replaced by stand-ins, so call
behaviour is tested without sockets or sleeps.

Phones are played by the test: :meth:`CallHarness.call` sends an INVITE from
an extension as its phone would, :meth:`Phone.answer` and friends answer the
INVITEs the PBX sent, and every message the PBX sends is kept for asserts.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from media.engine import MediaEngine
from media.ports import PortPool
from media.prompts import PromptLibrary
from media.relay import MediaRelay, RelayLeg
from pbx.calls.b2bua import B2BUA, CallSettings
from pbx.calls.channel import Application
from pbx.calls.media_paths import MediaPaths, RecordingSettings
from pbx.config import Config, ConferenceConfig, ExtensionConfig, General, RingGroupConfig
from pbx.directory import Directory, Tenant
from pbx.events import CallEnded, Event, EventBus
from pbx.location import Binding, LocationService
from pbx.sip.flow import Flow
from pbx.models import ConferenceRoom, Extension
from pbx.queue_settings import QueueConfig
from pbx.router import Destination, Router, ServiceDest
from pbx.sip.message import Request, Response, make_response
from pbx.sip.parser import parse_message
from pbx.store import Store
from tests.fakes import FakeClock

PBX = Flow("UDP", "127.0.0.1", 5060)
SDP_BODY = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            "m=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
            "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n")
_ids = itertools.count(1)


class FakePorts(MediaRelay):
    """The relay without sockets: ports come from the pool and go back to it,
    so a test sees a leak as a pool that does not refill."""

    def __init__(self, size: int = 40) -> None:
        super().__init__("127.0.0.1", PortPool(30000, 30000 + 2 * size - 1))

    async def open_leg(self, label: str = "") -> RelayLeg:
        leg = RelayLeg(self, label, self.pool.allocate())
        self.legs.add(leg)
        return leg

    async def close_leg(self, leg: RelayLeg) -> None:
        if not leg.closed:
            leg.closed = True
            self.unbridge(leg)
            self.legs.discard(leg)
            self.pool.release(leg.local_port)


@dataclass(eq=False)
class FakeTx:
    request: Request
    flow: Flow


@dataclass
class FakeSip:
    """The SIP server as call control sees it: everything sent is kept."""

    tenant: Tenant
    sent: list[tuple[Request | Response, Flow]] = field(default_factory=list)
    invites: dict[tuple[str, str], FakeTx] = field(default_factory=dict)  # (Call-ID, branch)
    transactions: list[FakeTx] = field(default_factory=list)  # the requests we sent

    def respond(self, response: Response) -> None:
        self.sent.append((response, PBX))

    def send_request(self, request: Request, flow: Flow) -> FakeTx:
        self.sent.append((request, flow))
        tx = FakeTx(request, flow)
        self.transactions.append(tx)
        return tx

    def send_direct(self, message: Request | Response, flow: Flow) -> None:
        self.sent.append((message, flow))

    def sent_by(self, transport: str) -> str:
        return "127.0.0.1:5060"

    def contact(self, flow: Flow) -> str:
        return "<sip:pbx@127.0.0.1:5060>"

    def allow_header(self) -> str:
        return "ACK, BYE, CANCEL, INFO, INVITE, NOTIFY, OPTIONS, REFER, UPDATE"

    def media_address(self) -> str:
        return "127.0.0.1"

    def find_invite_server(self, cancel: Request) -> object | None:
        return self.invites.get((cancel.call_id, cancel.vias[0].branch or ""))

    def authenticate(self, request: Request, flow: Flow, tenant: Tenant,
                     now: float) -> tuple[Extension, str] | None:
        number = request.from_addr.uri.user or ""
        ext = tenant.extensions.get(number)
        if ext is None:  # as the server does: a challenge the caller cannot answer
            self.respond(make_response(request, 407, to_tag="challenge"))
            return None
        return ext, number

    def conference(self, tenant: Tenant, number: str) -> ConferenceRoom | None:
        return tenant.rooms.get(number)

    def recording_path(self, name: str) -> Path:
        raise AssertionError("no recordings in the harness")

    def write_recording(self, *args: object) -> None:
        raise AssertionError("no recordings in the harness")


class HarnessRouter(Router):
    """The real dial plan, plus numbers a test points at a service kind."""

    def __init__(self) -> None:
        super().__init__("8", "133")
        self.services: dict[str, ServiceDest] = {}

    def resolve(self, tenant: Tenant, number: str, now: float, _hops: int = 0) -> Destination:
        found = self.services.get(number)
        return found if found is not None else super().resolve(tenant, number, now, _hops)


class Phone:
    """A phone of an extension, as the test plays it."""

    def __init__(self, harness: CallHarness, number: str, port: int) -> None:
        self.harness = harness
        self.number = number
        self.flow = Flow("UDP", "127.0.0.1", port)

    def invites(self) -> list[Request]:
        """The INVITEs the PBX sent this phone."""
        return [m for m, flow in self.harness.sip.sent
                if isinstance(m, Request) and m.method == "INVITE" and flow == self.flow]

    def requests(self, method: str) -> list[Request]:
        return [m for m, flow in self.harness.sip.sent
                if isinstance(m, Request) and m.method == method and flow == self.flow]

    def reply(self, invite: Request, status: int, sdp: bool = True) -> Response:
        """Answer an INVITE the PBX sent (180, 486, 200 with SDP …)."""
        response = make_response(invite, status, to_tag=f"{self.number}-tag")
        if status == 200:
            response.headers.add("Contact", f"<sip:{self.number}@127.0.0.1:{self.flow.port}>")
            if sdp:
                response.headers.add("Content-Type", "application/sdp")
                response.body = SDP_BODY.format(port=self.flow.port + 1000).encode()
        tx = self.harness.tx_of(invite)
        self.harness.b2bua.on_response(tx, response)
        return response


class CallHarness:
    """The real B2BUA on a real in-memory store, fake SIP server, ports and clock."""

    def __init__(self, extensions: Iterable[str] = ("1001", "1002", "1003", "1004"),
                 ring_groups: tuple[RingGroupConfig, ...] = (),
                 rooms: tuple[ConferenceConfig, ...] = (),
                 queues: tuple[QueueConfig, ...] = ()) -> None:
        numbers = tuple(extensions)
        config = Config(general=General(),
                        extensions=tuple(ExtensionConfig(number=n, secret="s3cret-Pw")
                                         for n in numbers),
                        ring_groups=ring_groups, conferences=rooms, queues=queues)
        self.store = Store("sqlite://")
        self.store.seed(config)
        self.directory = Directory(self.store, "pbx.test")
        self.tenant = self.directory.default
        self.clock = FakeClock()
        self.sip = FakeSip(self.tenant)
        self.ports = FakePorts()
        self.engine = MediaEngine()
        self.engine._ensure_running = lambda: None  # type: ignore[method-assign]  # no ticks
        self.location = LocationService()
        self.router = HarnessRouter()
        self.events = EventBus()
        self.seen: list[Event] = []
        self.events.subscribe(self.seen.append)
        prompts = PromptLibrary(Path(tempfile.mkdtemp(prefix="harness-prompts-")), "en")
        media = MediaPaths(self.ports, self.engine, self.sip, lambda: prompts,
                           RecordingSettings())
        self.b2bua = B2BUA(
            sip=self.sip, ports=self.ports, media=media, engine=self.engine,
            prompts=lambda: prompts, directory=self.directory, location=self.location,
            router=self.router, events=self.events, clock=self.clock,
            settings=CallSettings(),
        )
        self.phones = {n: Phone(self, n, 40000 + 10 * i) for i, n in enumerate(numbers)}

    def register(self, *numbers: str) -> None:
        """The phones of ``numbers`` register (one device each)."""
        for number in numbers:
            phone = self.phones[number]
            aor = self.tenant.aor(number)
            self.location.load([Binding(
                id=f"{aor}|{number}", aor=aor, contact=f"sip:{number}@127.0.0.1:{phone.flow.port}",
                expires_at=self.clock.now() + 3600, call_id=f"reg-{number}", cseq=1,
                source_transport="UDP", source_host="127.0.0.1", source_port=phone.flow.port,
            )])

    def serve(self, number: str, app: Application, ident: str = "") -> None:
        """Calls to ``number`` go to the service ``app`` (with ``ident``)."""
        self.b2bua.register(app)
        self.router.services[number] = ServiceDest(app.kind, ident or number)

    def tx_of(self, request: Request) -> FakeTx:
        for tx in self.sip.transactions:
            if tx.request is request:
                return tx
        raise AssertionError("the PBX never sent that request")

    async def settle(self) -> None:
        """Let the tasks call control started (opening ports, closing them) run."""
        for _ in range(10):
            await asyncio.sleep(0)

    async def call(self, caller: str, number: str, *, sdp: bool = True,
                   headers: dict[str, str] | None = None, flow: Flow | None = None) -> Request:
        """Extension ``caller``'s phone sends an INVITE for ``number`` (from
        ``flow``, e.g. a carrier's address, with ``caller`` any number)."""
        source = flow or self.phones[caller].flow
        n = next(_ids)
        call_id = f"call-{n}"
        headers = {"Contact": f"<sip:{caller}@{source.host}:{source.port}>", **(headers or {})}
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        body = SDP_BODY.format(port=source.port + 1000) if sdp else ""
        text = (f"INVITE sip:{number}@127.0.0.1 SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {source.host}:{source.port};branch=z9hG4bK-{n}\r\n"
                f"Max-Forwards: 70\r\nFrom: <sip:{caller}@127.0.0.1>;tag=from-{n}\r\n"
                f"To: <sip:{number}@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n"
                f"{extra}"
                + ("Content-Type: application/sdp\r\n" if sdp else "")
                + f"Content-Length: {len(body)}\r\n\r\n{body}")
        request = parse_message(text.encode())
        assert isinstance(request, Request)
        tx = FakeTx(request, source)
        self.sip.invites[(call_id, request.vias[0].branch or "")] = tx
        self.b2bua.on_invite(request, source, tx)
        await self.settle()
        return request

    def responses(self, request: Request) -> list[Response]:
        """The PBX's answers to a phone's request, in order."""
        return [m for m, _ in self.sip.sent if isinstance(m, Response)
                and m.call_id == request.call_id and m.cseq.number == request.cseq.number
                and m.cseq.method == request.method]

    def statuses(self, request: Request) -> list[int]:
        return [r.status for r in self.responses(request)]

    def in_dialog(self, request: Request, method: str, *, headers: dict[str, str] | None = None,
                  cseq: int = 2) -> Request:
        """A request from the phone that sent ``request``, in the dialog its 200 made."""
        final = self.responses(request)[-1]
        return _dialog_request(method, request.headers.get("From"), final.headers.get("To"),
                               request.call_id, cseq, request.from_addr.uri.user, headers)

    def from_callee(self, fork: Request, answer: Response, method: str, *,
                    headers: dict[str, str] | None = None, cseq: int = 1) -> Request:
        """A request from a phone the PBX called, in the dialog its 200 made."""
        return _dialog_request(method, answer.headers.get("To"), fork.headers.get("From"),
                               fork.call_id, cseq, answer.to_addr.uri.user, headers)

    def acked(self, request: Request) -> None:
        """The caller ACKs the PBX's 200."""
        self.b2bua.on_ack(self.in_dialog(request, "ACK", cseq=1), PBX)

    def events_of(self, kind: type) -> list[Event]:
        return [e for e in self.seen if isinstance(e, kind)]

    def records(self) -> list[CallEnded]:
        """The ends of calls that make a record (not those folded into another)."""
        return [e for e in self.seen if isinstance(e, CallEnded) and e.recorded]

    @property
    def free_ports(self) -> int:
        return self.ports.pool.size - len(self.ports.legs)


def _dialog_request(method: str, from_: str | None, to: str | None, call_id: str, cseq: int,
                    user: str | None, headers: dict[str, str] | None) -> Request:
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    text = (f"{method} sip:pbx@127.0.0.1:5060 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK-d{next(_ids)}\r\nMax-Forwards: 70\r\n"
            f"From: {from_}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n"
            f"Contact: <sip:{user}@127.0.0.1>\r\n{extra}Content-Length: 0\r\n\r\n")
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message
