"""The softphone gateway's SIP side: one user agent per open page, registered
for the page's extension on the PBX's own UDP port over loopback.

Call control therefore sees the page as an ordinary SIP device of the
extension (a contact binding beside the desk phone's): it is rung with the
others, the first to answer wins, and the calls it places go through the
dial plan with the extension's digest credentials.  Only what a single-line
phone needs is here: REGISTER (refreshed), INVITE as caller and callee,
CANCEL, BYE, ACK.  The PBX is a B2BUA and adds no Record-Route, so in-dialog
requests go straight to it with the remote target as Request-URI.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from pbx.sip.auth import build_authorization
from pbx.sip.message import Request, Response, make_response, new_branch, new_call_id, new_tag
from pbx.sip.parser import parse_message

log = logging.getLogger("softphone.sip")

REGISTER_EXPIRES = 300
RETRANSMIT = (0.5, 1.0, 2.0, 4.0)  # Timer A/E doubling (RFC 3261 §17.1), capped


class SipFailure(Exception):
    """A request ended in a final failure (the status and reason name it)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status, self.reason = status, reason


@dataclass
class SipCall:
    """One dialog of the page's line, as caller (``incoming`` False) or callee."""

    call_id: str
    incoming: bool
    local: str  # our From (as caller) or To (as callee) address, without tag
    remote: str  # theirs
    local_tag: str = field(default_factory=new_tag)
    remote_tag: str = ""
    remote_target: str = ""  # their Contact URI
    cseq: int = 1
    invite: Request | None = None  # the INVITE that made it (an incoming call's, to answer)
    invite_text: str = ""  # the INVITE we sent (for CANCEL and failure ACK)
    confirmed: bool = False
    ended: bool = False
    caller_name: str = ""
    caller_number: str = ""


class UaListener:
    """What the gateway learns from the SIP side; every method is optional."""

    def incoming(self, call: SipCall) -> None: ...

    def ended(self, call: SipCall, reason: str) -> None: ...

    def transfer_progress(self, call: SipCall, status: int) -> None:
        """How a blind transfer of ``call`` goes (the NOTIFY's sipfrag status)."""


