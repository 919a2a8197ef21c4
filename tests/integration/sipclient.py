"""A tiny blocking SIP client over real sockets, for integration cases that
sipp scenarios express badly (many contacts, odd headers, garbage bytes).
It builds requests as text and authenticates with the client side of
``pbx.sip.auth``; the PBX under test is a separate process."""

from __future__ import annotations

import socket
import ssl
import threading
import time
import uuid

from pbx.sip.auth import build_authorization
from pbx.sip.message import Headers, Request, Response, make_response
from pbx.sip.parser import StreamFramer, parse_message


class SipClient:
    """One socket (UDP, TCP or TLS) to the PBX, sending requests and reading responses."""

    def __init__(self, host: str, port: int, transport: str = "UDP", source: str | None = None,
                 domain: str | None = None):
        """``domain``: the SIP domain in URIs (an organisation's); default the PBX's address."""
        self.host, self.port, self.transport = host, port, transport.upper()
        self.domain = domain
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        kind = socket.SOCK_DGRAM if self.transport == "UDP" else socket.SOCK_STREAM
        self.sock = socket.socket(family, kind)
        self.sock.settimeout(3)
        self.sock.bind((source or host, 0))
        if self.transport != "UDP":
            self.sock.connect((host, port))
        if self.transport == "TLS":
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            self.sock = context.wrap_socket(self.sock)
        self.local_host, self.local_port = self.sock.getsockname()[:2]
        self.framer = StreamFramer()
        self.pending: list[bytes] = []
        self.call_id = uuid.uuid4().hex
        self.cseq = 0
        self.tag = uuid.uuid4().hex[:10]
        self.requests: list[Request] = []
        self.last_source: tuple[str, int] | None = None
        self.invite_text = ""

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> SipClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send_raw(self, data: bytes) -> None:
        if self.transport == "UDP":
            self.sock.sendto(data, (self.host, self.port))
        else:
            self.sock.sendall(data)

    def receive(self, timeout: float = 3.0) -> Response | None:
        """The next response (100 Trying skipped), or None after ``timeout``.

        Requests arriving meanwhile are kept for :meth:`receive_request`.
        """
        deadline = time.monotonic() + timeout
        while True:
            message = self._next(deadline)
            if message is None:
                return None
            if isinstance(message, Request):
                self.requests.append(message)
                continue
            if message.status == 100:
                continue
            return message

    def receive_request(self, timeout: float = 3.0, method: str | None = None) -> Request | None:
        """The next request (of ``method``), answering nothing; None after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            for i, request in enumerate(self.requests):
                if method is None or request.method == method:
                    return self.requests.pop(i)
            message = self._next(deadline)
            if message is None:
                return None
            if isinstance(message, Request):
                self.requests.append(message)

    def _next(self, deadline: float) -> Request | Response | None:
        while not self.pending:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                if self.transport == "UDP":
                    data, self.last_source = self.sock.recvfrom(65535)
                    self.pending.append(data)
                else:
                    self.pending.extend(self.framer.feed(self.sock.recv(65535)))
            except (TimeoutError, socket.timeout):
                return None
        return parse_message(self.pending.pop(0), check=False)

    def respond(
        self, request: Request, status: int, *, body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> Response:
        """Answer a request the PBX sent us (as a phone would)."""
        response = make_response(request, status, to_tag=self.tag)
        if 100 < status < 300 and request.method == "INVITE":
            response.headers.add("Contact", f"<sip:phone@{self.host_port()}>")
            for route in request.headers.get_all("Record-Route"):  # RFC 3261 §12.1.1
                response.headers.add("Record-Route", route)
        for name, value in (headers or {}).items():
            response.headers.add(name, value)
        if body:
            response.headers.add("Content-Type", "application/sdp")
            response.body = body
        self.send_to_pbx(bytes(response))
        return response

    def send_to_pbx(self, data: bytes) -> None:
        if self.transport == "UDP":
            self.sock.sendto(data, self.last_source or (self.host, self.port))
        else:
            self.sock.sendall(data)

    def sdp(self, port: int = 40000, codecs: str = "0 8 101") -> bytes:
        """A phone's audio offer/answer on ``port``."""
        return (
            f"v=0\r\no=phone 1 1 IN IP4 {self.local_host}\r\ns=-\r\nc=IN IP4 {self.local_host}\r\n"
            f"t=0 0\r\nm=audio {port} RTP/AVP {codecs}\r\na=rtpmap:0 PCMU/8000\r\n"
            "a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"
        ).encode()

    def invite(
        self, user: str, password: str, target: str, *, body: bytes | None = None,
        wait: float = 5.0,
    ) -> tuple[list[Response], Response | None]:
        """INVITE ``target`` through the PBX with digest auth.

        Returns the provisional responses and the final one (None if none
        came within ``wait``).  Non-2xx finals are ACKed here; a 2xx is left
        to the caller (:meth:`ack`).
        """
        first = self.start_invite(user, password, target, body=body, wait=wait)
        provisional: list[Response] = []
        final = first
        while final is not None and final.status < 200:
            provisional.append(final)
            final = self.receive(wait)
        if final is not None and final.status >= 300:
            self.ack_failure(final)
        return provisional, final

    def start_invite(
        self, user: str, password: str, target: str, *, body: bytes | None = None,
        wait: float = 5.0,
    ) -> Response | None:
        """Send an INVITE to ``target`` and answer the PBX's 407 with credentials;
        returns the first response after that (None: none within ``wait``).  The
        call goes on with :meth:`receive`, :meth:`cancel`, :meth:`in_dialog`."""
        body = self.sdp() if body is None else body
        self.invite_text = self.request("INVITE", user, to=target, body=body,
                                        headers={"Content-Type": "application/sdp"})
        first = self.receive(wait)
        if first is not None and first.status == 407:
            self.ack_failure(first)
            authorization = build_authorization(
                first.headers.get("Proxy-Authenticate") or "", method="INVITE",
                uri=self.uri(target), username=user, password=password,
            )
            self.invite_text = self.request(
                "INVITE", user, to=target, body=body, authorization=authorization,
                headers={"Content-Type": "application/sdp"},
            )
            first = self.receive(wait)
        return first

    def final(self, first: Response | None, wait: float = 10.0) -> Response | None:
        """The final response to the INVITE whose first response was ``first``
        (``first`` itself when final; None: none came within ``wait``)."""
        while first is not None and first.status < 200:
            first = self.receive(wait)
        return first

    def answered(self, first: Response | None, wait: float = 10.0) -> Response:
        """The 200 to the INVITE whose first response was ``first``, ACKed."""
        final = self.final(first, wait)
        assert final is not None and final.status == 200, final
        self.in_dialog("ACK", final, cseq=final.cseq.number)
        return final

    def call(
        self, user: str, password: str, target: str, phone: SipClient, status: int = 200,
        rtp_port: int = 41000,
    ) -> tuple[Request | None, Response | None]:
        """Call ``target`` as ``user`` while ``phone`` answers the INVITE it gets
        with ``status`` (a 200 with SDP on ``rtp_port``).  A 2xx is ACKed here.
        Returns the INVITE the phone got (None: it never rang) and our final
        response."""
        rang: list[Request] = []

        def pick_up() -> None:
            invite = phone.receive_request(5, "INVITE")
            if invite is not None:
                rang.append(invite)
                body = phone.sdp(rtp_port) if status == 200 else b""
                phone.respond(invite, status, body=body)

        worker = threading.Thread(target=pick_up)
        worker.start()
        _, final = self.invite(user, password, target)
        worker.join()
        if final is not None and final.status == 200:
            self.in_dialog("ACK", final, cseq=final.cseq.number)
        return (rang[0] if rang else None), final

    def pick_up(self, rtp_port: int) -> Request:
        """Ring (180) and answer the INVITE the PBX sends this phone; returns it."""
        invite = self.receive_request(5, "INVITE")
        assert invite is not None, "the phone never rang"
        self.respond(invite, 180)
        self.respond(invite, 200, body=self.sdp(rtp_port))
        assert self.receive_request(3, "ACK") is not None
        return invite

    def hung_up(self) -> bool:
        """The PBX sent this phone a BYE (answered 200)."""
        bye = self.receive_request(5, "BYE")
        if bye is None:
            return False
        self.respond(bye, 200)
        return True

    def cancel(self) -> None:
        """CANCEL the pending INVITE (§9.1: same branch, Call-ID, From, To, CSeq number)."""
        head = self.invite_text.split("\r\n")
        keep = [line for line in head[1:] if line.split(":")[0] in ("Via", "From", "To", "Call-ID")]
        number = next(line for line in head if line.startswith("CSeq:")).split()[1]
        uri = head[0].split(" ")[1]
        lines = [f"CANCEL {uri} SIP/2.0", *keep, f"CSeq: {number} CANCEL", "Max-Forwards: 70",
                 "Content-Length: 0"]
        self.send_raw(("\r\n".join(lines) + "\r\n\r\n").encode())

    def ack_failure(self, response: Response) -> None:
        """ACK a non-2xx final: same branch as the INVITE (§17.1.1.3)."""
        via = next(line for line in self.invite_text.split("\r\n") if line.startswith("Via:"))
        uri = self.invite_text.split(" ", 2)[1]
        lines = [
            f"ACK {uri} SIP/2.0", via, f"From: {response.headers.get('From')}",
            f"To: {response.headers.get('To')}", f"Call-ID: {response.call_id}",
            f"CSeq: {response.cseq.number} ACK", "Max-Forwards: 70", "Content-Length: 0",
        ]
        self.send_raw(("\r\n".join(lines) + "\r\n\r\n").encode())

    def in_dialog(self, method: str, ok: Response, *, cseq: int | None = None,
                  body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        """ACK/BYE/re-INVITE… inside the dialog the 2xx ``ok`` created (UAC side),
        along its route set (the Record-Route of a proxy on the way, reversed)."""
        target = ok.contacts[0].uri
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        lines = [
            f"{method} {target} SIP/2.0",
            f"Via: SIP/2.0/{self.transport} {self.host_port()};branch=z9hG4bK{uuid.uuid4().hex};rport",
            f"From: {ok.headers.get('From')}", f"To: {ok.headers.get('To')}",
            f"Call-ID: {ok.call_id}", f"CSeq: {cseq} {method}", "Max-Forwards: 70",
            f"Contact: <sip:phone@{self.host_port()}>",
        ]
        lines += [f"Route: {route}" for route in reversed(ok.headers.get_all("Record-Route"))]
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        if body and "Content-Type" not in (headers or {}):
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        self.send_raw(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    def host_port(self) -> str:
        host = f"[{self.local_host}]" if ":" in self.local_host else self.local_host
        return f"{host}:{self.local_port}"

    def uri(self, user: str | None = None, *, port: bool = True) -> str:
        """``sip:user@`` our domain, or the PBX's address (with its port for a Request-URI)."""
        if self.domain:
            server = self.domain
        else:
            server = f"[{self.host}]" if ":" in self.host else self.host
            if port:
                server += f":{self.port}"
        return f"sip:{user}@{server}" if user else f"sip:{server}"

    def request(
        self,
        method: str,
        user: str,
        *,
        contacts: list[str] | None = None,
        headers: dict[str, str] | None = None,
        authorization: str | None = None,
        body: bytes = b"",
        to: str | None = None,
    ) -> str:
        """Send a request from ``user``; returns its text (without a final body)."""
        self.cseq += 1
        lines = [
            f"{method} {self.uri(to)} SIP/2.0",
            f"Via: SIP/2.0/{self.transport} {self.host_port()};branch=z9hG4bK{uuid.uuid4().hex};rport",
            f"From: <{self.uri(user, port=False)}>;tag={self.tag}",
            f"To: <{self.uri(to or user, port=False)}>",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq} {method}",
            "Max-Forwards: 70",
        ]
        if method == "INVITE" and not contacts:
            contacts = [f"<sip:{user}@{self.host_port()}>"]
        for contact in contacts or []:
            lines.append(f"Contact: {contact}")
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        if authorization:
            header = "Authorization" if method == "REGISTER" else "Proxy-Authorization"
            lines.append(f"{header}: {authorization}")
        lines.append(f"Content-Length: {len(body)}")
        text = "\r\n".join(lines) + "\r\n\r\n"
        self.send_raw(text.encode() + body)
        return text

    def register(
        self,
        user: str,
        password: str,
        *,
        contacts: list[str] | None = None,
        expires: int | None = 300,
        headers: dict[str, str] | None = None,
        auth_user: str | None = None,
    ) -> Response | None:
        """REGISTER with digest auth: the unauthenticated try, then the answer to the
        challenge (as ``auth_user``, a device's own login, when given)."""
        if contacts is None:
            contacts = [f"<sip:{user}@{self.host_port()};transport={self.transport.lower()}>"]
        extra = dict(headers or {})
        if expires is not None:
            extra["Expires"] = str(expires)
        self.request("REGISTER", user, contacts=contacts, headers=extra)
        challenge = self.receive()
        if challenge is None or challenge.status != 401:
            return challenge
        authorization = build_authorization(
            challenge.headers.get("WWW-Authenticate") or "",
            method="REGISTER",
            uri=self.uri(),
            username=auth_user or user,
            password=password,
        )
        self.request("REGISTER", user, contacts=contacts, headers=extra, authorization=authorization)
        return self.receive()

    def subscribe(
        self, user: str, password: str, target: str, event: str, *, expires: int | None = 600,
        headers: dict[str, str] | None = None,
    ) -> Response | None:
        """SUBSCRIBE to ``event`` of ``target`` as ``user``, answering the PBX's
        challenge; returns the final answer.  NOTIFYs arrive through
        :meth:`receive_request`; refresh or end it with :meth:`in_dialog`."""
        contacts = [f"<sip:{user}@{self.host_port()}>"]
        extra = {"Event": event, **(headers or {})}
        if expires is not None:
            extra["Expires"] = str(expires)
        self.request("SUBSCRIBE", user, to=target, contacts=contacts, headers=extra)
        answer = self.receive()
        if answer is None or answer.status != 407:
            return answer
        authorization = build_authorization(
            answer.headers.get("Proxy-Authenticate") or "", method="SUBSCRIBE",
            uri=self.uri(target), username=user, password=password,
        )
        self.request("SUBSCRIBE", user, to=target, contacts=contacts, headers=extra,
                     authorization=authorization)
        return self.receive()


def register(phone: SipClient, number: str, password: str) -> None:
    """Register ``phone`` as ``number`` at its own address (the PBX must say 200)."""
    response = phone.register(number, password, contacts=[f"<sip:{number}@{phone.host_port()}>"])
    assert response is not None and response.status == 200


def answer(phone: SipClient, port: int = 41000) -> tuple[Request, Response]:
    """The phone rings and picks up (RTP on ``port``); the ACK is left to the caller."""
    invite = phone.receive_request(5, "INVITE")
    assert invite is not None
    phone.respond(invite, 180)
    ok = phone.respond(invite, 200, body=phone.sdp(port))
    return invite, ok


def place_call(
    caller: SipClient, user: str, password: str, phone: SipClient, number: str, port: int,
    label: str, body: bytes | None = None,
) -> tuple[Response, tuple[Request, Response]]:
    """``user`` calls ``number``; ``phone`` rings and answers on RTP ``port``; the caller ACKs.

    Returns the caller's 200 and the phone's (INVITE, 200)."""
    picked: list[tuple[Request, Response]] = []
    worker = threading.Thread(target=lambda: picked.append(answer(phone, port)))
    worker.start()
    caller.call_id += f"-{label.lstrip('-')}"
    _, ok = caller.invite(user, password, number, body=body)
    worker.join()
    assert ok is not None and ok.status == 200, ok
    caller.in_dialog("ACK", ok, cseq=ok.cseq.number)
    return ok, picked[0]


def uas_dialog(invite: Request, ok: Response) -> Response:
    """A Response-shaped view of a dialog from the UAS side (for SipClient.in_dialog)."""
    headers = Headers([
        ("From", ok.headers.get("To")), ("To", invite.headers.get("From")),
        ("Call-ID", invite.call_id), ("CSeq", f"{invite.cseq.number} INVITE"),
        ("Contact", invite.headers.get("Contact")),
        ("Via", invite.headers.get_all("Via")[0]),
        *(("Record-Route", route) for route in reversed(invite.headers.get_all("Record-Route"))),
    ])
    return Response(200, "OK", headers)


def message_summary(notify: Request) -> dict[str, str]:
    """An RFC 3842 message-summary body as its header-like lines."""
    lines = notify.body.decode().strip().splitlines()
    return dict(line.split(": ", 1) for line in lines)


def lamp_until(lamp: SipClient, voice_message: str) -> Request:
    """Answer the lamp's NOTIFYs (retransmissions too) until one counts ``voice_message``."""
    deadline = time.monotonic() + 15
    seen = []
    while time.monotonic() < deadline:
        notify = lamp.receive_request(1, "NOTIFY")
        if notify is None:
            continue
        lamp.respond(notify, 200)
        seen.append(message_summary(notify)["Voice-Message"])
        if seen[-1] == voice_message:
            return notify
    raise AssertionError(f"the lamp never showed {voice_message}: {seen}")
