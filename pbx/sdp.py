"""SDP (RFC 8866) and the offer/answer model (RFC 3264) for an anchoring B2BUA.

The PBX never passes a phone's SDP through: every call's RTP goes through the
PBX's own relay ports, so it answers each phone itself with its own address
and chooses codecs it can relay or transcode. This module parses what phones
send (tolerantly: LF line ends, unknown lines and attributes kept; a broken
rtpmap spoils only its own format), and builds the PBX's offers and answers.

SRTP keys travel in the SDP (SDES, RFC 4568 ``a=crypto``): a stream is
RTP/SAVP with a key we can use, or RTP/AVP with one ("best effort" SRTP, as
Asterisk's ``media_encryption_optimistic`` and baresip's ``mediaenc=srtp``
offer it).  Whether a leg takes or offers SRTP is the caller's ``srtp`` mode:
``off``, ``optional`` or ``required``.
"""

from __future__ import annotations

import base64
import binascii
import copy
import ipaddress
from dataclasses import dataclass, field, replace

from media.srtp import SUITES, SrtpKey
from pbx.sip.message import is_number

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
# (sends, receives) from the point of view of the side that wrote the description
_FLOWS = {"sendrecv": (True, True), "sendonly": (True, False), "recvonly": (False, True),
          "inactive": (False, False)}
_DIRECTION_OF = {flow: name for name, flow in _FLOWS.items()}
SRTP_MODES = ("off", "optional", "required")
HOLD_ADDRESSES = ("0.0.0.0", "::")  # RFC 2543 §B.5 hold: "do not send to me"
_SESSION_ORDER = "vosiuepcbtrzka"  # RFC 8866 §5: the order lines must appear in
_MEDIA_ORDER = "micbka"


class SdpError(ValueError):
    """A session description we cannot use; ``str()`` is the detail of a reason phrase.

    ``status`` is the SIP answer: 400 for a description that breaks RFC 8866,
    488 for a valid one we cannot accept (no common codec, no audio stream).
    ``code`` is the warn-code of the Warning header that tells the phone why
    (RFC 3261 §20.43): 399 miscellaneous (the malformed line), 302 transport
    (SRTP only), 304 media type (no audio), 305 media format (no common codec).
    """

    def __init__(self, message: str, status: int = 400, code: int = 399) -> None:
        super().__init__(message)
        self.status = status
        self.code = code

    @property
    def reason(self) -> str:
        """A reason phrase for the SIP answer, e.g. ``Not Acceptable Here - no common codec``."""
        phrase = "Not Acceptable Here" if self.status == 488 else "Bad Request"
        return f"{phrase} - {self}"

    def warning(self, agent: str) -> str:
        """The Warning header value from ``agent`` (our host), e.g.
        ``399 192.0.2.1 "Malformed rtpmap '31 LPC'"`` (RFC 3261 §20.43)."""
        if ":" in agent and not agent.startswith("["):
            agent = f"[{agent}]"  # an IPv6 address as warn-agent (hostport)
        text = str(self).replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.code} {agent} "{text}"'


def _unacceptable(message: str, code: int) -> SdpError:
    return SdpError(message, 488, code)


@dataclass(frozen=True, slots=True)
class Codec:
    """One RTP payload format: what ``a=rtpmap`` (or the static table) and ``a=fmtp`` say."""

    payload_type: int
    name: str
    clock_rate: int
    channels: int = 1
    fmtp: str | None = None

    @property
    def is_event(self) -> bool:
        """RFC 4733 telephone-event: rides along a voice codec, never chosen alone."""
        return self.name.lower() == "telephone-event"

    def rtpmap(self) -> str:
        suffix = f"/{self.channels}" if self.channels != 1 else ""
        return f"{self.payload_type} {self.name}/{self.clock_rate}{suffix}"


