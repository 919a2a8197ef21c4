"""RTP and RTCP packets (RFC 3550), pure.

Only what the relay and the engine need: the fixed RTP header (with CSRCs
and header extensions skipped over), RTCP sender and receiver reports, and
the RFC 3550 receiver statistics (extended sequence numbers, loss and
interarrival jitter, appendix A.1, A.3 and A.8).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

RTP_HEADER = struct.Struct("!BBHII")
NTP_EPOCH_OFFSET = 2208988800


class RtpError(ValueError):
    """Not an RTP packet we can use."""


@dataclass(slots=True)
class RtpPacket:
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        if len(data) < 12:
            raise RtpError("shorter than an RTP header")
        first, second, sequence, timestamp, ssrc = RTP_HEADER.unpack_from(data)
        if first >> 6 != 2:
            raise RtpError("not RTP version 2")
        offset = 12 + 4 * (first & 0x0F)
        if first & 0x10:  # header extension
            if len(data) < offset + 4:
                raise RtpError("truncated header extension")
            (words,) = struct.unpack_from("!H", data, offset + 2)
            offset += 4 + 4 * words
        end = len(data)
        if first & 0x20:  # padding
            end -= data[-1]
        if offset > end:
            raise RtpError("truncated RTP packet")
        return cls(second & 0x7F, sequence, timestamp, ssrc, data[offset:end], bool(second & 0x80))

    def __bytes__(self) -> bytes:
        second = (0x80 if self.marker else 0) | self.payload_type
        return RTP_HEADER.pack(0x80, second, self.sequence, self.timestamp, self.ssrc) + self.payload


def is_rtcp(data: bytes) -> bool:
    """RFC 5761 §4: payload types 64-95 (packet types 192-223) are RTCP."""
    return len(data) >= 2 and 192 <= data[1] <= 223


@dataclass(slots=True)
class ReceiverStats:
    """What a receiver learns from one source (RFC 3550 A.1, A.3, A.8)."""

    clock_rate: int = 8000
    received: int = 0
    base_seq: int = -1
    max_seq: int = 0
    cycles: int = 0
    jitter: float = 0.0  # in timestamp units
    _transit: float | None = None
    _expected_prior: int = 0
    _received_prior: int = 0

    def update(self, sequence: int, timestamp: int, arrival: float) -> None:
        if self.base_seq < 0:
            self.base_seq = self.max_seq = sequence
        else:
            delta = (sequence - self.max_seq) & 0xFFFF
            if delta < 0x8000:  # in order, maybe with a gap
                if sequence < self.max_seq:
                    self.cycles += 1 << 16
                self.max_seq = sequence
            # else: late or duplicate, does not move max_seq
        self.received += 1
        transit = arrival * self.clock_rate - timestamp
        if self._transit is not None:
            d = abs(transit - self._transit)
            self.jitter += (d - self.jitter) / 16
        self._transit = transit

    @property
    def expected(self) -> int:
        if self.base_seq < 0:
            return 0
        return self.cycles + self.max_seq - self.base_seq + 1

    @property
    def lost(self) -> int:
        return max(0, self.expected - self.received)

    @property
    def jitter_ms(self) -> float:
        return self.jitter * 1000 / self.clock_rate

    def interval_loss(self) -> tuple[int, int]:
        """Fraction lost since the last report (0-255) and cumulative loss (§6.4.1)."""
        expected, received = self.expected, self.received
        expected_interval = expected - self._expected_prior
        received_interval = received - self._received_prior
        self._expected_prior, self._received_prior = expected, received
        lost_interval = expected_interval - received_interval
        fraction = 0 if expected_interval <= 0 or lost_interval <= 0 else (
            (lost_interval << 8) // expected_interval
        )
        return min(fraction, 255), self.lost


def build_report(
    ssrc: int, *, now: float, sent_packets: int, sent_octets: int, rtp_timestamp: int,
    source: int | None, stats: ReceiverStats | None,
) -> bytes:
    """An RTCP SR (we send media) with one report block about ``source``."""
    blocks = b""
    count = 0
    if source is not None and stats is not None and stats.received:
        fraction, lost = stats.interval_loss()
        extended = (stats.cycles + stats.max_seq) & 0xFFFFFFFF
        blocks = struct.pack(
            "!IB3sIIII", source, fraction, min(lost, 0x7FFFFF).to_bytes(3, "big"), extended,
            int(stats.jitter) & 0xFFFFFFFF, 0, 0,
        )
        count = 1
    ntp = now + NTP_EPOCH_OFFSET
    seconds = int(ntp)
    fraction_ntp = int((ntp - seconds) * (1 << 32)) & 0xFFFFFFFF
    body = struct.pack(
        "!IIIIII", ssrc, seconds & 0xFFFFFFFF, fraction_ntp, rtp_timestamp & 0xFFFFFFFF,
        sent_packets & 0xFFFFFFFF, sent_octets & 0xFFFFFFFF,
    ) + blocks
    length = (len(body) + 4) // 4 - 1
    return struct.pack("!BBH", 0x80 | count, 200, length) + body


@dataclass(frozen=True, slots=True)
class ReportBlock:
    ssrc: int
    fraction_lost: float
    cumulative_lost: int
    jitter: int


def parse_reports(data: bytes) -> list[ReportBlock]:
    """The report blocks of every SR/RR in a compound RTCP packet."""
    blocks: list[ReportBlock] = []
    offset = 0
    while offset + 4 <= len(data):
        first, packet_type, length = struct.unpack_from("!BBH", data, offset)
        end = offset + 4 * (length + 1)
        if first >> 6 != 2 or end > len(data):
            break
        count = first & 0x1F
        start = offset + (28 if packet_type == 200 else 8 if packet_type == 201 else end - offset)
        for i in range(count if packet_type in (200, 201) else 0):
            at = start + 24 * i
            if at + 24 > end:
                break
            ssrc, fraction, lost3, _, jitter = struct.unpack_from("!IB3sII", data, at)
            blocks.append(ReportBlock(ssrc, fraction / 256, int.from_bytes(lost3, "big"), jitter))
        offset = end
    return blocks
