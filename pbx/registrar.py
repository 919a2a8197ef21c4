"""The registrar: REGISTER processing per RFC 3261 §10.3 (pure).

Authentication has already happened (``pbx.authn``); this module decides what a
REGISTER does to the location service and what the answer is.  Time is
wall-clock seconds passed in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.utils import formatdate

from pbx.location import Binding, LocationService, binding_id
from pbx.sip.errors import ParseError
from pbx.sip.flow import Flow
from pbx.sip.message import Address, Request, Response, make_response, new_tag

log = logging.getLogger("pbx.registrar")


@dataclass(frozen=True)
class RegistrarPolicy:
    """Expiry limits and contact count (Kamailio registrar module parameters)."""

    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 3600
    max_contacts: int = 10


class Registrar:
    """Applies REGISTER requests to a :class:`LocationService`."""

    def __init__(self, location: LocationService, policy: RegistrarPolicy) -> None:
        self.location = location
        self.policy = policy
        self.accepted = 0  # REGISTERs answered 200 (Kamailio's registrar:accepted_regs)

    def register(
        self, request: Request, user: str, aor: str, flow: Flow, now: float, login: str = "",
    ) -> Response:
        """Process a REGISTER authenticated for extension ``user`` (whose
        address-of-record is ``aor``) by ``login`` (the extension's or one of
        its devices' SIP user name) and build the answer."""
        to_user = request.to_addr.uri.user
        if to_user != user:
            log.warning("REGISTER for %s by a login of %s refused", to_user, user)
            return make_response(request, 403, "Forbidden - To does not match user", to_tag=new_tag())

        if request.contact_star:
            return self._remove_all(request, aor, now)
        if not request.contacts:
            return self._answer(request, aor, now)  # a query (§10.2.3)

        header_expires = request.expires
        path = ", ".join(request.headers.get_all("Path"))[:1000]
        changes: list[tuple[str, Binding | None]] = []
        for contact in request.contacts:
            if contact.uri.scheme not in ("sip", "sips"):
                return make_response(request, 416, "Unsupported URI Scheme - Contact",
                                     to_tag=new_tag())
            if contact.uri.headers:
                # RFC 4475 regescrt: headers in a registered contact would be
                # copied into every request sent there
                return make_response(request, 400, "Bad Request - Contact URI with headers",
                                     to_tag=new_tag())
            expires = self._expires(contact, header_expires)
            if 0 < expires < self.policy.min_expires:
                response = make_response(request, 423, to_tag=new_tag())
                response.headers.add("Min-Expires", str(self.policy.min_expires))
                return response
            key = contact.params.get("+sip.instance") or str(contact.uri)
            ident = binding_id(aor, key)
            existing = self.location.get(aor, key)
            if existing is not None and existing.call_id == request.call_id:
                if request.cseq.number <= existing.cseq:
                    # §10.3 step 7: an out-of-order refresh must not win.
                    return make_response(
                        request, 500, "Server Internal Error - Out of order REGISTER",
                        to_tag=new_tag(),
                    )
            if expires == 0:
                changes.append((ident, None))
                continue
            changes.append(
                (
                    ident,
                    Binding(
                        id=ident,
                        aor=aor,
                        contact=str(contact.uri),
                        expires_at=now + expires,
                        call_id=request.call_id,
                        cseq=request.cseq.number,
                        q=_q_value(contact),
                        instance=contact.params.get("+sip.instance") or "",
                        source_transport=flow.transport,
                        source_host=flow.host,
                        source_port=flow.port,
                        user_agent=(request.headers.get("User-Agent") or "")[:300],
                        login=login or user,
                        path=path,
                    ),
                )
            )

        current = {b.id for b in self.location.lookup(aor, now)}
        after = set(current)
        for ident, binding in changes:
            if binding is None:
                after.discard(ident)
            else:
                after.add(ident)
        if len(after) > self.policy.max_contacts:
            return make_response(request, 403, "Forbidden - Too many contacts", to_tag=new_tag())

        for ident, binding in changes:
            if binding is None:
                self.location.remove(aor, ident)
            else:
                self.location.put(binding)
        return self._answer(request, aor, now)

    def _expires(self, contact: Address, header_expires: int | None) -> int:
        raw = contact.params.get("expires")
        if raw is not None:
            try:
                value = int(raw)
            except ValueError:
                value = self.policy.default_expires
        elif header_expires is not None:
            value = header_expires
        else:
            value = self.policy.default_expires
        return max(0, min(value, self.policy.max_expires))

    def _remove_all(self, request: Request, aor: str, now: float) -> Response:
        """``Contact: *`` with ``Expires: 0`` removes every binding (§10.2.2)."""
        if request.expires != 0 or len(request.headers.get_all("Contact")) != 1:
            return make_response(
                request, 400, "Bad Request - Contact * needs Expires: 0", to_tag=new_tag()
            )
        self.location.remove_all(aor)
        return self._answer(request, aor, now)

    def _answer(self, request: Request, aor: str, now: float) -> Response:
        """200 OK listing every current binding with its remaining time (§10.3 step 8)."""
        self.accepted += 1
        response = make_response(request, 200, to_tag=new_tag())
        for binding in self.location.lookup(aor, now):
            remaining = max(0, int(binding.expires_at - now))
            response.headers.add("Contact", f"<{binding.contact}>;expires={remaining}")
        response.headers.add("Date", formatdate(now, usegmt=True))
        for path in request.headers.get_all("Path"):  # RFC 3327 §5.3: the Path stored
            response.headers.add("Path", path)
        return response


def _q_value(contact: Address) -> float:
    raw = contact.params.get("q")
    if raw is None:
        return 1.0
    try:
        q = float(raw)
    except ValueError:
        raise ParseError("Bad Request - Malformed q value") from None
    if not 0.0 <= q <= 1.0:
        raise ParseError("Bad Request - q value out of range")
    return q
