"""Who is asking? Digest authentication policy for incoming requests (pure).

Joins the digest mechanics (``pbx.sip.auth``), the credential directory and the
failed-auth guard (``pbx.pike``) into one decision per request: go on as a known
user, or answer with a challenge or a refusal.  Sources the guard has blocked
are dropped earlier, by the server, before their bytes are even parsed.
REGISTER is challenged with 401/WWW-Authenticate, everything else with
407/Proxy-Authenticate, as Asterisk and Kamailio do (RFC 3261 §22.3).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from pbx.pike import SourceGuard
from pbx.sip.auth import AuthOutcome, DigestAuthenticator, parse_auth_header
from pbx.sip.message import Request, Response, make_response, new_tag

log = logging.getLogger("pbx.authn")


@dataclass(frozen=True)
class AuthDecision:
    """``username`` when authenticated, else the ``response`` to send."""

    username: str | None = None
    response: Response | None = None


class RequestAuthenticator:
    """Authenticates requests against an organisation's credentials."""

    def __init__(self, digest: DigestAuthenticator, guard: SourceGuard) -> None:
        self.digest = digest
        self.guard = guard

    def check(
        self, request: Request, source: str, now: float,
        password_for: Callable[[str], str | None],
    ) -> AuthDecision:
        """Decide on ``request`` from IP ``source`` at wall-clock ``now``;
        ``password_for`` looks a user name up in the organisation addressed."""
        proxy = request.method != "REGISTER"
        credentials = self._credentials(request, proxy)
        if credentials is None:
            return AuthDecision(response=self._challenge(request, proxy, now))
        result = self.digest.verify(request.method, credentials, password_for, now)
        if result.outcome is AuthOutcome.OK:
            self.guard.forget(source, now)
            return AuthDecision(username=result.username)
        if result.outcome is AuthOutcome.STALE:
            return AuthDecision(response=self._challenge(request, proxy, now, stale=True))
        if result.outcome is AuthOutcome.CHALLENGE:
            return AuthDecision(response=self._challenge(request, proxy, now))
        if result.outcome is AuthOutcome.BAD_REQUEST:
            return AuthDecision(
                response=make_response(request, 400, f"Bad Request - {result.reason}", to_tag=new_tag())
            )
        log.warning(
            "authentication failed for %r from %s (%s %s)",
            result.username, source, request.method, request.uri,
        )
        self.guard.record(source, now)
        return AuthDecision(response=make_response(request, 403, to_tag=new_tag()))

    def _credentials(self, request: Request, proxy: bool) -> str | None:
        """The Authorization value for our realm, if the request carries one."""
        name = "Proxy-Authorization" if proxy else "Authorization"
        for value in request.headers.get_all(name):
            try:
                _, params = parse_auth_header(value)
            except ValueError:
                return value  # let verify() answer 400 with its reason
            if params.get("realm") == self.digest.realm:
                return value
        return None

    def _challenge(self, request: Request, proxy: bool, now: float, stale: bool = False) -> Response:
        status, header = (407, "Proxy-Authenticate") if proxy else (401, "WWW-Authenticate")
        response = make_response(request, status, to_tag=new_tag())
        for value in self.digest.challenge(now, stale=stale):
            response.headers.add(header, value)
        return response
