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


@pytest.mark.parametrize("source, target", [(44100, 8000), (22050, 16000), (8000, 48000)])
def test_resampler_in_uneven_pieces_equals_the_textbook_converter(source: int, target: int) -> None:
    """Zero-stuff, low-pass, decimate over the whole signal at once (the definition),
    against the streaming polyphase converter fed pieces of odd sizes."""
    from scipy.signal import lfilter

    signal = np.random.default_rng(5).normal(0, 3000, 4000)
    resampler = Resampler(source, target)
    stuffed = np.zeros(len(signal) * resampler.up)
    stuffed[:: resampler.up] = signal
    reference = lfilter(resampler.taps, 1.0, stuffed)[:: resampler.down]
    cuts = [0, 1, 7, 160, 161, 999, 2500, 4000]
    out = np.concatenate([resampler.process(signal[a:b]) for a, b in zip(cuts, cuts[1:])])
    assert len(out) == len(reference)
    assert np.allclose(out, reference, atol=1e-6)


def test_resampler_takes_a_cd_rate_file_to_8_khz() -> None:
    t = np.arange(44100 * 2) / 44100
    out = Resampler(44100, 8000).process(np.sin(2 * np.pi * 440 * t) * 8000)
    assert len(out) == 16000
    assert abs(peak(out, 8000) - 440) < 2
