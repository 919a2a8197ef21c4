"""Tones: right frequencies and cadence per country (FFT and on/off per 10 ms),
no clicks, beeps and join/leave signals, and which country an organisation's
language gets."""

from __future__ import annotations

import numpy as np
import pytest

from media.tones import (
    COUNTRIES, JOIN_TONE, LEAVE_TONE, TONES, beep, render, tone, tone_country,
)

RATE = 8000


def on_off(signal: np.ndarray) -> list[bool]:
    """Per 10 ms: is the tone on?"""
    blocks = signal[: len(signal) // 80 * 80].reshape(-1, 80).astype(float)
    return list(np.sqrt((blocks**2).mean(axis=1)) > 100)


def cadence_of(signal: np.ndarray) -> list[int]:
    """Lengths in ms of the on and off stretches, from the first on."""
    pattern = on_off(signal)
    runs: list[int] = []
    current, length = pattern[0], 0
    for block in pattern:
        if block == current:
            length += 1
        else:
            runs.append(length * 10)
            current, length = block, 1
    runs.append(length * 10)
    return runs


def peaks(signal: np.ndarray, count: int) -> list[float]:
    """The ``count`` strongest frequencies (Hz) of the stretches where the tone is on."""
    on = np.repeat(on_off(signal), 80)[: len(signal)]
    sound = signal[: len(on)][on].astype(float)
    spectrum = np.abs(np.fft.rfft(sound * np.hanning(len(sound))))
    freqs = np.fft.rfftfreq(len(sound), 1 / RATE)
    found: list[float] = []
    for index in np.argsort(spectrum)[::-1]:
        if all(abs(freqs[index] - f) > 20 for f in found):
            found.append(float(freqs[index]))
        if len(found) == count:
            break
    return sorted(found)


@pytest.mark.parametrize("country", COUNTRIES)
def test_every_country_has_the_usual_tones(country: str) -> None:
    assert {"dial", "ringback", "busy", "congestion", "callwaiting"} <= set(TONES[country])


# ITU-T E.180 supplement values: (ringback on, off), (busy on, off), (congestion on, off)
NORDIC_AND_GERMAN = {
    "se": ((1000, 5000), (250, 250), (250, 750)),
    "dk": ((1000, 4000), (500, 500), (200, 200)),
    "no": ((1000, 4000), (500, 500), (200, 200)),
    "fi": ((1000, 4000), (300, 300), (200, 200)),
    "de": ((1000, 4000), (480, 480), (240, 240)),
}


@pytest.mark.parametrize("country", sorted(NORDIC_AND_GERMAN))
def test_ringback_busy_and_congestion_are_425_hz_in_their_cadence(country: str) -> None:
    for name, cadence in zip(("ringback", "busy", "congestion"), NORDIC_AND_GERMAN[country]):
        cycle = sum(cadence) / 1000
        signal = render(tone(country, name), 3 * cycle)  # three cycles, as samples
        assert len(signal) == round(3 * cycle * RATE)
        assert cadence_of(signal) == list(cadence) * 3, (country, name)
        assert abs(peaks(signal, 1)[0] - 425) < 3, (country, name)
    dial = render(tone(country, "dial"), 1.0)
    assert all(on_off(dial)[1:-1]) and abs(peaks(dial, 1)[0] - 425) < 3


def test_us_busy_has_both_frequencies_and_gb_ringback_its_double_ring() -> None:
    busy = render(tone("us", "busy"), 2.0)
    assert cadence_of(busy) == [500, 500] * 2
    assert [round(f) for f in peaks(busy, 2)] == pytest.approx([480, 620], abs=3)
    ring = render(tone("gb", "ringback"))  # one cadence by default
    assert cadence_of(ring) == [400, 200, 400, 2000]
    assert [round(f) for f in peaks(ring, 2)] == pytest.approx([400, 450], abs=3)


def test_danish_call_waiting_plays_once() -> None:
    signal = render(tone("dk", "callwaiting"), 10.0)
    assert cadence_of(signal) == [200, 600, 200, 3000, 200, 200, 200, 5400]  # then silence


def test_no_clicks_within_a_cadence_or_between_two_plays() -> None:
    spec = tone("se", "busy")
    level = spec.level * 32767
    step = 2 * np.pi * 425 / RATE * level * 1.05  # the steepest a clean 425 Hz sine gets
    twice = np.concatenate([render(spec), render(spec)])
    assert np.max(np.abs(np.diff(twice))) < step
    assert abs(twice[0]) < 1 and abs(twice[-1]) < 1  # starts and ends faded


def test_beeps_and_join_leave_signals() -> None:
    tone_ = beep(1000.0, 0.4)
    assert len(tone_) == 3200 and tone_.dtype == np.float32
    assert cadence_of(tone_) == [400] and abs(peaks(tone_, 1)[0] - 1000) < 3
    assert 5000 < np.max(np.abs(tone_)) < 6500  # about −15 dBFS: clear, not loud
    rising = [peaks(JOIN_TONE[i * 960 : (i + 1) * 960], 1)[0] for i in (0, 1)]
    falling = [peaks(LEAVE_TONE[i * 960 : (i + 1) * 960], 1)[0] for i in (0, 1)]
    assert rising == pytest.approx([660, 990], abs=10) and falling == rising[::-1]


def test_each_language_gets_its_countrys_tones() -> None:
    assert [tone_country(lang) for lang in ("sv", "da", "nb", "fi", "de")] == \
        ["se", "dk", "no", "fi", "de"]
    assert tone_country("en") == "gb" and tone_country("en", english="us") == "us"


def test_unknown_tone() -> None:
    with pytest.raises(ValueError, match="no 'dial' tone"):
        tone("xx", "dial")
