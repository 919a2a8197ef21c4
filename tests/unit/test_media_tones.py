"""Country tones: right frequencies, right cadence, no clicks between frames."""

from __future__ import annotations

import numpy as np
import pytest

from media.tones import BEEP, TONES, ToneGenerator, tone


def frames(generator: ToneGenerator, seconds: float) -> np.ndarray:
    return np.concatenate([generator.frame() for _ in range(int(seconds * 50))]).astype(float)


def on_off(signal: np.ndarray) -> list[bool]:
    """Per 10 ms: is the tone on?"""
    blocks = signal[: len(signal) // 80 * 80].reshape(-1, 80)
    return list(np.sqrt((blocks**2).mean(axis=1)) > 100)


@pytest.mark.parametrize("country", sorted(TONES))
def test_every_country_has_the_usual_tones(country: str) -> None:
    assert {"dial", "ringback", "busy", "congestion", "callwaiting"} <= set(TONES[country])


def test_swedish_ringback_is_425_hz_one_second_in_six() -> None:
    signal = frames(ToneGenerator(tone("se", "ringback")), 12)
    pattern = on_off(signal)
    assert pattern[:100] == [True] * 100 and pattern[100:600] == [False] * 500
    assert pattern[600:700] == [True] * 100
    spectrum = np.abs(np.fft.rfft(signal[:8000]))
    assert abs(np.fft.rfftfreq(8000, 1 / 8000)[np.argmax(spectrum)] - 425) < 2


def test_us_busy_has_both_frequencies_and_half_second_cadence() -> None:
    signal = frames(ToneGenerator(tone("us", "busy")), 2)
    pattern = on_off(signal)
    assert pattern[:50] == [True] * 50 and pattern[50:100] == [False] * 50
    spectrum = np.abs(np.fft.rfft(signal[:4000]))
    freqs = np.fft.rfftfreq(4000, 1 / 8000)
    top = sorted(freqs[np.argsort(spectrum)[-2:]])
    assert abs(top[0] - 480) < 3 and abs(top[1] - 620) < 3


def test_frames_join_without_a_click() -> None:
    generator = ToneGenerator(tone("gb", "dial"))
    signal = frames(generator, 1)
    assert np.max(np.abs(np.diff(signal))) < 0.25 * 32767 * 2 * 2 * np.pi * 440 / 8000 * 1.1


def test_beep_plays_once() -> None:
    generator = ToneGenerator(BEEP)
    signal = frames(generator, 1)
    assert generator.finished
    assert on_off(signal)[:25] == [True] * 25 and not any(on_off(signal)[26:])


def test_unknown_tone() -> None:
    with pytest.raises(ValueError, match="no 'dial' tone"):
        tone("xx", "dial")
