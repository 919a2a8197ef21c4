"""One RTP stream of an endpoint (RFC 3550) with RFC 4733 key presses, pure.

The relay and the engine rewrite other people's packets; an endpoint (the
command-line softphone) sends its own: 20 ms G.711 frames from a random
SSRC, sequence number and timestamp (RFC 3550 §5.1), and, when a key is
pressed, telephone-event packets in place of the audio: a first packet with
the marker bit, updates with a growing duration, the end packet three times
(RFC 4733 §2.5.1).  Audio is encoded a whole file at a time with the G.711
tables and cut into frames; nothing here loops over samples.
"""

from __future__ import annotations

import functools
import secrets
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

FRAME = 160  # samples (and timestamp units) per 20 ms at 8 kHz
EVENTS = "0123456789*#ABCD"  # RFC 4733 §3.2 event codes 0-15
KEY_TICKS = 5  # a key press lasts 100 ms …
GAP_TICKS = 3  # … and 60 ms of audio separate two presses
VOLUME = 10  # -10 dBm0
_HEADER = struct.Struct("!BBHII")
_EVENT = struct.Struct("!BBH")

# codec name → (encode int16 → bytes array, decode bytes → int16)
G711: dict[str, tuple[Callable[[np.ndarray], np.ndarray], Callable[[bytes], np.ndarray]]] = {
    "PCMU": (ulaw_encode, ulaw_decode),
    "PCMA": (alaw_encode, alaw_decode),
}


@dataclass(frozen=True, slots=True)
class RtpPacket:
    payload_type: int
    marker: bool
    seq: int
    timestamp: int
    ssrc: int
    payload: bytes

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket | None:
        """A version-2 packet (CSRCs, extension and padding skipped), or None."""
        if len(data) < 12 or data[0] >> 6 != 2:
            return None
        first, second, seq, ts, ssrc = _HEADER.unpack_from(data)
        start = 12 + 4 * (first & 0x0F)
        if first & 0x10:  # header extension (§5.3.1)
            if len(data) < start + 4:
                return None
            start += 4 + 4 * struct.unpack_from("!H", data, start + 2)[0]
        end = len(data) - (data[-1] if first & 0x20 else 0)
        if start > end:
            return None
        return cls(second & 0x7F, bool(second & 0x80), seq, ts, ssrc, data[start:end])


def frames(samples: np.ndarray, codec: str) -> list[bytes]:
    """int16 samples → 20 ms payloads of ``codec`` (the last padded with silence)."""
    padded = np.zeros(-(-len(samples) // FRAME) * FRAME, dtype=np.int16)
    padded[: len(samples)] = samples
    encoded = G711[codec][0](padded).tobytes()
    return [encoded[i : i + FRAME] for i in range(0, len(encoded), FRAME)]


def decode(payloads: list[bytes], codec: str) -> np.ndarray:
    """Payloads of ``codec`` → int16 samples, in the order given."""
    return G711[codec][1](b"".join(payloads)).astype(np.int16)


@functools.cache
def silence(codec: str) -> bytes:
    """One frame of silence: what a phone sends while nobody talks."""
    return frames(np.zeros(FRAME, dtype=np.int16), codec)[0]


class RtpSender:
    """Our outgoing stream: one call of :meth:`tick` per 20 ms gives what to send."""

    def __init__(self, payload_type: int, event_type: int | None) -> None:
        self.payload_type = payload_type
        self.event_type = event_type
        self.ssrc = secrets.randbits(32)
        self.seq = secrets.randbits(16)
        self.timestamp = secrets.randbits(32)
        self._keys: deque[str] = deque()
        self._key: str | None = None
        self._key_start = 0
        self._key_ticks = 0
        self._gap = 0

    def press(self, keys: str) -> None:
        """Queue key presses; ValueError for a key RFC 4733 cannot carry, or when
        the far end did not agree to telephone-events."""
        wrong = sorted({key for key in keys.upper() if key not in EVENTS})
        if wrong:
            raise ValueError(f"not a DTMF key: {''.join(wrong)} (keys are 0-9, *, #, A-D)")
        if self.event_type is None:
            raise ValueError("the far end does not take RFC 4733 telephone-events")
        self._keys.extend(keys.upper())

    @property
    def pressing(self) -> bool:
        """Keys are queued or being sent."""
        return bool(self._keys) or self._key is not None

    def tick(self, payload: bytes) -> list[bytes]:
        """The packets for this 20 ms: the audio ``payload``, or a key press's event packets."""
        packets = self._event_packets() if self._key is not None or self._start_key() else [
            self._packet(self.payload_type, False, self.timestamp, payload)]
        self.timestamp = (self.timestamp + FRAME) & 0xFFFFFFFF
        return packets

    def _start_key(self) -> bool:
        if self._gap:
            self._gap -= 1
            return False
        if not self._keys:
            return False
        self._key = self._keys.popleft()
        self._key_start = self.timestamp
        self._key_ticks = 0
        return True

    def _event_packets(self) -> list[bytes]:
        assert self._key is not None and self.event_type is not None
        self._key_ticks += 1
        end = self._key_ticks == KEY_TICKS
        duration = self._key_ticks * FRAME
        body = _EVENT.pack(EVENTS.index(self._key), (0x80 if end else 0) | VOLUME, duration)
        copies = 3 if end else 1  # the end packet is sent three times (§2.5.1.4)
        packets = [self._packet(self.event_type, self._key_ticks == 1, self._key_start, body)
                   for _ in range(copies)]
        if end:
            self._key, self._gap = None, GAP_TICKS
        return packets

    def _packet(self, payload_type: int, marker: bool, timestamp: int, payload: bytes) -> bytes:
        self.seq = (self.seq + 1) & 0xFFFF
        second = payload_type | (0x80 if marker else 0)
        return _HEADER.pack(0x80, second, self.seq, timestamp, self.ssrc) + payload


class KeyListener:
    """Keys the far end presses, from its telephone-event packets: each once, on its
    first end packet (the three copies and the updates share one timestamp)."""

    def __init__(self) -> None:
        self._last: int | None = None

    def feed(self, packet: RtpPacket) -> str | None:
        payload = packet.payload
        if len(payload) < 4 or not payload[1] & 0x80 or packet.timestamp == self._last:
            return None
        self._last = packet.timestamp
        return EVENTS[payload[0]] if payload[0] < len(EVENTS) else None
