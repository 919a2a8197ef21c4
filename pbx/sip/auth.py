"""SIP digest authentication: the UAS/registrar side and the UAC (trunk) side (pure).

RFC 3261 §22 carries HTTP digest into SIP; RFC 7616 replaced RFC 2617 and added
SHA-256, and RFC 8760 brings those algorithms to SIP. Nonces are stateless (an
HMAC under a server secret), so a restart with the same secret keeps outstanding
challenges valid; the only state is the replay memory of nonce counts, bounded
by the nonce lifetime and filled only by successful authentications.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import heapq
import hmac
import re
import secrets
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

# RFC 3261 §25.1 rules, named as in the ABNF.
_WSP = r"[ \t]"
_LWS = rf"(?:{_WSP}*\r\n)?{_WSP}+"
_SWS = rf"(?:{_LWS})?"
_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
_UTF8_NONASCII = r"\x80-\U0010ffff"
# qdtext = LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII, taken a run at a time; possessive
# quantifiers keep an unterminated quoted-string from backtracking exponentially.
_QDTEXT = rf"(?:[ \t\x21\x23-\x5b\x5d-\x7e{_UTF8_NONASCII}]++|{_LWS})"
_QUOTED_PAIR = r"\\[\x00-\x09\x0b\x0c\x0e-\x7f]"
_QUOTED_STRING = rf'"((?:{_QDTEXT}|{_QUOTED_PAIR})*+)"'
_EQUAL = rf"{_SWS}={_SWS}"
_COMMA = rf"{_SWS},{_SWS}"

# credentials / challenge = auth-scheme LWS auth-param *(COMMA auth-param)   (§25.1, §22.4)
_AUTH_SCHEME_RE = re.compile(rf"{_SWS}({_TOKEN}){_LWS}")
_AUTH_PARAM = rf"({_TOKEN}){_EQUAL}(?:({_TOKEN})|{_QUOTED_STRING})"
_AUTH_PARAM_RE = re.compile(_AUTH_PARAM)
_COMMA_AUTH_PARAM_RE = re.compile(_COMMA + _AUTH_PARAM)
_END_RE = re.compile(rf"{_SWS}\Z")
_QUOTED_PAIR_RE = re.compile(r"\\(.)", re.DOTALL)
_NC_VALUE_RE = re.compile(r"[0-9a-fA-F]{8}\Z")  # nc-value = 8LHEX (§25.1)


def parse_auth_header(value: str) -> tuple[str, dict[str, str]]:
    """Split a WWW-/Proxy-Authenticate or (Proxy-)Authorization value into scheme and params.

    Parameter names are lower-cased (they are case-insensitive, RFC 3261 §25.1); quoted
    values are returned unquoted with quoted-pairs resolved. Raises ValueError, whose
    message is safe to put in a 400 reason phrase, on anything off the grammar.
    """
    scheme_match = _AUTH_SCHEME_RE.match(value)
    if scheme_match is None:
        raise ValueError("auth header does not start with a scheme and parameters")
    params: dict[str, str] = {}
    pos = scheme_match.end()
    param = _AUTH_PARAM_RE.match(value, pos)
    while param is not None:
        name, token, quoted = param.groups()
        name = name.lower()
        if name in params:
            raise ValueError(f"auth-param {name!r} appears twice")
        if token is not None:
            params[name] = token
        else:
            params[name] = _QUOTED_PAIR_RE.sub(r"\1", quoted) if "\\" in quoted else quoted
        pos = param.end()
        param = _COMMA_AUTH_PARAM_RE.match(value, pos)
    if not params or not _END_RE.match(value, pos):
        raise ValueError(f"malformed auth-param at offset {pos}")
    return scheme_match.group(1), params


def _quote(value: str) -> str:
    """quoted-string for ``value`` (RFC 3261 §25.1); CR/LF cannot be carried and are refused."""
    if "\r" in value or "\n" in value:
        raise ValueError("CR or LF cannot be sent in a quoted auth-param")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class _Algorithm:
    """One digest algorithm of RFC 7616 §3.2 / RFC 8760 §2.1, '-sess' included."""

    name: str
    hash: Callable[[bytes], Any]
    session: bool

    def h(self, text: str) -> str:
        return self.hash(text.encode()).hexdigest()


_HASHES: dict[str, Callable[[bytes], Any]] = {
    "MD5": hashlib.md5,
    "SHA-256": hashlib.sha256,
    "SHA-512-256": partial(hashlib.new, "sha512_256"),
}
_ALGORITHMS: dict[str, _Algorithm] = {
    (name + suffix).upper(): _Algorithm(name + suffix, hash_, bool(suffix))
    for name, hash_ in _HASHES.items()
    for suffix in ("", "-sess")
}


def _algorithm(name: str) -> _Algorithm:
    """The algorithm called ``name`` (case-insensitive); ValueError when we do not know it."""
    try:
        return _ALGORITHMS[name.upper()]
    except KeyError:
        raise ValueError("unknown digest algorithm") from None


def _request_digest(
    algorithm: _Algorithm,
    *,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None,
    nc: str | None,
    cnonce: str | None,
) -> str:
    """The ``response`` value: RFC 7616 §3.4.1-3.4.3, as RFC 3261 §22.4 uses it (qop=auth)."""
    ha1 = algorithm.h(f"{username}:{realm}:{password}")
    if algorithm.session:
        ha1 = algorithm.h(f"{ha1}:{nonce}:{cnonce}")
    ha2 = algorithm.h(f"{method}:{uri}")
    if qop is None:
        return algorithm.h(f"{ha1}:{nonce}:{ha2}")  # RFC 2069 compatibility
    return algorithm.h(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


@dataclass(frozen=True)
class Credentials:
    """The digest-response of an Authorization value (RFC 3261 §22.4, RFC 7616 §3.4)."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None
    opaque: str | None = None

    @classmethod
    def from_params(cls, params: dict[str, str]) -> Credentials:
        """Validate parsed params; ValueError names what is missing or wrong (a 400).

        algorithm defaults to MD5 when absent (RFC 7616 §3.4). Only qop=auth is
        understood: auth-int would need the body and is never offered.
        """
        missing = [k for k in ("username", "realm", "nonce", "uri", "response") if k not in params]
        if missing:
            raise ValueError(f"digest credentials lack {', '.join(missing)}")
        algorithm = _algorithm(params.get("algorithm", "MD5"))
        qop = params.get("qop")
        if qop is not None:
            if qop.lower() != "auth":
                raise ValueError("unsupported qop")
            if not _NC_VALUE_RE.match(params.get("nc", "")):
                raise ValueError("qop=auth needs nc of 8 hex digits")
            if not params.get("cnonce"):
                raise ValueError("qop=auth needs a cnonce")
        elif algorithm.session:
            raise ValueError(f"{algorithm.name} needs qop and cnonce")
        return cls(
            username=params["username"],
            realm=params["realm"],
            nonce=params["nonce"],
            uri=params["uri"],
            response=params["response"],
            algorithm=algorithm.name,
            qop=qop,
            nc=params.get("nc") if qop else None,
            cnonce=params.get("cnonce") if qop else None,
            opaque=params.get("opaque"),
        )


