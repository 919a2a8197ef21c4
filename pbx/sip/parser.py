"""Bytes → SIP messages (RFC 3261 §7, §18.3, §25), and stream framing.

``parse_message`` takes one whole message (a datagram, or what the
``StreamFramer`` cut from a TCP/TLS stream) and checks what every element must
be able to rely on: the start line, header syntax, the headers a transaction
needs (Via, From, To, Call-ID, CSeq) and Content-Length.  Anything else is
parsed lazily by the message accessors.  When a request is broken but its
start line and headers could be split, the error carries the request so the
caller can still answer 400.
"""

from __future__ import annotations

import re

from pbx.sip.errors import ParseError
from pbx.sip.message import (
    URI, Message, Request, Response, is_header_name, is_number, is_token,
)

MAX_HEADER_BYTES = 65536
MAX_BODY_BYTES = 1 << 20
_CONTENT_LENGTH = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*)", re.I | re.M)
_HEADER_END = re.compile(rb"\r?\n\r?\n")


def parse_message(data: bytes, *, check: bool = True) -> Request | Response:
    """Parse one whole message; raise :class:`ParseError` if it is not valid SIP.

    ``check=False`` skips the header checks, for tools that must read even a
    broken message (e.g. a test reading the 400 that echoes a bad CSeq).
    """
    data = data.lstrip(b"\r\n")  # §7.5: CRLFs before the start line are ignored
    end = _HEADER_END.search(data)
    if end is None:
        # §18.3: a datagram is a whole message, so its end also ends a header
        # section whose empty line is missing (RFC 4475 §3.1.2.15 ends so): the
        # request is still answered.  Stream framing always cuts at the empty line.
        head, rest = data.rstrip(b"\r\n").decode("utf-8", "surrogateescape"), b""
    else:
        head = data[: end.start()].decode("utf-8", "surrogateescape")
        rest = data[end.end() :]
    lines = _unfold(head.split("\n"))
    message, error = _start_line(lines[0])
    headers = message.headers
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if not colon or not is_header_name(name):
            # read on: the 400 needs the Via, CSeq... that may follow the bad line
            error = error or ParseError(f"Bad Request - Malformed header line {line[:40]!r}")
            continue
        headers.add(name, value.strip(" \t"))
    if error is not None:
        raise _error(message, error.reason, error.status)
    message.body = _body(message, rest)
    if check:
        _check(message)
    return message


def _unfold(raw: list[str]) -> list[str]:
    """Join continuation lines (§7.3.1: LWS folding) and drop the CRs."""
    lines: list[str] = []
    for line in raw:
        line = line.rstrip("\r")
        if line[:1] in (" ", "\t") and lines:
            lines[-1] = lines[-1].rstrip(" \t") + " " + line.strip(" \t")
        else:
            lines.append(line)
    return lines


def _start_line(line: str) -> tuple[Request | Response, ParseError | None]:
    """The message the start line begins, and an error to raise once headers are read.

    Errors in a request line (even a method that is no token) are deferred so
    the 400 (or 505) can copy the headers it needs, when a Via follows; a
    broken status line is simply unparsable.
    """
    if line.startswith("SIP/"):
        parts = line.split(" ", 2)
        if len(parts) < 2 or len(parts[1]) != 3 or not is_number(parts[1]):
            raise ParseError("Bad Request - Malformed status line")
        _check_version(parts[0])
        status = int(parts[1])
        if not 100 <= status <= 699:
            raise ParseError("Bad Request - Status code out of range")
        return Response(status, parts[2] if len(parts) == 3 else ""), None
    parts = line.split(" ")
    method = parts[0]
    if not method:
        raise ParseError("Bad Request - Malformed request line")
    if len(parts) != 3 or not all(parts) or not is_token(method):
        return Request(method, URI("sip", host="invalid")), ParseError(
            "Bad Request - Malformed request line"
        )
    _, uri_text, version = parts
    try:
        uri = URI.parse(uri_text)
    except ParseError:
        return Request(method, URI("sip", host="invalid")), ParseError(
            "Bad Request - Malformed Request-URI"
        )
    try:
        _check_version(version)
    except ParseError as exc:
        return Request(method, uri), exc
    return Request(method, uri), None


