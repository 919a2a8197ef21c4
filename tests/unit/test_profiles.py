"""Presence profiles: the precedence rules, schedules across DST, calendars (ICS).

Every case passes ``now`` in: a fake clock, no sleeping."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from pbx.models import CalendarEvent, Extension, Profile, ProfileSchedule
from pbx.profiles import (
    ActiveProfile, CalendarError, Presence, active_profile, admit, calendar_events, caller_id,
    minutes, parse_days,
)

TZ = ZoneInfo("Europe/Stockholm")
WORKING = Profile(id=1, organisation_id=1, extension="1001", name="Working", accept="both")
LUNCH = Profile(id=2, organisation_id=1, extension="1001", name="Lunch", accept="queue",
                divert="voicemail")
MEETING = Profile(id=3, organisation_id=1, extension="1001", name="Meeting", accept="none",
                  divert="voicemail", calendar_match="*", caller_id="+46812345")
OFF = Profile(id=4, organisation_id=1, extension="1001", name="Off", accept="none", divert="",
              calendar_match="vacation, out of office")
PROFILES = [WORKING, LUNCH, MEETING, OFF]
WEEKDAYS = "mon,tue,wed,thu,fri"


def local(text: str) -> float:
    """Epoch seconds of a Stockholm wall-clock time, e.g. ``2026-11-30 10:00``."""
    return datetime.fromisoformat(text).replace(tzinfo=TZ).timestamp()


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def ext(profile_id: int | None = None, until: float | None = None) -> Extension:
    return Extension(organisation_id=1, number="1001", secret="x", profile_id=profile_id,
                     profile_until=until, caller_id_number="")


def event(summary: str, start: str, end: str) -> CalendarEvent:
    return CalendarEvent(organisation_id=1, extension="1001", summary=summary,
                         starts_at=local(start), ends_at=local(end))


def schedule(
    profile: Profile, start: str, end: str, days: str = WEEKDAYS, id: int = 1,
) -> ProfileSchedule:
    return ProfileSchedule(id=id, organisation_id=1, extension="1001", profile_id=profile.id,
                           days=days, start=start, end=end)


def active(
    now: float, extension: Extension | None = None,
    schedules: Sequence[ProfileSchedule] = (), events: Sequence[CalendarEvent] = (),
) -> ActiveProfile:
    return active_profile(extension or ext(), PROFILES, schedules, events, now, TZ)


def test_nothing_set_lets_everything_through() -> None:
    now = local("2026-11-30 10:00")
    found = active(now)
    assert found == ActiveProfile(None, "none")
    assert admit(found, "direct").through and admit(found, "queue").through


def test_a_meeting_switches_at_its_start_and_back_at_its_end() -> None:
    meeting = [event("Team meeting", "2026-11-30 10:00", "2026-11-30 11:00")]
    assert active(local("2026-11-30 09:59:59"), events=meeting).reason == "none"
    at_ten = active(local("2026-11-30 10:00"), events=meeting)
    assert (at_ten.profile, at_ten.reason, at_ten.detail) == (MEETING, "calendar", "Team meeting")
    assert at_ten.until == local("2026-11-30 11:00")
    assert active(local("2026-11-30 10:59:59"), events=meeting).profile is MEETING
    assert active(local("2026-11-30 11:00"), events=meeting).reason == "none"


def test_calendar_words_beat_the_wildcard_case_insensitively() -> None:
    both = [event("Team meeting", "2026-11-30 09:00", "2026-11-30 17:00"),
            event("VACATION in Spain", "2026-11-30 00:00", "2026-12-01 00:00")]
    assert active(local("2026-11-30 10:00"), events=both).profile is OFF
    phrase = [event("Out of Office: dentist", "2026-11-30 10:00", "2026-11-30 11:00")]
    assert active(local("2026-11-30 10:30"), events=phrase).profile is OFF


def test_lunch_schedule_on_weekdays_inside_working_hours() -> None:
    rules = [schedule(WORKING, "08:00", "17:00", id=1), schedule(LUNCH, "12:00", "13:00", id=2)]
    monday = "2026-11-30"
    assert active(local(f"{monday} 07:59"), schedules=rules).reason == "none"
    assert active(local(f"{monday} 11:00"), schedules=rules).profile is WORKING
    lunch = active(local(f"{monday} 12:00"), schedules=rules)
    assert (lunch.profile, lunch.reason) == (LUNCH, "schedule")
    assert lunch.until == local(f"{monday} 13:00")
    assert lunch.detail == f"{WEEKDAYS} 12:00-13:00"
    assert active(local(f"{monday} 13:00"), schedules=rules).profile is WORKING
    assert active(local("2026-12-05 12:30"), schedules=rules).reason == "none"  # a Saturday


def test_schedule_over_midnight_and_to_the_end_of_the_day() -> None:
    night = [schedule(OFF, "22:00", "06:00", days="fri")]
    assert active(local("2026-12-04 23:00"), schedules=night).profile is OFF  # Friday night
    assert active(local("2026-12-05 05:59"), schedules=night).profile is OFF  # into Saturday
    assert active(local("2026-12-05 06:00"), schedules=night).reason == "none"
    assert active(local("2026-12-03 23:00"), schedules=night).reason == "none"  # Thursday
    late = [schedule(OFF, "18:00", "24:00", days="sun")]
    found = active(local("2026-12-06 23:59"), schedules=late)
    assert found.profile is OFF and found.until == local("2026-12-07 00:00")


def test_schedules_keep_wall_clock_time_across_dst() -> None:
    """08:00 in Stockholm is 07:00 UTC before the spring change and 06:00 after it."""
    rules = [schedule(WORKING, "08:00", "17:00")]  # weekdays
    assert active(utc("2026-03-27 06:30"), schedules=rules).reason == "none"  # Fri, 07:30 local
    assert active(utc("2026-03-27 07:00"), schedules=rules).profile is WORKING
    assert active(utc("2026-03-30 06:00"), schedules=rules).profile is WORKING  # Mon, 08:00 CEST
    # the night of the change: 01:00-04:00 local lasts two real hours
    night = [schedule(OFF, "01:00", "04:00", days="sun")]
    found = active(utc("2026-03-29 00:30"), schedules=night)
    assert found.profile is OFF and found.until == utc("2026-03-29 02:00")
    assert active(utc("2026-03-29 02:00"), schedules=night).reason == "none"
    # autumn: 17:00 local is 15:00 UTC in summer time, 16:00 UTC in winter time
    assert active(utc("2026-10-23 15:30"), schedules=rules).reason == "none"  # Fri 17:30 CEST
    assert active(utc("2026-10-26 15:30"), schedules=rules).profile is WORKING  # Mon 16:30 CET


def test_manual_with_an_end_time_beats_everything_until_it_ends() -> None:
    meeting = [event("Budget", "2026-11-30 10:00", "2026-11-30 12:00")]
    rules = [schedule(LUNCH, "10:00", "14:00")]
    chosen = ext(WORKING.id, until=local("2026-11-30 11:00"))
    found = active(local("2026-11-30 10:30"), chosen, rules, meeting)
    assert (found.profile, found.reason) == (WORKING, "manual")
    assert found.until == local("2026-11-30 11:00")
    after = active(local("2026-11-30 11:00"), chosen, rules, meeting)
    assert (after.profile, after.reason) == (MEETING, "calendar")  # an ended choice is gone
    assert active(local("2026-11-30 13:00"), chosen, rules, meeting).profile is LUNCH


def test_manual_without_end_time_yields_to_calendar_and_schedule() -> None:
    chosen = ext(OFF.id)
    rules = [schedule(LUNCH, "12:00", "13:00")]
    meeting = [event("1:1", "2026-11-30 09:00", "2026-11-30 09:30")]
    assert active(local("2026-11-30 09:15"), chosen, rules, meeting).profile is MEETING
    assert active(local("2026-11-30 12:15"), chosen, rules, meeting).profile is LUNCH
    found = active(local("2026-11-30 15:00"), chosen, rules, meeting)
    assert (found.profile, found.reason, found.until) == (OFF, "manual", None)


def test_a_deleted_profile_is_never_active() -> None:
    assert active(local("2026-11-30 15:00"), ext(99)).reason == "none"
    orphan = ProfileSchedule(id=5, organisation_id=1, extension="1001", profile_id=99,
                             days=WEEKDAYS, start="00:00", end="24:00")
    assert active(local("2026-11-30 15:00"), schedules=[orphan]).reason == "none"


def test_what_a_profile_does_to_calls_and_the_caller_id() -> None:
    lunch = ActiveProfile(LUNCH, "schedule")
    assert admit(lunch, "queue").through
    refused = admit(lunch, "direct")
    assert (refused.through, refused.divert, refused.profile) == (False, "voicemail", "Lunch")
    off = ActiveProfile(OFF, "manual")
    assert admit(off, "queue") == admit(off, "direct") == type(refused)(False, "", "Off")
    working = ActiveProfile(WORKING, "manual")
    assert admit(working, "direct").through and admit(working, "queue").through
    assert caller_id(ActiveProfile(MEETING, "calendar"), "1001") == "+46812345"
    assert caller_id(working, "1001") == "1001"
    assert caller_id(ActiveProfile(None, "none"), "1001") == "1001"


def test_presence_groups_an_organisations_rows_by_extension() -> None:
    other = Profile(id=9, organisation_id=1, extension="1002", name="Off", accept="none")
    presence = Presence.of(
        TZ, [*PROFILES, other], [schedule(LUNCH, "12:00", "13:00")],
        [event("Standup", "2026-11-30 09:00", "2026-11-30 09:15")],
    )
    assert presence.active(ext(), local("2026-11-30 09:05")).profile is MEETING
    assert presence.active(ext(), local("2026-11-30 12:05")).profile is LUNCH
    colleague = Extension(organisation_id=1, number="1002", secret="x", profile_id=9)
    assert presence.active(colleague, local("2026-11-30 09:05")).profile is other
    stranger = Extension(organisation_id=1, number="1009", secret="x")
    assert presence.active(stranger, local("2026-11-30 09:05")).reason == "none"


@pytest.mark.parametrize("text, value", [("00:00", 0), ("12:30", 750), ("24:00", 1440),
                                         ("7:05", 425)])
def test_minutes(text: str, value: int) -> None:
    assert minutes(text) == value


@pytest.mark.parametrize("text", ["24:01", "12:60", "noon", "12", "12:5", "-1:00"])
def test_bad_times_are_named(text: str) -> None:
    with pytest.raises(ValueError, match=repr(text)):
        minutes(text)


def test_days() -> None:
    assert parse_days("Mon, tue,") == {"mon", "tue"}
    with pytest.raises(ValueError, match="funday"):
        parse_days("mon,funday")


# ------------------------------------------------------------------ ICS

ICS = """\
BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//PBX tests//EN
BEGIN:VTIMEZONE
TZID:W. Europe Standard Time
BEGIN:STANDARD
DTSTART:16010101T030000
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:16010101T020000
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3
END:DAYLIGHT
END:VTIMEZONE
BEGIN:VEVENT
UID:weekly@test
SUMMARY:Weekly sync
DTSTART;TZID=W. Europe Standard Time:20261005T100000
DTEND;TZID=W. Europe Standard Time:20261005T103000
RRULE:FREQ=WEEKLY;BYDAY=MO
EXDATE;TZID=W. Europe Standard Time:20261012T100000
END:VEVENT
BEGIN:VEVENT
UID:utc@test
SUMMARY:Call with New York
DTSTART:20261020T150000Z
DTEND:20261020T160000Z
END:VEVENT
BEGIN:VEVENT
UID:floating@test
SUMMARY:Dentist
DTSTART:20261021T080000
DURATION:PT45M
END:VEVENT
BEGIN:VEVENT
UID:allday@test
SUMMARY:Vacation
DTSTART;VALUE=DATE:20261022
DTEND;VALUE=DATE:20261024
END:VEVENT
BEGIN:VEVENT
UID:free@test
SUMMARY:Birthday of Anna
DTSTART;VALUE=DATE:20261020
TRANSP:TRANSPARENT
END:VEVENT
BEGIN:VEVENT
UID:cancelled@test
SUMMARY:Cancelled review
DTSTART:20261020T090000Z
DTEND:20261020T100000Z
STATUS:CANCELLED
END:VEVENT
END:VCALENDAR
"""


def parsed(start: str = "2026-10-01 00:00", end: str = "2026-11-01 00:00") -> list[CalendarEvent]:
    return calendar_events(ICS, local(start), local(end), TZ, organisation_id=1, extension="1001")


def test_ics_events_with_time_zones_all_day_and_floating_times() -> None:
    rows = {(r.summary, r.starts_at, r.ends_at) for r in parsed()}
    assert ("Call with New York", utc("2026-10-20 15:00"), utc("2026-10-20 16:00")) in rows
    assert ("Dentist", local("2026-10-21 08:00"), local("2026-10-21 08:45")) in rows
    assert ("Vacation", local("2026-10-22 00:00"), local("2026-10-24 00:00")) in rows
    summaries = [r.summary for r in parsed()]
    assert "Birthday of Anna" not in summaries and "Cancelled review" not in summaries
    assert all(r.extension == "1001" and r.organisation_id == 1 for r in parsed())


def test_recurring_weekly_meeting_switches_every_monday_across_dst() -> None:
    rows = parsed()
    weekly = sorted(r.starts_at for r in rows if r.summary == "Weekly sync")
    # Mondays in October at 10:00 Stockholm time, the 12th excepted (EXDATE)
    assert weekly == [local(f"2026-10-{d} 10:00") for d in ("05", "19", "26")]
    assert local("2026-10-26 10:00") == utc("2026-10-26 09:00")  # winter time by then
    assert local("2026-10-19 10:00") == utc("2026-10-19 08:00")
    for day in ("05", "19", "26"):
        found = active(local(f"2026-10-{day} 10:10"), events=rows)
        assert (found.profile, found.reason) == (MEETING, "calendar")
        assert active(local(f"2026-10-{day} 10:30"), events=rows).reason == "none"
    assert active(local("2026-10-12 10:10"), events=rows).reason == "none"
    assert active(local("2026-10-22 15:00"), events=rows).profile is OFF  # all-day Vacation


def test_the_window_limits_the_events() -> None:
    rows = parsed("2026-10-18 00:00", "2026-10-21 00:00")
    assert sorted(r.summary for r in rows) == ["Call with New York", "Weekly sync"]


@pytest.mark.parametrize("text", ["hello", "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:garbage\n"
                                           "END:VEVENT\nEND:VCALENDAR\n"])
def test_invalid_ics_gives_the_parsers_reason(text: str) -> None:
    with pytest.raises(CalendarError, match="invalid iCalendar data: .+"):
        calendar_events(text, 0, 2e9, TZ, organisation_id=1, extension="1001")


def test_calendar_urls_on_private_addresses_are_refused_before_any_request() -> None:
    """A user's calendar URL must not let them probe the PBX's own network."""
    from pbx.calendars import FetchError, fetch

    for url in ("http://127.0.0.1:9/cal.ics", "http://localhost:9/cal.ics", "http://[::1]:9/x"):
        with pytest.raises(FetchError, match="private address"):
            fetch(url)
