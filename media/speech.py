"""Text to speech with espeak-ng: the system prompts, IVR greetings typed as
text and default voicemail greetings are all spoken through this one door.

Renders are kept in a cache shared by every PBX on the machine
(``$PBX_SPEECH_CACHE``, else ``$XDG_CACHE_HOME/pbx/speech``, else
``~/.cache/pbx/speech``), keyed by the voice, speed and text: a node's first
start renders its prompts once, later starts and other nodes copy them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
from pathlib import Path

SPEED = 150  # words per minute: clear on a phone line


class SpeechError(RuntimeError):
    """espeak-ng is missing or failed; the message says which."""


def cache_dir() -> Path:
    configured = os.environ.get("PBX_SPEECH_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pbx" / "speech"


def spoken(text: str, language: str) -> Path:
    """The WAV file of ``text`` said in ``language`` (an espeak-ng voice: en, sv,
    da, nb, fi, de; 22.05 kHz), rendered now unless the cache has it.
    Blocking: call it in a worker thread on a call's way."""
    key = hashlib.sha256(f"{language}\0{SPEED}\0{text}".encode()).hexdigest()
    cached = cache_dir() / language / f"{key}.wav"
    if not cached.exists():
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SpeechError(f"speech cache {cached.parent}: {exc}") from exc
        partial = cached.with_name(f"{key}.{os.getpid()}.{threading.get_ident()}.partial.wav")
        try:
            _render(text, language, partial)
            partial.replace(cached)  # atomic: a concurrent reader sees all of it or nothing
        finally:
            partial.unlink(missing_ok=True)
    return cached


def speak(text: str, language: str, path: Path) -> Path:
    """``text`` said in ``language``, copied to ``path`` (a system prompt's file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(spoken(text, language), path)
    return path


def _render(text: str, language: str, path: Path) -> Path:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise SpeechError("espeak-ng is not installed")
    try:
        subprocess.run([espeak, "-v", language, "-s", str(SPEED), "-w", str(path), text],
                       check=True, capture_output=True, timeout=30)
    except (subprocess.SubprocessError, OSError) as exc:
        raise SpeechError(f"espeak-ng failed for {language!r}: {exc}") from exc
    return path
