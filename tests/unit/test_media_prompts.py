"""System prompts in six languages: the same names everywhere, rendered by
espeak-ng with each language's voice, loaded at 8 kHz, English when a
language lacks one; and numbers and clock times said as prompts."""

from __future__ import annotations

import logging
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile

from media.audiofile import read_audio
from media.languages import LANGUAGES, TEXTS, WEEKDAYS
from media.prompts import PromptLibrary, build_prompts
from media.say import say_digits, say_time, say_until
from media.speech import speak

espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng missing")


def test_six_languages_with_the_same_prompt_names() -> None:
    assert LANGUAGES == ("en", "sv", "da", "nb", "fi", "de") == tuple(TEXTS)
    names = set(TEXTS["en"])
    for language, texts in TEXTS.items():
        assert set(texts) == names, language
        assert all(text.strip() for text in texts.values()), language
    needed = {"invalid_option", "no_input", "transferring", "the_person_at", "is_not_available",
              "is_busy", "leave_message_options", "enter_mailbox", "enter_your_pin", "wrong_pin",
              "pin_changed", "greeting_menu", "record_after_tone", "greeting_saved",
              "enter_callback_number", "callback_number_saved", "busy_wait", "has_status",
              "in_a_meeting", "until", "oclock", "hour_1",
              *(f"on_{day}" for day in WEEKDAYS), *(f"digit_{d}" for d in range(10)),
              *(f"number_{n}" for n in range(1, 60))}
    assert needed <= names


def test_numbers_are_the_languages_own_words() -> None:
    said = {lang: [TEXTS[lang][f"number_{n}"] for n in (1, 7, 20, 21, 35, 59)] for lang in TEXTS}
    assert said["en"] == ["one", "seven", "twenty", "twenty-one", "thirty-five", "fifty-nine"]
    assert said["sv"] == ["ett", "sju", "tjugo", "tjugoett", "trettiofem", "femtionio"]
    assert said["da"] == ["en", "syv", "tyve", "enogtyve", "femogtredive", "nioghalvtreds"]
    assert said["nb"] == ["en", "sju", "tjue", "tjueen", "trettifem", "femtini"]
    assert said["fi"][3:] == ["kaksikymmentäyksi", "kolmekymmentäviisi", "viisikymmentäyhdeksän"]
    assert said["de"] == ["eine", "sieben", "zwanzig", "einundzwanzig", "fünfunddreißig",
                          "neunundfünfzig"]  # "eine": the count, "Sie haben eine neue Nachricht"


def texts(names: tuple[str, ...], language: str) -> str:
    return " ".join(TEXTS[language][name] for name in names)


def test_clock_times_per_language() -> None:
    assert texts(say_until(11, 0, "en"), "en") == "until eleven o'clock"
    assert texts(say_until(13, 5, "en", weekday=0), "en") == "until one oh five on Monday"
    assert texts(say_until(11, 0, "sv"), "sv") == "till klockan elva"
    assert texts(say_until(16, 30, "sv", weekday=4), "sv") == \
        "till klockan sexton trettio på fredag"
    assert texts(say_until(1, 0, "da"), "da") == "til klokken et"
    assert texts(say_until(9, 5, "nb"), "nb") == "til klokken ni null fem"
    assert texts(say_until(11, 0, "fi", weekday=0), "fi") == \
        "ja on tavoitettavissa taas kello yksitoista maanantaina"
    assert texts(say_until(1, 5, "de"), "de") == "bis ein Uhr fünf"
    assert texts(say_until(17, 45, "de", weekday=6), "de") == \
        "bis siebzehn Uhr fünfundvierzig am Sonntag"
    assert texts(say_time(0, 30, "sv"), "sv") == "klockan noll trettio"
    assert texts(say_time(24, 0, "de"), "de") == "vierundzwanzig Uhr"
    assert texts(say_digits("1001#"), "en") == "one oh oh one"
    with pytest.raises(ValueError):
        say_time(24, 30, "sv")


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_time_of_day_and_weekday_is_said_with_existing_prompts(language: str) -> None:
    names = set(TEXTS[language])
    for hour in range(25):
        for minute in range(60) if hour < 24 else (0,):
            for weekday in (None, *range(7)):
                assert set(say_until(hour, minute, language, weekday)) <= names


