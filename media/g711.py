"""G.711 µ-law and A-law (ITU-T G.711) as numpy lookup tables.

The tables are built once, vectorised, from the reference algorithm (Sun's
g711.c, which the ITU software tools match).  Encoding a whole frame or a
``(channels, samples)`` batch is one fancy-indexing operation.
"""

from __future__ import annotations

import numpy as np

_SEG_U = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_SEG_A = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])


def _ulaw_encode_table() -> np.ndarray:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 2
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    value = np.minimum(np.abs(pcm), 8159) + 33
    seg = np.searchsorted(_SEG_U, value)  # first segment whose end >= value
    code = np.where(
        seg >= 8, 0x7F, (seg << 4) | ((value >> (np.minimum(seg, 7) + 1)) & 0x0F)
    )
    return ((code ^ mask) & 0xFF).astype(np.uint8)


def _alaw_encode_table() -> np.ndarray:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 3
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    value = np.where(pcm >= 0, pcm, -pcm - 1)
    seg = np.searchsorted(_SEG_A, value)
    segc = np.minimum(seg, 7)
    low = np.where(segc < 2, (value >> 1) & 0x0F, (value >> np.maximum(segc, 1)) & 0x0F)
    code = np.where(seg >= 8, 0x7F, (segc << 4) | low)
    return ((code ^ mask) & 0xFF).astype(np.uint8)


def _ulaw_decode_table() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


def _alaw_decode_table() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(seg == 0, t + 8, t + 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    return np.where(a & 0x80, t, -t).astype(np.int16)


ULAW_ENCODE = _ulaw_encode_table()
ALAW_ENCODE = _alaw_encode_table()
ULAW_DECODE = _ulaw_decode_table()
ALAW_DECODE = _alaw_decode_table()
# transcoding straight from one law to the other, byte for byte
ULAW_TO_ALAW = ALAW_ENCODE[ULAW_DECODE.astype(np.int32) + 32768]
ALAW_TO_ULAW = ULAW_ENCODE[ALAW_DECODE.astype(np.int32) + 32768]


def ulaw_encode(samples: np.ndarray) -> np.ndarray:
    """int16 samples (any shape) → µ-law bytes (uint8, same shape)."""
    return ULAW_ENCODE[samples.astype(np.int32) + 32768]


def alaw_encode(samples: np.ndarray) -> np.ndarray:
    return ALAW_ENCODE[samples.astype(np.int32) + 32768]


def ulaw_decode(data: bytes | np.ndarray) -> np.ndarray:
    return ULAW_DECODE[np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else data]


def alaw_decode(data: bytes | np.ndarray) -> np.ndarray:
    return ALAW_DECODE[np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else data]


# the pairs the relay transcodes (µ-law <-> A-law), byte for byte
TRANSCODE = {("PCMU", "PCMA"): ULAW_TO_ALAW, ("PCMA", "PCMU"): ALAW_TO_ULAW}
