"""The SIP message model (RFC 3261 §7, §19, §20), pure and allocation-light.

Headers keep their raw text and are parsed on first use: a registrar touches
five headers of a REGISTER, a proxy even fewer, so parsing everything up front
would be wasted work.  Parsed values are cached on the message until its
headers change.  Raw text is kept verbatim so that a message re-serialises to
what arrived (apart from folding and compact names, which are normalised).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from pbx.sip.errors import ParseError

T = TypeVar("T")

# RFC 3261 §7.3.3 and later RFCs: compact header names.
COMPACT = {
    "a": "Accept-Contact", "b": "Referred-By", "c": "Content-Type", "d": "Request-Disposition",
    "e": "Content-Encoding", "f": "From", "i": "Call-ID", "j": "Reject-Contact",
    "k": "Supported", "l": "Content-Length", "m": "Contact", "n": "Identity-Info",
    "o": "Event", "r": "Refer-To", "s": "Subject", "t": "To", "u": "Allow-Events",
    "v": "Via", "x": "Session-Expires", "y": "Identity",
}
_WELL_KNOWN = (
    "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Authentication-Info",
    "Authorization", "Call-ID", "Call-Info", "Contact", "Content-Disposition",
    "Content-Encoding", "Content-Language", "Content-Length", "Content-Type", "CSeq", "Date",
    "Error-Info", "Expires", "From", "In-Reply-To", "Max-Forwards", "MIME-Version",
    "Min-Expires", "Organization", "Path", "Priority", "Proxy-Authenticate",
    "Proxy-Authorization", "Proxy-Require", "RAck", "Reason", "Record-Route", "Refer-To",
    "Referred-By", "Reply-To", "Require", "Retry-After", "Route", "RSeq", "Server",
    "Service-Route", "Session-Expires", "Subject", "Supported", "Timestamp", "To",
    "Unsupported", "User-Agent", "Via", "Warning", "WWW-Authenticate", "Event",
    "Allow-Events", "Subscription-State", "Min-SE", "P-Asserted-Identity",
    "P-Preferred-Identity", "Privacy", "Replaces", "Diversion", "History-Info",
)
CANONICAL = {name.lower(): name for name in _WELL_KNOWN}

# Headers whose values are comma-separated lists (RFC 3261 §7.3.1): get_all()
# splits these.  The auth headers and Date contain commas but are single values.
LIST_HEADERS = frozenset(
    name.lower()
    for name in (
        "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Call-Info",
        "Contact", "Content-Encoding", "Content-Language", "Error-Info", "In-Reply-To",
        "Path", "Proxy-Require", "Reason", "Record-Route", "Require", "Route",
        "Service-Route", "Supported", "Unsupported", "Via", "Warning", "Allow-Events",
        "Accept-Contact", "Reject-Contact", "Request-Disposition", "P-Asserted-Identity",
        "History-Info", "Diversion",
    )
)

REASONS = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 200: "OK", 202: "Accepted", 300: "Multiple Choices",
    301: "Moved Permanently", 302: "Moved Temporarily", 380: "Alternative Service",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone",
    413: "Request Entity Too Large", 414: "Request-URI Too Long",
    415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 420: "Bad Extension",
    421: "Extension Required", 422: "Session Interval Too Small", 423: "Interval Too Brief", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    484: "Address Incomplete", 485: "Ambiguous", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 489: "Bad Event", 491: "Request Pending",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
    513: "Message Too Large", 600: "Busy Everywhere", 603: "Decline",
    604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}

_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+)\Z")
_VIA = re.compile(r"\s*([^/\s]+)\s*/\s*([^/\s]+)\s*/\s*([^\s/]+)\s+(\S.*?)\s*\Z", re.S)
MAX_CSEQ = 2**31 - 1
MAX_DELTA = 2**32 - 1


_URI_FORBIDDEN = re.compile(r'[ \t\r\n<>"]')
_NAMES: dict[str, tuple[str, str]] = {}  # a name as written → (key, canonical name)
_NAMES_MAX = 4096  # names as written are few (a dozen per message); a flood of odd ones is not kept


def header_key(name: str) -> tuple[str, str]:
    """``(lower-case key, canonical name)`` of a header name, remembered: the
    same dozen names arrive in every message, so the hot path looks them up
    once (the parser's profile under REGISTER load showed it)."""
    entry = _NAMES.get(name)
    if entry is None:
        full = canonical(name)
        entry = (full.lower(), full)
        if len(_NAMES) < _NAMES_MAX and is_token(name):
            _NAMES[name] = entry
    return entry


def is_header_name(name: str) -> bool:
    """A valid header name (a token); those seen before need no regex."""
    return name in _NAMES or is_token(name)


def canonical(name: str) -> str:
    """The full, conventionally cased name of a header (compact forms expanded)."""
    low = name.lower()
    if len(low) == 1:
        return COMPACT.get(low, name)
    return CANONICAL.get(low, name)


def is_token(text: str) -> bool:
    return bool(_TOKEN.match(text))


def is_number(text: str) -> bool:
    """ASCII digits only (RFC 3261 §25.1 DIGIT): str.isdigit() also takes "²", which int() refuses."""
    return text.isascii() and text.isdigit()


def split_outside_quotes(value: str, sep: str) -> list[str]:
    """Split on ``sep`` where it is not inside a quoted string or ``<...>``."""
    if sep not in value:
        return [value]
    if '"' not in value and "<" not in value:
        return value.split(sep)  # the common case, without the walk below (a hot path)
    parts: list[str] = []
    start = 0
    quoted = angle = False
    i, n = 0, len(value)
    while i < n:
        ch = value[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            angle = True
        elif ch == ">":
            angle = False
        elif ch == sep and not angle:
            parts.append(value[start:i])
            start = i + 1
        i += 1
    if quoted:
        raise ParseError("Bad Request - Unterminated quoted string")
    parts.append(value[start:])
    return parts


def parse_params(text: str) -> dict[str, str | None]:
    """``;name=value;flag`` → dict with lower-case names (values kept raw, quotes and all)."""
    params: dict[str, str | None] = {}
    for item in split_outside_quotes(text, ";"):
        item = item.strip()
        if not item:
            continue
        name, eq, value = item.partition("=")
        name = name.strip()
        if not name or not is_token(name):
            raise ParseError(f"Bad Request - Malformed parameter {name!r}")
        params[name.lower()] = value.strip() if eq else None
    return params


def format_params(params: dict[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


def unquote(text: str) -> str:
    """The content of a quoted-string, escapes resolved (RFC 3261 §25.1)."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1], flags=re.S)
    return text


def _split_hostport(text: str) -> tuple[str, int | None]:
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ParseError("Bad Request - Malformed IPv6 reference")
        host, rest = text[: end + 1], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ParseError("Bad Request - Malformed host")
        port_text = rest[1:] if rest else ""
    else:
        host, _, port_text = text.partition(":")
    if not host or not _HOST.match(host):
        raise ParseError(f"Bad Request - Malformed host {host!r}")
    if host.startswith("["):
        host = host[1:-1]  # kept bare; _format_host brackets it again
    if not port_text:
        return host, None
    if not is_number(port_text) or int(port_text) > 65535:
        raise ParseError(f"Bad Request - Malformed port {port_text!r}")
    return host, int(port_text)


def _format_host(host: str) -> str:
    """Bracket a bare IPv6 address for use in a URI or Via."""
    return f"[{host}]" if ":" in host else host


@dataclass(slots=True)
class URI:
    """A SIP/SIPS URI (§19.1) or, for other schemes, an opaque absolute URI."""

    scheme: str
    user: str | None = None
    host: str = ""  # IPv6 addresses without brackets
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: str = ""
    password: str | None = None
    opaque: str | None = None

    @classmethod
    def parse(cls, text: str) -> URI:
        scheme, colon, rest = text.partition(":")
        if not colon or not scheme or not scheme[0].isalpha() or not rest:
            raise ParseError(f"Bad Request - Malformed URI {text[:80]!r}")
        scheme = scheme.lower()
        if _URI_FORBIDDEN.search(rest) is not None:
            raise ParseError(f"Bad Request - Malformed URI {text[:80]!r}")
        if scheme not in ("sip", "sips"):
            return cls(scheme, opaque=rest)
        user = password = None
        at = rest.rfind("@")
        if at >= 0:
            userinfo, rest = rest[:at], rest[at + 1 :]
            user, _, pw = userinfo.partition(":")
            password = pw or None
            if not user:
                raise ParseError("Bad Request - Empty user part in URI")
        rest, _, headers = rest.partition("?")
        hostport, _, param_text = rest.partition(";")
        host, port = _split_hostport(hostport)
        params = parse_params(param_text) if param_text else {}
        return cls(scheme, user, host.lower(), port, params, headers, password)

    def __str__(self) -> str:
        if self.opaque is not None:
            return f"{self.scheme}:{self.opaque}"
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out.append(":" + self.password)
            out.append("@")
        out.append(_format_host(self.host))
        if self.port is not None:
            out.append(f":{self.port}")
        out.append(format_params(self.params))
        if self.headers:
            out.append("?" + self.headers)
        return "".join(out)


@dataclass(slots=True)
class Address:
    """A name-addr or addr-spec with header parameters (From, To, Contact, Route…)."""

    display: str | None
    uri: URI
    params: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Address:
        text = text.strip()
        display: str | None = None
        if text.startswith('"'):
            end = _quoted_end(text)
            display = text[: end + 1]
            text = text[end + 1 :].lstrip()
            if not text.startswith("<"):
                raise ParseError("Bad Request - Display name without <URI>")
        lt = text.find("<")
        if lt >= 0:
            if display is None:
                display = text[:lt].strip() or None
                if display is not None and not all(is_token(w) for w in display.split()):
                    raise ParseError("Bad Request - Malformed display name")
            gt = text.find(">", lt)
            if gt < 0:
                raise ParseError("Bad Request - Unterminated <URI>")
            uri = URI.parse(text[lt + 1 : gt])
            rest = text[gt + 1 :].strip()
            if rest and not rest.startswith(";"):
                raise ParseError("Bad Request - Junk after <URI>")
        else:
            # addr-spec: parameters after the URI belong to the header (§20.10).
            uri_text, _, rest = text.partition(";")
            uri_text = uri_text.rstrip(" \t")  # LWS before ;params is allowed (RFC 4475 wsinv)
            if not uri_text or any(c in uri_text for c in ", ?"):
                raise ParseError("Bad Request - Malformed address")
            uri = URI.parse(uri_text)
            rest = ";" + rest if rest else ""
        return cls(display, uri, parse_params(rest) if rest else {})

    def __str__(self) -> str:
        name = f"{self.display} " if self.display else ""
        return f"{name}<{self.uri}>{format_params(self.params)}"

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    @property
    def display_name(self) -> str | None:
        return unquote(self.display) if self.display else None


def _quoted_end(text: str) -> int:
    """Index of the quote closing the quoted-string that opens ``text``."""
    i = 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return i
        i += 1
    raise ParseError("Bad Request - Unterminated quoted string")


@dataclass(slots=True)
class Via:
    """One Via hop (§20.42)."""

    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Via:
        head, _, param_text = text.partition(";")
        match = _VIA.match(head)
        if match is None:
            raise ParseError("Bad Request - Malformed Via")
        name, version, transport, sent_by = match.groups()
        if name.upper() != "SIP" or version != "2.0":
            raise ParseError("Bad Request - Unsupported Via protocol")
        host, port = _split_hostport(sent_by.replace(" ", "").replace("\t", ""))
        return cls(transport.upper(), host.lower(), port, parse_params(param_text) if param_text else {})

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"SIP/2.0/{self.transport} {_format_host(self.host)}{port}{format_params(self.params)}"

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def sent_by(self) -> tuple[str, int]:
        """Host and port (default by transport) the response goes back to (§18.2.2)."""
        default = 5061 if self.transport == "TLS" else 5060
        return self.host, self.port if self.port is not None else default


@dataclass(frozen=True, slots=True)
class CSeq:
    number: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        parts = text.split()
        if len(parts) != 2 or not is_number(parts[0]) or not is_token(parts[1]):
            raise ParseError("Bad Request - Malformed CSeq")
        number = int(parts[0])
        if number > MAX_CSEQ:
            raise ParseError("Bad Request - CSeq number too large")
        return cls(number, parts[1])

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


@dataclass(frozen=True, slots=True)
class Replaces:
    """The dialog an INVITE takes over (RFC 3891 §6.1): its Call-ID and both tags.

    ``to_tag`` and ``from_tag`` are as the sender of the Replaces sees them;
    ``early_only``: replace the dialog only while it is still early.
    """

    call_id: str
    to_tag: str
    from_tag: str
    early_only: bool = False

    @classmethod
    def parse(cls, text: str) -> Replaces:
        call_id, _, param_text = text.partition(";")
        call_id = call_id.strip()
        if not call_id or any(c.isspace() for c in call_id):
            raise ParseError("Bad Request - Malformed Replaces")
        params = parse_params(param_text)
        to_tag, from_tag = params.get("to-tag"), params.get("from-tag")
        if not to_tag or not from_tag or not is_token(to_tag) or not is_token(from_tag):
            raise ParseError("Bad Request - Replaces needs to-tag and from-tag")
        return cls(call_id, to_tag, from_tag, "early-only" in params)


@dataclass(frozen=True, slots=True)
class SessionExpires:
    """A session timer (RFC 4028 §4): the interval and who refreshes (None: not said)."""

    seconds: int
    refresher: str | None = None

    @classmethod
    def parse(cls, text: str) -> SessionExpires:
        value, _, param_text = text.partition(";")
        value = value.strip()
        if not is_number(value):
            raise ParseError("Bad Request - Malformed Session-Expires")
        params = parse_params(param_text)
        refresher = params.get("refresher")
        if "refresher" in params and (refresher or "").lower() not in ("uac", "uas"):
            raise ParseError("Bad Request - Malformed Session-Expires refresher")
        return cls(min(int(value), MAX_DELTA), refresher.lower() if refresher else None)


class Headers:
    """An ordered multimap of header fields with case-insensitive names.

    ``cache`` holds values parsed from these headers; every change clears it.
    """

    __slots__ = ("_items", "cache")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str, str]] = []
        self.cache: dict[str, object] = {}
        for name, value in items:
            key, name = header_key(name)
            self._items.append((key, name, value))

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first field's raw value, or ``default``."""
        key = header_key(name)[0]
        for k, _, value in self._items:
            if k == key:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value, list-valued headers split at their commas."""
        key = header_key(name)[0]
        values = [value for k, _, value in self._items if k == key]
        if key in LIST_HEADERS:
            return [
                part.strip()
                for value in values
                for part in split_outside_quotes(value, ",")
                if part.strip()
            ]
        return values

    def count(self, name: str) -> int:
        key = header_key(name)[0]
        return sum(1 for k, _, _ in self._items if k == key)

    def add(self, name: str, value: str) -> None:
        key, name = header_key(name)
        self._items.append((key, name, value))
        self.cache.clear()

    def set(self, name: str, value: str) -> None:
        """Replace every field of this name by one, where the first one was."""
        key, name = header_key(name)
        position = next((i for i, item in enumerate(self._items) if item[0] == key), None)
        self._items = [item for item in self._items if item[0] != key]
        entry = (key, name, value)
        if position is None:
            self._items.append(entry)
        else:
            self._items.insert(position, entry)
        self.cache.clear()

    def remove(self, name: str) -> None:
        key = header_key(name)[0]
        self._items = [item for item in self._items if item[0] != key]
        self.cache.clear()

    def copy(self) -> Headers:
        clone = Headers()
        clone._items = list(self._items)
        return clone

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return ((name, value) for _, name, value in self._items)

    def __len__(self) -> int:
        return len(self._items)


class Message:
    """What requests and responses share: headers, body, parsed accessors."""

    __slots__ = ("headers", "body")

    def __init__(self, headers: Headers | None = None, body: bytes = b"") -> None:
        self.headers = headers if headers is not None else Headers()
        self.body = body

    def _cached(self, key: str, compute: Callable[[], T]) -> T:
        cache = self.headers.cache
        try:
            return cache[key]  # type: ignore[return-value]
        except KeyError:
            value = cache[key] = compute()
            return value

    def _single(self, name: str) -> str:
        key = name.lower()
        values = [v for k, _, v in self.headers._items if k == key]
        if not values:
            raise ParseError(f"Bad Request - Missing {name}")
        if len(values) > 1:
            raise ParseError(f"Bad Request - Multiple {name} headers")
        return values[0].strip()

    @property
    def call_id(self) -> str:
        def compute() -> str:
            value = self._single("Call-ID")
            if not value or any(c.isspace() for c in value):
                raise ParseError("Bad Request - Malformed Call-ID")
            return value

        return self._cached("call_id", compute)

    @property
    def cseq(self) -> CSeq:
        return self._cached("cseq", lambda: CSeq.parse(self._single("CSeq")))

    @property
    def from_addr(self) -> Address:
        return self._cached("from", lambda: Address.parse(self._single("From")))

    @property
    def to_addr(self) -> Address:
        return self._cached("to", lambda: Address.parse(self._single("To")))

    @property
    def vias(self) -> list[Via]:
        def compute() -> list[Via]:
            vias = [Via.parse(value) for value in self.headers.get_all("Via")]
            if not vias:
                raise ParseError("Bad Request - Missing Via")
            return vias

        return self._cached("vias", compute)

    def rewrite_top_via(self) -> None:
        """Write a changed ``vias[0]`` (received/rport, §18.2.1) back to its header.

        The parsed values stay cached: this runs on every request, and
        clearing the cache would parse all the headers again.
        """
        top = str(self.vias[0])
        items = self.headers._items
        for i, (key, name, value) in enumerate(items):
            if key == "via":
                parts = split_outside_quotes(value, ",")
                parts[0] = top
                items[i] = (key, name, ", ".join(part.strip() for part in parts))
                return

    @property
    def contact_star(self) -> bool:
        return any(value.strip() == "*" for value in self.headers.get_all("Contact"))

    @property
    def contacts(self) -> list[Address]:
        def compute() -> list[Address]:
            return [
                Address.parse(value)
                for value in self.headers.get_all("Contact")
                if value.strip() != "*"
            ]

        return self._cached("contacts", compute)

    @property
    def max_forwards(self) -> int | None:
        def compute() -> int | None:
            if "Max-Forwards" not in self.headers:
                return None
            value = self._single("Max-Forwards")
            if not is_number(value) or int(value) > 255:
                raise ParseError("Bad Request - Malformed Max-Forwards")
            return int(value)

        return self._cached("max_forwards", compute)

    @property
    def expires(self) -> int | None:
        def compute() -> int | None:
            if "Expires" not in self.headers:
                return None
            value = self._single("Expires")
            if not is_number(value):
                raise ParseError("Bad Request - Malformed Expires")
            return min(int(value), MAX_DELTA)  # §20.19: treat huge values as the maximum

        return self._cached("expires", compute)

    @property
    def replaces(self) -> Replaces | None:
        """The Replaces header (RFC 3891), if any; more than one is a ParseError (§3)."""
        def compute() -> Replaces | None:
            if "Replaces" not in self.headers:
                return None
            return Replaces.parse(self._single("Replaces"))

        return self._cached("replaces", compute)

    @property
    def session_expires(self) -> SessionExpires | None:
        """The Session-Expires header (RFC 4028 §4), if any."""
        def compute() -> SessionExpires | None:
            if "Session-Expires" not in self.headers:
                return None
            return SessionExpires.parse(self._single("Session-Expires"))

        return self._cached("session_expires", compute)

    @property
    def refer_to(self) -> Address:
        """The one Refer-To of a REFER (RFC 3515 §2.4.1): missing or repeated is a ParseError."""
        return self._cached("refer_to", lambda: Address.parse(self._single("Refer-To")))

    @property
    def content_type(self) -> str | None:
        value = self.headers.get("Content-Type")
        return value.split(";", 1)[0].strip().lower() if value else None

    def _serialise(self, start_line: str) -> bytes:
        lines = [start_line]
        for name, value in self.headers:
            if name != "Content-Length":
                lines.append(f"{name}: {value}")
        lines.append(f"Content-Length: {len(self.body)}")
        head = "\r\n".join(lines) + "\r\n\r\n"
        return head.encode("utf-8", "surrogateescape") + self.body


class Request(Message):
    """A SIP request."""

    __slots__ = ("method", "uri")

    def __init__(
        self, method: str, uri: URI, headers: Headers | None = None, body: bytes = b""
    ) -> None:
        super().__init__(headers, body)
        self.method = method
        self.uri = uri

    def __bytes__(self) -> bytes:
        return self._serialise(f"{self.method} {self.uri} SIP/2.0")

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri}>"


class Response(Message):
    """A SIP response."""

    __slots__ = ("status", "reason")

    def __init__(
        self, status: int, reason: str | None = None, headers: Headers | None = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(headers, body)
        self.status = status
        self.reason = REASONS.get(status, "Unknown") if reason is None else reason

    def __bytes__(self) -> bytes:
        return self._serialise(f"SIP/2.0 {self.status} {self.reason}")

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


_COPIED = ("Via", "From", "To", "Call-ID", "CSeq")


def make_response(
    request: Request, status: int, reason: str | None = None, *, to_tag: str | None = None
) -> Response:
    """A response to ``request`` with the headers §8.2.6.2 says to copy.

    Raw values are copied, so even a request whose From or CSeq did not parse
    can be answered with a 400.  ``to_tag`` is added when To has none yet.
    """
    headers = Headers()
    items = headers._items
    for key, name, value in request.headers._items:
        if name in _COPIED:
            if name == "To" and to_tag and status != 100 and not _has_tag(value):
                value = f"{value};tag={to_tag}"
            items.append((key, name, value))
    return Response(status, reason, headers)


def _has_tag(to_value: str) -> bool:
    try:
        return Address.parse(to_value).tag is not None
    except ParseError:
        return True  # cannot tell where parameters start: leave it untouched


_origin = ""  # "-w<N>" in worker N of several (pbx.workers), else empty


def set_origin(mark: str) -> None:
    """Suffix every branch, tag and Call-ID this process makes with ``mark``, so a
    response or an in-dialog request that reaches another worker of the node
    names the worker whose transaction or dialog it belongs to."""
    global _origin
    _origin = mark


def new_branch() -> str:
    """A branch with the RFC 3261 magic cookie, unique over space and time."""
    return "z9hG4bK" + secrets.token_hex(8) + _origin


def new_tag() -> str:
    return secrets.token_hex(5) + _origin


def new_call_id() -> str:
    return secrets.token_hex(12) + _origin
