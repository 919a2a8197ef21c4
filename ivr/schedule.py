"""Opening hours of a switchboard: open or closed at an instant, why, and until when (pure).

Telavox calls it the switchboard being open or closed ("växeln öppen/stängd"),
FreePBX splits it into time groups (the hours) and time conditions (the
number that routes by them, see :mod:`pbx.router`).  A :class:`Schedule` is a
validated :class:`Definition` (weekly hours, public holidays, dated
exceptions, a time zone) plus the overrides a receptionist or supervisor
set.  What decides at an instant, first match wins:

1. an **override** in force: "close now", "open now", either until a time or
   until changed back, or one planned ahead; the one that started last wins;
2. a dated **exception** for the day: closed, or its own hours;
3. a public **holiday** of the country (the ``holidays`` package): closed, or
   the holiday hours;
4. the **weekly hours** of the weekday.

An interval belongs to the day it starts on: Friday ``22:00-02:00`` runs into
Saturday morning even when Saturday is a holiday, and a holiday on Friday
cancels it.  Times are wall-clock times in the schedule's time zone, so on a
daylight-saving change day ``08:00-17:00`` is still 08:00 to 17:00 local; a
time the clock skips that night (02:30 in spring) falls as far after the gap.

Nothing here reads the clock: ``at`` (epoch seconds) is passed in, so every
rule is tested with fixed instants.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from functools import cached_property, lru_cache
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from holidays.constants import DE_FACTO, PUBLIC
from pydantic import (
    AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer, PlainValidator,
    ValidationInfo, WithJsonSchema, field_validator,
)

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_MINUTES = 24 * 60
HORIZON = 370 * 86400.0  # how far ahead a next change is looked for: every holiday of a year
MAX_AHEAD = 10 * 366 * 86400.0  # how far ahead an override may be set
Reason = Literal["schedule", "holiday", "exception", "override"]
Action = Literal["open", "close", "schedule"]
_TIME = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


# ------------------------------------------------------------------ intervals


@dataclass(frozen=True, slots=True)
class Interval:
    """Opening hours within a day, in minutes after local midnight; an end at
    or before the start means the interval runs past midnight."""

    start: int  # 0 .. 1439
    end: int  # 1 .. 1440 (24:00)

    @property
    def stop(self) -> int:
        """Minutes after the starting day's midnight at which it closes (past 1440: next day)."""
        return self.end if self.end > self.start else self.end + DAY_MINUTES

    def __str__(self) -> str:
        return f"{_clock(self.start)}-{_clock(self.end)}"

    @classmethod
    def parse(cls, text: str) -> Interval:
        """``08:00-17:00``; ``22:00-02:00`` runs past midnight; ``00:00-24:00`` is all day."""
        match = _TIME.match(text)
        if match is None:
            raise ValueError(f"{text!r} is not an interval like 08:00-17:00")
        hours = [int(match[1]), int(match[3])]
        minutes = [int(match[2]), int(match[4])]
        for hour, minute in zip(hours, minutes):
            if hour > 24 or minute > 59 or (hour == 24 and minute):
                raise ValueError(f"{hour:02d}:{minute:02d} is not a time of day (00:00-24:00)")
        start, end = hours[0] * 60 + minutes[0], hours[1] * 60 + minutes[1]
        if start == DAY_MINUTES:
            raise ValueError(f"{text.strip()}: an interval cannot start at 24:00")
        if start == end:
            raise ValueError(f"{text.strip()} is empty: the end equals the start")
        return cls(start, end)


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _interval(value: Any) -> Interval:
    if isinstance(value, Interval):
        return value
    if not isinstance(value, str):
        raise ValueError("an interval is a string like 08:00-17:00")
    return Interval.parse(value)


def _one_day(intervals: list[Interval]) -> list[Interval]:
    """A day's intervals are listed from the earliest and never overlap."""
    for earlier, later in zip(intervals, intervals[1:]):
        if later.start < earlier.start:
            raise ValueError(f"{later} is listed after {earlier}: list the intervals "
                             "from the earliest")
        if later.start < earlier.stop:
            raise ValueError(f"{earlier} and {later} overlap")
    return intervals


IntervalField = Annotated[
    Interval, PlainValidator(_interval), PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string",
                    "pattern": r"^([01]?[0-9]|2[0-4]):[0-5][0-9]-([01]?[0-9]|2[0-4]):[0-5][0-9]$",
                    "examples": ["08:00-17:00"]}),
]
Hours = Annotated[list[IntervalField], Field(max_length=24), AfterValidator(_one_day)]


# ------------------------------------------------------------------ holidays


def holiday_countries() -> frozenset[str]:
    """The ISO 3166 codes the ``holidays`` package knows."""
    return frozenset(holidays.list_supported_countries())