@espeak
@pytest.mark.parametrize("language", LANGUAGES)
def test_each_languages_voice_speaks(tmp_path: Path, language: str) -> None:
    """espeak-ng has the voice (Debian's espeak-ng-data): the WAV is speech, not silence."""
    for name in ("leave_message_options", "number_47", "on_wednesday"):
        path = speak(TEXTS[language][name], language, tmp_path / f"{name}.wav")
        with wave.open(str(path)) as file:
            assert file.getnframes() > file.getframerate() // 4  # at least a quarter second
        samples = read_audio(path, 8000)
        assert np.sqrt(np.mean(samples.astype(float) ** 2)) > 300, (language, name)


@espeak
def test_english_is_rendered_whole_once_and_loads(tmp_path: Path) -> None:
    made = build_prompts(tmp_path, ("en",))
    assert len(made) == len(TEXTS["en"])
    assert build_prompts(tmp_path, ("en",)) == []  # nothing left to do
    assert not list(tmp_path.rglob("*.partial.wav"))
    library = PromptLibrary(tmp_path)
    for name in TEXTS["en"]:
        samples = library.get(name)
        assert samples is not None and len(samples) > 1600  # more than a fifth of a second
        assert np.sqrt(np.mean(samples**2)) > 300  # speech, not silence


def _prompt(directory: Path, language: str, name: str, hz: float) -> np.ndarray:
    t = np.arange(8000) / 8000
    samples = (np.sin(2 * np.pi * hz * t) * 10000).astype(np.int16)
    (directory / language).mkdir(parents=True, exist_ok=True)
    soundfile.write(directory / language / f"{name}.wav", samples, 8000)
    return samples.astype(np.float32) * 0.8


def test_a_prompt_missing_in_a_language_is_said_in_english_with_one_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    english = _prompt(tmp_path, "en", "transferring", 440)
    swedish = _prompt(tmp_path, "sv", "goodbye", 660)
    (tmp_path / "da").mkdir()
    (tmp_path / "da" / "transferring.wav").write_bytes(b"not audio")  # a broken upload
    library = PromptLibrary(tmp_path, "sv")
    with caplog.at_level(logging.WARNING, logger="media.prompts"):
        for _ in range(3):
            assert np.allclose(library.get("transferring"), english, atol=2)  # sv lacks it
            assert np.allclose(library.get("transferring", "da"), english, atol=2)
    assert len(caplog.records) == 2  # one line for sv, one for da: not one per call
    assert "sv/transferring" in caplog.records[0].getMessage()
    assert "said in English" in caplog.records[0].getMessage()
    both = library.sequence("goodbye", "transferring")
    assert both is not None and np.allclose(both, np.concatenate([swedish, english]), atol=2)

    # a Swedish recording arrives (the admin API's upload): it is used from then on
    recorded = _prompt(tmp_path, "sv", "transferring", 880)
    library.forget("transferring", "sv")
    assert np.allclose(library.get("transferring"), recorded, atol=2)
    assert np.allclose(library.get("transferring", "da"), english, atol=2)


def test_a_prompt_missing_in_english_too_is_none(tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    library = PromptLibrary(tmp_path, "fi")
    with caplog.at_level(logging.WARNING, logger="media.prompts"):
        assert library.get("goodbye") is None and library.get("goodbye") is None
        assert library.sequence("goodbye", "no_such_prompt") is None
    assert [r.levelname for r in caplog.records] == ["WARNING", "ERROR", "WARNING", "ERROR"]