# RFC 3551 §6 table 4: audio payload types that need no rtpmap
STATIC_PAYLOADS = {
    0: Codec(0, "PCMU", 8000),
    3: Codec(3, "GSM", 8000),
    4: Codec(4, "G723", 8000),
    5: Codec(5, "DVI4", 8000),
    6: Codec(6, "DVI4", 16000),
    7: Codec(7, "LPC", 8000),
    8: Codec(8, "PCMA", 8000),
    9: Codec(9, "G722", 8000),  # 8000 by RFC 3551's historical error, though sampled at 16 kHz
    10: Codec(10, "L16", 44100, 2),
    11: Codec(11, "L16", 44100),
    12: Codec(12, "QCELP", 8000),
    13: Codec(13, "CN", 8000),
    15: Codec(15, "G728", 8000),
    18: Codec(18, "G729", 8000),
}
TELEPHONE_EVENT = Codec(101, "telephone-event", 8000, fmtp="0-16")
# Encoding names are case-insensitive (RFC 4855 §3); spell the known ones one way for callers.
_CANONICAL = {name.lower(): name for name in (
    "PCMU", "PCMA", "G722", "G729", "G723", "G728", "GSM", "DVI4", "LPC", "L16", "QCELP", "CN",
    "opus", "telephone-event", "iLBC", "speex", "AMR", "AMR-WB", "H264", "VP8", "VP9",
)}


@dataclass(frozen=True, slots=True)
class Crypto:
    """One ``a=crypto`` line we can use (RFC 4568 §9.1): its tag and the
    sender's master key for a suite libsrtp knows."""

    tag: int
    key: SrtpKey

    @classmethod
    def parse(cls, value: str) -> Crypto | None:
        """``1 AES_CM_128_HMAC_SHA1_80 inline:<base64>[|lifetime]``, or None for
        a line we cannot use: an unknown suite, several keys or an MKI (the
        relay keys each stream once), session parameters, a key of the wrong
        length.  Such a line is kept as written; another line may do."""
        parts = value.split()
        if len(parts) != 3 or not is_number(parts[0]) or len(parts[0]) > 9:
            return None
        tag, suite, params = parts
        if suite not in SUITES or not params.startswith("inline:") or ";" in params:
            return None
        key_info, *rest = params[len("inline:"):].split("|")
        if len(rest) > 1 or rest and ":" in rest[0]:  # an MKI (value:length)
            return None
        try:
            return cls(int(tag), SrtpKey(suite, base64.b64decode(key_info, validate=True)))
        except (binascii.Error, ValueError):
            return None

    def __str__(self) -> str:
        return f"{self.tag} {self.key.suite} inline:{base64.b64encode(self.key.key).decode()}"

    @classmethod
    def offered(cls) -> list[Crypto]:
        """What we offer: every suite we know, the stronger tag first, each its own key."""
        return [cls(tag, SrtpKey.generate(suite)) for tag, suite in enumerate(SUITES, start=1)]


def sdes_keys(local: MediaDescription, remote: MediaDescription) -> tuple[SrtpKey, SrtpKey] | None:
    """The keys of one stream's SRTP (ours, theirs): the remote line whose tag and
    suite one of our lines has (RFC 4568 §7.1.3), or None: plain RTP."""
    for theirs in remote.crypto:
        ours = next((c for c in local.crypto
                     if c.tag == theirs.tag and c.key.suite == theirs.key.suite), None)
        if ours is not None:
            return ours.key, theirs.key
    return None


@dataclass(slots=True)
class Origin:
    """The ``o=`` line: the session id stays, the version grows with every change (RFC 3264 §8)."""

    username: str = "-"
    sess_id: str = "0"
    sess_version: str = "0"
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "0.0.0.0"

    def __str__(self) -> str:
        return (f"{self.username} {self.sess_id} {self.sess_version} {self.nettype} "
                f"{self.addrtype} {self.address}")


