"""In-band DTMF: every digit found in noise, nothing found in speech-like sound."""

from __future__ import annotations

import numpy as np

from media.dtmf import KEYS, DtmfDetector, dtmf_tone


def run(detector: DtmfDetector, signal: np.ndarray, channels: int = 1) -> list[tuple[int, str]]:
    """Feed a signal (the same on ``channels`` rows) frame by frame."""
    events = []
    for start in range(0, len(signal) - 159, 160):
        frame = np.repeat(signal[None, start : start + 160], channels, axis=0)
        events.extend(detector.feed(frame))
    return events


def test_all_sixteen_digits_in_noise() -> None:
    rng = np.random.default_rng(1)
    digits = "".join(KEYS)
    gap = np.zeros(480)
    signal = np.concatenate([np.concatenate([dtmf_tone(d, 80), gap]) for d in digits])
    signal = signal + rng.normal(0, 300, len(signal))  # ~20 dB below the tones
    found = run(DtmfDetector(), signal)
    assert "".join(d for _, d in found) == digits


def test_many_channels_at_once_are_independent() -> None:
    detector = DtmfDetector()
    batch = np.zeros((3, 960))
    batch[0] = dtmf_tone("5", 120)
    batch[2] = dtmf_tone("#", 120)
    events = []
    for start in range(0, 960, 160):
        events.extend(detector.feed(batch[:, start : start + 160]))
    assert sorted(events) == [(0, "5"), (2, "#")]


def test_a_held_key_is_one_press_and_short_blips_are_none() -> None:
    assert [d for _, d in run(DtmfDetector(), dtmf_tone("7", 400))] == ["7"]
    assert run(DtmfDetector(), dtmf_tone("7", 20)) == []  # one frame: too short


def test_no_false_digits_in_speech_like_signals() -> None:
    rng = np.random.default_rng(7)
    t = np.arange(8000 * 10) / 8000
    # a vowel-like sound: a 140 Hz voice with harmonics and a wandering pitch
    pitch = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / 8000
    voice = sum(np.sin(k * phase) * 3000 / k for k in range(1, 25))
    # and filtered noise with a slow envelope, like consonants and music
    noise = np.convolve(rng.normal(0, 4000, len(t)), np.ones(4) / 4, mode="same")
    chords = sum(np.sin(2 * np.pi * f * t) * 2000 for f in (262, 330, 392, 523, 659))
    detector = DtmfDetector()
    for signal in (voice, noise * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t)), chords):
        assert run(detector, signal) == []


def test_twist_limit() -> None:
    t = np.arange(800) / 8000
    lopsided = np.sin(2 * np.pi * 697 * t) * 8000 + np.sin(2 * np.pi * 1209 * t) * 800  # 20 dB
    assert run(DtmfDetector(), lopsided) == []
