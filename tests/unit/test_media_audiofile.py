"""Audio files checked when they arrive: what plays, and why a file does not."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

from media import audiofile
from media.audiofile import AudioFileError, read_audio
from media.engine import MusicClass


def tone(rate: int, seconds: float = 1.0, frequency: float = 440.0) -> np.ndarray:
    """A stereo tone, the left channel louder than the right."""
    t = np.arange(int(rate * seconds)) / rate
    wave = np.sin(2 * np.pi * frequency * t)
    return np.stack([wave * 0.5, wave * 0.3], axis=1).astype(np.float32)


def peak(samples: np.ndarray, rate: int = 8000) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)])


def encoded(format: str, subtype: str, rate: int = 44100, seconds: float = 1.0) -> bytes:
    out = io.BytesIO()
    soundfile.write(out, tone(rate, seconds), rate, format=format, subtype=subtype)
    return out.getvalue()


@pytest.mark.parametrize("format, subtype, rate", [
    ("WAV", "PCM_16", 44100), ("WAV", "ULAW", 8000), ("FLAC", "PCM_24", 48000),
    ("OGG", "VORBIS", 22050), ("OGG", "OPUS", 48000), ("MP3", "MPEG_LAYER_III", 44100),
])
def test_formats_come_out_mono_at_the_channel_rate(format: str, subtype: str, rate: int) -> None:
    samples = read_audio(encoded(format, subtype, rate), 8000)
    assert samples.dtype == np.int16
    assert abs(len(samples) - 8000) < 200  # one second (MP3 and Opus pad a little)
    assert abs(peak(samples[1000:7000]) - 440) < 3
    level = np.sqrt(np.mean(samples[1000:7000].astype(float) ** 2)) / 32767
    assert level == pytest.approx(0.4 / np.sqrt(2), rel=0.1)  # the two channels averaged


def test_a_path_and_its_bytes_read_the_same(tmp_path: Path) -> None:
    data = encoded("FLAC", "PCM_16")
    (tmp_path / "a.flac").write_bytes(data)
    assert np.array_equal(read_audio(tmp_path / "a.flac", 8000), read_audio(data, 8000))


def test_the_contents_decide_not_the_name(tmp_path: Path) -> None:
    (tmp_path / "music.wav").write_bytes(encoded("FLAC", "PCM_16"))  # a FLAC file called .wav
    assert abs(peak(read_audio(tmp_path / "music.wav", 8000)[1000:7000]) - 440) < 3


@pytest.mark.parametrize("data, reason", [
    (b"", "the file is empty"),
    (b"RIFF not really a wave file", "cannot read audio: unsupported format"),
    (b"Dear admin,\nthis is a text file.\n" * 20, "cannot read audio: unsupported format"),
    (encoded("WAV", "PCM_16")[:30], "cannot read audio: the file is damaged"),  # cut in the header
    (encoded("FLAC", "PCM_16")[:3000], "cannot read audio: the file is damaged"),  # cut short
    (encoded("OGG", "VORBIS")[:2000], "cannot read audio: the file is damaged"),
    (encoded("WAV", "PCM_16")[:44], "no audio in the file"),  # a header and nothing else
])
def test_bad_files_are_refused_with_a_reason(
    data: bytes, reason: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)  # as on a machine without ffmpeg
    with pytest.raises(AudioFileError) as refused:
        read_audio(data, 8000)
    assert refused.value.reason.startswith(reason)


def test_without_ffmpeg_the_reason_says_what_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(AudioFileError, match="WAV, FLAC, OGG and MP3 are read, other formats "
                                             "need ffmpeg, which is not installed"):
        read_audio(b"\x00\x00\x00\x20ftypM4A " + bytes(200), 8000)


def test_a_file_over_the_limit_is_too_long(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audiofile, "MAX_SECONDS", 60)
    with pytest.raises(AudioFileError, match="too long: 2 minutes, at most 1"):
        read_audio(encoded("WAV", "PCM_16", rate=8000, seconds=120), 8000)


def test_a_path_is_named_in_the_message(tmp_path: Path) -> None:
    (tmp_path / "empty.mp3").touch()
    with pytest.raises(AudioFileError, match="empty.mp3: the file is empty") as refused:
        read_audio(tmp_path / "empty.mp3", 8000)
    assert refused.value.reason == "the file is empty"
    with pytest.raises(AudioFileError, match="no such file"):
        read_audio(tmp_path / "gone.wav", 8000)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg missing")
def test_other_formats_through_ffmpeg(tmp_path: Path) -> None:
    (tmp_path / "a.wav").write_bytes(encoded("WAV", "PCM_16"))
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(tmp_path / "a.wav"),
                    "-c:a", "aac", str(tmp_path / "a.m4a")], check=True, timeout=60)
    samples = read_audio((tmp_path / "a.m4a").read_bytes(), 8000)
    assert abs(peak(samples[1000:7000]) - 440) < 3
    with pytest.raises(AudioFileError, match="neither libsndfile .* nor ffmpeg"):
        read_audio(b"not audio at all\n" * 50, 8000)


def test_music_on_hold_reads_through_the_same_door(tmp_path: Path) -> None:
    (tmp_path / "1-intro.flac").write_bytes(encoded("FLAC", "PCM_16", seconds=2))
    (tmp_path / "2-song.mp3").write_bytes(encoded("MP3", "MPEG_LAYER_III", seconds=3))
    (tmp_path / "3-broken.ogg").write_bytes(b"OggS but not really")
    (tmp_path / "notes.txt").write_text("not music, not even tried")
    music = MusicClass.from_folder("sales", tmp_path)
    assert list(music.files) == ["1-intro.flac", "2-song.mp3"]
    assert music.files["1-intro.flac"] == pytest.approx(2.0, abs=0.01)
    assert music.files["2-song.mp3"] == pytest.approx(3.0, abs=0.1)
    assert music.skipped["3-broken.ogg"].startswith("cannot read audio")
    assert len(music.samples) == pytest.approx(5 * 8000, abs=800)


def test_an_empty_music_folder_plays_generated_music(tmp_path: Path) -> None:
    music = MusicClass.from_folder("default", tmp_path / "nothing-here")
    assert music.files == {} and len(music.samples) > 8000