@dataclass(slots=True)
class MediaDescription:
    """One ``m=`` section. ``codecs`` follow ``formats`` (the offerer's preference order)."""

    kind: str
    port: int
    proto: str
    formats: list[str]
    connection: str | None = None  # media-level c= address; None: the session's applies
    direction: str = "sendrecv"
    codecs: list[Codec] = field(default_factory=list)
    ptime: int | None = None
    rtcp_port: int | None = None  # RFC 3605 a=rtcp; None: port + 1
    rtcp_address: str | None = None
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    other: list[str] = field(default_factory=list)  # i=, b=, k= lines as written
    # payload type → its malformed rtpmap value, kept as written in ``attributes``:
    # that format is unusable, the rest of the stream is fine (RFC 4475 §3.1.1.3)
    broken_rtpmaps: dict[int, str] = field(default_factory=dict)
    crypto: list[Crypto] = field(default_factory=list)  # usable SDES lines (RFC 4568)

    @property
    def is_srtp(self) -> bool:
        """RTP/SAVP or RTP/SAVPF: SRTP only (RFC 3711 §12), never plain."""
        return self.proto.upper().startswith("RTP/SAVP")

    @property
    def is_rtp_audio(self) -> bool:
        """An audio stream our relay can carry, not rejected: RTP (RTP/AVP, RTP/AVPF)
        or SRTP with a key we can use (RTP/SAVP, RTP/SAVPF)."""
        return (self.kind == "audio" and self.port > 0
                and (self.proto.upper().startswith("RTP/AVP") or self.is_srtp and bool(self.crypto)))

    @property
    def rtcp(self) -> int:
        """Where the far side wants RTCP: a=rtcp (RFC 3605) or RTP port + 1 (RFC 3550 §11).

        An offered a=rtcp-mux does not count: it applies only when the answer says it
        too (RFC 5761 §5.1.1), and the PBX's answers never do.
        """
        return self.rtcp_port if self.rtcp_port is not None else self.port + 1

    @property
    def telephone_event(self) -> Codec | None:
        return next((c for c in self.codecs if c.is_event), None)


@dataclass(slots=True)
class SessionDescription:
    """A whole SDP body. Lines this model does not interpret are kept and written back."""

    origin: Origin = field(default_factory=Origin)
    session_name: str = "-"
    connection: str | None = None  # session-level c= address
    direction: str | None = None  # session-level a=sendonly etc., inherited by the media
    timing: str = "0 0"
    media: list[MediaDescription] = field(default_factory=list)
    other: list[str] = field(default_factory=list)  # i=, u=, e=, p=, b=, r=, z=, k=, a= lines

    @property
    def audio(self) -> MediaDescription | None:
        """The first usable audio stream: RTP the relay can carry (port not 0) with a
        voice codec it can name, or None.  Which of a phone's offered streams we take
        depends on our codecs too: :func:`choose_audio`."""
        return next((m for m in self.media if m.is_rtp_audio
                     and any(not c.is_event for c in m.codecs)), None)

    def paired(self, local: SessionDescription) -> MediaDescription | None:
        """Our side's audio stream in this (the far side's) description: streams
        pair by position (RFC 3264 §6), so the m-line at the index of ``local``'s
        audio stream, when it is one the relay can carry."""
        ours = local.audio
        index = next((i for i, m in enumerate(local.media) if m is ours), None)
        if index is None or index >= len(self.media) or not self.media[index].is_rtp_audio:
            return None
        return self.media[index]

    @property
    def connection_addrtype(self) -> str:
        return _addrtype(self.connection or self.origin.address)

    @classmethod
    def parse(cls, data: str | bytes) -> SessionDescription:
        """Parse a phone's SDP; SdpError (status 400) names what is broken."""
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        lines = [line.rstrip("\r") for line in text.split("\n")]
        lines = [line for line in lines if line.strip()]
        if not lines:
            raise SdpError("Empty SDP")
        if not lines[0].startswith("v="):
            raise SdpError("SDP must start with v=")
        if lines[0].strip() != "v=0":
            raise SdpError(f"Unsupported SDP version {lines[0][2:12]!r}")
        session: list[str] = []
        blocks: list[list[str]] = []
        for line in lines[1:]:
            if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
                raise SdpError(f"Malformed SDP line {line[:40]!r}")
            if line[0] == "m":
                blocks.append([line])
            elif blocks:
                blocks[-1].append(line)
            else:
                session.append(line)
        desc = _parse_session(session)
        if not blocks:
            raise SdpError("No m= line in SDP")
        for block in blocks:
            desc.media.append(_parse_media(block, desc))
        return desc

    def __str__(self) -> str:
        head = [f"c=IN {_addrtype(self.connection)} {self.connection}"] if self.connection else []
        head.append(f"t={self.timing}")
        head.extend(self.other)
        if self.direction:
            head.append(f"a={self.direction}")
        lines = ["v=0", f"o={self.origin}", f"s={self.session_name}"]
        lines.extend(sorted(head, key=lambda line: _position(line, _SESSION_ORDER)))
        for media in self.media:
            lines.extend(_media_lines(media))
        return "\r\n".join(lines) + "\r\n"

    def __bytes__(self) -> bytes:
        return str(self).encode()


