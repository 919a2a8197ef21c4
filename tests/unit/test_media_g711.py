"""G.711 tables against the reference algorithm."""

from __future__ import annotations

import numpy as np
import pytest

from media.g711 import (
    ALAW_DECODE, ULAW_DECODE, alaw_decode, alaw_encode, ulaw_decode, ulaw_encode,
)


def _ulaw_reference(pcm: int) -> int:
    """Sun's g711.c linear2ulaw, one sample at a time."""
    pcm >>= 2
    mask = 0xFF
    if pcm < 0:
        pcm, mask = -pcm, 0x7F
    pcm = min(pcm, 8159) + 33
    ends = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)
    seg = next((i for i, end in enumerate(ends) if pcm <= end), 8)
    return (0x7F if seg >= 8 else (seg << 4) | ((pcm >> (seg + 1)) & 0xF)) ^ mask


def _alaw_reference(pcm: int) -> int:
    pcm >>= 3
    mask = 0xD5
    if pcm < 0:
        pcm, mask = -pcm - 1, 0x55
    ends = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)
    seg = next((i for i, end in enumerate(ends) if pcm <= end), 8)
    if seg >= 8:
        return 0x7F ^ mask
    low = (pcm >> 1) & 0xF if seg < 2 else (pcm >> seg) & 0xF
    return ((seg << 4) | low) ^ mask


def test_tables_match_the_reference_bit_for_bit() -> None:
    samples = np.arange(-32768, 32768, 3, dtype=np.int32)
    assert np.array_equal(ulaw_encode(samples), [_ulaw_reference(int(x)) for x in samples])
    assert np.array_equal(alaw_encode(samples), [_alaw_reference(int(x)) for x in samples])
    # well-known decode points
    assert (ULAW_DECODE[0x00], ULAW_DECODE[0x7F], ULAW_DECODE[0x80]) == (-32124, 0, 32124)
    assert (ALAW_DECODE[0xD5], ALAW_DECODE[0x55], ALAW_DECODE[0xAA]) == (8, -8, 32256)


@pytest.mark.parametrize("encode, decode", [(ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)])
def test_tone_round_trip_snr(encode, decode) -> None:  # type: ignore[no-untyped-def]
    t = np.arange(8000) / 8000
    tone = (np.sin(2 * np.pi * 1004 * t + 0.3) * 12000).astype(np.int16)
    back = decode(encode(tone)).astype(float)
    snr = 10 * np.log10(np.sum(tone.astype(float) ** 2) / np.sum((tone - back) ** 2))
    assert 33 < snr < 45  # the G.711 quantisation ceiling
