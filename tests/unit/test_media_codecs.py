"""Wideband codecs through aiortc, and the resampler between 8, 16 and 48 kHz."""

from __future__ import annotations

import numpy as np
import pytest

from media.codecs import Resampler, WidebandChannel


def peak(signal: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    return float(np.fft.rfftfreq(len(signal), 1 / rate)[np.argmax(spectrum)])


def snr(reference: np.ndarray, signal: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference**2) / np.sum((reference - signal) ** 2)))


@pytest.mark.parametrize("source, target", [(8000, 16000), (16000, 8000), (8000, 48000),
                                            (48000, 8000)])
def test_resampler_keeps_a_tone_across_frames(source: int, target: int) -> None:
    resampler = Resampler(source, target)
    t = np.arange(source) / source
    tone = np.sin(2 * np.pi * 1000 * t) * 8000
    step = source // 50
    out = np.concatenate([resampler.process(tone[i : i + step]) for i in range(0, source, step)])
    assert len(out) == target
    assert abs(peak(out, target) - 1000) < 2
    # no clicks at the 20 ms joints: the tone matches a clean one (after the filter delay)
    delay = np.argmax(np.correlate(out[:400], np.sin(2 * np.pi * 1000 * np.arange(400) / target), "full")) - 399
    clean = np.sin(2 * np.pi * 1000 * (np.arange(len(out)) - delay) / target) * 8000
    assert snr(clean[target // 10 :], out[target // 10 :]) > 30


def test_resampler_removes_what_does_not_fit() -> None:
    """A 6 kHz tone at 16 kHz cannot exist at 8 kHz: it must be filtered, not folded to 2 kHz."""
    resampler = Resampler(16000, 8000)
    t = np.arange(16000) / 16000
    out = resampler.process(np.sin(2 * np.pi * 6000 * t) * 8000)
    assert np.sqrt(np.mean(out[800:] ** 2)) < 8000 * 0.05


@pytest.mark.parametrize("name", ["G722", "opus"])
def test_wideband_round_trip(name: str) -> None:
    encoder, decoder = WidebandChannel(name), WidebandChannel(name)
    t = np.arange(8000) / 8000
    tone = np.sin(2 * np.pi * 800 * t) * 6000
    out = np.concatenate(
        [decoder.decode(encoder.encode(tone[i : i + 160])) for i in range(0, 8000, 160)]
    )
    assert len(out) == 8000
    assert abs(peak(out[2000:], 8000) - 800) < 5
    assert np.sqrt(np.mean(out[2000:] ** 2)) > 0.5 * np.sqrt(np.mean(tone**2))