def _parse_session(lines: list[str]) -> SessionDescription:
    desc = SessionDescription()
    seen: set[str] = set()
    for line in lines:
        kind, value = line[0], line[2:]
        if kind in seen and kind in "ostc":
            if kind == "t":
                desc.other.append(line)  # further time descriptions: kept as written
                continue
            raise SdpError(f"Duplicate {kind}= line")
        if kind == "o":
            parts = value.split()
            if len(parts) != 6:
                raise SdpError(f"Malformed o= line {value[:40]!r}")
            desc.origin = Origin(*parts)
        elif kind == "s":
            desc.session_name = value.strip() or "-"
        elif kind == "c":
            desc.connection = _connection(value)
        elif kind == "t":
            desc.timing = value.strip() or "0 0"
        elif kind == "a" and value.strip() in DIRECTIONS:
            desc.direction = value.strip()
        else:
            desc.other.append(line)
        seen.add(kind)
    if "o" not in seen:
        raise SdpError("Missing o= line")
    if "s" not in seen:
        raise SdpError("Missing s= line")
    return desc


def _parse_media(lines: list[str], session: SessionDescription) -> MediaDescription:
    media = _media_line(lines[0][2:])
    rtpmaps: dict[int, Codec] = {}
    fmtps: dict[int, str] = {}
    explicit_direction = False
    for line in lines[1:]:
        kind, value = line[0], line[2:]
        if kind == "c":
            if media.connection is not None:
                raise SdpError(f"Duplicate c= line in m={media.kind}")
            media.connection = _connection(value)
        elif kind != "a":
            media.other.append(line)
        elif value.strip() in DIRECTIONS:
            media.direction = value.strip()
            explicit_direction = True
        else:
            name, sep, attr = value.partition(":")
            if not _media_attribute(media, name, attr, rtpmaps, fmtps):
                media.attributes.append((name, attr if sep else None))
    if not explicit_direction and session.direction:
        media.direction = session.direction
    if media.port and media.connection is None and session.connection is None:
        raise SdpError(f"No connection address (c=) for the m={media.kind} stream")
    if "RTP/" in media.proto.upper():
        media.codecs = _codecs(media, rtpmaps, fmtps)
    used = {c.payload_type for c in media.codecs}
    media.attributes.extend(("fmtp", f"{pt} {params}") for pt, params in fmtps.items()
                            if pt not in used)  # for a format we cannot name: kept as written
    return media


def _media_line(value: str) -> MediaDescription:
    parts = value.split()
    if len(parts) < 3:
        raise SdpError(f"Malformed m= line {value[:40]!r}")
    kind, port_text, proto, *formats = parts
    port_text = port_text.split("/")[0]  # <port>/<number of ports>
    if not is_number(port_text) or int(port_text) > 65535:
        raise SdpError(f"Malformed media port {port_text[:20]!r} in m={kind}")
    port = int(port_text)
    if not formats and port:
        raise SdpError(f"No formats in m={kind} line")
    if "RTP/" in proto.upper():
        bad = next((f for f in formats if not is_number(f) or int(f) > 127), None)
        if bad is not None:
            raise SdpError(f"Malformed payload type {bad[:20]!r} in m={kind}")
    return MediaDescription(kind, port, proto, formats)


