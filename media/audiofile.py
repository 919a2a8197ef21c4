"""Audio files into the engine: music on hold, recorded prompts, uploads.

The one place that reads audio files, so a file is judged the same way
wherever it comes from, and judged when it arrives (an upload, the start
of the PBX), never in the middle of a call.  soundfile (libsndfile) reads
WAV, FLAC, OGG (Vorbis, Opus) and MP3, sniffing the contents rather than
trusting the name; anything else goes through pydub when ffmpeg is
installed.  Long files are decoded block by block, so memory stays at the
size of the result.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import soundfile

from media.codecs import Resampler

MAX_SECONDS = 3600  # one hour: longer is a mistake (a whole album, a stream dump)
# what music folders and uploads may hold; the last ones are read only with ffmpeg
SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff",
            ".m4a", ".aac", ".wma")
_BLOCK = 1 << 16  # frames decoded at a time
_NOT_RECOGNISED, _UNSUPPORTED_ENCODING = 1, 4  # libsndfile's codes: maybe ffmpeg knows it


class AudioFileError(ValueError):
    """An audio file we will not play: ``reason`` says why, for the person who chose it."""

    def __init__(self, reason: str, path: Path | None = None) -> None:
        super().__init__(f"{path}: {reason}" if path is not None else reason)
        self.reason = reason
        self.path = path


def read_audio(source: Path | bytes, rate: int) -> np.ndarray:
    """The file (a path, or the bytes of an upload) as mono int16 at ``rate``.

    Raises :class:`AudioFileError` for an empty, corrupt, too long or
    unsupported file (its message names the path, when there is one).
    """
    try:
        return _read(source, rate)
    except AudioFileError as exc:
        if isinstance(source, Path):
            raise AudioFileError(exc.reason, source) from None
        raise


def _read(source: Path | bytes, rate: int) -> np.ndarray:
    if isinstance(source, Path):
        if not source.is_file():
            raise AudioFileError("no such file")
        empty = source.stat().st_size == 0
    else:
        empty = not source
    if empty:
        raise AudioFileError("the file is empty")
    try:
        f = soundfile.SoundFile(source if isinstance(source, Path) else io.BytesIO(source))
    except soundfile.LibsndfileError as exc:
        if exc.code in (_NOT_RECOGNISED, _UNSUPPORTED_ENCODING):
            return _read_with_ffmpeg(source, rate, _said(exc))
        raise AudioFileError(_DAMAGED.format(_said(exc))) from None
    with f:
        try:
            return _decode(f, rate)
        except soundfile.LibsndfileError as exc:
            raise AudioFileError(_DAMAGED.format(_said(exc))) from None


def _decode(f: soundfile.SoundFile, rate: int) -> np.ndarray:
    """Mix down to mono and resample, a block at a time."""
    limit = MAX_SECONDS * f.samplerate
    if f.frames > limit:  # the header says so: refuse before decoding anything
        raise AudioFileError(_too_long(f.frames / f.samplerate))
    resampler = Resampler(f.samplerate, rate) if f.samplerate != rate else None
    parts = []
    decoded = 0
    for block in f.blocks(_BLOCK, dtype="float32", always_2d=True):
        decoded += len(block)
        if decoded > limit:  # a stream whose header did not tell its length
            raise AudioFileError(_too_long(decoded / f.samplerate))
        if not np.isfinite(block).all():  # what libsndfile's MP3 decoder makes of a cut file
            raise AudioFileError(_DAMAGED.format("undecodable samples"))
        mono = block.mean(axis=1)
        parts.append(resampler.process(mono) if resampler is not None else mono)
    return _pcm(parts)


def _read_with_ffmpeg(source: Path | bytes, rate: int, unreadable: str) -> np.ndarray:
    """Formats libsndfile does not know (AAC, M4A, WMA …), when ffmpeg is installed."""
    if shutil.which("ffmpeg") is None:
        raise AudioFileError(
            f"cannot read audio: unsupported format ({unreadable}); WAV, FLAC, OGG and MP3 "
            "are read, other formats need ffmpeg, which is not installed"
        )
    from pydub import AudioSegment  # imported here: without ffmpeg it only warns
    from pydub.exceptions import CouldntDecodeError

    try:
        segment = AudioSegment.from_file(
            source if isinstance(source, Path) else io.BytesIO(source),
            duration=MAX_SECONDS + 1,  # ffmpeg stops there: an endless file costs nothing
        )
    except (CouldntDecodeError, IndexError, OSError) as exc:
        said = (str(exc).strip() or type(exc).__name__).splitlines()[-1].rsplit(": ", 1)[-1]
        raise AudioFileError(f"cannot read audio: neither libsndfile ({unreadable}) "
                             f"nor ffmpeg ({said}) knows this format") from None
    if segment.duration_seconds > MAX_SECONDS:
        raise AudioFileError(_too_long(segment.duration_seconds))
    full_scale = float(1 << (8 * segment.sample_width - 1))
    samples = np.array(segment.get_array_of_samples(), dtype=np.float32) / full_scale
    mono = samples.reshape(-1, segment.channels).mean(axis=1)
    if segment.frame_rate != rate:
        mono = Resampler(segment.frame_rate, rate).process(mono)
    return _pcm([mono])


def _pcm(parts: list[np.ndarray]) -> np.ndarray:
    samples = np.concatenate(parts) if parts else np.zeros(0)
    if len(samples) == 0:
        raise AudioFileError("no audio in the file")
    return np.clip(np.round(samples * 32767), -32768, 32767).astype(np.int16)


_DAMAGED = "cannot read audio: the file is damaged ({})"


def _said(exc: soundfile.LibsndfileError) -> str:
    """libsndfile's own words, without the file object it names."""
    return exc.error_string.rstrip(".")


def _too_long(seconds: float) -> str:
    return f"too long: {seconds / 60:.0f} minutes, at most {MAX_SECONDS // 60}"
