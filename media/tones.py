"""Tones: call-progress tones per country (ITU-T E.180 and its supplement, the
ITU's "Various tones used in national networks"), beeps and the conference
join/leave signals, all rendered as 8 kHz samples ready for ``engine.play``.

A tone is a set of frequencies and a cadence of (on, off) milliseconds.  Every
on/off edge is a short raised-cosine ramp, so a cadence does not click, and a
tone of N seconds is one array: no per-frame generator on the media tick.

Which country's tones an organisation hears follows its language (sv → se,
da → dk, nb → no, fi → fi, de → de; English → gb or us, the configured
``tone_country``), unless the organisation sets its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RATE = 8000  # the engine's sample rate
FULL_SCALE = 32767.0  # samples are in int16 units, as the engine mixes them
RAMP = 0.005  # s of raised-cosine fade at every on/off edge


@dataclass(frozen=True)
class Tone:
    frequencies: tuple[float, ...]
    cadence: tuple[int, ...] = ()  # on, off, on, off … in ms; empty = continuous
    level: float = 0.25  # of full scale, per frequency (about −12 dBFS)
    once: bool = False  # play the cadence one time (a beep, a call-waiting burst), not in a loop

    @property
    def cycle(self) -> float:
        """Seconds of one cadence (0 for a continuous tone)."""
        return sum(self.cadence) / 1000


# Values per the ITU-T E.180 supplement as the Asterisk and DAHDI tone zones
# carry them (both cite the ITU's 2003 compilation, tones-0203.pdf).
TONES: dict[str, dict[str, Tone]] = {
    "se": {
        "dial": Tone((425,)),
        "ringback": Tone((425,), (1000, 5000)),
        "busy": Tone((425,), (250, 250)),
        "congestion": Tone((425,), (250, 750)),
        "callwaiting": Tone((425,), (200, 500, 200, 5000)),
    },
    "dk": {
        "dial": Tone((425,)),
        "ringback": Tone((425,), (1000, 4000)),
        "busy": Tone((425,), (500, 500)),
        "congestion": Tone((425,), (200, 200)),
        "callwaiting": Tone((425,), (200, 600, 200, 3000, 200, 200, 200), once=True),
    },
    "no": {
        "dial": Tone((425,)),
        "ringback": Tone((425,), (1000, 4000)),
        "busy": Tone((425,), (500, 500)),
        "congestion": Tone((425,), (200, 200)),
        "callwaiting": Tone((425,), (200, 600, 200, 10000)),
    },
    "fi": {
        "dial": Tone((425,)),
        "ringback": Tone((425,), (1000, 4000)),
        "busy": Tone((425,), (300, 300)),
        "congestion": Tone((425,), (200, 200)),
        "callwaiting": Tone((425,), (150, 150, 150, 8000)),
    },
    "de": {
        "dial": Tone((425,)),
        "ringback": Tone((425,), (1000, 4000)),
        "busy": Tone((425,), (480, 480)),
        "congestion": Tone((425,), (240, 240)),
        "callwaiting": Tone((425,), (200, 200, 200, 5000)),
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
COUNTRIES = tuple(TONES)
TONE_COUNTRY = {"sv": "se", "da": "dk", "nb": "no", "fi": "fi", "de": "de"}  # by language


def tone(country: str, name: str) -> Tone:
    """The tone ``name`` of ``country`` (ISO 3166 code: se, dk, no, fi, de, gb, us)."""
    try:
        return TONES[country.lower()][name]
    except KeyError:
        raise ValueError(f"no {name!r} tone for country {country!r}") from None


def tone_country(language: str, english: str = "gb") -> str:
    """The country whose tones callers of an organisation speaking ``language``
    know; English is spoken in both of ours, so ``english`` says which."""
    return TONE_COUNTRY.get(language, english)


def render(spec: Tone, seconds: float | None = None, rate: int = RATE) -> np.ndarray:
    """``seconds`` of the tone (default: one cadence, or all of a one-time tone) as
    float32 samples in int16 units, ready for ``engine.play``."""
    if seconds is None:
        seconds = spec.cycle or 1.0
    index = np.arange(int(round(seconds * rate)))
    t = index / rate
    wave = np.zeros(len(index))
    for frequency in spec.frequencies:
        wave += np.sin(2 * np.pi * frequency * t)
    ramp = max(1, int(RAMP * rate))
    if spec.cadence:
        bounds = np.cumsum([0, *spec.cadence]) * rate // 1000
        cycle = int(bounds[-1])
        phase = index if spec.once else index % cycle
        segment = np.searchsorted(bounds, phase, side="right") - 1
        on = (segment % 2 == 0) & (phase < cycle)
        segment = np.minimum(segment, len(spec.cadence) - 1)
        into, left = phase - bounds[segment], bounds[segment + 1] - 1 - phase
    else:
        on = np.ones(len(index), dtype=bool)
        into, left = index, len(index) - 1 - index
    edge = np.clip(np.minimum(into, left) / ramp, 0.0, 1.0)
    envelope = np.where(on, 0.5 - 0.5 * np.cos(np.pi * edge), 0.0)
    return (wave * envelope * spec.level * FULL_SCALE).astype(np.float32)


def beep(frequency: float = 880.0, seconds: float = 0.2, level: float = 0.18) -> np.ndarray:
    """A short tone: the voicemail "speak after the tone", join and leave signals."""
    return render(Tone((frequency,), (int(seconds * 1000),), level, once=True), seconds)


JOIN_TONE = np.concatenate([beep(660, 0.12), beep(990, 0.12)])  # rising: someone joined
LEAVE_TONE = np.concatenate([beep(990, 0.12), beep(660, 0.12)])  # falling: someone left