def _media_attribute(
    media: MediaDescription, name: str, value: str, rtpmaps: dict[int, Codec],
    fmtps: dict[int, str],
) -> bool:
    """Interpret the attributes the model has fields for; False: keep it as written."""
    if name == "rtpmap":
        pt, _, rest = value.strip().partition(" ")
        if not is_number(pt) or int(pt) not in _payload_types(media):
            return False  # an rtpmap for a format not offered: harmless, kept as written
        pieces = rest.strip().split("/")
        if (len(pieces) not in (2, 3) or not pieces[0]
                or not is_number(pieces[1]) or int(pieces[1]) == 0
                or (len(pieces) == 3 and not is_number(pieces[2]))):
            media.broken_rtpmaps[int(pt)] = value.strip()
            return False  # kept as written; only this format is unusable
        encoding = _CANONICAL.get(pieces[0].lower(), pieces[0])
        channels = int(pieces[2]) if len(pieces) == 3 else 1
        rtpmaps[int(pt)] = Codec(int(pt), encoding, int(pieces[1]), channels)
        return True
    if name == "fmtp":
        pt, _, params = value.partition(" ")
        if not is_number(pt) or int(pt) not in _payload_types(media):
            return False
        fmtps[int(pt)] = params.strip()
        return True
    if name == "crypto":
        crypto = Crypto.parse(value)
        if crypto is None or any(c.tag == crypto.tag for c in media.crypto):
            return False  # kept as written; the stream may have another line we can use
        media.crypto.append(crypto)
        return True
    if name == "ptime" and is_number(value.strip()) and int(value) > 0:
        media.ptime = int(value.strip())
        return True
    if name == "rtcp":
        parts = value.split()
        if not parts or not is_number(parts[0]) or int(parts[0]) > 65535:
            raise SdpError(f"Malformed rtcp attribute {value[:40]!r}")
        media.rtcp_port = int(parts[0])
        if len(parts) > 1:
            media.rtcp_address = _connection(" ".join(parts[1:]))
        return True
    return False


def _codecs(media: MediaDescription, rtpmaps: dict[int, Codec], fmtps: dict[int, str]) -> list[Codec]:
    """Codecs in m= order from rtpmap or the static table; dynamic types without one,
    and types whose rtpmap is broken, are unusable."""
    codecs = []
    for fmt in media.formats:
        pt = int(fmt)
        codec = rtpmaps.get(pt) or (STATIC_PAYLOADS.get(pt) if media.kind == "audio" else None)
        if codec is None or pt in media.broken_rtpmaps:
            continue
        if pt in fmtps:
            codec = replace(codec, fmtp=fmtps[pt])
        codecs.append(codec)
    return codecs


def _connection(value: str) -> str:
    """The address of ``IN IP4 <addr>[/ttl]``: literal of the named family, or a host name."""
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise SdpError(f"Malformed c= line {value[:40]!r}")
    address = parts[2].split("/")[0]
    try:
        family = ipaddress.ip_address(address).version
    except ValueError:
        if not address or not all(c.isalnum() or c in ".-" for c in address):
            raise SdpError(f"Malformed connection address {address[:40]!r}") from None
        return address
    if f"IP{family}" != parts[1]:
        raise SdpError(f"Connection address {address!r} is not {parts[1]}")
    return address


def _media_lines(media: MediaDescription) -> list[str]:
    formats = " ".join(media.formats)
    lines = [f"m={media.kind} {media.port} {media.proto} {formats}".rstrip()]
    extra = list(media.other)
    if media.connection:
        extra.append(f"c=IN {_addrtype(media.connection)} {media.connection}")
    lines.extend(sorted(extra, key=lambda line: _position(line, _MEDIA_ORDER)))
    for codec in media.codecs:
        lines.append(f"a=rtpmap:{codec.rtpmap()}")
        if codec.fmtp:
            lines.append(f"a=fmtp:{codec.payload_type} {codec.fmtp}")
    lines.extend(f"a=crypto:{crypto}" for crypto in media.crypto)
    if media.rtcp_port is not None:
        where = (f" IN {_addrtype(media.rtcp_address)} {media.rtcp_address}"
                 if media.rtcp_address else "")
        lines.append(f"a=rtcp:{media.rtcp_port}{where}")
    if media.ptime:
        lines.append(f"a=ptime:{media.ptime}")
    lines.extend(f"a={name}" if value is None else f"a={name}:{value}"
                 for name, value in media.attributes)
    if media.port or media.direction != "sendrecv":
        lines.append(f"a={media.direction}")
    return lines


# ---------------------------------------------------------------- offer/answer (RFC 3264)


def negotiate(offer_codecs: list[Codec], supported: list[str]) -> list[Codec]:
    """The offered codecs we support, in the offerer's order with its payload types (§6.1).

    telephone-event is kept only at the clock rate of a kept voice codec (RFC 4733 §7.1.1);
    SdpError (488) when no voice codec is common.
    """
    wanted = {name.lower() for name in supported}
    rates = {c.clock_rate for c in offer_codecs if not c.is_event and c.name.lower() in wanted}
    if not rates:
        raise _unacceptable("no common codec", 305)
    return [c for c in offer_codecs if c.name.lower() in wanted
            and (not c.is_event or c.clock_rate in rates)]


