"""System prompts: spoken with espeak-ng when the PBX is set up, per language.

The repository holds only the texts; ``build_prompts`` renders the missing
WAV files into the data directory (``prompts/<lang>/<name>.wav``), so
deployments can also drop in recorded voices with the same names (the admin
API checks an upload with ``media.audiofile`` and writes it there).  Files
are loaded (and resampled) once, and a bad file is a clear error in the log.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from media.audiofile import AudioFileError, read_audio
from media.codecs import ENGINE_RATE
from media.speech import SpeechError, speak

log = logging.getLogger("media.prompts")

MOST_SAID = 20  # counts up to this are said as words ("number_7"), above it "more than twenty"


def _counted(words: str) -> dict[str, str]:
    """``number_1`` … ``number_20``: counts are prompts too, never text-to-speech in a call."""
    names = words.split()
    assert len(names) == MOST_SAID
    return {f"number_{n}": word for n, word in enumerate(names, 1)}


TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "enter_pin": "Please enter the conference PIN, then press the hash key.",
        "wrong_pin": "That PIN is not correct.",
        "joined": "You are now in the conference.",
        "recorded": "This call is recorded.",
        "closed": "We are closed right now. Please call again during our opening hours.",
        "unavailable": "The person you are calling is not available.",
        "leave_message": "Please leave a message after the tone.",
        "you_have": "You have",
        "and": "and",
        "new_message": "new message",
        "new_messages": "new messages",
        "saved_message": "saved message",
        "saved_messages": "saved messages",
        "more_than_twenty": "more than twenty",
        "no_messages": "You have no messages.",
        "message_keys": "Press 7 to delete, 9 to save, 5 to repeat, or the hash key for the "
                        "next message. Press 0 to hang up.",
        "message_deleted": "Message deleted.",
        "message_saved": "Message saved.",
        "no_more_messages": "No more messages.",
        "goodbye": "Goodbye.",
        **_counted("one two three four five six seven eight nine ten eleven twelve thirteen "
                   "fourteen fifteen sixteen seventeen eighteen nineteen twenty"),
    },
    "sv": {
        "enter_pin": "Ange konferensens kod och avsluta med fyrkant.",
        "wrong_pin": "Koden är inte rätt.",
        "joined": "Du är nu med i konferensen.",
        "recorded": "Samtalet spelas in.",
        "closed": "Vi har stängt just nu. Välkommen att ringa under våra öppettider.",
        "unavailable": "Den du söker är inte tillgänglig.",
        "leave_message": "Lämna ett meddelande efter tonen.",
        "you_have": "Du har",
        "and": "och",
        "new_message": "nytt meddelande",
        "new_messages": "nya meddelanden",
        "saved_message": "sparat meddelande",
        "saved_messages": "sparade meddelanden",
        "more_than_twenty": "fler än tjugo",
        "no_messages": "Du har inga meddelanden.",
        "message_keys": "Tryck 7 för att radera, 9 för att spara, 5 för att lyssna igen, eller "
                        "fyrkant för nästa meddelande. Tryck 0 för att lägga på.",
        "message_deleted": "Meddelandet är raderat.",
        "message_saved": "Meddelandet är sparat.",
        "no_more_messages": "Inga fler meddelanden.",
        "goodbye": "Hej då.",
        **_counted("ett två tre fyra fem sex sju åtta nio tio elva tolv tretton fjorton femton "
                   "sexton sjutton arton nitton tjugo"),
    },
}


def build_prompts(directory: Path, languages: tuple[str, ...] = ("en", "sv")) -> list[Path]:
    """Render every missing prompt with espeak-ng; returns the files made."""
    made: list[Path] = []
    for language in languages:
        for name, text in TEXTS[language].items():
            path = directory / language / f"{name}.wav"
            if path.exists():
                continue
            try:
                made.append(speak(text, language, path))
            except SpeechError as exc:
                log.warning("prompt %s/%s missing: %s", language, name, exc)
    return made


class PromptLibrary:
    """Prompts by language and name, as 8 kHz samples ready for the engine."""

    def __init__(self, directory: Path, language: str = "en") -> None:
        self.directory = directory
        self.language = language
        self._cache: dict[tuple[str, str], np.ndarray] = {}

    def path(self, name: str, language: str) -> Path:
        return self.directory / language / f"{name}.wav"

    def get(self, name: str, language: str | None = None) -> np.ndarray | None:
        """The prompt, or None when it does not exist (logged once)."""
        key = (language or self.language, name)
        if key not in self._cache:
            try:
                samples = read_audio(self.path(name, key[0]), ENGINE_RATE)
                self._cache[key] = samples.astype(np.float32) * 0.8
            except AudioFileError as exc:
                log.error("prompt %s/%s: %s", key[0], name, exc)
                self._cache[key] = np.zeros(0, dtype=np.float32)
        samples = self._cache[key]
        return samples if len(samples) else None

    def sequence(self, *names: str) -> np.ndarray | None:
        """Prompts said one after the other (a missing one is left out), or None
        when none of them exists."""
        parts = [p for p in map(self.get, names) if p is not None]
        return np.concatenate(parts) if parts else None

    def forget(self, name: str, language: str) -> None:
        """The file changed (a recorded voice was uploaded): read it again when next played."""
        self._cache.pop((language, name), None)
