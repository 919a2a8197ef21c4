"""Errors of the SIP stack.

A :class:`SipError` carries the status and reason phrase the peer should see,
so whoever catches it can answer without knowing what went wrong.  A
:class:`ParseError` also keeps what could be salvaged of the request, because a
400 can only be sent when Via, From, To, Call-ID and CSeq were readable.
"""

from __future__ import annotations


class SipError(Exception):
    """A request cannot be served; answer with ``status``, ``reason`` and ``headers``
    (those the status calls for: ``Unsupported`` with a 420, ``Min-SE`` with a 422)."""

    def __init__(
        self, status: int, reason: str, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.headers = headers


class ParseError(SipError):
    """Bytes that are not a valid SIP message (RFC 3261 §25; 505 for a bad version).

    ``request`` is the :class:`~pbx.sip.message.Request` salvaged by the parser
    (typed loosely: this module sits below the message model)."""

    def __init__(
        self, reason: str = "Bad Request", *, status: int = 400, request: object | None = None
    ) -> None:
        super().__init__(status, reason)
        self.request = request


class LocalProtocolError(Exception):
    """Our own code misused the stack (e.g. a response with no transaction)."""