def make_offer(
    *, address: str, port: int, codecs: list[Codec], direction: str = "sendrecv",
    session_id: int, version: int, ptime: int = 20, proto: str = "RTP/AVP",
    crypto: list[Crypto] | None = None,
) -> SessionDescription:
    """The PBX's own offer: one audio stream on our relay port (RTCP on port + 1);
    with ``crypto`` our SDES keys, as RTP/SAVP (SRTP only) or RTP/AVP (best effort)."""
    _check_direction(direction)
    if not codecs:
        raise ValueError("an offer needs at least one codec")
    media = MediaDescription(
        "audio", port, proto, [str(c.payload_type) for c in codecs], direction=direction,
        codecs=list(codecs), ptime=ptime, crypto=list(crypto or []),
    )
    return SessionDescription(_our_origin(address, session_id, version), "pbx", address,
                              media=[media])


def choose_audio(offer: SessionDescription, supported: list[str],
                 srtp: str = "off") -> MediaDescription:
    """The offered stream we take: the first audio stream with a voice codec of
    ``supported`` over a transport ``srtp`` allows (RFC 3264 §6: every stream is
    considered, the others are declined): ``off`` plain RTP only, ``optional``
    RTP or SRTP, ``required`` only a stream with a key we can use.

    SdpError 488 when there is none, its warn-code saying why: 304 no audio stream,
    302 audio only over a transport we do not take (SRTP when it is off, plain RTP
    when it is required, SRTP without a usable crypto suite), 305 no common codec;
    400 (399) when the codec we would have taken has a malformed rtpmap.
    """
    if srtp not in SRTP_MODES:
        raise ValueError(f"unknown SRTP mode {srtp!r}")
    audio = [m for m in offer.media if m.kind == "audio" and m.port]
    if not audio:
        raise _unacceptable("no audio stream", 304)
    carried = [m for m in audio if m.is_rtp_audio]
    if srtp == "off":
        rtp = [m for m in carried if not m.is_srtp]
    elif srtp == "required":
        rtp = [m for m in carried if m.crypto]
    else:
        rtp = carried
    if not rtp:
        if srtp == "off" or not any(m.proto.upper().startswith(("RTP/AVP", "RTP/SAVP"))
                                    for m in audio):
            raise _unacceptable("no RTP/AVP audio stream", 302)
        if any(m.is_srtp for m in audio) and not any(m.crypto for m in audio):
            raise _unacceptable("no usable SRTP crypto suite", 302)
        raise _unacceptable("SRTP required", 302)
    wanted = {name.lower() for name in supported}
    chosen = next((m for m in rtp
                   if any(not c.is_event and c.name.lower() in wanted for c in m.codecs)), None)
    if chosen is not None:
        return chosen
    for media in rtp:
        for value in media.broken_rtpmaps.values():
            encoding = value.partition(" ")[2].strip().split("/")[0]
            if encoding.lower() in wanted:
                raise SdpError(f"Malformed rtpmap {value[:40]!r}")
    raise _unacceptable("no common codec", 305)


def make_answer(
    offer: SessionDescription, *, address: str, port: int, supported: list[str],
    direction: str | None = None, session_id: int, version: int, ptime: int = 20,
    srtp: str = "off", keys: list[Crypto] | None = None,
) -> SessionDescription:
    """Our answer (§6): one m-line per offered one, in order; the stream of
    :func:`choose_audio` accepted, every other one declined with port 0.

    The audio stream gets one voice codec (the offerer's first we support) plus its
    telephone-event: the relay follows one codec per leg, so we never let a phone
    switch codecs mid-call. The direction mirrors the offer (sendonly → recvonly) and
    is narrowed by ``direction`` when we want less (e.g. we hold too).

    Unless ``srtp`` is off, a stream offered with SDES keys is answered with the
    offerer's first usable line's tag and suite and our key (RFC 4568 §7.1.2):
    the one of ``keys`` (what we sent before, so a re-INVITE keeps our stream's
    key) with that suite, else a new one.
    """
    if direction is not None:
        _check_direction(direction)
    audio = choose_audio(offer, supported, srtp)
    answer = SessionDescription(_our_origin(address, session_id, version), "pbx", address)
    for media in offer.media:
        if media is not audio:
            answer.media.append(_rejected(media))
            continue
        common = negotiate(audio.codecs, supported)
        voice = next(c for c in common if not c.is_event)
        event = next((c for c in common if c.is_event and c.clock_rate == voice.clock_rate), None)
        codecs = [voice] if event is None else [voice, event]
        answer.media.append(MediaDescription(
            "audio", port, audio.proto, [str(c.payload_type) for c in codecs],
            direction=_answer_direction(hold_direction(offer, audio), direction), codecs=codecs,
            ptime=ptime, crypto=_answer_crypto(audio, srtp, keys or []),
        ))
    return answer


