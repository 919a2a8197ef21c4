"""DTMF in the audio (Goertzel, ITU-T Q.24) for a whole batch of channels.

Every tick the engine passes its ``(channels, 160)`` frame array; the eight
DTMF frequencies are measured for all channels in one matrix product (a
Goertzel bank is an 8-point DFT), then each channel's digit is accepted only
if one low and one high tone dominate (signal-to-total energy), their levels
are within the twist limits, and the digit lasts two frames (40 ms) — speech
and music rarely pass all three.  RFC 4733 events and SIP INFO arrive as
digits too, so applications see one interface: ``(channel, digit)``.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

LOW = (697.0, 770.0, 852.0, 941.0)
HIGH = (1209.0, 1336.0, 1477.0, 1633.0)
KEYS = ("123A", "456B", "789C", "*0#D")
FRAME = 160
RATE = 8000


def dtmf_tone(digit: str, ms: int = 100, level: float = 6000.0) -> np.ndarray:
    """The two-tone signal of ``digit`` (tests, and in-band generation)."""
    row = next(i for i, keys in enumerate(KEYS) if digit in keys)
    col = KEYS[row].index(digit)
    t = np.arange(RATE * ms // 1000) / RATE
    return (np.sin(2 * np.pi * LOW[row] * t) + np.sin(2 * np.pi * HIGH[col] * t)) * level


class DtmfDetector:
    """Per-channel in-band DTMF detection over frame batches."""

    def __init__(
        self, *, min_level: float = 400.0, purity: float = 0.45, twist_db: float = 8.0,
        reverse_twist_db: float = 4.0, frames_needed: int = 2,
    ) -> None:
        t = np.arange(FRAME) / RATE
        freqs = np.array(LOW + HIGH)
        # a Goertzel bank is an 8-point DFT; rectangular window: neighbours 73 Hz
        # apart leak less than through a Hann window's wide main lobe.  Cosine and
        # sine parts as one real float32 matrix: a real product of the float32
        # frames, no complex copy of the batch
        basis = np.exp(-2j * np.pi * freqs[None, :] * t[:, None]) * (2 / FRAME)
        self._basis = np.concatenate([basis.real, basis.imag], axis=1).astype(np.float32)
        self.min_power = min_level**2 / 2
        self.purity = purity
        self.twist = 10 ** (twist_db / 10)
        self.reverse_twist = 10 ** (reverse_twist_db / 10)
        self.frames_needed = frames_needed
        self._candidate: dict[Hashable, tuple[str, int]] = {}
        self._reported: dict[Hashable, str] = {}

    def feed(self, frames: np.ndarray, keys: Sequence[Hashable] | None = None) -> list[tuple[Hashable, str]]:
        """Frames ``(channels, 160)``; returns ``(channel, digit)`` for new key presses.

        ``keys`` names the rows (default: their index) so a channel keeps its
        state when the batch is laid out differently next tick.
        """
        names: Sequence[Hashable] = range(len(frames)) if keys is None else keys
        frames = np.asarray(frames, dtype=np.float32)
        parts = frames @ self._basis
        power = (parts[:, :8] ** 2 + parts[:, 8:] ** 2) / 2  # each tone's power (amplitude²/2)
        total = np.einsum("ij,ij->i", frames, frames) / FRAME
        low, high = power[:, :4], power[:, 4:]
        li, hi = low.argmax(axis=1), high.argmax(axis=1)
        rows = np.arange(len(frames))
        lv, hv = low[rows, li], high[rows, hi]
        ok = (
            (lv > self.min_power) & (hv > self.min_power)
            & (hv <= lv * self.twist) & (lv <= hv * self.reverse_twist)
            & (lv + hv > self.purity * total)
            & (np.sort(low, axis=1)[:, -2] < lv / 8)  # one tone per group
            & (np.sort(high, axis=1)[:, -2] < hv / 8)
        )
        if self._candidate:  # keys were held down somewhere: were they let go?
            row_of = {key: row for row, key in enumerate(names)}
            for key in [k for k in self._candidate if k in row_of and not ok[row_of[k]]]:
                del self._candidate[key]
                self._reported.pop(key, None)
        events: list[tuple[Hashable, str]] = []
        for row in np.flatnonzero(ok).tolist():  # only channels with a digit: no loop over all
            key = names[row]
            digit = KEYS[li[row]][hi[row]]
            seen, count = self._candidate.get(key, (digit, 0))
            count = count + 1 if seen == digit else 1
            self._candidate[key] = (digit, count)
            if count >= self.frames_needed and self._reported.get(key) != digit:
                self._reported[key] = digit
                events.append((key, digit))
        return events

    def forget(self, key: Hashable) -> None:
        self._candidate.pop(key, None)
        self._reported.pop(key, None)
