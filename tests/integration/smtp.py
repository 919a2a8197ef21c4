"""A real SMTP server for tests (aiosmtpd): plain, STARTTLS or implicit TLS
with a self-signed certificate, AUTH when users are given, and refusals on
demand; what it takes is parsed as a receiver would."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from pbx.transport.tls import self_signed


@dataclass
class Received:
    """One email as the server took it."""

    email: EmailMessage
    sender: str
    recipients: list[str]
    tls: bool  # the session was encrypted (STARTTLS or implicit TLS)
    login: str | None  # who authenticated, if anyone


@dataclass
class Inbox:
    """The server's side: what arrived, and what it refuses."""

    users: dict[str, str] = field(default_factory=dict)
    refuse: dict[str, str] = field(default_factory=dict)  # recipient → "550 …" answer
    received: list[Received] = field(default_factory=list)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,  # noqa: N802
                          address: str, rcpt_options: list[str]) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session,  # noqa: N802
                          envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        email = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(email, EmailMessage)
        login = session.auth_data.login.decode() if isinstance(session.auth_data,
                                                               LoginPassword) else None
        tls = server.transport is not None and \
            server.transport.get_extra_info("ssl_object") is not None
        self.received.append(Received(email, str(envelope.mail_from), list(envelope.rcpt_tos),
                                      tls, login))
        return "250 Message accepted for delivery"

    def authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                     auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and \
            self.users.get(auth_data.login.decode()) == auth_data.password.decode()
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    def wait(self, count: int, timeout: float) -> list[Received]:
        """The emails once ``count`` have arrived (AssertionError after ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"{len(self.received)} of {count} emails came"
            time.sleep(0.1)
        return self.received


@contextmanager
def smtp_server(port: int, *, security: str = "none", certs: Path | None = None,
                users: dict[str, str] | None = None,
                refuse: dict[str, str] | None = None) -> Iterator[Inbox]:
    """An SMTP server on 127.0.0.1:``port`` until the block ends; ``security``
    as the PBX's ``smtp_security`` (``starttls`` requires it; both TLS kinds
    use a self-signed certificate made in ``certs``)."""
    inbox = Inbox(users or {}, refuse or {})
    kwargs: dict[str, Any] = {"authenticator": inbox.authenticate, "auth_required": bool(users)}
    if security != "none":
        assert certs is not None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*self_signed(certs, "smtp.test", ["127.0.0.1", "localhost"]))
        if security == "starttls":
            kwargs.update(tls_context=context, require_starttls=True)
        else:  # aiosmtpd offers AUTH only after its own STARTTLS: this is TLS from the start
            kwargs.update(ssl_context=context, auth_require_tls=False, auth_required=False)
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()
