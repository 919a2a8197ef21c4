"""The command-line softphone's SIP user agent (RFC 3261 UAC and UAS), pure.

A phone with one server: every request and response goes to the PBX, which
is registrar, outbound proxy and the far end of every dialog (it anchors all
calls).  The PBX's own stack does the work: the transaction layer
(retransmissions, timers), dialogs, digest answers and the trunk's
registration logic (challenge, refresh before expiry).  This class adds what
a phone does: place a call (answering the 407 once), ring and answer one,
hang up (CANCEL, a 486, or BYE), several calls at once (call waiting),
hold and resume (re-INVITE, RFC 3264 §8.4), blind and attended transfer
(REFER, RFC 3515, with Replaces, RFC 3891) and SDP offer/answer with G.711
and telephone-event.  Nothing here reads a clock or a socket: the glue
(:mod:`softphone.line`) passes ``now`` in, sends :meth:`messages_to_send`
and acts on :meth:`next_event`.  Both softphones drive it: the command-line
one and the browser page's gateway (:mod:`softphone.gateway`).
"""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass, field

from pbx.sdp import (STATIC_PAYLOADS, TELEPHONE_EVENT, SdpError, SessionDescription,
                     SessionVersion, make_answer, make_offer)
from pbx.sip.auth import build_authorization
from pbx.sip.dialog import Dialog
from pbx.sip.errors import ParseError, SipError
from pbx.sip.flow import Flow
from pbx.sip.message import (URI, Address, Headers, Request, Response, make_response,
                             new_branch, new_call_id, new_tag)
from pbx.sip.parser import parse_message
from pbx.sip.transaction import (AckReceived, RequestReceived, ResponseReceived, StrayResponse,
                                 Transaction, TransactionLayer, TransactionTimeout, build_cancel)
from pbx.trunks.registration import Registration, State
from pbx.trunks.settings import TrunkSettings

CODECS = ("PCMU", "PCMA")
SUPPORTED = [*CODECS, "telephone-event"]
USER_AGENT = "pbx-softphone"


@dataclass(frozen=True)
class Account:
    """Who the phone is and where its PBX is."""

    user: str
    password: str
    server: Flow  # transport (UDP, TCP, TLS), host and port of the PBX
    domain: str  # the SIP domain of our address of record (an IPv6 address bare)
    expiry: int = 300  # seconds of registration asked for


@dataclass(frozen=True)
class MediaPlan:
    """Where our RTP goes and how: what the offer/answer agreed."""

    host: str
    port: int
    codec: str
    payload_type: int
    event_type: int | None
    direction: str = "sendrecv"  # ours: sendonly while we hold, recvonly while they hold us


@dataclass(eq=False)
class Call:
    """One call of the phone, placed or received."""

    call_id: str
    outgoing: bool
    peer: str  # the far end's address as the From/To shows it
    invite: Request
    local_tag: str
    tx: Transaction | None = None
    dialog: Dialog | None = None
    state: str = "calling"  # calling, ringing, answered, ended
    authenticated: bool = False
    ok: Response | None = None  # our 2xx, sent again until the ACK (§13.3.1.4)
    ok_next: float = 0.0
    ok_interval: float = 0.0
    ok_until: float = 0.0
    ack: Request | None = None  # our ACK of their 2xx, sent again for each 2xx retransmission
    session: SessionVersion = field(default_factory=lambda: SessionVersion(secrets.randbits(31)))
    local_sdp: SessionDescription | None = None
    rtp: tuple[str, int] = ("", 0)  # our RTP address for this call's SDP
    held: bool = False  # we hold the far end (our last offer was sendonly)
    reinvite: Transaction | None = None  # our re-INVITE (hold, resume) in progress
    refer: Transaction | None = None  # our REFER (transfer) in progress

    @property
    def caller(self) -> Address:
        """Who called (an incoming call's From, with the PBX's display name)."""
        return self.invite.from_addr

    @property
    def via(self) -> Address | None:
        """Whom an incoming call was for before the PBX retargeted it to us: the
        first History-Info entry (RFC 7044), e.g. a queue with its name, or
        a colleague whose call was forwarded.  None: it was for us."""
        for value in self.invite.headers.get_all("History-Info") if not self.outgoing else ():
            try:
                entry = Address.parse(value)
            except ParseError:
                continue
            if entry.params.get("index") == "1":
                return entry
        return None