class AuthOutcome(enum.Enum):
    """What the UAS answers (RFC 3261 §22.2-22.3)."""

    OK = "ok"  # go on as ``username``
    STALE = "stale"  # 401/407 with a fresh challenge and stale=true: retry without a prompt
    FAILED = "failed"  # wrong credentials: 403, and count the failure against the source
    BAD_REQUEST = "bad_request"  # 400 with ``reason``
    CHALLENGE = "challenge"  # 401/407 with a fresh challenge: not an answer to ours


@dataclass(frozen=True)
class AuthResult:
    """Outcome of one verify(); ``reason`` is short ASCII fit for a log line or reason phrase."""

    outcome: AuthOutcome
    username: str | None
    reason: str


class _NonceCounts:
    """Highest nonce count accepted per nonce (RFC 7616 §3.4, §5.3), forgotten when it expires."""

    def __init__(self) -> None:
        self._highest: dict[str, int] = {}
        self._expiry: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._highest)

    def admit(self, nonce: str, nc: int, expires_at: float, now: float) -> bool:
        """Record ``nc`` for ``nonce`` if it is above every count seen; False for a replay."""
        while self._expiry and self._expiry[0][0] < now:
            del self._highest[heapq.heappop(self._expiry)[1]]
        highest = self._highest.get(nonce)
        if nc <= (highest or 0):
            return False
        if highest is None:
            heapq.heappush(self._expiry, (expires_at, nonce))
        self._highest[nonce] = nc
        return True


