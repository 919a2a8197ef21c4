"""Text to speech with espeak-ng: the system prompts, IVR greetings typed as
text and default voicemail greetings are all spoken through this one door."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

SPEED = 150  # words per minute: clear on a phone line


class SpeechError(RuntimeError):
    """espeak-ng is missing or failed; the message says which."""


def speak(text: str, language: str, path: Path) -> Path:
    """Render ``text`` in ``language`` (an espeak-ng voice: en, sv, da, nb, fi, de)
    to the WAV file ``path`` (22.05 kHz; the prompt library resamples it)."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise SpeechError("espeak-ng is not installed")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run([espeak, "-v", language, "-s", str(SPEED), "-w", str(path), text],
                       check=True, capture_output=True, timeout=30)
    except (subprocess.SubprocessError, OSError) as exc:
        raise SpeechError(f"espeak-ng failed for {language!r}: {exc}") from exc
    return path
