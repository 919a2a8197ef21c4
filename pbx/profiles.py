"""Presence profiles (Telavox style): which one is active, and what it does to a call (pure).

An extension has profiles (Working, Lunch, Meeting, Off …).  Each says which
calls come through (``accept``: direct calls, queue calls — ring groups until
ACD queues exist —, both or none), where the others go (``divert``:
``voicemail``, a number, or ``""`` = busy) and which number the user shows
when calling out (``caller_id``).

The active profile at ``now`` is decided by this precedence:

1. a manual choice *with* an end time (``profile_until``), until it ends;
2. a calendar event in progress whose summary matches a profile's
   ``calendar_match`` (comma-separated words or phrases, case-insensitive;
   ``*`` matches any event; a profile with words beats a ``*`` profile);
3. a weekly schedule in force (days and HH:MM wall-clock times in the
   organisation's time zone; when several are, the one that started last);
4. the manual choice without an end time;
5. none: every call comes through.

Nothing here reads the clock or the store: ``now`` (epoch seconds) and the
rows are passed in, so the rules are tested with vectors.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import icalendar
import recurring_ical_events

from pbx.models import CalendarEvent, Extension, Profile, ProfileSchedule

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
VOICEMAIL = "voicemail"  # the divert target (and forward target) that reaches the mailbox
WILDCARD = "*"
MAX_EVENTS = 5000  # occurrences kept from one calendar (a daily series over a year fits)
CallKind = Literal["direct", "queue"]
Reason = Literal["manual", "calendar", "schedule", "none"]
# The profiles every extension starts with: (name, accept, divert, calendar_match).
DEFAULT_PROFILES = (
    ("Working", "both", VOICEMAIL, ""),
    ("Lunch", "queue", VOICEMAIL, "lunch"),
    ("Meeting", "none", VOICEMAIL, WILDCARD),
    ("Off", "none", VOICEMAIL, "vacation, holiday, out of office"),
)


class Event(Protocol):
    """What the rules read of a calendar event (a :class:`CalendarEvent` row)."""

    summary: str
    starts_at: float
    ends_at: float


@dataclass(frozen=True, slots=True)
class ActiveProfile:
    """The profile in force and why; ``until`` is when that reason stops, if known."""

    profile: Profile | None
    reason: Reason
    until: float | None = None
    detail: str = ""  # the event's summary, the schedule's days and hours


@dataclass(frozen=True, slots=True)
class Admission:
    """Whether a call comes through; if not, where it goes (``divert``)."""

    through: bool
    divert: str = ""  # "voicemail", a number, or "" = busy
    profile: str = ""  # the name of the profile that decided


@dataclass
class Presence:
    """An organisation's profiles, schedules and calendar events by extension:
    what the router consults on every call (the directory keeps one per
    organisation, rebuilt on reload)."""

    tz: ZoneInfo
    profiles: dict[str, list[Profile]] = field(default_factory=dict)
    schedules: dict[str, list[ProfileSchedule]] = field(default_factory=dict)
    events: dict[str, list[Event]] = field(default_factory=dict)

    @classmethod
    def of(cls, tz: ZoneInfo, profiles: Iterable[Profile], schedules: Iterable[ProfileSchedule],
           events: Iterable[CalendarEvent]) -> Presence:
        """Group an organisation's rows by extension."""
        presence = cls(tz)
        pairs: tuple[tuple[Iterable[Any], dict[str, list[Any]]], ...] = (
            (profiles, presence.profiles), (schedules, presence.schedules),
            (events, presence.events),
        )
        for rows, by_extension in pairs:
            for row in rows:
                by_extension.setdefault(row.extension, []).append(row)
        return presence

    def active(self, ext: Extension, now: float) -> ActiveProfile:
        number = ext.number
        return active_profile(ext, self.profiles.get(number, ()), self.schedules.get(number, ()),
                              self.events.get(number, ()), now, self.tz)

    def admission(self, ext: Extension, kind: CallKind, now: float) -> Admission:
        """Does a ``kind`` call to ``ext`` come through at ``now``, and if not, where to?"""
        return admit(self.active(ext, now), kind)


# ------------------------------------------------------------------ the rules


def zone(name: str) -> ZoneInfo:
    """The organisation's time zone; UTC when the name is empty or unknown."""
    try:
        return ZoneInfo(name) if name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def active_profile(
    ext: Extension,
    profiles: Sequence[Profile],
    schedules: Sequence[ProfileSchedule],
    events: Sequence[Event],
    now: float,
    tz: ZoneInfo,
) -> ActiveProfile:
    """The profile of ``ext`` in force at ``now`` (module docstring: the precedence)."""
    by_id = {p.id: p for p in profiles}
    manual = by_id.get(ext.profile_id)
    if manual is not None and ext.profile_until is not None and now < ext.profile_until:
        return ActiveProfile(manual, "manual", ext.profile_until, "until a set time")
    found = _calendar(profiles, events, now)
    if found is not None:
        return found
    found = _schedule(by_id, schedules, now, tz)
    if found is not None:
        return found
    if manual is not None and ext.profile_until is None:
        return ActiveProfile(manual, "manual", None, "chosen by hand")
    return ActiveProfile(None, "none")


def admit(active: ActiveProfile, kind: CallKind) -> Admission:
    """Does a ``direct`` or ``queue`` call come through the active profile?"""
    profile = active.profile
    if profile is None:
        return Admission(True)
    if profile.accept == "both" or profile.accept == kind:
        return Admission(True, profile=profile.name)
    return Admission(False, profile.divert, profile.name)


def caller_id(active: ActiveProfile, default: str) -> str:
    """The number the user shows on the calls they make: the active profile's
    ``caller_id`` when it sets one, else ``default`` (their own)."""
    if active.profile is not None and active.profile.caller_id:
        return active.profile.caller_id
    return default