_NONCE_TIME = struct.Struct(">d")
_NONCE_RANDOM_BYTES = 12
_NONCE_TAG_BYTES = 16
_NONCE_BYTES = _NONCE_TIME.size + _NONCE_RANDOM_BYTES + _NONCE_TAG_BYTES
_NONCE_RE = re.compile(rf"[A-Za-z0-9_-]{{{_NONCE_BYTES * 4 // 3}}}\Z")  # 3n bytes: no padding
_WRONG_CREDENTIALS = "wrong username or password"


class DigestAuthenticator:
    """The UAS side of digest: issues challenges and checks the answers (RFC 3261 §22.4).

    ``algorithms`` lists what is offered, most preferred first (RFC 8760 §2.4); an
    answer with an algorithm not offered is challenged again, so MD5 can be switched
    off. ``qop=None`` offers RFC 2069 style challenges.
    """

    def __init__(
        self,
        realm: str,
        secret: bytes,
        *,
        nonce_ttl: float = 300.0,
        algorithms: Sequence[str] = ("SHA-256", "MD5"),
        qop: str | None = "auth",
    ) -> None:
        if not realm:
            raise ValueError("realm must not be empty")
        if len(secret) < 16:
            raise ValueError("secret must hold at least 16 bytes")
        if nonce_ttl <= 0:
            raise ValueError("nonce_ttl must be positive")
        if qop not in ("auth", None):
            raise ValueError(f"qop must be 'auth' or None, not {qop!r}")
        offered = [_algorithm(name) for name in algorithms]
        if not offered or len(set(offered)) != len(offered):
            raise ValueError("algorithms must name at least one algorithm, each once")
        if qop is None and any(a.session for a in offered):
            raise ValueError("-sess algorithms need qop=auth")
        self.realm = realm
        self._quoted_realm = _quote(realm)
        self.nonce_ttl = nonce_ttl
        self.qop = qop
        self._secret = secret
        self._offered = {a.name: a for a in offered}
        tag = hmac.digest(secret, b"opaque:" + realm.encode(), "sha256")
        self._opaque = base64.urlsafe_b64encode(tag[:12]).decode()
        self._dummy_password = secrets.token_hex(16)
        self._nonce_counts = _NonceCounts()

    def challenge(self, now: float, *, stale: bool = False) -> list[str]:
        """WWW-/Proxy-Authenticate values, one per algorithm, most preferred first (RFC 8760 §2.4).

        They share one nonce so a UAC may answer any of them.
        """
        nonce = self._make_nonce(now)
        common = f"realm={self._quoted_realm}, nonce=\"{nonce}\", opaque=\"{self._opaque}\""
        tail = (f', qop="{self.qop}"' if self.qop else "") + (", stale=true" if stale else "")
        return [f"Digest {common}, algorithm={name}{tail}" for name in self._offered]

    def verify(
        self,
        method: str,
        header_value: str,
        password_for: Callable[[str], str | None],
        now: float,
    ) -> AuthResult:
        """Check one Authorization / Proxy-Authorization value against our challenges.

        The digest is computed before the nonce's age or count is judged, so STALE is only
        said to a UAC that knows the password (RFC 7616 §3.3), and an unknown user costs the
        same hashing and gets the same answer as a wrong password (no user enumeration).
        """
        try:
            scheme, params = parse_auth_header(header_value)
            if scheme.lower() != "digest":
                return AuthResult(AuthOutcome.CHALLENGE, None, f"scheme {scheme} not supported")
            credentials = Credentials.from_params(params)
        except ValueError as error:
            return AuthResult(AuthOutcome.BAD_REQUEST, None, str(error))
        if credentials.realm != self.realm:
            return AuthResult(AuthOutcome.CHALLENGE, None, "realm is not ours")
        algorithm = self._offered.get(credentials.algorithm)
        if algorithm is None:
            return AuthResult(AuthOutcome.CHALLENGE, None, "algorithm not offered")
        issued_at = self._nonce_issued_at(credentials.nonce)
        if issued_at is None:
            return AuthResult(AuthOutcome.CHALLENGE, None, "nonce not issued here")
        if credentials.opaque is not None and credentials.opaque != self._opaque:
            return AuthResult(AuthOutcome.CHALLENGE, None, "opaque not issued here")

        username = credentials.username
        password = password_for(username)
        expected = _request_digest(
            algorithm,
            username=username,
            realm=self.realm,
            password=self._dummy_password if password is None else password,
            method=method,
            uri=credentials.uri,
            nonce=credentials.nonce,
            qop=credentials.qop,
            nc=credentials.nc,
            cnonce=credentials.cnonce,
        )
        matches = hmac.compare_digest(expected.encode(), credentials.response.encode())
        if password is None or not matches:
            return AuthResult(AuthOutcome.FAILED, username, _WRONG_CREDENTIALS)
        if now - issued_at > self.nonce_ttl:
            return AuthResult(AuthOutcome.STALE, username, "nonce expired")
        nc = 1 if credentials.nc is None else int(credentials.nc, 16)
        if not self._nonce_counts.admit(credentials.nonce, nc, issued_at + self.nonce_ttl, now):
            return AuthResult(AuthOutcome.STALE, username, "nonce count already used")
        return AuthResult(AuthOutcome.OK, username, "authenticated")

    def _make_nonce(self, now: float) -> str:
        """base64url(time | random | HMAC(secret, time | random | realm)): no state to keep."""
        body = _NONCE_TIME.pack(now) + secrets.token_bytes(_NONCE_RANDOM_BYTES)
        return base64.urlsafe_b64encode(body + self._nonce_tag(body)).decode()

    def _nonce_tag(self, body: bytes) -> bytes:
        return hmac.digest(self._secret, body + self.realm.encode(), "sha256")[:_NONCE_TAG_BYTES]

    def _nonce_issued_at(self, nonce: str) -> float | None:
        """The time ``nonce`` was made, or None when it was not made by us for this realm."""
        if not _NONCE_RE.match(nonce):
            return None
        raw = base64.urlsafe_b64decode(nonce)
        body, tag = raw[:-_NONCE_TAG_BYTES], raw[-_NONCE_TAG_BYTES:]
        if not hmac.compare_digest(tag, self._nonce_tag(body)):
            return None
        issued_at: float = _NONCE_TIME.unpack_from(body)[0]
        return issued_at


