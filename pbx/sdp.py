"""SDP (RFC 8866) and the offer/answer model (RFC 3264) for an anchoring B2BUA.

The PBX never passes a phone's SDP through: it answers each phone itself with
its own address and relay port, choosing codecs it can relay or transcode.
So this module parses what phones send (tolerantly: LF line ends, unknown
lines kept), and builds offers and answers.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_MIRROR = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly",
           "inactive": "inactive"}


class SdpError(ValueError):
    """A session description we cannot use; the message is a reason phrase."""


@dataclass(frozen=True, slots=True)
class Codec:
    payload_type: int
    name: str
    clock_rate: int
    channels: int = 1
    fmtp: str | None = None

    def rtpmap(self) -> str:
        suffix = f"/{self.channels}" if self.channels != 1 else ""
        return f"{self.payload_type} {self.name}/{self.clock_rate}{suffix}"


STATIC_PAYLOADS = {
    0: Codec(0, "PCMU", 8000),
    3: Codec(3, "GSM", 8000),
    4: Codec(4, "G723", 8000),
    8: Codec(8, "PCMA", 8000),
    9: Codec(9, "G722", 8000),
    18: Codec(18, "G729", 8000),
}
TELEPHONE_EVENT = Codec(101, "telephone-event", 8000, fmtp="0-16")


@dataclass(slots=True)
class Origin:
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
    kind: str
    port: int
    proto: str
    formats: list[str]
    connection: str | None = None
    direction: str = "sendrecv"
    codecs: list[Codec] = field(default_factory=list)
    ptime: int | None = None
    rtcp_port: int | None = None
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    bandwidth: list[str] = field(default_factory=list)

    @property
    def is_rtp_audio(self) -> bool:
        return self.kind == "audio" and self.proto.upper().startswith("RTP/AVP") and self.port > 0


@dataclass(slots=True)
class SessionDescription:
    origin: Origin = field(default_factory=Origin)
    session_name: str = "-"
    connection: str | None = None
    direction: str | None = None  # session-level a=sendonly etc.
    media: list[MediaDescription] = field(default_factory=list)
    other: list[str] = field(default_factory=list)  # b=, t=, session attributes…

    @property
    def audio(self) -> MediaDescription | None:
        return next((m for m in self.media if m.is_rtp_audio), None)

    @classmethod
    def parse(cls, data: str | bytes) -> SessionDescription:
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        lines = [line.rstrip("\r") for line in text.split("\n") if line.strip()]
        if not lines or not lines[0].startswith("v="):
            raise SdpError("SDP must start with v=")
        if lines[0] != "v=0":
            raise SdpError("Unsupported SDP version")
        desc = cls()
        seen_origin = seen_name = False
        current: MediaDescription | None = None
        explicit: set[int] = set()  # media with their own direction attribute
        for line in lines[1:]:
            if len(line) < 2 or line[1] != "=":
                raise SdpError(f"Malformed SDP line {line[:30]!r}")
            kind, value = line[0], line[2:].strip()
            if kind == "m":
                current = _media(value)
                desc.media.append(current)
            elif kind == "o" and current is None:
                parts = value.split()
                if len(parts) != 6:
                    raise SdpError("Malformed o= line")
                desc.origin = Origin(*parts)
                seen_origin = True
            elif kind == "s" and current is None:
                desc.session_name = value or "-"
                seen_name = True
            elif kind == "c":
                address = _connection(value)
                if current is None:
                    desc.connection = address
                else:
                    current.connection = address
            elif kind == "a":
                name, sep, attr = value.partition(":")
                if current is None:
                    if name in DIRECTIONS:
                        desc.direction = name
                    else:
                        desc.other.append(line)
                else:
                    if name in DIRECTIONS:
                        explicit.add(id(current))
                    _media_attribute(current, name, attr if sep else None)
            elif kind == "b" and current is not None:
                current.bandwidth.append(value)
            elif current is None:
                desc.other.append(line)
        if not seen_origin:
            raise SdpError("Missing o= line")
        if not seen_name:
            desc.session_name = "-"
        for media in desc.media:
            _resolve_codecs(media)
            if media.port and media.connection is None and desc.connection is None:
                raise SdpError("No connection address for an active stream")
            if desc.direction and id(media) not in explicit:
                media.direction = desc.direction
        return desc

    def __str__(self) -> str:
        addrtype = "IP6" if self.connection and ":" in self.connection else "IP4"
        lines = ["v=0", f"o={self.origin}", f"s={self.session_name}"]
        if self.connection:
            lines.append(f"c=IN {addrtype} {self.connection}")
        has_t = any(line.startswith("t=") for line in self.other)
        if not has_t:
            lines.append("t=0 0")
        lines.extend(self.other)
        for media in self.media:
            lines.append(f"m={media.kind} {media.port} {media.proto} {' '.join(media.formats)}")
            if media.connection:
                mtype = "IP6" if ":" in media.connection else "IP4"
                lines.append(f"c=IN {mtype} {media.connection}")
            lines.extend(f"b={b}" for b in media.bandwidth)
            for codec in media.codecs:
                lines.append(f"a=rtpmap:{codec.rtpmap()}")
                if codec.fmtp:
                    lines.append(f"a=fmtp:{codec.payload_type} {codec.fmtp}")
            if media.ptime:
                lines.append(f"a=ptime:{media.ptime}")
            for name, value in media.attributes:
                lines.append(f"a={name}" if value is None else f"a={name}:{value}")
            if media.port:
                lines.append(f"a={media.direction}")
        return "\r\n".join(lines) + "\r\n"

    def __bytes__(self) -> bytes:
        return str(self).encode()


def _media(value: str) -> MediaDescription:
    parts = value.split()
    if len(parts) < 3:
        raise SdpError("Malformed m= line")
    kind, port_text, proto, *formats = parts
    port_text = port_text.split("/")[0]
    if not port_text.isdigit() or int(port_text) > 65535:
        raise SdpError(f"Malformed media port {port_text!r}")
    return MediaDescription(kind, int(port_text), proto, formats)


def _connection(value: str) -> str:
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise SdpError("Malformed c= line")
    address = parts[2].split("/")[0]
    try:
        ipaddress.ip_address(address)
    except ValueError:
        if not address or any(c in address for c in " /"):
            raise SdpError("Malformed connection address") from None
    return address


def _media_attribute(media: MediaDescription, name: str, value: str | None) -> None:
    if name in DIRECTIONS:
        media.direction = name
        return
    if name == "rtpmap" and value is not None:
        pt, _, encoding = value.partition(" ")
        pieces = encoding.split("/")
        if not pt.isdigit() or len(pieces) < 2 or not pieces[1].isdigit():
            raise SdpError(f"Malformed rtpmap {value[:30]!r}")
        channels = int(pieces[2]) if len(pieces) > 2 and pieces[2].isdigit() else 1
        media.codecs.append(Codec(int(pt), pieces[0], int(pieces[1]), channels))
        return
    if name == "fmtp" and value is not None:
        pt, _, params = value.partition(" ")
        media.attributes.append(("_fmtp", f"{pt} {params}"))
        return
    if name == "ptime" and value is not None and value.strip().isdigit():
        media.ptime = int(value.strip())
        return
    if name == "rtcp" and value is not None and value.split()[0].isdigit():
        media.rtcp_port = int(value.split()[0])
        return
    media.attributes.append((name, value))


def _resolve_codecs(media: MediaDescription) -> None:
    """Codecs in m= order, from rtpmap lines or the static payload table."""
    mapped = {c.payload_type: c for c in media.codecs}
    fmtps = {}
    rest = []
    for name, value in media.attributes:
        if name == "_fmtp" and value is not None:
            pt, _, params = value.partition(" ")
            if pt.isdigit():
                fmtps[int(pt)] = params
        else:
            rest.append((name, value))
    media.attributes = rest
    codecs = []
    if media.proto.upper().startswith("RTP/"):
        for fmt in media.formats:
            if not fmt.isdigit():
                raise SdpError(f"Malformed payload type {fmt!r}")
            pt = int(fmt)
            codec = mapped.get(pt) or STATIC_PAYLOADS.get(pt)
            if codec is None:
                continue  # dynamic type without rtpmap: unusable, ignore
            if pt in fmtps:
                codec = Codec(codec.payload_type, codec.name, codec.clock_rate, codec.channels,
                              fmtps[pt])
            codecs.append(codec)
    media.codecs = codecs


def negotiate(offer_codecs: list[Codec], supported: list[str]) -> list[Codec]:
    """The offerer's codecs we support, in the offerer's order and payload types."""
    wanted = {name.lower() for name in supported}
    common = [c for c in offer_codecs if c.name.lower() in wanted]
    voice = [c for c in common if c.name.lower() != "telephone-event"]
    if not voice:
        raise SdpError("Not Acceptable Here - no common codec")
    events = [c for c in common if c.name.lower() == "telephone-event"
              and c.clock_rate == voice[0].clock_rate]
    return voice[:1] + events[:1]


def make_offer(
    *, address: str, port: int, codecs: list[Codec], direction: str = "sendrecv",
    session_id: int, version: int, ptime: int = 20,
) -> SessionDescription:
    """The PBX's own offer for one audio stream."""
    media = MediaDescription(
        "audio", port, "RTP/AVP", [str(c.payload_type) for c in codecs], direction=direction,
        codecs=list(codecs), ptime=ptime,
    )
    return SessionDescription(
        Origin("pbx", str(session_id), str(version), "IN", _addrtype(address), address),
        "pbx", address, media=[media],
    )


