"""An endpoint's RTP stream (media/rtp.py): G.711 frames, packet layout, and
RFC 4733 key presses that a listener hears once each."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from media.g711 import ulaw_encode
from media.rtp import FRAME, GAP_TICKS, KEY_TICKS, KeyListener, RtpPacket, RtpSender, decode, frames


def tone(seconds: float) -> np.ndarray:
    t = np.arange(int(8000 * seconds)) / 8000
    return (np.sin(2 * np.pi * 1000 * t) * 8000).astype(np.int16)


def test_a_file_is_cut_into_20_ms_frames_and_the_last_is_padded() -> None:
    samples = tone(0.05)  # 400 samples: two whole frames and half of one
    payloads = frames(samples, "PCMU")
    assert [len(p) for p in payloads] == [FRAME, FRAME, FRAME]
    assert payloads[0] == ulaw_encode(samples[:FRAME]).tobytes()
    back = decode(payloads, "PCMU")
    assert len(back) == 480 and np.abs(back[400:]).max() <= 8  # µ-law silence
    assert np.corrcoef(back[:400], samples)[0, 1] > 0.99


def test_audio_packets_continue_one_stream() -> None:
    sender = RtpSender(8, 101)
    first, second = (RtpPacket.parse(sender.tick(b"\xd5" * FRAME)[0]) for _ in range(2))
    assert first is not None and second is not None
    assert (first.payload_type, first.marker, first.payload) == (8, False, b"\xd5" * FRAME)
    assert second.seq == (first.seq + 1) & 0xFFFF
    assert second.timestamp == (first.timestamp + FRAME) & 0xFFFFFFFF
    assert second.ssrc == first.ssrc


def test_keys_go_out_as_rfc4733_events_heard_once_each() -> None:
    sender = RtpSender(0, 101)
    sender.press("1#")
    ticks = [[RtpPacket.parse(p) for p in sender.tick(b"\xff" * FRAME)]
             for _ in range(2 * KEY_TICKS + GAP_TICKS + 1)]
    first_key = [p for tick in ticks[:KEY_TICKS] for p in tick]
    assert all(p is not None and p.payload_type == 101 for p in first_key)
    assert [p.marker for p in first_key] == [True] + [False] * (len(first_key) - 1)  # type: ignore[union-attr]
    assert len({p.timestamp for p in first_key}) == 1  # type: ignore[union-attr]
    durations = [struct.unpack("!BBH", p.payload)[2] for p in first_key]  # type: ignore[union-attr]
    assert durations == [160, 320, 480, 640, 800, 800, 800]
    assert [p.payload[1] & 0x80 for p in first_key[-3:]] == [0x80] * 3  # the end, three times
    gap = ticks[KEY_TICKS : KEY_TICKS + GAP_TICKS]
    assert all(len(t) == 1 and t[0] is not None and t[0].payload_type == 0 for t in gap)
    listener = KeyListener()
    heard = [listener.feed(p) for tick in ticks for p in tick
             if p is not None and p.payload_type == 101]
    assert [key for key in heard if key] == ["1", "#"]
    assert not sender.pressing


@pytest.mark.parametrize("keys, event_type, message", [
    ("12x", 101, "not a DTMF key: X"),
    ("1", None, "does not take RFC 4733"),
])
def test_keys_that_cannot_be_sent_are_refused(keys: str, event_type: int | None,
                                              message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RtpSender(0, event_type).press(keys)


def test_parse_skips_csrcs_extension_and_padding() -> None:
    header = struct.pack("!BBHII", 0x80 | 0x20 | 0x10 | 1, 0x80 | 8, 7, 160, 99)
    packet = header + b"CSRC" + struct.pack("!HH", 0xBEDE, 1) + b"EXT!" + b"abc" + b"\x00\x02"
    parsed = RtpPacket.parse(packet)
    assert parsed == RtpPacket(8, True, 7, 160, 99, b"abc")
    assert RtpPacket.parse(b"\x40" + bytes(20)) is None  # version 1
    assert RtpPacket.parse(b"\x80\x00") is None
