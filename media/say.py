"""Numbers and clock times as prompt names, per language (Asterisk's ``say.c``).

Pure: a value in, the names of the prompts that say it out; the prompt
library plays them one after the other.  Each language reads a time its own
way: English on the 12-hour clock ("eleven o'clock", "one oh five"), the
Nordic languages and German on the 24-hour clock with the clock word before
or after the hour ("klockan elva trettio", "elf Uhr dreißig").
"""

from __future__ import annotations

from media.languages import WEEKDAYS

_CLOCK_WORD_AFTER = frozenset({"en", "de"})  # "eleven o'clock", "elf Uhr"
_ZERO_BEFORE_MINUTES = frozenset({"en", "sv", "da", "nb", "fi"})  # "eleven oh five", not de


def say_digits(number: str) -> tuple[str, ...]:
    """A number read digit by digit ("one oh oh one"); anything but 0–9 is left out."""
    return tuple(f"digit_{c}" for c in number if c.isdigit())


def say_time(hour: int, minute: int, language: str) -> tuple[str, ...]:
    """A wall-clock time, ``hour`` 0–24 (24:00 is the end of a day) and ``minute`` 0–59."""
    if not (0 <= hour <= 24 and 0 <= minute <= 59) or (hour == 24 and minute):
        raise ValueError(f"no clock time {hour}:{minute:02d}")
    if language == "en":
        hour = hour % 12 or 12
    said_hour = "digit_0" if hour == 0 else "hour_1" if hour == 1 else f"number_{hour}"
    if minute == 0:
        minutes: tuple[str, ...] = ()
    elif minute >= 10:
        minutes = (f"number_{minute}",)
    elif language in _ZERO_BEFORE_MINUTES:
        minutes = ("digit_0", f"digit_{minute}")
    else:
        minutes = (f"digit_{minute}",)
    if language == "en":
        return (said_hour, *minutes) if minutes else (said_hour, "oclock")
    if language in _CLOCK_WORD_AFTER:
        return (said_hour, "oclock", *minutes)
    return ("oclock", said_hour, *minutes)


def say_until(hour: int, minute: int, language: str, weekday: int | None = None) -> tuple[str, ...]:
    """ "until eleven o'clock", or with ``weekday`` (0 = Monday, as
    ``datetime.weekday()``) "until eleven o'clock on Monday": the end of a
    diversion, said after the person's name and status."""
    day = () if weekday is None else (f"on_{WEEKDAYS[weekday]}",)
    return ("until", *say_time(hour, minute, language), *day)