@dataclass(frozen=True)
class Registered:
    expires_in: float


@dataclass(frozen=True)
class RegistrationFailed:
    code: int
    reason: str


@dataclass(frozen=True)
class Unregistered:
    """Our contact is gone (or the PBX refused to remove it: it expires anyway)."""


@dataclass(frozen=True)
class IncomingCall:
    call: Call


@dataclass(frozen=True)
class CallRinging:
    call: Call


@dataclass(frozen=True)
class CallAnswered:
    """The call is up (or its media moved: a re-INVITE); send RTP as ``media`` says."""

    call: Call
    media: MediaPlan


@dataclass(frozen=True)
class RequestRefused:
    """Our hold, resume or transfer request in the call was refused; the call goes on."""

    call: Call
    method: str
    code: int
    reason: str


@dataclass(frozen=True)
class TransferProgress:
    """How the transfer we asked for goes (the status line of a REFER NOTIFY)."""

    call: Call
    code: int


@dataclass(frozen=True)
class CallEnded:
    call: Call
    code: int  # the SIP status that ended it; 0: a BYE (ours or theirs)
    reason: str


Event = (Registered | RegistrationFailed | Unregistered | IncomingCall | CallRinging | CallAnswered
         | RequestRefused | TransferProgress | CallEnded)


def media_plan(remote: SessionDescription, answer: SessionDescription,
               ours: SessionDescription) -> MediaPlan:
    """Send to ``remote``'s audio address with the voice codec and telephone-event
    of ``answer`` (the answerer's description names the payload types agreed),
    in the direction of ``ours`` (our own description)."""
    theirs, agreed, mine = remote.audio, answer.audio, ours.audio
    if theirs is None or agreed is None or mine is None:
        raise SdpError("no audio stream", 488, 304)
    voice = next(c for c in agreed.codecs if not c.is_event)
    if voice.name.upper() not in CODECS:
        raise SdpError("no common codec", 488, 305)
    event = agreed.telephone_event
    host = theirs.connection or remote.connection or remote.origin.address
    return MediaPlan(host, theirs.port, voice.name.upper(), voice.payload_type,
                     event.payload_type if event is not None else None, mine.direction)