def make_answer(
    offer: SessionDescription, *, address: str, port: int, supported: list[str],
    direction: str | None = None, session_id: int, version: int,
) -> SessionDescription:
    """Answer every m-line of ``offer`` (§6): audio with one codec, the rest rejected."""
    answer = SessionDescription(
        Origin("pbx", str(session_id), str(version), "IN", _addrtype(address), address),
        "pbx", address,
    )
    answered = False
    for media in offer.media:
        if media.is_rtp_audio and not answered:
            codecs = negotiate(media.codecs, supported)
            answered = True
            answer.media.append(MediaDescription(
                "audio", port, media.proto, [str(c.payload_type) for c in codecs],
                direction=direction or _MIRROR.get(hold_direction(offer, media), "sendrecv"),
                codecs=codecs, ptime=media.ptime or 20,
            ))
        else:
            answer.media.append(MediaDescription(media.kind, 0, media.proto, media.formats[:1]))
    if not answered:
        raise SdpError("Not Acceptable Here - no audio stream")
    return answer


def hold_direction(desc: SessionDescription, media: MediaDescription | None = None) -> str:
    """The direction the far side asked for; c=0.0.0.0 is RFC 2543 hold (sendonly)."""
    media = media or desc.audio
    if media is None:
        return "inactive"
    connection = media.connection or desc.connection
    if connection in ("0.0.0.0", "::") and media.direction == "sendrecv":
        return "sendonly"
    return media.direction


def _addrtype(address: str) -> str:
    return "IP6" if ":" in address else "IP4"