@lru_cache(maxsize=512)
def holiday_calendar(country: str, year: int) -> Mapping[date, str]:
    """The days a country's businesses close in ``year``, with their names in the
    country's own language: the public holidays plus the days treated as such
    (Sweden: Midsummer Eve, Christmas Eve, New Year's Eve, by the Annual Leave
    Act, SFS 1977:480 §7), and never plain Sundays (``holidays.SE`` can count
    every Sunday as a holiday)."""
    entity = type(holidays.country_holidays(country, years=()))
    categories = tuple(c for c in (PUBLIC, DE_FACTO) if c in entity.supported_categories)
    options: dict[str, Any] = {}
    if "include_sundays" in inspect.signature(entity.__init__).parameters:
        options["include_sundays"] = False
    days = holidays.country_holidays(country, years=year, categories=categories,
                                     language=entity.default_language, **options)
    return dict(days.items())


# ------------------------------------------------------------------ the definition


class DatedHours(BaseModel):
    """An exception for one date: closed (no hours) or its own hours."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    date: date
    hours: Hours = Field(default_factory=list, description="empty: closed all day")
    label: str = Field("", max_length=80, description="shown as the reason, e.g. Staff party")


class Definition(BaseModel):
    """Opening hours as an admin writes them (sip.conf ``type = schedule`` or the API)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = Field("Europe/Stockholm", max_length=64, description="IANA zone name")
    mon: Hours = Field(default_factory=list, description='e.g. ["08:00-12:00", "13:00-17:00"]')
    tue: Hours = Field(default_factory=list)
    wed: Hours = Field(default_factory=list)
    thu: Hours = Field(default_factory=list)
    fri: Hours = Field(default_factory=list)
    sat: Hours = Field(default_factory=list)
    sun: Hours = Field(default_factory=list)
    holidays: str = Field("SE", max_length=8,
                          description="country whose public holidays apply (ISO 3166); "
                                      "empty: none")
    holiday_hours: Hours = Field(default_factory=list,
                                 description="hours on public holidays; empty: closed")
    exceptions: list[DatedHours] = Field(default_factory=list, max_length=1000)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as "
                             "Europe/Stockholm") from None
        return value

    @field_validator("holidays")
    @classmethod
    def _country(cls, value: str) -> str:
        code = value.strip().upper()
        if code and code not in holiday_countries():
            raise ValueError(f"unknown country {value!r} for public holidays; use an ISO 3166 "
                             "code such as SE, or leave it empty for none")
        return code

    @field_validator(*DAYS)
    @classmethod
    def _after_midnight(cls, value: list[Interval], info: ValidationInfo) -> list[Interval]:
        """What runs past midnight must not overlap the next day's first hours."""
        name = info.field_name
        assert name is not None
        index = DAYS.index(name)
        pairs = [(DAYS[index - 1], info.data.get(DAYS[index - 1]), name, value)]
        if name == "sun":
            pairs.append((name, value, "mon", info.data.get("mon")))
        for day, hours, next_day, next_hours in pairs:
            if not hours or not next_hours:  # not validated (invalid) or closed
                continue
            spill = hours[-1].stop - DAY_MINUTES
            if spill > next_hours[0].start:
                raise ValueError(f"{day} {hours[-1]} runs past midnight into {next_day} "
                                 f"{next_hours[0]}")
        return value

    @field_validator("exceptions")
    @classmethod
    def _dates(cls, value: list[DatedHours]) -> list[DatedHours]:
        seen: set[date] = set()
        for entry in value:
            if entry.date in seen:
                raise ValueError(f"{entry.date} is listed twice")
            seen.add(entry.date)
        return sorted(value, key=lambda e: e.date)

    def week(self) -> tuple[list[Interval], ...]:
        """The weekly hours, Monday first (``date.weekday()`` order)."""
        return tuple(getattr(self, day) for day in DAYS)


# ------------------------------------------------------------------ state


@dataclass(frozen=True, slots=True)
class Override:
    """Open or closed by hand from ``start`` until ``until`` (None: until changed back)."""

    open: bool
    start: float
    until: float | None = None
    label: str = ""

    def covers(self, at: float) -> bool:
        return self.start <= at and (self.until is None or at < self.until)


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """Open or closed at an instant; ``reason`` says what decided, ``label`` names
    it (the holiday, the exception, the override's note); ``next_change`` is when
    it next opens or closes (None: not within a year, or never)."""

    open: bool
    reason: Reason
    label: str
    next_change: float | None


