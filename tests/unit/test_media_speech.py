"""Text to speech through its one door, with the shared render cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import soundfile

from media import speech


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_a_render_is_cached_and_copied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PBX_SPEECH_CACHE", str(tmp_path / "cache"))
    first = speech.speak("Hello there", "en", tmp_path / "a" / "hello.wav")
    assert soundfile.info(str(first)).frames > 1000
    renders: list[str] = []
    real = speech._render
    monkeypatch.setattr(speech, "_render", lambda *a: renders.append(a[0]) or real(*a))
    second = speech.speak("Hello there", "en", tmp_path / "b" / "hello.wav")
    assert renders == [] and second.read_bytes() == first.read_bytes()
    speech.speak("Hello there", "sv", tmp_path / "c" / "hello.wav")  # another voice: its own
    assert renders == ["Hello there"]
    assert not list((tmp_path / "cache").rglob("*.partial.wav"))
    assert speech.spoken("Hello there", "en").parent == tmp_path / "cache" / "en"


def test_without_espeak_the_error_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PBX_SPEECH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(speech.SpeechError, match="not installed"):
        speech.speak("Hello", "en", tmp_path / "x.wav")
