"""System prompts: spoken with espeak-ng when the PBX is set up, per language.

The repository holds only the texts (``media.languages``); ``build_prompts`` renders the missing
WAV files into the data directory (``prompts/<lang>/<name>.wav``), so
deployments can also drop in recorded voices with the same names (the admin
API checks an upload with ``media.audiofile`` and writes it there).  Files
are loaded (and resampled) once, and a bad file is a clear error in the log.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from media.audiofile import AudioFileError, read_audio
from media.codecs import ENGINE_RATE
from media.languages import FALLBACK, LANGUAGES, TEXTS
from media.speech import SpeechError, speak

log = logging.getLogger("media.prompts")

MOST_SAID = 20  # counts up to this are said as words ("number_7"), above it "more than twenty"


def build_prompts(directory: Path, languages: Iterable[str] = LANGUAGES) -> list[Path]:
    """Render every missing prompt of ``languages`` with espeak-ng (several at
    once: each is its own process); returns the files made.  A prompt that
    cannot be rendered is left out, one log line per language says so."""
    todo = [(language, name, text) for language in dict.fromkeys(languages)
            for name, text in TEXTS[language].items()
            if not (directory / language / f"{name}.wav").exists()]

    def render(job: tuple[str, str, str]) -> Path | SpeechError:
        language, name, text = job
        path = directory / language / f"{name}.wav"
        partial = path.with_suffix(".partial.wav")  # a crash never leaves half a prompt
        try:
            speak(text, language, partial)
        except SpeechError as exc:
            return exc
        return partial.replace(path)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = list(pool.map(render, todo))
    made = [r for r in results if isinstance(r, Path)]
    failed: dict[str, list[SpeechError]] = {}
    for (language, _, _), result in zip(todo, results):
        if isinstance(result, SpeechError):
            failed.setdefault(language, []).append(result)
    for language, errors in failed.items():
        log.warning("%d %s prompts missing: %s", len(errors), language, errors[0])
    return made


class PromptLibrary:
    """Prompts by language and name, as 8 kHz samples ready for the engine.

    A prompt missing in a language (not rendered, a broken upload, a language
    without it) is said in English, with one line in the log: a caller hears
    words, never silence.
    """

    def __init__(self, directory: Path, language: str = FALLBACK) -> None:
        self.directory = directory
        self.language = language
        self._cache: dict[tuple[str, str], np.ndarray] = {}

    def path(self, name: str, language: str) -> Path:
        return self.directory / language / f"{name}.wav"

    def get(self, name: str, language: str | None = None) -> np.ndarray | None:
        """The prompt in ``language`` (else the library's), in English when that
        language lacks it, or None when English lacks it too (each logged once)."""
        key = (language or self.language, name)
        if key not in self._cache:
            self._cache[key] = self._load(*key)
        samples = self._cache[key]
        return samples if len(samples) else None

    def _load(self, language: str, name: str) -> np.ndarray:
        try:
            return read_audio(self.path(name, language), ENGINE_RATE).astype(np.float32) * 0.8
        except AudioFileError as exc:
            if language == FALLBACK:
                log.error("prompt %s/%s: %s", language, name, exc)
                return np.zeros(0, dtype=np.float32)
            log.warning("prompt %s/%s: %s; said in English", language, name, exc)
            english = self.get(name, FALLBACK)
            return english if english is not None else np.zeros(0, dtype=np.float32)

    def sequence(self, *names: str, language: str | None = None) -> np.ndarray | None:
        """Prompts said one after the other (a missing one is left out), or None
        when none of them exists."""
        parts = [p for p in (self.get(name, language) for name in names) if p is not None]
        return np.concatenate(parts) if parts else None

    def forget(self, name: str, language: str) -> None:
        """The file changed (a recorded voice was uploaded): read it again when next
        played, and so do the languages that borrowed it from English."""
        for key in [k for k in self._cache if k[1] == name and (k[0] == language
                                                                 or language == FALLBACK)]:
            del self._cache[key]