def matches(profile: Profile, summary: str) -> bool:
    """Does an event titled ``summary`` switch to ``profile``?"""
    words = [w.strip().casefold() for w in profile.calendar_match.split(",") if w.strip()]
    title = summary.casefold()
    return any(w == WILDCARD or w in title for w in words)


def _calendar(
    profiles: Sequence[Profile], events: Sequence[Event], now: float,
) -> ActiveProfile | None:
    current = sorted((e for e in events if e.starts_at <= now < e.ends_at),
                     key=lambda e: -e.starts_at)  # the latest started first
    if not current:
        return None
    ordered = sorted(profiles, key=lambda p: (p.calendar_match.strip() == WILDCARD, p.id or 0))
    for profile in ordered:
        for event in current:
            if matches(profile, event.summary):
                return ActiveProfile(profile, "calendar", event.ends_at, event.summary)
    return None


def _schedule(
    by_id: dict[int | None, Profile], schedules: Sequence[ProfileSchedule], now: float,
    tz: ZoneInfo,
) -> ActiveProfile | None:
    local = datetime.fromtimestamp(now, tz).replace(tzinfo=None)  # wall clock
    in_force: list[tuple[datetime, datetime, ProfileSchedule]] = []
    for schedule in schedules:
        if schedule.profile_id not in by_id:
            continue
        window = schedule_window(schedule, local)
        if window is not None:
            in_force.append((*window, schedule))
    if not in_force:
        return None
    start, end, schedule = max(in_force, key=lambda w: (w[0], w[0] - w[1], w[2].id or 0))
    until = end.replace(tzinfo=tz).timestamp()
    detail = f"{schedule.days} {schedule.start}-{schedule.end}"
    return ActiveProfile(by_id[schedule.profile_id], "schedule", until, detail)


def schedule_window(schedule: ProfileSchedule, local: datetime) -> tuple[datetime, datetime] | None:
    """The wall-clock (start, end) of ``schedule`` that ``local`` falls in, if any.

    Wall-clock times make a rule DST-correct by construction: 12:00 is noon
    on either side of a change.  An end at or before the start runs over
    midnight into the next day (22:00-06:00); ``24:00`` is the end of the day.
    """
    days = parse_days(schedule.days)
    start, end = minutes(schedule.start), minutes(schedule.end)
    for back in (0, 1):
        day = local.date() - timedelta(days=back)
        if DAYS[day.weekday()] not in days:
            continue
        begin = _at(day, start)
        finish = _at(day, end) if end > start else _at(day + timedelta(days=1), end)
        if begin <= local < finish:
            return begin, finish
    return None


def _at(day: date, minute: int) -> datetime:
    return datetime.combine(day, time()) + timedelta(minutes=minute)


def minutes(hhmm: str) -> int:
    """``"12:30"`` → 750; ``"24:00"`` → 1440.  ValueError names the bad text."""
    hours, sep, mins = hhmm.partition(":")
    if not sep or not hours.isdigit() or not mins.isdigit() or len(mins) != 2:
        raise ValueError(f"{hhmm!r} is not HH:MM")
    value = int(hours) * 60 + int(mins)
    if int(mins) > 59 or value > 1440:
        raise ValueError(f"{hhmm!r} is not a time of day")
    return value


def parse_days(text: str) -> set[str]:
    """``"mon,tue"`` → {"mon", "tue"}; ValueError names an unknown day."""
    days = {d.strip().lower() for d in text.split(",") if d.strip()}
    unknown = days - set(DAYS)
    if unknown:
        raise ValueError(f"unknown day(s) {', '.join(sorted(unknown))}; use {', '.join(DAYS)}")
    return days


# ------------------------------------------------------------------ iCalendar


class CalendarError(ValueError):
    """An iCalendar file we cannot read; the message is the parser's reason."""


def calendar_events(
    ics: str | bytes, start: float, end: float, tz: ZoneInfo, *,
    organisation_id: int, extension: str,
) -> list[CalendarEvent]:
    """The events of an iCalendar file that overlap ``start``..``end``, recurrences
    expanded (RRULE, RDATE, EXDATE), as rows for ``extension``.

    Times with a TZID or in UTC keep their zone; floating times and all-day
    dates are read in ``tz``, the organisation's.  Cancelled events and
    transparent ones ("free" time: birthdays, Google's all-day default) are
    left out: they do not make the user busy.
    """
    try:
        calendar = icalendar.Calendar.from_ical(ics)
        window = (datetime.fromtimestamp(start, tz), datetime.fromtimestamp(end, tz))
        occurrences = recurring_ical_events.of(calendar).between(*window)
        rows: list[CalendarEvent] = []
        for event in occurrences:
            if str(event.get("STATUS", "")).upper() == "CANCELLED":
                continue
            if str(event.get("TRANSP", "")).upper() == "TRANSPARENT":
                continue
            begins, ends = _instant(event.start, tz), _instant(event.end, tz)
            if ends <= begins:
                continue  # a moment, not a span: it never holds "now"
            rows.append(CalendarEvent(
                organisation_id=organisation_id, extension=extension,
                uid=str(event.get("UID", ""))[:300], summary=str(event.get("SUMMARY", ""))[:400],
                starts_at=begins, ends_at=ends,
            ))
            if len(rows) >= MAX_EVENTS:
                break
    except Exception as exc:  # icalendar and its helpers raise many kinds on bad input
        raise CalendarError(f"invalid iCalendar data: {exc}") from None
    return sorted(rows, key=lambda r: r.starts_at)


def _instant(value: date | datetime, tz: ZoneInfo) -> float:
    if not isinstance(value, datetime):  # an all-day date: local midnight
        value = datetime.combine(value, time())
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.timestamp()