class SipUserAgent(asyncio.DatagramProtocol):
    """A registered single-line SIP phone, for one extension, on one UDP socket."""

    def __init__(self, pbx: tuple[str, int], domain: str, user: str, password: str,
                 listener: UaListener) -> None:
        self.pbx, self.domain, self.user, self.password = pbx, domain, user, password
        self.listener = listener
        self.transport: asyncio.DatagramTransport | None = None
        self.local: tuple[str, int] = ("", 0)
        self.pending: dict[tuple[str, int, str], asyncio.Queue[Response]] = {}
        self.calls: dict[str, SipCall] = {}
        self.answers: dict[str, bytes] = {}  # our last answer to each incoming INVITE (resent)
        self.register_call_id = new_call_id()
        self.register_cseq = 0
        self._refresh: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------ life cycle

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=(self.pbx[0], 0))
        assert self.transport is not None
        self.local = self.transport.get_extra_info("sockname")[:2]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # uvloop's is no subclass

    async def close(self) -> None:
        """Hang up, unregister, close the socket."""
        for call in list(self.calls.values()):
            await self.hang_up(call)
        if self._refresh is not None:
            self._refresh.cancel()
        try:
            await self.register(0)
        except (SipFailure, TimeoutError) as exc:
            log.info("unregister of %s failed: %s", self.user, exc)
        if self.transport is not None:
            self.transport.close()

    @property
    def aor(self) -> str:
        return f"sip:{self.user}@{self.domain}"

    @property
    def contact(self) -> str:
        return f"<sip:{self.user}@{self.local[0]}:{self.local[1]}>"

    # ------------------------------------------------------------- requests

    def _head(self, method: str, uri: str, call_id: str, cseq: int, from_: str, to: str,
              branch: str) -> list[str]:
        host, port = self.local
        return [f"{method} {uri} SIP/2.0", f"Via: SIP/2.0/UDP {host}:{port};branch={branch};rport",
                f"From: {from_}", f"To: {to}", f"Call-ID: {call_id}", f"CSeq: {cseq} {method}",
                "Max-Forwards: 70", "User-Agent: pbx-softphone"]

    @staticmethod
    def _format(lines: list[str], body: bytes = b"") -> str:
        """A request's text: ``lines`` and the body's headers (the body not included)."""
        if body:
            lines = [*lines, "Content-Type: application/sdp"]
        return "\r\n".join([*lines, f"Content-Length: {len(body)}"]) + "\r\n\r\n"

    def _send(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.sendto(data, self.pbx)

    async def _transaction(self, call_id: str, cseq: int, method: str, data: bytes,
                           on_provisional: Callable[[Response], None] | None = None) -> Response:
        """Send a request (retransmitted until something answers) and wait for its final."""
        key = (call_id, cseq, method)
        answers: asyncio.Queue[Response] = asyncio.Queue()
        self.pending[key] = answers
        try:
            self._send(data)
            heard = False
            for wait in (*RETRANSMIT, 32.0 if method == "INVITE" else 8.0):
                try:
                    while True:
                        response = await asyncio.wait_for(answers.get(), 180 if heard else wait)
                        heard = True
                        if response.status >= 200:
                            return response
                        if on_provisional is not None:
                            on_provisional(response)
                except TimeoutError:
                    if heard:
                        raise
                    self._send(data)
            raise TimeoutError(f"{method} got no answer")
        finally:
            self.pending.pop(key, None)

    async def _authenticated(self, method: str, uri: str, build: Callable[[int, str], bytes],
                             call_id: str, first_cseq: int,
                             on_provisional: Callable[[Response], None] | None = None,
                             ) -> tuple[Response, int]:
        """Send ``build(cseq, authorization)``; answer one digest challenge."""
        response = await self._transaction(call_id, first_cseq, method, build(first_cseq, ""),
                                           on_provisional)
        if response.status not in (401, 407):
            return response, first_cseq
        if method == "INVITE":
            self._ack_failure(response)
        header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
        authorization = build_authorization(response.headers.get(header) or "", method=method,
                                            uri=uri, username=self.user, password=self.password)
        name = "Authorization" if response.status == 401 else "Proxy-Authorization"
        cseq = first_cseq + 1
        response = await self._transaction(call_id, cseq, method,
                                           build(cseq, f"{name}: {authorization}"), on_provisional)
        return response, cseq

    async def register(self, expires: int = REGISTER_EXPIRES) -> None:
        """Bind (or with 0 unbind) the page's contact for the extension; refreshed
        before it expires.  Raises SipFailure when the PBX refuses."""
        uri = f"sip:{self.domain}"
        tag = new_tag()

        def build(cseq: int, authorization: str) -> bytes:
            lines = self._head("REGISTER", uri, self.register_call_id, cseq,
                               f"<{self.aor}>;tag={tag}", f"<{self.aor}>", new_branch())
            lines += [f"Contact: {self.contact}", f"Expires: {expires}"]
            if authorization:
                lines.append(authorization)
            return ("\r\n".join([*lines, "Content-Length: 0"]) + "\r\n\r\n").encode()

        response, self.register_cseq = await self._authenticated(
            "REGISTER", uri, build, self.register_call_id, self.register_cseq + 1)
        if response.status != 200:
            raise SipFailure(response.status, response.reason)
        if expires:
            loop = asyncio.get_running_loop()
            self._refresh = loop.call_later(expires * 0.8, self._refresh_registration)

    def _refresh_registration(self) -> None:
        async def refresh() -> None:
            try:
                await self.register()
            except (SipFailure, TimeoutError) as exc:
                log.warning("registration of %s not refreshed: %s", self.user, exc)

        task = asyncio.ensure_future(refresh())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def invite(self, number: str, sdp: bytes,
                     on_provisional: Callable[[Response], None]) -> tuple[SipCall, bytes]:
        """Call ``number`` through the dial plan; returns the dialog and the PBX's
        SDP answer once answered.  Raises SipFailure when the call fails."""
        uri = f"sip:{number}@{self.domain}"
        call = SipCall(new_call_id(), False, f"<{self.aor}>", f"<{uri}>")
        self.calls[call.call_id] = call

        def build(cseq: int, authorization: str) -> bytes:
            lines = self._head("INVITE", uri, call.call_id, cseq,
                               f"{call.local};tag={call.local_tag}", call.remote, new_branch())
            lines.append(f"Contact: {self.contact}")
            if authorization:
                lines.append(authorization)
            call.invite_text = self._format(lines, sdp)
            return call.invite_text.encode() + sdp

        try:
            response, call.cseq = await self._authenticated("INVITE", uri, build, call.call_id, 1,
                                                            on_provisional)
        except BaseException:
            self.calls.pop(call.call_id, None)
            raise
        if response.status >= 300:
            self.calls.pop(call.call_id, None)
            self._ack_failure(response)
            raise SipFailure(response.status, response.reason)
        call.remote_tag = response.to_addr.tag or ""
        call.remote = response.headers.get("To") or call.remote
        call.remote_target = str(response.contacts[0].uri) if response.contacts else uri
        call.confirmed = True
        self._in_dialog(call, "ACK", cseq=call.cseq)
        return call, response.body

    def _dialog_head(self, call: SipCall, method: str, cseq: int) -> list[str]:
        remote = call.remote if ";tag=" in call.remote else f"{call.remote};tag={call.remote_tag}"
        return self._head(method, call.remote_target, call.call_id, cseq,
                          f"{call.local};tag={call.local_tag}", remote, new_branch())

    def _in_dialog(self, call: SipCall, method: str, cseq: int | None = None) -> bytes:
        if cseq is None:
            call.cseq += 1
            cseq = call.cseq
        data = self._format(self._dialog_head(call, method, cseq)).encode()
        self._send(data)
        return data

    async def reinvite(self, call: SipCall, sdp: bytes) -> bytes:
        """Offer ``sdp`` again in the dialog (hold: ``sendonly``; resume); the
        PBX's answer.  Raises SipFailure when refused (the session stays as it was)."""

        def build(cseq: int, authorization: str) -> bytes:
            lines = [*self._dialog_head(call, "INVITE", cseq), f"Contact: {self.contact}"]
            if authorization:
                lines.append(authorization)
            return self._format(lines, sdp).encode() + sdp

        response, call.cseq = await self._authenticated("INVITE", call.remote_target, build,
                                                        call.call_id, call.cseq + 1)
        if response.status >= 300:
            self._ack_failure(response)
            raise SipFailure(response.status, response.reason)
        self._in_dialog(call, "ACK", cseq=call.cseq)
        return response.body

    async def refer(self, call: SipCall, number: str) -> None:
        """Blind transfer (RFC 3515): ask the PBX to connect the far end to
        ``number``.  Raises SipFailure when refused; how it goes comes in
        NOTIFYs (``listener.transfer_progress``), and on success a BYE."""

        def build(cseq: int, authorization: str) -> bytes:
            lines = self._dialog_head(call, "REFER", cseq)
            lines += [f"Refer-To: <sip:{number}@{self.domain}>", f"Referred-By: <{self.aor}>",
                      f"Contact: {self.contact}"]
            if authorization:
                lines.append(authorization)
            return self._format(lines).encode()

        response, call.cseq = await self._authenticated("REFER", call.remote_target, build,
                                                        call.call_id, call.cseq + 1)
        if response.status >= 300:
            raise SipFailure(response.status, response.reason)

    async def hang_up(self, call: SipCall) -> None:
        """End the call however far it got: BYE, CANCEL, or refuse the ringing INVITE."""
        if call.ended:
            return
        call.ended = True
        self.calls.pop(call.call_id, None)
        if call.confirmed:
            data = self._in_dialog(call, "BYE")
            try:
                await self._transaction(call.call_id, call.cseq, "BYE", data)
            except TimeoutError:
                log.info("BYE of %s unanswered", call.call_id)
        elif call.incoming:
            self._answer(call, 486, reason="Busy Here")
        elif call.invite_text:
            self._cancel(call)

    def _cancel(self, call: SipCall) -> None:
        """CANCEL our INVITE (§9.1: its Via, From, To, Call-ID and CSeq number)."""
        head = call.invite_text.split("\r\n")
        uri = head[0].split(" ")[1]
        keep = [line for line in head[1:] if line.split(":")[0] in ("Via", "From", "To", "Call-ID")]
        self._send(self._format([f"CANCEL {uri} SIP/2.0", *keep, f"CSeq: {call.cseq} CANCEL",
                                 "Max-Forwards: 70"]).encode())

    def _ack_failure(self, response: Response) -> None:
        """ACK a non-2xx final to our INVITE: the INVITE's branch, the response's
        To (with its tag), in the same transaction (§17.1.1.3)."""
        uri = f"sip:{response.to_addr.uri.user}@{self.domain}"
        self._send(self._format([
            f"ACK {uri} SIP/2.0", f"Via: {response.headers.get('Via')}",
            f"From: {response.headers.get('From')}", f"To: {response.headers.get('To')}",
            f"Call-ID: {response.call_id}", f"CSeq: {response.cseq.number} ACK",
            "Max-Forwards: 70"]).encode())

    def answer(self, call: SipCall, sdp: bytes) -> None:
        """Take the ringing incoming call (200 OK with our SDP)."""
        call.confirmed = True
        self._answer(call, 200, sdp)

    def _answer(self, call: SipCall, status: int, body: bytes = b"", reason: str | None = None,
                ) -> None:
        assert call.invite is not None
        response = make_response(call.invite, status, reason, to_tag=call.local_tag)
        if status < 300:
            response.headers.add("Contact", self.contact)
        if body:
            response.headers.add("Content-Type", "application/sdp")
            response.body = body
        data = bytes(response)
        if status >= 200:
            self.answers[call.call_id] = data
        self._send(data)

    # -------------------------------------------------------------- arrivals

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if data.strip() == b"":
            return  # keep-alive
        try:
            message = parse_message(data, check=False)
        except Exception as exc:  # noqa: BLE001 - garbage from the network must not kill the UA
            log.info("unparsable SIP from %s: %s", addr, exc)
            return
        if isinstance(message, Response):
            answers = self.pending.get((message.call_id, message.cseq.number, message.cseq.method))
            if answers is not None:
                answers.put_nowait(message)
            return
        self._on_request(message)

    def _on_request(self, request: Request) -> None:
        call = self.calls.get(request.call_id)
        method = request.method
        if method == "INVITE" and request.to_addr.tag is None:
            if call is None and request.call_id not in self.answers:
                self._on_invite(request)
            elif request.call_id in self.answers:
                self._send(self.answers[request.call_id])  # a retransmission: answer again
        elif method == "ACK":
            self.answers.pop(request.call_id, None)  # our final answer arrived
        elif method == "CANCEL" and call is not None and call.incoming and not call.confirmed:
            self._send(bytes(make_response(request, 200)))
            self._answer(call, 487)
            self._end(call, "cancelled")
        elif method == "BYE" and call is not None:
            self._send(bytes(make_response(request, 200)))
            self._end(call, "hung up")
        elif method == "NOTIFY" and call is not None:
            self._send(bytes(make_response(request, 200)))
            fragment = request.body.decode("utf-8", "replace").split()
            if len(fragment) > 1 and fragment[0] == "SIP/2.0" and fragment[1].isdigit():
                self.listener.transfer_progress(call, int(fragment[1]))
        elif method in ("INVITE", "UPDATE") and call is not None:
            # a re-INVITE (hold, session refresh): not supported yet, keep the session
            self._send(bytes(make_response(request, 488 if method == "INVITE" else 200)))
        elif method in ("BYE", "CANCEL"):
            self._send(bytes(make_response(request, 481, to_tag=new_tag())))  # no such call
        elif method in ("OPTIONS", "NOTIFY"):
            self._send(bytes(make_response(request, 200, to_tag=new_tag())))
        else:
            self._send(bytes(make_response(request, 405, to_tag=new_tag())))

    def _on_invite(self, request: Request) -> None:
        if any(not c.ended for c in self.calls.values()):
            self._send(bytes(make_response(request, 486, "Busy Here", to_tag=new_tag())))
            return  # call waiting is not built yet: one call at a time
        caller = request.from_addr
        call = SipCall(request.call_id, True, request.headers.get("To") or "",
                       request.headers.get("From") or "", invite=request,
                       remote_tag=caller.tag or "",
                       remote_target=str(request.contacts[0].uri) if request.contacts
                       else str(caller.uri),
                       caller_name=caller.display_name or "",
                       caller_number=caller.uri.user or "")
        self.calls[call.call_id] = call
        self._answer(call, 180)
        self.listener.incoming(call)

    def _end(self, call: SipCall, reason: str) -> None:
        call.ended = True
        self.calls.pop(call.call_id, None)
        self.listener.ended(call, reason)