def build_authorization(
    challenge: str,
    *,
    method: str,
    uri: str,
    username: str,
    password: str,
    cnonce: str | None = None,
    nc: int = 1,
) -> str:
    """The (Proxy-)Authorization value answering one challenge value (RFC 3261 §22.2-22.3).

    Picks qop=auth when offered (RFC 7616 §3.4: the client chooses among the options),
    else answers RFC 2069 style. ``nc`` counts the requests made with this nonce.
    Raises ValueError for a challenge it cannot answer.
    """
    scheme, params = parse_auth_header(challenge)
    if scheme.lower() != "digest":
        raise ValueError(f"cannot answer a {scheme} challenge")
    if "realm" not in params or "nonce" not in params:
        raise ValueError("digest challenge lacks realm or nonce")
    algorithm = _algorithm(params.get("algorithm", "MD5"))
    qop_options = [q.strip().lower() for q in params["qop"].split(",")] if "qop" in params else []
    if qop_options and "auth" not in qop_options:
        raise ValueError(f"no supported qop in {params['qop']!r}")
    qop = "auth" if qop_options else None
    if qop is None and algorithm.session:
        raise ValueError(f"{algorithm.name} challenge without qop cannot be answered")
    if not 0 < nc <= 0xFFFFFFFF:
        raise ValueError("nc must fit in 8 hex digits and be positive")
    realm, nonce = params["realm"], params["nonce"]
    qop_parts: list[str] = []
    if qop:
        nc_value: str | None = f"{nc:08x}"
        cnonce = secrets.token_urlsafe(16) if cnonce is None else cnonce
        qop_parts = [f"nc={nc_value}", f"cnonce={_quote(cnonce)}", f"qop={qop}"]
    else:
        nc_value, cnonce = None, None
    response = _request_digest(
        algorithm,
        username=username,
        realm=realm,
        password=password,
        method=method,
        uri=uri,
        nonce=nonce,
        qop=qop,
        nc=nc_value,
        cnonce=cnonce,
    )
    # Quoted or bare exactly as RFC 7616 §3.4 prescribes for each parameter.
    parts = [
        f"username={_quote(username)}",
        f"realm={_quote(realm)}",
        f"uri={_quote(uri)}",
        f"algorithm={algorithm.name}",
        f"nonce={_quote(nonce)}",
        *qop_parts,
        f"response={_quote(response)}",
    ]
    if "opaque" in params:
        parts.append(f"opaque={_quote(params['opaque'])}")
    return "Digest " + ", ".join(parts)
