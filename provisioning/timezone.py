"""An IANA time zone (``Europe/Stockholm``) as the rule desk phones understand.

Phones know no IANA names: each vendor wants a UTC offset plus a daylight
saving rule ("last Sunday of March at 02:00") in its own notation.  The rule
comes from the POSIX TZ string at the end of every TZif v2+ file of the time
zone database (RFC 8536 §3.3), e.g. ``CET-1CEST,M3.5.0,M10.5.0/3``, which
describes the zone's current and future transitions.
"""

from __future__ import annotations

import importlib.resources
import re
import zoneinfo
from dataclasses import dataclass
from pathlib import Path

_KEY = re.compile(r"[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+)*")
# POSIX.1-2017 §8.3 TZ, with the RFC 8536 §3.3.1 extensions (hours up to 167, signed times)
_NAME = r"(?:[A-Za-z]{3,}|<[A-Za-z0-9+-]{3,}>)"
_OFFSET = r"[+-]?\d{1,3}(?::\d{1,2}(?::\d{1,2})?)?"
_RULE = r"(?:M\d{1,2}\.\d\.\d|J\d{1,3}|\d{1,3})(?:/" + _OFFSET + ")?"
_TZ = re.compile(
    rf"(?P<std>{_NAME})(?P<std_offset>{_OFFSET})"
    rf"(?:(?P<dst>{_NAME})(?P<dst_offset>{_OFFSET})?(?:,(?P<start>{_RULE}),(?P<end>{_RULE}))?)?"
)
_MONTH_RULE = re.compile(r"M(?P<month>\d{1,2})\.(?P<week>\d)\.(?P<weekday>\d)(?:/(?P<time>.+))?")


@dataclass(frozen=True)
class Transition:
    """A daylight saving change: ``weekday`` of the ``week``-th week of ``month``
    at ``seconds`` after local midnight.  ``week`` 5 is the last such weekday;
    ``weekday`` 0 is Sunday (POSIX)."""

    month: int
    week: int
    weekday: int
    seconds: int

    @property
    def hour(self) -> int:
        return self.seconds // 3600

    @property
    def iso_weekday(self) -> int:
        """Monday 1 … Sunday 7, as Yealink, Snom and Grandstream count."""
        return self.weekday or 7


@dataclass(frozen=True)
class ZoneRule:
    """Standard UTC offset (seconds east) and, where the zone has one, its DST rule."""

    name: str
    posix: str
    utc_offset: int
    dst_save: int = 0
    dst_start: Transition | None = None
    dst_end: Transition | None = None

    @property
    def has_dst(self) -> bool:
        return self.dst_start is not None and self.dst_end is not None

    def offset_text(self, seconds: int | None = None) -> str:
        """``+1``, ``+5:30``, ``-3:30``: an offset in hours as phones show it."""
        value = self.utc_offset if seconds is None else seconds
        sign = "-" if value < 0 else "+"
        hours, rest = divmod(abs(value), 3600)
        return f"{sign}{hours}:{rest // 60:02d}" if rest else f"{sign}{hours}"


UTC = ZoneRule(name="UTC", posix="UTC0", utc_offset=0)


def zone_rule(name: str) -> ZoneRule:
    """The rule of IANA zone ``name``; ValueError if the database lacks it."""
    return parse_posix(name, _posix_string(name))


def parse_posix(name: str, posix: str) -> ZoneRule:
    """Parse a POSIX TZ string.  A DST rule phones cannot express (Julian days,
    a change outside 00:00-23:59) is left out: the phone then keeps standard
    time, which is off by the DST save for part of the year but never wrong by
    a day."""
    match = _TZ.fullmatch(posix)
    if match is None:
        raise ValueError(f"{name}: unsupported TZ string {posix!r}")
    utc_offset = -_seconds(match["std_offset"])
    if match["dst"] is None:
        return ZoneRule(name, posix, utc_offset)
    dst_offset = -_seconds(match["dst_offset"]) if match["dst_offset"] else utc_offset + 3600
    start = _transition(match["start"] or "M3.2.0")
    end = _transition(match["end"] or "M11.1.0")
    if start is None or end is None:
        return ZoneRule(name, posix, utc_offset)
    return ZoneRule(name, posix, utc_offset, dst_offset - utc_offset, start, end)


def _transition(rule: str) -> Transition | None:
    match = _MONTH_RULE.fullmatch(rule)
    if match is None:
        return None
    seconds = _seconds(match["time"]) if match["time"] else 7200
    month, week, weekday = int(match["month"]), int(match["week"]), int(match["weekday"])
    if not (1 <= month <= 12 and 1 <= week <= 5 and weekday <= 6 and 0 <= seconds < 86400):
        return None
    return Transition(month, week, weekday, seconds)


def _seconds(text: str) -> int:
    sign = -1 if text.startswith("-") else 1
    parts = [int(p) for p in text.lstrip("+-").split(":")]
    parts += [0] * (3 - len(parts))
    return sign * (parts[0] * 3600 + parts[1] * 60 + parts[2])


def _posix_string(name: str) -> str:
    """The footer of the zone's TZif file (RFC 8536 §3.3)."""
    if not _KEY.fullmatch(name):
        raise ValueError(f"not a time zone name: {name!r}")
    data = _tzif(name)
    if data is None or not data.startswith(b"TZif") or data[4:5] in (b"\0", b""):
        raise ValueError(f"unknown time zone {name!r}")
    footer = data.rstrip(b"\n").rsplit(b"\n", 1)[-1].decode("ascii")
    if not footer:
        raise ValueError(f"{name}: the time zone file has no TZ string")
    return footer


def _tzif(name: str) -> bytes | None:
    """The zone's TZif data: the system database first, then the tzdata package
    (the order :mod:`zoneinfo` uses)."""
    for root in zoneinfo.TZPATH:
        path = Path(root, name)
        if path.is_file():
            return path.read_bytes()
    try:
        resource = importlib.resources.files("tzdata.zoneinfo").joinpath(name)
        return resource.read_bytes() if resource.is_file() else None
    except ModuleNotFoundError:
        return None
