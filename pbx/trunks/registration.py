"""A trunk's registration with its carrier (RFC 3261 §10.2, the UAC side), pure.

The PBX REGISTERs the trunk's user at the carrier's registrar, answers a
401/407 once per challenge with digest credentials (RFC 3261 §22.2), and
refreshes before the granted expiry runs out.  A refusal or silence backs
off exponentially (RFC 5626 §4.5: from 30 s, doubling, at most 30 min), so a
carrier that is down is not hammered and one that comes back is found again.
Nothing here reads the clock or a socket: the glue
(:mod:`pbx.trunks.service`) passes ``now`` in and sends what comes out.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from pbx.sip.auth import build_authorization
from pbx.sip.errors import SipError
from pbx.sip.message import URI, Headers, Request, Response, new_branch, new_call_id, new_tag

from pbx.trunks.settings import TrunkSettings

BACKOFF_FIRST = 30.0  # seconds after the first failure (RFC 5626 §4.5 base time)
BACKOFF_MAX = 1800.0
REFRESH_MARGIN = 0.9  # refresh at 90 % of the granted time …
REFRESH_BEFORE = 30.0  # … but at least this long before it runs out


class State(enum.Enum):
    UNREGISTERED = "unregistered"
    REGISTERING = "registering"
    REGISTERED = "registered"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Status:
    """What the API and the events show of a registration."""

    state: State
    code: int = 0  # the carrier's last answer (0: none yet, 408: no answer)
    reason: str = ""
    expires_at: float | None = None  # while registered
    retry_at: float | None = None  # when it tries again


@dataclass
class Registration:
    """One trunk's registration: what to send and when."""

    trunk: TrunkSettings
    contact: str  # our Contact, e.g. <sip:pbx-trunk@192.0.2.1:5060;transport=udp>
    call_id: str = field(default_factory=new_call_id)
    from_tag: str = field(default_factory=new_tag)
    cseq: int = 0
    state: State = State.UNREGISTERED
    code: int = 0
    reason: str = ""
    expires_at: float | None = None
    next_at: float = 0.0  # when :meth:`due` says to send
    failures: int = 0
    answered_challenge: bool = False  # this attempt already carries credentials

    @property
    def status(self) -> Status:
        retry = self.next_at if self.state is State.FAILED else None
        expires = self.expires_at if self.state is State.REGISTERED else None
        return Status(self.state, self.code, self.reason, expires, retry)

    @property
    def registrar_uri(self) -> URI:
        host, port = self.trunk.registrar
        default = 5061 if self.trunk.transport == "tls" else 5060
        return URI("sip", host=host, port=None if port == default else port)

    def due(self, now: float) -> bool:
        """Is it time to (re-)register?"""
        return self.state is not State.REGISTERING and now >= self.next_at

    def request(self, sent_by: str, now: float, authorization: str | None = None,
                header: str = "Authorization") -> Request:
        """The next REGISTER (CSeq up, the same Call-ID across refreshes: §10.2.4)."""
        self.cseq += 1
        self.state = State.REGISTERING
        self.answered_challenge = authorization is not None
        trunk = self.trunk
        aor = f"<sip:{trunk.username}@{trunk.domain}>"
        headers = Headers()
        headers.add("Via", f"SIP/2.0/{trunk.transport.upper()} {sent_by};branch={new_branch()};rport")
        headers.add("Max-Forwards", "70")
        headers.add("From", f"{aor};tag={self.from_tag}")
        headers.add("To", aor)
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{self.cseq} REGISTER")
        headers.add("Contact", self.contact)
        headers.add("Expires", str(trunk.expiry))
        if authorization is not None:
            headers.add(header, authorization)
        return Request("REGISTER", self.registrar_uri, headers)

    def on_response(self, response: Response, sent_by: str, now: float) -> Request | None:
        """The carrier answered; returns the REGISTER to send at once (the
        answer to a challenge), or None (wait for :meth:`due`)."""
        status = response.status
        if status < 200:
            return None
        if status in (401, 407) and not self.answered_challenge:
            header = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
            challenge = response.headers.get(header)
            if challenge:
                try:
                    authorization = build_authorization(
                        challenge, method="REGISTER", uri=str(self.registrar_uri),
                        username=self.trunk.auth_username or self.trunk.username,
                        password=self.trunk.password, cnonce=new_tag(),
                    )
                except ValueError as exc:
                    self._failed(status, f"cannot answer the challenge: {exc}", now)
                    return None
                return self.request(sent_by, now, authorization,
                                    "Authorization" if status == 401 else "Proxy-Authorization")
        if 200 <= status < 300:
            self._registered(response, now)
        elif status == 423:  # Interval Too Brief: ask for what it wants next time
            self._failed(status, response.reason, now)
            self.next_at = now
        else:
            self._failed(status, response.reason, now)
        return None

    def on_timeout(self, now: float) -> None:
        """No answer at all (the transaction's timer B/F fired)."""
        self._failed(408, "Request Timeout - the carrier did not answer", now)

    def _registered(self, response: Response, now: float) -> None:
        granted = _granted(response, self.contact, self.trunk.expiry)
        self.state, self.code, self.reason = State.REGISTERED, response.status, response.reason
        self.failures = 0
        self.expires_at = now + granted
        self.next_at = now + min(granted * REFRESH_MARGIN, max(granted - REFRESH_BEFORE, 1.0))

    def _failed(self, code: int, reason: str, now: float) -> None:
        self.failures += 1
        self.state, self.code, self.reason = State.FAILED, code, reason
        self.expires_at = None
        self.next_at = now + min(BACKOFF_FIRST * 2 ** (self.failures - 1), BACKOFF_MAX)


def _granted(response: Response, contact: str, asked: int) -> float:
    """The expiry the registrar granted our contact: its ``expires`` parameter
    in the 200's Contact list, else the Expires header, else what we asked."""
    ours = contact.strip("<>").split(";")[0]
    try:
        for address in response.contacts:
            if str(address.uri).split(";")[0] == ours and "expires" in address.params:
                return float(address.params["expires"])
        header = response.headers.get("Expires")
        return float(header) if header else float(asked)
    except (ValueError, TypeError, SipError):  # a registrar's odd Contact or Expires
        return float(asked)