def _check_version(version: str) -> None:
    if version.upper() != "SIP/2.0":
        if re.fullmatch(r"(?i)SIP/\d+\.\d+", version):
            raise ParseError("Version Not Supported", status=505)
        raise ParseError("Bad Request - Malformed SIP version")


def _body(message: Message, rest: bytes) -> bytes:
    values = {value.strip() for name, value in message.headers if name == "Content-Length"}
    if not values:
        return rest  # datagram without Content-Length: the body runs to the end (§18.3)
    if len(values) > 1:
        raise _error(message, "Bad Request - Conflicting Content-Length")
    value = values.pop()
    if not is_number(value):
        raise _error(message, "Bad Request - Malformed Content-Length")
    length = int(value)
    if length > len(rest):
        raise _error(message, "Bad Request - Content-Length larger than body")
    return rest[:length]


def _check(message: Message) -> None:
    """Touch what every element relies on, so later accessors cannot fail."""
    try:
        message.vias
        message.call_id
        cseq = message.cseq
        message.from_addr
        message.to_addr
        message.max_forwards
    except ParseError as exc:
        raise _error(message, exc.reason) from None
    if isinstance(message, Request) and cseq.method != message.method:
        raise _error(message, "Bad Request - CSeq method does not match")


def _error(message: Message, reason: str, status: int = 400) -> ParseError:
    """A ParseError that can still be answered when ``message`` is a request."""
    request = message if isinstance(message, Request) else None
    if request is not None and not request.headers.get_all("Via"):
        request = None  # no way to route a response
    return ParseError(reason, status=status, request=request)


def _framing_error(head: bytes, reason: str) -> ParseError:
    """The error a stream breaks on, carrying the request whose header section
    broke it when that parses far enough to be answered (it hears why before
    the connection closes)."""
    try:
        message: Message | None = parse_message(head + b"\r\n\r\n", check=False)
    except ParseError as exc:
        message = exc.request  # type: ignore[assignment]
    return _error(message, reason) if message is not None else ParseError(reason)


class StreamFramer:
    """Cuts a TCP/TLS byte stream into messages by Content-Length (§18.3).

    CRLF keep-alives between messages are consumed; a double CRLF is a ping
    (RFC 5626 §4.4.1) and counted in ``keepalive_pings`` so the transport can
    pong.  A stream that breaks framing raises ParseError: it cannot be
    resynchronised and must be closed (the error carries the request that
    broke it, when it can still be answered).
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.keepalive_pings = 0

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        messages: list[bytes] = []
        buffer = self._buffer
        while buffer:
            if buffer[:4] == b"\r\n\r\n":
                self.keepalive_pings += 1
                del buffer[:4]
                continue
            if buffer[:2] == b"\r\n":
                if len(buffer) < 4 and b"\r\n\r\n".startswith(bytes(buffer)):
                    break  # maybe the first half of a ping
                del buffer[:2]
                continue
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEADER_BYTES:
                    raise ParseError("Bad Request - Headers too long")
                break
            head = bytes(buffer[:end])
            match = _CONTENT_LENGTH.search(head)
            length = 0
            if match is not None:
                value = match.group(1).strip()
                if not value.isdigit():
                    raise _framing_error(head, "Bad Request - Malformed Content-Length")
                length = int(value)
                if length > MAX_BODY_BYTES:
                    raise _framing_error(head, "Bad Request - Body too large")
            total = end + 4 + length
            if len(buffer) < total:
                break
            messages.append(bytes(buffer[:total]))
            del buffer[:total]
        return messages
