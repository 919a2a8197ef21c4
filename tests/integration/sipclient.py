"""A tiny blocking SIP client over real sockets, for integration cases that
sipp scenarios express badly (many contacts, odd headers, garbage bytes).
It builds requests as text and authenticates with the client side of
``pbx.sip.auth``; the PBX under test is a separate process."""

from __future__ import annotations

import socket
import ssl
import uuid

from pbx.sip.auth import build_authorization
from pbx.sip.message import Response
from pbx.sip.parser import StreamFramer, parse_message


class SipClient:
    """One socket (UDP, TCP or TLS) to the PBX, sending requests and reading responses."""

    def __init__(self, host: str, port: int, transport: str = "UDP", source: str | None = None):
        self.host, self.port, self.transport = host, port, transport.upper()
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
        """The next response, or None when nothing comes within ``timeout``."""
        self.sock.settimeout(timeout)
        try:
            while True:
                if self.pending:
                    message = parse_message(self.pending.pop(0), check=False)
                    assert isinstance(message, Response)
                    if message.status == 100:
                        continue
                    return message
                if self.transport == "UDP":
                    self.pending.append(self.sock.recvfrom(65535)[0])
                else:
                    self.pending.extend(self.framer.feed(self.sock.recv(65535)))
        except (TimeoutError, socket.timeout):
            return None

    def host_port(self) -> str:
        host = f"[{self.local_host}]" if ":" in self.local_host else self.local_host
        return f"{host}:{self.local_port}"

    def request(
        self,
        method: str,
        user: str,
        *,
        contacts: list[str] | None = None,
        headers: dict[str, str] | None = None,
        authorization: str | None = None,
        body: bytes = b"",
    ) -> str:
        """Send a request from ``user``; returns its text (without a final body)."""
        self.cseq += 1
        server = f"[{self.host}]" if ":" in self.host else self.host
        lines = [
            f"{method} sip:{server}:{self.port} SIP/2.0",
            f"Via: SIP/2.0/{self.transport} {self.host_port()};branch=z9hG4bK{uuid.uuid4().hex};rport",
            f"From: <sip:{user}@{server}>;tag={uuid.uuid4().hex[:10]}",
            f"To: <sip:{user}@{server}>",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq} {method}",
            "Max-Forwards: 70",
        ]
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
    ) -> Response | None:
        """REGISTER with digest auth: the unauthenticated try, then the answer to the challenge."""
        if contacts is None:
            contacts = [f"<sip:{user}@{self.host_port()};transport={self.transport.lower()}>"]
        extra = dict(headers or {})
        if expires is not None:
            extra["Expires"] = str(expires)
        self.request("REGISTER", user, contacts=contacts, headers=extra)
        challenge = self.receive()
        if challenge is None or challenge.status != 401:
            return challenge
        server = f"[{self.host}]" if ":" in self.host else self.host
        authorization = build_authorization(
            challenge.headers.get("WWW-Authenticate") or "",
            method="REGISTER",
            uri=f"sip:{server}:{self.port}",
            username=user,
            password=password,
        )
        self.request("REGISTER", user, contacts=contacts, headers=extra, authorization=authorization)
        return self.receive()
