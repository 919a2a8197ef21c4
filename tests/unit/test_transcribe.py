"""Speech to text for voicemail: an espeak-ng message at telephone quality is
transcribed in a child process; a damaged file and an overrun say so; only
languages with a model are tried."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from ivr.transcribe import (
    MODEL_RATE, TranscriptionError, has_model, prepare, transcribe_file,
)
from tests.integration.audio import spoken_wav

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng says the message")


@needs_espeak
@pytest.mark.parametrize(("voice", "speed"), [("en-us+m1", 130), ("en-gb-x-rp", 150)])
def test_a_phone_message_is_transcribed(tmp_path: Path, voice: str, speed: int) -> None:
    wav = spoken_wav(tmp_path / "m.wav", "please call me back tomorrow", voice, speed)
    words = asyncio.run(transcribe_file(wav, timeout=120))
    assert words is not None
    assert {"call", "back"} <= set(words.split()), words


def test_a_damaged_file_is_an_error_with_its_reason(tmp_path: Path) -> None:
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF" + bytes(40))
    with pytest.raises(TranscriptionError, match="cannot read .*broken.wav"):
        asyncio.run(transcribe_file(broken, timeout=60))


@needs_espeak
def test_an_overrun_gives_nothing_and_ends_the_child(tmp_path: Path) -> None:
    wav = spoken_wav(tmp_path / "m.wav", "please call me back tomorrow")
    started = time.monotonic()
    assert asyncio.run(transcribe_file(wav, timeout=0.2)) is None
    assert time.monotonic() - started < 5
    assert subprocess.run(["pgrep", "-f", f"ivr.transcribe {wav}"]).returncode == 1  # killed


def test_only_english_has_a_model() -> None:
    assert has_model("en")
    assert not any(has_model(language) for language in ("sv", "da", "nb", "fi", "de"))


def test_the_model_input_is_16_khz_at_a_steady_level_and_repeatable() -> None:
    t = np.arange(8000) / 8000
    quiet = (np.sin(2 * np.pi * 440 * t) * 300).astype(np.int16)
    first, again = prepare(quiet, 8000), prepare(quiet, 8000)
    assert first.dtype == np.int16 and len(first) == 2 * len(quiet) == MODEL_RATE
    assert np.array_equal(first, again)  # seeded noise: one recording, one transcript
    assert 0.45 < np.abs(first).max() / 32767 < 0.6  # brought up from -40 dBFS
