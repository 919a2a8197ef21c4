"""What every request must pass before a handler sees it (RFC 3261 §8.2), pure.

The parser checks what a transaction needs (Via, From, To, Call-ID, CSeq,
Max-Forwards); the other headers parse lazily, on first use.  Call control
and dialogs use a few more, some of them long after the request came in (the
caller's Contact when the callee answers): a header that fails to parse
there cannot be answered any more, and the call is lost half-made.  So
:func:`check_request` parses every header call control and dialogs rely on
at the door and raises the answer: a :class:`ParseError` (400, the reason
naming the header, e.g. ``Bad Request - Malformed Contact``) or a
:class:`SipError` (420 unknown extension, 422 session interval too small).
Afterwards those accessors of the request cannot fail.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar
from urllib.parse import unquote

from pbx.sip.errors import ParseError, SipError
from pbx.sip.message import Address, Replaces, Request

T = TypeVar("T")

# Option tags (RFC 3261 §19.2) we implement: Path (RFC 3327), Replaces (RFC 3891),
# session timers (RFC 4028).  OPTIONS lists them in Supported.
SUPPORTED = ("path", "replaces", "timer")
# Requests that create a dialog or refresh its remote target (RFC 3261 §12.1,
# §12.2; RFC 6665 §4.1.2.1; RFC 3515; RFC 3311): their Contact becomes the
# remote target, so it must be exactly one SIP URI (§8.1.1.8).
DIALOG_CONTACT = frozenset({"INVITE", "SUBSCRIBE", "REFER", "NOTIFY", "UPDATE"})
MIN_SE = 90  # RFC 4028 §4: the smallest session interval anyone may ask for
_SIP = ("sip", "sips")


def check_request(request: Request) -> None:
    """Raise the answer ``request`` deserves if a header it relies on is broken."""
    _parsed("Via", lambda: request.vias)
    _parsed("From", lambda: request.from_addr)
    _parsed("To", lambda: request.to_addr)
    _parsed("Call-ID", lambda: request.call_id)
    _parsed("CSeq", lambda: request.cseq)
    _parsed("Max-Forwards", lambda: request.max_forwards)
    _check_contacts(request)
    for name in ("Record-Route", "Route"):
        _check_routes(request, name)
    _check_replaces(request)
    if request.method == "REFER":
        _check_refer_to(request)
    _check_session_expires(request)
    _check_require(request)


def _parsed(header: str, read: Callable[..., T], *args: str) -> T:
    """``read(*args)``, its ParseError re-raised with a reason that names ``header``."""
    try:
        return read(*args)
    except ParseError as exc:
        if header in exc.reason:  # "Missing Refer-To", "Multiple Replaces headers"
            raise
        raise ParseError(f"Bad Request - Malformed {header}") from exc


def _check_contacts(request: Request) -> None:
    """§8.1.1.8: one SIP URI in a dialog's requests; §10.2: any number (or ``*``) in a REGISTER."""
    if request.method == "REGISTER":
        _parsed("Contact", lambda: request.contacts)  # "*" and its rules: the registrar's
        return
    if request.method not in DIALOG_CONTACT:
        return  # not used: a phone's quirk there must not stop a BYE
    values = request.headers.get_all("Contact")
    if len(values) > 1:
        raise ParseError("Bad Request - More than one Contact")
    if request.contact_star:
        raise ParseError("Bad Request - Malformed Contact")
    for contact in _parsed("Contact", lambda: request.contacts):
        if contact.uri.scheme not in _SIP:
            raise ParseError("Bad Request - Contact is not a SIP URI")


def _check_routes(request: Request, name: str) -> None:
    """Route and Record-Route (§20.30, §20.34): SIP URIs, the route set of a dialog."""
    for value in request.headers.get_all(name):
        address = _parsed(name, Address.parse, value)
        if address.uri.scheme not in _SIP:
            raise ParseError(f"Bad Request - {name} is not a SIP URI")


def _check_replaces(request: Request) -> None:
    """RFC 3891 §3: a Replaces header only in an INVITE, and at most one."""
    if "Replaces" not in request.headers:
        return
    if request.method != "INVITE":
        raise ParseError(f"Bad Request - Replaces in {request.method}")
    _parsed("Replaces", lambda: request.replaces)


def _check_refer_to(request: Request) -> None:
    """RFC 3515 §2.4.1: exactly one Refer-To; a ``?Replaces=`` in it (an attended
    transfer, RFC 3891 §7.1) must name a dialog."""
    target = _parsed("Refer-To", lambda: request.refer_to).uri
    for item in target.headers.split("&") if target.headers else []:
        name, _, value = item.partition("=")
        if name.lower() == "replaces":
            _parsed("Refer-To", Replaces.parse, unquote(value))


def _check_session_expires(request: Request) -> None:
    """RFC 4028 §4, §9: a session interval under 90 s is refused with 422 and our
    Min-SE, to a phone that said it supports timers (one that did not would not
    understand the 422: its Session-Expires is then ignored)."""
    timer = _parsed("Session-Expires", lambda: request.session_expires)
    if timer is None or timer.seconds >= MIN_SE:
        return
    tags = [t.lower() for n in ("Supported", "Require") for t in request.headers.get_all(n)]
    if "timer" in tags:
        raise SipError(422, "Session Interval Too Small", headers=(("Min-SE", str(MIN_SE)),))


def _check_require(request: Request) -> None:
    """§8.2.2.3: 420 with Unsupported listing what we do not do.  ``replaces`` is
    understood only with a Replaces header to act on; ACK and CANCEL carry no
    requirements (§8.2.2.3)."""
    if request.method in ("ACK", "CANCEL"):
        return
    understood = {"path", "timer"}
    if "Replaces" in request.headers:
        understood.add("replaces")
    unsupported = [
        tag
        for name in ("Require", "Proxy-Require")
        for tag in request.headers.get_all(name)
        if tag.lower() not in understood
    ]
    if unsupported:
        raise SipError(420, "Bad Extension", headers=(("Unsupported", ", ".join(unsupported)),))
