"""The audio of IVR greetings: uploaded recordings and text spoken by espeak-ng.

Text is rendered once per (text, language) into the node's speech cache
(:mod:`media.speech`: the same sentence in two IVRs is one file); uploads are stored
as 8 kHz WAV under ``data_dir/ivr/<organisation>/<ivr>/``, named by their
content so a new upload is a new name and nothing plays a half-written
file.  Everything is read with :mod:`media.audiofile`, judged when the tree
is saved and loaded before a call needs it: :func:`load_greetings` is
blocking and runs in a worker thread, :class:`GreetingLibrary` hands calls
the loaded samples without touching a file.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from ivr.check import Problem
from ivr.tree import Greeting, IvrTree
from media.audiofile import AudioFileError, read_audio
from media.codecs import ENGINE_RATE
from media.speech import SpeechError, spoken

log = logging.getLogger("ivr.greetings")

LEVEL = 0.8  # the system prompts' headroom


def recording_folder(data_dir: Path, organisation: int, ivr: str) -> Path:
    """The folder of an IVR's uploaded greetings."""
    return data_dir / "ivr" / str(organisation) / ivr


def recording_name(menu: str, wav: bytes) -> str:
    """An uploaded greeting's file name: the menu's, and its content's digest."""
    return f"{menu}-{hashlib.sha256(wav).hexdigest()[:12]}.wav"


def load_greetings(data_dir: Path, organisation: int,
                   tree: IvrTree) -> tuple[dict[Greeting, np.ndarray], list[Problem]]:
    """Every greeting of ``tree`` as 8 kHz samples ready to play, and what could
    not be read or spoken (a greeting whose recording fails speaks its text).
    Blocking: renders with espeak-ng and reads files."""
    loaded: dict[Greeting, np.ndarray] = {}
    problems: list[Problem] = []
    folder = recording_folder(data_dir, organisation, tree.name)
    for loc, greeting in tree.greetings():
        if greeting in loaded:
            continue
        sources: list[tuple[str, Path | None]] = []
        if greeting.recording:
            sources.append((f"recording {greeting.recording}", folder / greeting.recording))
        if greeting.text.strip():
            sources.append(("text", None))
        for label, path in sources:
            try:
                if path is None:
                    path = spoken(greeting.text, tree.language)
                loaded[greeting] = read_audio(path, ENGINE_RATE).astype(np.float32) * LEVEL
                break
            except (AudioFileError, SpeechError, OSError) as exc:
                reason = exc.reason if isinstance(exc, AudioFileError) else str(exc)
                problems.append(Problem(loc, f"{label}: {reason}"))
    return loaded, problems


class GreetingLibrary:
    """The greetings of every IVR in use, in memory, by organisation and IVR."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._loaded: dict[tuple[int, str], dict[Greeting, np.ndarray]] = {}

    def ready(self, organisation: int, tree: IvrTree) -> bool:
        """Whether every greeting of this version of the tree has been loaded."""
        loaded = self._loaded.get((organisation, tree.name))
        return loaded is not None and all(g in loaded for _, g in tree.greetings())

    def load(self, organisation: int, tree: IvrTree) -> None:
        """Read (and speak) the tree's greetings, replacing an older version's.
        Blocking: call it in a worker thread."""
        loaded, problems = load_greetings(self.data_dir, organisation, tree)
        for problem in problems:
            log.error("IVR %s of organisation %d: %s", tree.name, organisation, problem)
        # whatever failed counts as loaded (silent): the call goes on without it
        for _, greeting in tree.greetings():
            loaded.setdefault(greeting, np.zeros(0, dtype=np.float32))
        self._loaded[organisation, tree.name] = loaded

    def audio(self, organisation: int, tree: IvrTree, greeting: Greeting) -> np.ndarray | None:
        """The greeting's samples, or None when it has none (logged when loaded)."""
        samples = self._loaded.get((organisation, tree.name), {}).get(greeting)
        return samples if samples is not None and len(samples) else None