class UserAgent:
    """A registered phone's SIP side: registration, calls, and the messages they take."""

    def __init__(self, account: Account, sent_by: str, rtp: tuple[str, int] = ("", 0)) -> None:
        self.account = account
        self.sent_by = sent_by  # our host:port, for Via and Contact
        self.rtp = rtp  # our RTP address and port for the SDP, unless a call brings its own
        server = account.server
        self.reliable = server.transport != "UDP"
        self.layer = TransactionLayer()
        self.contact = f"<sip:{account.user}@{sent_by};transport={server.transport.lower()}>"
        host = f"[{server.host}]" if ":" in server.host else server.host
        self.domain = f"[{account.domain}]" if ":" in account.domain else account.domain  # in URIs
        registrar = f"{host}:{server.port}" if account.domain == server.host else self.domain
        trunk = TrunkSettings(  # the REGISTER's Request-URI names our domain (§10.2)
            name="softphone", host=registrar, transport=server.transport.lower(),
            username=account.user, password=account.password, from_domain=self.domain,
            expiry=account.expiry)
        self.registration = Registration(trunk, self.contact)
        self.calls: dict[str, Call] = {}
        self._register_tx: Transaction | None = None
        self._unregistering = False
        self._events: deque[Event] = deque()
        self._outbox: list[bytes] = []

    # ------------------------------------------------------------ the glue's side

    def messages_to_send(self) -> list[bytes]:
        """Everything for the PBX since the last call, in order."""
        out = [bytes(message) for _, message in self.layer.messages_to_send()]
        out, self._outbox = self._outbox + out, []
        return out

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` wants to run next."""
        layer = self.layer.get_timer()
        times = [] if layer is None else [layer]
        if self.registered:
            times.append(self.registration.next_at)
        times += [call.ok_next for call in self.calls.values() if call.ok is not None]
        return min(times) if times else None

    def handle_timer(self, now: float) -> None:
        self.layer.handle_timer(now)
        if self.registered:
            self.register(now)  # refresh, when due
        for call in list(self.calls.values()):
            if call.ok is not None and now >= call.ok_next:
                self._resend_ok(call, now)
        self._drain(now)

    def receive(self, data: bytes, now: float) -> None:
        """A message from the PBX."""
        try:
            message = parse_message(data)
        except ParseError:
            return  # nothing sensible to answer: the PBX's stack never sends these
        self.layer.receive(message, self.account.server, self.reliable, now)
        self._drain(now)

    # ------------------------------------------------------------ registration

    @property
    def registered(self) -> bool:
        return self.registration.state is State.REGISTERED and not self._unregistering

    def register(self, now: float) -> None:
        """REGISTER now if it is due (first time, or a refresh)."""
        if self.registration.due(now):
            self._send_register(self.registration.request(self.sent_by, now), now)

    def unregister(self, now: float) -> None:
        """Remove our contact (Expires: 0), e.g. on quitting."""
        self._unregistering = True
        self._send_register(self.registration.request(self.sent_by, now), now)

    def _send_register(self, request: Request, now: float) -> None:
        request.headers.add("User-Agent", USER_AGENT)
        if self._unregistering:
            request.headers.set("Expires", "0")
        self._register_tx = self.layer.send_request(request, self.account.server, self.reliable, now)

    def _registration_answer(self, response: Response, now: float) -> None:
        retry = self.registration.on_response(response, self.sent_by, now)
        if retry is not None:
            self._send_register(retry, now)
        elif response.status < 200:
            return
        elif self._unregistering:
            self._events.append(Unregistered())
        else:
            if self.registration.state is State.REGISTERED:
                self._events.append(Registered((self.registration.expires_at or now) - now))
            else:
                self._events.append(RegistrationFailed(response.status, response.reason))

    # ------------------------------------------------------------ calls

    def uri(self, target: str) -> URI:
        """``target`` (a number or user at our domain, or a sip: URI) as a URI."""
        account = self.account
        return URI.parse(target) if target.startswith(("sip:", "sips:")) else URI(
            "sip", user=target, host=account.domain,
            port=account.server.port if account.domain == account.server.host else None)

    def call(self, target: str, now: float, rtp: tuple[str, int] | None = None) -> Call:
        """INVITE ``target`` (a number or user at our domain, or a sip: URI),
        offering RTP at ``rtp`` (by default the phone's)."""
        account = self.account
        uri = self.uri(target)
        local_tag = new_tag()
        headers = Headers()
        headers.add("From", f"<sip:{account.user}@{self.domain}>;tag={local_tag}")
        headers.add("To", f"<{URI(uri.scheme, uri.user, uri.host)}>")
        headers.add("Call-ID", new_call_id())
        headers.add("CSeq", "1 INVITE")
        invite = Request("INVITE", uri, headers)
        call = Call(invite.call_id, True, str(uri), invite, local_tag, rtp=rtp or self.rtp)
        call.local_sdp = self._offer(call)
        self.calls[call.call_id] = call
        self._send_invite(call, None, "", now)
        return call

    def _send_invite(self, call: Call, authorization: str | None, header: str, now: float) -> None:
        old = call.invite
        headers = Headers()
        headers.add("Via", f"SIP/2.0/{self.account.server.transport} {self.sent_by}"
                           f";branch={new_branch()};rport")
        headers.add("Max-Forwards", "70")
        for name in ("From", "To", "Call-ID"):
            headers.add(name, old.headers.get(name) or "")
        headers.add("CSeq", f"{old.cseq.number + (authorization is not None)} INVITE")
        headers.add("Contact", self.contact)
        headers.add("User-Agent", USER_AGENT)
        if authorization is not None:
            headers.add(header, authorization)
        headers.add("Content-Type", "application/sdp")
        assert call.local_sdp is not None
        call.invite = Request("INVITE", old.uri, headers, bytes(call.local_sdp))
        call.tx = self.layer.send_request(call.invite, self.account.server, self.reliable, now)

    def _offer(self, call: Call, direction: str = "sendrecv") -> SessionDescription:
        """Our offer in ``call``: G.711 both laws and keys, each a new version."""
        return call.session.stamp(make_offer(
            address=call.rtp[0], port=call.rtp[1], session_id=call.session.session_id,
            version=call.session.version, direction=direction,
            codecs=[STATIC_PAYLOADS[0], STATIC_PAYLOADS[8], TELEPHONE_EVENT]))

    def _answer_to(self, call: Call, offer: SessionDescription) -> SessionDescription:
        return call.session.stamp(make_answer(
            offer, address=call.rtp[0], port=call.rtp[1], supported=SUPPORTED,
            session_id=call.session.session_id, version=call.session.version,
            direction="sendonly" if call.held else None))

    def answer(self, call: Call, now: float, rtp: tuple[str, int] | None = None) -> None:
        """Pick up a ringing incoming call (200 with our SDP answer, RTP at
        ``rtp``, by default the phone's)."""
        if call.outgoing or call.state != "ringing":
            raise ValueError("no incoming call is ringing")
        call.rtp = rtp or self.rtp
        try:
            offer = SessionDescription.parse(call.invite.body)
            answer = self._answer_to(call, offer)
            plan = media_plan(offer, answer, answer)
        except SdpError as exc:
            self._respond(call.invite, exc.status, exc.reason, call.local_tag, now)
            self._end(call, exc.status, exc.reason)
            return
        call.local_sdp = answer
        ok = self._ok(call.invite, call.local_tag, call.local_sdp)
        self.layer.send_response(ok, now)
        call.dialog = Dialog.as_uas(call.invite, ok, self.account.server)
        call.state = "answered"
        if not self.reliable:  # the TU sends its 2xx again until the ACK (RFC 6026 §7.1)
            call.ok, call.ok_interval = ok, self.layer.t1
            call.ok_next, call.ok_until = now + self.layer.t1, now + 64 * self.layer.t1
        self._events.append(CallAnswered(call, plan))

    def hangup(self, call: Call, now: float) -> None:
        """End the call whatever its state: CANCEL, decline (486) or BYE."""
        if call.state in ("ended", "cancelling"):
            return
        if call.state == "answered" and call.dialog is not None:
            bye = call.dialog.create_request("BYE", self.sent_by)
            bye.headers.add("User-Agent", USER_AGENT)
            self.layer.send_request(bye, self.account.server, self.reliable, now)
            self._end(call, 0, "hung up")
        elif call.outgoing:
            self.layer.send_request(build_cancel(call.invite), self.account.server,
                                    self.reliable, now)
            call.state = "cancelling"  # the INVITE's 487 ends it
        else:
            self._respond(call.invite, 486, None, call.local_tag, now)
            self._end(call, 486, "Busy Here - declined")

    def hold(self, call: Call, now: float, held: bool = True) -> None:
        """Hold the far end (re-INVITE ``sendonly``: the PBX plays them music)
        or, with ``held`` False, resume; :class:`CallAnswered` follows with
        the new direction, or :class:`RequestRefused`."""
        if call.state != "answered" or call.dialog is None or call.reinvite is not None:
            raise ValueError("no answered call to hold or resume")
        call.held = held
        call.local_sdp = self._offer(call, "sendonly" if held else "sendrecv")
        request = self._in_dialog_request(call, "INVITE", body=bytes(call.local_sdp),
                                          content_type="application/sdp")
        call.reinvite = self.layer.send_request(request, self.account.server, self.reliable, now)

    def transfer(self, call: Call, target: str, now: float, replaces: Call | None = None) -> None:
        """REFER the far end of ``call`` to ``target`` (RFC 3515): blind, or with
        ``replaces`` attended, the PBX joining the far end to the party of
        that other answered call of ours (RFC 3891).  How it goes comes as
        :class:`TransferProgress`; the PBX then hangs up what it moved."""
        if call.state != "answered" or call.dialog is None or call.refer is not None:
            raise ValueError("no answered call to transfer")
        uri = self.uri(target)
        refer_to = str(URI(uri.scheme, uri.user, uri.host, uri.port))
        if replaces is not None:
            other = replaces.dialog
            if other is None or replaces.state != "answered":
                raise ValueError("the consultation call is not answered")
            dialog = f"{other.call_id};to-tag={other.remote_tag};from-tag={other.local_tag}"
            refer_to += "?Replaces=" + dialog.replace(";", "%3B").replace("=", "%3D")
        request = self._in_dialog_request(call, "REFER", headers=[
            ("Refer-To", f"<{refer_to}>"),
            ("Referred-By", f"<sip:{self.account.user}@{self.domain}>")])
        call.refer = self.layer.send_request(request, self.account.server, self.reliable, now)

    def _in_dialog_request(self, call: Call, method: str, *, body: bytes = b"",
                           content_type: str | None = None,
                           headers: list[tuple[str, str]] | None = None) -> Request:
        assert call.dialog is not None
        request = call.dialog.create_request(method, self.sent_by, body=body,
                                             content_type=content_type,
                                             headers=[("Contact", self.contact),
                                                      *(headers or [])])
        request.headers.add("User-Agent", USER_AGENT)
        return request

    # ------------------------------------------------------------ what the layer says

    def _drain(self, now: float) -> None:
        while (event := self.layer.next_event()) is not None:
            if isinstance(event, ResponseReceived):
                if event.tx is self._register_tx:
                    self._registration_answer(event.response, now)
                else:
                    self._call_response(event.tx, event.response, now)
            elif isinstance(event, StrayResponse):
                self._call_response(None, event.response, now)
            elif isinstance(event, AckReceived):
                call = self.calls.get(event.request.call_id)
                if call is not None:
                    call.ok = None
            elif isinstance(event, TransactionTimeout):
                self._timeout(event.tx, now)
            elif isinstance(event, RequestReceived):
                self._request(event.request, now)

    def _timeout(self, tx: Transaction, now: float) -> None:
        if tx is self._register_tx:
            self.registration.on_timeout(now)
            self._events.append(RegistrationFailed(408, "Request Timeout - the PBX did not answer"))
            return
        call = next((c for c in self.calls.values() if c.tx is tx), None)
        if call is not None:
            self._end(call, 408, "Request Timeout - the PBX did not answer")

    def _call_response(self, tx: Transaction | None, response: Response, now: float) -> None:
        call = self.calls.get(response.call_id)
        if call is None:
            return
        if tx is not None and tx in (call.reinvite, call.refer):
            self._in_dialog_response(call, tx, response, now)
            return
        if response.cseq.method != "INVITE":
            return
        if tx is None and call.dialog is not None and response.cseq.number != call.invite.cseq.number:
            if response.status < 300:  # a re-INVITE's 2xx again: our ACK was lost
                self._outbox.append(bytes(call.dialog.create_request(
                    "ACK", self.sent_by, cseq=response.cseq.number)))
            return
        if tx is not None and tx is not call.tx:
            return  # the answer to an earlier INVITE (the one challenged)
        status = response.status
        if status < 200:
            if status in (180, 183) and call.state == "calling":
                call.state = "ringing"
                self._events.append(CallRinging(call))
        elif status < 300:
            self._answered(call, response, now)
        elif status in (401, 407) and not call.authenticated and call.state == "calling":
            call.authenticated = True
            header = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
            try:
                authorization = build_authorization(
                    response.headers.get(header) or "", method="INVITE", uri=str(call.invite.uri),
                    username=self.account.user, password=self.account.password)
            except ValueError as exc:
                self._end(call, status, f"cannot answer the challenge: {exc}")
                return
            self._send_invite(call, authorization,
                              "Authorization" if status == 401 else "Proxy-Authorization", now)
        else:
            self._end(call, status, response.reason)

    def _in_dialog_response(self, call: Call, tx: Transaction, response: Response,
                            now: float) -> None:
        """The answer to our re-INVITE (ACK a 2xx; the media as agreed now) or REFER."""
        if response.status < 200:
            return
        method = response.cseq.method
        if tx is call.refer:
            call.refer = None
        else:
            call.reinvite = None
        if response.status >= 300:
            if method == "INVITE":  # the session stays as it was (RFC 3261 §14.1)
                call.held = not call.held
            self._events.append(RequestRefused(call, method, response.status, response.reason))
            return
        if method != "INVITE" or call.dialog is None:
            return
        self._outbox.append(bytes(call.dialog.create_request(
            "ACK", self.sent_by, cseq=response.cseq.number)))
        try:
            answer = SessionDescription.parse(response.body)
            assert call.local_sdp is not None
            plan = media_plan(answer, answer, call.local_sdp)
        except SdpError as exc:
            self._events.append(RequestRefused(call, method, exc.status, f"unusable answer: {exc}"))
            return
        self._events.append(CallAnswered(call, plan))

    def _answered(self, call: Call, response: Response, now: float) -> None:
        """A 2xx to our INVITE: ACK it (every copy), then the call is up."""
        if call.ack is not None:
            self._outbox.append(bytes(call.ack))
            return
        call.dialog = Dialog.as_uac(call.invite, response, self.account.server)
        call.ack = call.dialog.create_request("ACK", self.sent_by, cseq=call.invite.cseq.number)
        self._outbox.append(bytes(call.ack))
        if call.state == "cancelling":  # the answer crossed our CANCEL: end it properly
            call.state = "answered"
            self.hangup(call, now)
            return
        try:
            answer = SessionDescription.parse(response.body)
            assert call.local_sdp is not None
            plan = media_plan(answer, answer, call.local_sdp)
        except SdpError as exc:
            call.state = "answered"
            self.hangup(call, now)
            self._end(call, exc.status, f"unusable answer: {exc}")
            return
        call.state = "answered"
        self._events.append(CallAnswered(call, plan))

    def _request(self, request: Request, now: float) -> None:
        method = request.method
        call = self.calls.get(request.call_id)
        if method == "INVITE" and call is None:
            self._incoming(request, now)
        elif method == "CANCEL":
            self.layer.send_response(make_response(request, 200), now)
            if call is not None and call.state == "ringing" and not call.outgoing:
                self._respond(call.invite, 487, None, call.local_tag, now)
                self._end(call, 487, "Request Terminated - the caller hung up")
        elif call is None or call.dialog is None or request.to_addr.tag != call.local_tag:
            status = 200 if method == "OPTIONS" else 481
            self.layer.send_response(make_response(request, status, to_tag=new_tag()), now)
        else:
            self._in_dialog(call, request, now)

    def _in_dialog(self, call: Call, request: Request, now: float) -> None:
        assert call.dialog is not None
        try:
            call.dialog.receive_request(request)
        except SipError as exc:
            self.layer.send_response(make_response(request, exc.status, exc.reason), now)
            return
        if request.method == "BYE":
            self.layer.send_response(make_response(request, 200), now)
            self._end(call, 0, "the far end hung up")
        elif request.method in ("INVITE", "UPDATE") and request.body:
            self._reoffer(call, request, now)
        elif request.method == "NOTIFY" and (request.headers.get("Event") or "").startswith("refer"):
            self.layer.send_response(self._ok(request, call.local_tag, None), now)
            line = request.body.decode("utf-8", "replace").split()
            if len(line) > 1 and line[0].startswith("SIP/") and line[1].isdigit():
                self._events.append(TransferProgress(call, int(line[1])))
        else:  # a session refresh without SDP, INFO, NOTIFY …: fine by us
            body = call.local_sdp if request.method == "INVITE" else None
            self.layer.send_response(self._ok(request, call.local_tag, body), now)

    def _reoffer(self, call: Call, request: Request, now: float) -> None:
        """A new offer in the dialog (the far end holds us or resumes, a transfer
        moves the media): answer it, keeping our own hold."""
        try:
            offer = SessionDescription.parse(request.body)
            answer = self._answer_to(call, offer)
            plan = media_plan(offer, answer, answer)
        except SdpError as exc:
            self.layer.send_response(make_response(request, exc.status, exc.reason), now)
            return
        call.local_sdp = answer
        self.layer.send_response(self._ok(request, call.local_tag, answer), now)
        self._events.append(CallAnswered(call, plan))

    def _incoming(self, invite: Request, now: float) -> None:
        call = Call(invite.call_id, False, str(invite.from_addr), invite, new_tag(),
                    state="ringing", rtp=self.rtp)
        self.calls[call.call_id] = call
        self._respond(invite, 180, None, call.local_tag, now)
        self._events.append(IncomingCall(call))

    def _respond(self, request: Request, status: int, reason: str | None, tag: str,
                 now: float) -> None:
        response = make_response(request, status, reason, to_tag=tag)
        if status < 300:
            response.headers.add("Contact", self.contact)
        self.layer.send_response(response, now)

    def _ok(self, request: Request, tag: str, sdp: SessionDescription | None) -> Response:
        ok = make_response(request, 200, to_tag=tag)
        ok.headers.add("Contact", self.contact)
        ok.headers.add("User-Agent", USER_AGENT)
        if sdp is not None:
            ok.headers.add("Content-Type", "application/sdp")
            ok.body = bytes(sdp)
        return ok

    def _resend_ok(self, call: Call, now: float) -> None:
        if now >= call.ok_until:
            call.ok = None  # no ACK: the PBX gave up on us
            return
        assert call.ok is not None
        self.layer.send_response(call.ok, now)
        call.ok_interval = min(call.ok_interval * 2, self.layer.t2)
        call.ok_next = now + call.ok_interval

    def _end(self, call: Call, code: int, reason: str) -> None:
        call.state = "ended"
        call.ok = None
        self.calls.pop(call.call_id, None)
        self._events.append(CallEnded(call, code, reason))