def _answer_crypto(audio: MediaDescription, srtp: str, keys: list[Crypto]) -> list[Crypto]:
    if srtp == "off" or not audio.crypto:
        return []
    theirs = audio.crypto[0]
    suite = theirs.key.suite
    ours = next((c.key for c in keys if c.key.suite == suite), None) or SrtpKey.generate(suite)
    return [Crypto(theirs.tag, ours)]


def hold_direction(desc: SessionDescription, media: MediaDescription | None = None) -> str:
    """The direction the far side asked for on its audio stream.

    ``sendonly`` or ``inactive`` mean it holds the call; c=0.0.0.0 (RFC 2543 hold,
    still sent by older phones) means "do not send to me", so it drops the receive
    half: sendrecv → sendonly, recvonly → inactive. No audio stream is inactive.
    """
    media = media or desc.audio
    if media is None:
        return "inactive"
    if (media.connection or desc.connection) in HOLD_ADDRESSES:
        sends, _ = _FLOWS[media.direction]
        return _DIRECTION_OF[(sends, False)]
    return media.direction


@dataclass(slots=True)
class SessionVersion:
    """Our o= line across one dialog (RFC 3264 §8).

    The session id never changes; the version grows by one whenever the
    description changes and stays put when it does not (a session-refresh
    re-INVITE must resend the identical SDP).
    """

    session_id: int
    version: int = 1
    _last: str | None = field(default=None, repr=False)

    def stamp(self, desc: SessionDescription) -> SessionDescription:
        """``desc`` with our session id and the version it deserves."""
        stamped = self._with_origin(desc)
        text = str(stamped)
        if self._last is not None and text != self._last:
            self.version += 1
            stamped = self._with_origin(desc)
            text = str(stamped)
        self._last = text
        return stamped

    def _with_origin(self, desc: SessionDescription) -> SessionDescription:
        stamped = copy.deepcopy(desc)  # later edits of desc must not change what was sent
        stamped.origin.sess_id, stamped.origin.sess_version = str(self.session_id), str(self.version)
        return stamped


def _rejected(media: MediaDescription) -> MediaDescription:
    """A declined stream (§6): port 0, one of its formats to keep the m= line valid."""
    return MediaDescription(media.kind, 0, media.proto, media.formats[:1] or ["0"])


def _answer_direction(offered: str, wanted: str | None) -> str:
    """Mirror the offer (§6.1), then drop what we do not want ourselves."""
    they_send, they_receive = _FLOWS[offered]
    send, receive = they_receive, they_send
    if wanted is not None:
        want_send, want_receive = _FLOWS[wanted]
        send, receive = send and want_send, receive and want_receive
    return _DIRECTION_OF[(send, receive)]


def _check_direction(direction: str) -> None:
    if direction not in _FLOWS:
        raise ValueError(f"unknown media direction {direction!r}")


def _our_origin(address: str, session_id: int, version: int) -> Origin:
    return Origin("pbx", str(session_id), str(version), "IN", _addrtype(address), address)


def _payload_types(media: MediaDescription) -> set[int]:
    return {int(f) for f in media.formats if is_number(f)}


def _position(line: str, order: str) -> int:
    """Where a line of this type belongs; types RFC 8866 does not know go last."""
    index = order.find(line[0])
    return index if index >= 0 else len(order)


def _addrtype(address: str | None) -> str:
    return "IP6" if address and ":" in address else "IP4"