class OverrideError(ValueError):
    """An override that cannot be set; ``field`` is the input at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


@dataclass(frozen=True)
class Schedule:
    """A definition and its overrides: what the router and the IVR ask at call time."""

    definition: Definition
    overrides: tuple[Override, ...] = ()
    _spans: dict[date, tuple[tuple[float, float], ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def load(cls, definition: str, overrides: str = "[]") -> Schedule:
        """A schedule from its stored JSON (ValueError when it does not validate)."""
        return cls(Definition.model_validate_json(definition),
                   tuple(Override(**fields) for fields in json.loads(overrides or "[]")))

    def overrides_json(self) -> str:
        return json.dumps([asdict(o) for o in self.overrides])

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.definition.timezone)

    @cached_property
    def _exceptions(self) -> dict[date, DatedHours]:
        return {entry.date: entry for entry in self.definition.exceptions}

    @cached_property
    def _week(self) -> tuple[list[Interval], ...]:
        return self.definition.week()

    # -------------------------------------------------------------- asking

    def state(self, at: float) -> ScheduleState:
        """Open or closed at ``at`` (epoch seconds), why, and when that changes."""
        is_open, reason, label = self._decide(at)
        return ScheduleState(is_open, reason, label, self._next_change(at, is_open))

    def next_edge(self, at: float) -> float | None:
        """The next instant anything about the state may change: an open/close or
        an override starting or ending (a watcher wakes up then)."""
        edges = [t for o in self.overrides for t in (o.start, o.until)
                 if t is not None and t > at]
        change = self._next_change(at, self._decide(at)[0])
        if change is not None:
            edges.append(change)
        return min(edges, default=None)

    def rules(self, day: date) -> tuple[list[Interval], Reason, str]:
        """The hours of local date ``day`` and where they come from."""
        exception = self._exceptions.get(day)
        if exception is not None:
            return exception.hours, "exception", exception.label or day.isoformat()
        country = self.definition.holidays
        name = holiday_calendar(country, day.year).get(day) if country else None
        if name is not None:
            return self.definition.holiday_hours, "holiday", name
        return self._week[day.weekday()], "schedule", ""

    # -------------------------------------------------------------- switching

    def switched(self, action: Action, now: float, *, start: float | None = None,
                 until: float | None = None, label: str = "") -> Schedule:
        """The schedule after "close"/"open" (now, or from ``start`` on; until
        ``until`` or changed back) or "schedule" (back to the opening hours:
        the override in force ends; planned ones stay).  Overrides that have
        ended are forgotten; a new one in force now replaces the old."""
        begins = now if start is None or start <= now else start
        if action == "schedule":
            if start is not None or until is not None:
                field_name = "start" if start is not None else "until"
                raise OverrideError(field_name, "back to schedule takes effect now and has no "
                                                "times; give open or close an until instead")
        elif until is not None and until <= begins:
            raise OverrideError("until", "must be later than the start of the override")
        for name, value in (("start", start), ("until", until)):
            if value is not None and value > now + MAX_AHEAD:
                raise OverrideError(name, "more than ten years ahead")
        kept = [o for o in self.overrides if o.until is None or o.until > now]
        if begins == now:
            kept = [o for o in kept if not o.covers(now)]  # replaced, or ended by "schedule"
        if action != "schedule":
            kept.append(Override(action == "open", begins, until, label))
        return Schedule(self.definition, tuple(sorted(kept, key=lambda o: o.start)))

    def without_overrides(self) -> Schedule:
        return Schedule(self.definition)

    # -------------------------------------------------------------- the rules

    def _override(self, at: float) -> Override | None:
        found = [o for o in self.overrides if o.covers(at)]
        return max(found, key=lambda o: o.start) if found else None

    def _local_date(self, at: float) -> date:
        return datetime.fromtimestamp(at, self.zone).date()

    def _epoch(self, day: date, minutes: int) -> float:
        """Local ``day`` + ``minutes`` (beyond 1440: the next day) as epoch seconds."""
        extra, minutes = divmod(minutes, DAY_MINUTES)
        on = day + timedelta(days=extra)
        return datetime(on.year, on.month, on.day, minutes // 60, minutes % 60,
                        tzinfo=self.zone).timestamp()

    def _open_spans(self, day: date) -> tuple[tuple[float, float], ...]:
        """When the hours of ``day`` are open, as epoch spans (kept: a schedule
        lives until the next directory reload)."""
        spans = self._spans.get(day)
        if spans is None:
            if len(self._spans) > 4096:
                self._spans.clear()
            spans = tuple((self._epoch(day, i.start), self._epoch(day, i.stop))
                          for i in self.rules(day)[0])
            self._spans[day] = spans
        return spans

    def _decide(self, at: float) -> tuple[bool, Reason, str]:
        override = self._override(at)
        if override is not None:
            return override.open, "override", override.label
        today = self._local_date(at)
        for day in (today - timedelta(days=1), today):
            if any(start <= at < end for start, end in self._open_spans(day)):
                _, reason, label = self.rules(day)
                return True, reason, label
        _, reason, label = self.rules(today)
        return False, reason, label

    def _next_change(self, at: float, is_open: bool) -> float | None:
        """The first instant after ``at`` at which open/closed differs from ``is_open``."""
        override = self._override(at)
        if override is not None and override.until is None \
                and not any(o.start > at for o in self.overrides):
            return None  # open or closed by hand until someone changes it back
        limit, t = at + HORIZON, at
        while True:
            t = self._next_boundary(t)
            if t > limit:
                return None
            if self._decide(t)[0] != is_open:
                return t

    def _next_boundary(self, t: float) -> float:
        """The first instant after ``t`` where a span or override starts or ends, or
        the next local midnight (so the walk always moves on)."""
        today = self._local_date(t)
        candidates = [self._epoch(today, DAY_MINUTES)]
        for day in (today - timedelta(days=1), today):
            candidates += [edge for span in self._open_spans(day) for edge in span if edge > t]
        candidates += [edge for o in self.overrides for edge in (o.start, o.until)
                       if edge is not None and edge > t]
        return min(candidates)
