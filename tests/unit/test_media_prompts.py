"""Prompts rendered by espeak-ng in English and Swedish, loaded at 8 kHz."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from media.prompts import TEXTS, PromptLibrary, build_prompts

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng missing")


def test_every_prompt_is_rendered_and_loads(tmp_path: Path) -> None:
    made = build_prompts(tmp_path)
    assert len(made) == sum(len(texts) for texts in TEXTS.values())
    assert build_prompts(tmp_path) == []  # nothing left to do
    library = PromptLibrary(tmp_path, "sv")
    for language in ("en", "sv"):
        for name in TEXTS[language]:
            samples = library.get(name, language)
            assert samples is not None and len(samples) > 4000  # more than half a second
            assert np.sqrt(np.mean(samples**2)) > 300  # speech, not silence


def test_missing_or_broken_prompt(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "joined.wav").write_bytes(b"not audio")
    library = PromptLibrary(tmp_path)
    assert library.get("joined") is None
    assert library.get("no_such_prompt") is None
