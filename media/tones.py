"""Call-progress tones per country (ITU-T E.180 supplement), generated in frames.

A tone is a set of frequencies and a cadence of (on, off) milliseconds.  The
generator computes a whole frame from the absolute sample index, so frames
join without clicks and every listener of a shared tone hears the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tone:
    frequencies: tuple[float, ...]
    cadence: tuple[int, ...] = ()  # on, off, on, off … in ms; empty = continuous
    level: float = 0.25  # of full scale, per tone (about −12 dBFS)
    once: bool = False  # play the cadence one time (a beep), not in a loop


TONES: dict[str, dict[str, Tone]] = {
    "se": {
        "dial": Tone((425,)),
        "ringback": Tone((425,), (1000, 5000)),
        "busy": Tone((425,), (250, 250)),
        "congestion": Tone((425,), (250, 750)),
        "callwaiting": Tone((425,), (200, 500, 200, 5000)),
    },
    "gb": {
        "dial": Tone((350, 440)),
        "ringback": Tone((400, 450), (400, 200, 400, 2000)),
        "busy": Tone((400,), (375, 375)),
        "congestion": Tone((400,), (400, 350, 225, 525)),
        "callwaiting": Tone((400,), (100, 3000)),
    },
    "us": {
        "dial": Tone((350, 440)),
        "ringback": Tone((440, 480), (2000, 4000)),
        "busy": Tone((480, 620), (500, 500)),
        "congestion": Tone((480, 620), (250, 250)),
        "callwaiting": Tone((440,), (300, 9700)),
    },
}
BEEP = Tone((1000,), (250, 0), once=True)  # e.g. "this call is recorded"


def tone(country: str, name: str) -> Tone:
    """The tone ``name`` of ``country`` (ISO 3166 code: se, gb, us)."""
    try:
        return TONES[country.lower()][name]
    except KeyError:
        raise ValueError(f"no {name!r} tone for country {country!r}") from None


class ToneGenerator:
    """Consecutive frames of one tone at ``rate`` Hz."""

    def __init__(self, spec: Tone, rate: int = 8000) -> None:
        self.spec = spec
        self.rate = rate
        self.position = 0  # samples produced so far
        bounds = np.cumsum([0, *spec.cadence]) * rate // 1000
        self._bounds = bounds
        self._cycle = int(bounds[-1]) if spec.cadence else 0

    @property
    def finished(self) -> bool:
        return self.spec.once and self.position >= self._cycle

    def frame(self, samples: int = 160) -> np.ndarray:
        """The next ``samples`` samples as int16."""
        index = np.arange(self.position, self.position + samples)
        self.position += samples
        t = index / self.rate
        wave = sum(np.sin(2 * np.pi * f * t) for f in self.spec.frequencies)
        wave = wave * (self.spec.level * 32767)
        if self._cycle:
            phase = index if self.spec.once else index % self._cycle
            segment = np.searchsorted(self._bounds, phase, side="right") - 1
            on = (segment % 2 == 0) & (phase < self._cycle)
            wave = np.where(on, wave, 0.0)
        return np.clip(wave, -32768, 32767).astype(np.int16)
