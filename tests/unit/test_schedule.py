"""Opening hours (ivr.schedule): vectors of local times in Europe/Stockholm."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from ivr.schedule import (
    DAYS, Definition, Interval, OverrideError, Schedule, ScheduleState, holiday_calendar,
)

TZ = ZoneInfo("Europe/Stockholm")
UTC = timezone.utc
OFFICE = {day: ["08:00-17:00"] for day in DAYS[:5]}  # Mon-Fri, Swedish holidays closed


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    """Local wall-clock time in Stockholm as epoch seconds."""
    return datetime(year, month, day, hour, minute, tzinfo=TZ).timestamp()


def local(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, TZ).replace(tzinfo=None)


def schedule(**fields: Any) -> Schedule:
    return Schedule(Definition(**fields))


def office(**fields: Any) -> Schedule:
    return schedule(**{**OFFICE, **fields})


# ------------------------------------------------------------------ weekly hours


def test_every_weekday_has_its_own_hours() -> None:
    """Mon 08-17, Tue 09-18 … Sun 14-23: each day opens and closes at its own times."""
    hours = {day: [f"{8 + i:02d}:00-{17 + i:02d}:00"] for i, day in enumerate(DAYS)}
    plan = schedule(holidays="", **hours)
    monday = date(2026, 11, 30)
    for i, day in enumerate(DAYS):
        d = monday + timedelta(days=i)
        assert d.strftime("%a").lower() == day
        opens, closes = 8 + i, 17 + i
        assert not plan.state(at(d.year, d.month, d.day, opens - 1, 59)).open, day
        state = plan.state(at(d.year, d.month, d.day, opens))
        assert state == ScheduleState(True, "schedule", "", at(d.year, d.month, d.day, closes)), day
        assert plan.state(at(d.year, d.month, d.day, closes - 1, 59)).open, day
        assert not plan.state(at(d.year, d.month, d.day, closes)).open, day


def test_several_intervals_a_day_and_the_lunch_break() -> None:
    plan = schedule(holidays="", mon=["08:00-12:00", "13:00-17:00"])
    lunch = plan.state(at(2026, 11, 30, 12, 30))
    assert lunch == ScheduleState(False, "schedule", "", at(2026, 11, 30, 13))
    assert plan.state(at(2026, 11, 30, 11, 59)).next_change == at(2026, 11, 30, 12)
    assert plan.state(at(2026, 11, 30, 13)).open


def test_touching_intervals_stay_open_across_the_seam() -> None:
    plan = schedule(holidays="", mon=["08:00-12:00", "12:00-17:00"])
    assert plan.state(at(2026, 11, 30, 9)).next_change == at(2026, 11, 30, 17)


def test_an_interval_across_midnight_belongs_to_the_day_it_starts() -> None:
    plan = schedule(holidays="", fri=["22:00-02:00"])
    assert plan.state(at(2026, 12, 4, 21)).next_change == at(2026, 12, 4, 22)
    friday_night = plan.state(at(2026, 12, 4, 23))
    assert friday_night.open and friday_night.next_change == at(2026, 12, 5, 2)
    assert plan.state(at(2026, 12, 5, 1, 59)).open  # Saturday morning: still Friday's hours
    assert not plan.state(at(2026, 12, 5, 2)).open
    assert not plan.state(at(2026, 12, 4, 1)).open  # Thursday had no night opening


def test_sunday_night_runs_into_monday() -> None:
    plan = schedule(holidays="", sun=["20:00-06:00"], mon=["08:00-17:00"])
    assert plan.state(at(2026, 11, 30, 5)).open
    assert plan.state(at(2026, 11, 30, 6)) == ScheduleState(
        False, "schedule", "", at(2026, 11, 30, 8))


def test_all_day_and_every_day_never_changes() -> None:
    plan = schedule(holidays="", **{day: ["00:00-24:00"] for day in DAYS})
    assert plan.state(at(2026, 11, 30, 3)) == ScheduleState(True, "schedule", "", None)


def test_never_open_has_no_next_change() -> None:
    assert schedule().state(at(2026, 11, 30, 12)) == ScheduleState(False, "schedule", "", None)


# ------------------------------------------------------------------ daylight saving


@pytest.mark.parametrize("day", [date(2026, 3, 29), date(2026, 10, 25),
                                 date(2027, 3, 28), date(2027, 10, 31)])
def test_a_dst_change_day_keeps_its_local_hours(day: date) -> None:
    """The clocks change on a Sunday night: 08:00-17:00 is still 08:00-17:00 local,
    and the night before it is an hour shorter (spring) or longer (autumn)."""
    plan = schedule(holidays="", **{d: ["08:00-17:00"] for d in DAYS})
    y, m, d = day.year, day.month, day.day
    spring = day.month == 3
    offset = 2 if spring else 1  # hours east of UTC once the clocks have changed
    opens = datetime(y, m, d, 8 - offset, tzinfo=UTC).timestamp()
    closes = datetime(y, m, d, 17 - offset, tzinfo=UTC).timestamp()
    assert not plan.state(opens - 1).open
    assert plan.state(opens) == ScheduleState(True, "schedule", "", closes)
    assert not plan.state(closes).open
    saturday = day - timedelta(days=1)
    saturday_close = at(saturday.year, saturday.month, saturday.day, 17)
    assert plan.state(saturday_close).next_change == opens
    assert opens - saturday_close == (14 if spring else 16) * 3600
    monday = day + timedelta(days=1)
    assert local(plan.state(closes).next_change) == datetime(monday.year, monday.month,
                                                             monday.day, 8)


def test_a_night_shift_over_the_dst_change() -> None:
    plan = schedule(holidays="", sat=["22:00-06:00"])
    spring = plan.state(at(2026, 3, 28, 22))
    assert spring.next_change - at(2026, 3, 28, 22) == 7 * 3600  # type: ignore[operator]
    autumn = plan.state(at(2026, 10, 24, 22))
    assert autumn.next_change - at(2026, 10, 24, 22) == 9 * 3600  # type: ignore[operator]
    assert local(autumn.next_change) == datetime(2026, 10, 25, 6)


def test_a_time_the_clock_skips_falls_after_the_gap() -> None:
    """02:30 does not exist on 29 March 2026 (02:00 → 03:00): it opens at 03:30."""
    plan = schedule(holidays="", sun=["02:30-04:00"])
    opens = plan.state(at(2026, 3, 29, 1)).next_change
    assert opens == datetime(2026, 3, 29, 1, 30, tzinfo=UTC).timestamp()
    assert local(opens) == datetime(2026, 3, 29, 3, 30)


# ------------------------------------------------------------------ holidays

SWEDISH_HOLIDAYS = {
    2026: {
        date(2026, 1, 1): "Nyårsdagen", date(2026, 1, 6): "Trettondedag jul",
        date(2026, 4, 3): "Långfredagen", date(2026, 4, 5): "Påskdagen",
        date(2026, 4, 6): "Annandag påsk", date(2026, 5, 1): "Första maj",
        date(2026, 5, 14): "Kristi himmelsfärdsdag", date(2026, 5, 24): "Pingstdagen",
        date(2026, 6, 6): "Nationaldagen", date(2026, 6, 19): "Midsommarafton",
        date(2026, 6, 20): "Midsommardagen", date(2026, 10, 31): "Alla helgons dag",
        date(2026, 12, 24): "Julafton", date(2026, 12, 25): "Juldagen",
        date(2026, 12, 26): "Annandag jul", date(2026, 12, 31): "Nyårsafton",
    },
    2027: {
        date(2027, 1, 1): "Nyårsdagen", date(2027, 1, 6): "Trettondedag jul",
        date(2027, 3, 26): "Långfredagen", date(2027, 3, 28): "Påskdagen",
        date(2027, 3, 29): "Annandag påsk", date(2027, 5, 1): "Första maj",
        date(2027, 5, 6): "Kristi himmelsfärdsdag", date(2027, 5, 16): "Pingstdagen",
        date(2027, 6, 6): "Nationaldagen", date(2027, 6, 25): "Midsommarafton",
        date(2027, 6, 26): "Midsommardagen", date(2027, 11, 6): "Alla helgons dag",
        date(2027, 12, 24): "Julafton", date(2027, 12, 25): "Juldagen",
        date(2027, 12, 26): "Annandag jul", date(2027, 12, 31): "Nyårsafton",
    },
}


@pytest.mark.parametrize("year", [2026, 2027])
def test_the_swedish_holidays_are_exactly_these(year: int) -> None:
    """Public holidays with the movable ones (Easter, Ascension, Midsummer, All
    Saints) on their dates, the three eves businesses close on, and no plain Sundays."""
    assert holiday_calendar("SE", year) == SWEDISH_HOLIDAYS[year]


@pytest.mark.parametrize("day,name", [(d, n) for year in SWEDISH_HOLIDAYS.values()
                                      for d, n in year.items()])
def test_each_swedish_holiday_closes_an_every_day_switchboard(day: date, name: str) -> None:
    plan = schedule(**{d: ["00:00-24:00"] for d in DAYS})  # holidays = SE by default
    state = plan.state(at(day.year, day.month, day.day, 12))
    assert (state.open, state.reason, state.label) == (False, "holiday", name)
    assert local(state.next_change) == datetime.combine(_next_workday(day), datetime.min.time())


def _next_workday(day: date) -> date:
    every = {d for year in SWEDISH_HOLIDAYS.values() for d in year} | {date(2028, 1, 1)}
    day += timedelta(days=1)
    while day in every:
        day += timedelta(days=1)
    return day


def test_an_ordinary_sunday_is_no_holiday() -> None:
    plan = schedule(sun=["10:00-14:00"])
    assert plan.state(at(2026, 3, 1, 11)) == ScheduleState(True, "schedule", "", at(2026, 3, 1, 14))


def test_holiday_hours_and_no_holidays() -> None:
    short = office(holiday_hours=["10:00-14:00"])
    state = short.state(at(2026, 1, 6, 11))  # Epiphany, a Tuesday
    assert state == ScheduleState(True, "holiday", "Trettondedag jul", at(2026, 1, 6, 14))
    assert short.state(at(2026, 1, 6, 9)).reason == "holiday"
    assert office(holidays="").state(at(2026, 1, 6, 11)).open


def test_another_countrys_holidays() -> None:
    plan = office(holidays="NO")  # Norway: 17 May, Constitution Day (a Monday in 2027)
    assert plan.state(at(2027, 5, 17, 10)).reason == "holiday"
    assert office().state(at(2027, 5, 17, 10)).open


def test_christmas_and_new_year_next_changes() -> None:
    plan = office()
    assert local(plan.state(at(2026, 12, 23, 17)).next_change) == datetime(2026, 12, 28, 8)
    assert local(plan.state(at(2026, 12, 30, 17)).next_change) == datetime(2027, 1, 4, 8)
    assert local(plan.state(at(2026, 6, 18, 17)).next_change) == datetime(2026, 6, 22, 8)
    assert local(plan.state(at(2027, 5, 5, 17)).next_change) == datetime(2027, 5, 7, 8)


# ------------------------------------------------------------------ exceptions


def test_an_exception_beats_the_holiday() -> None:
    plan = office(exceptions=[{"date": "2026-12-24", "hours": ["09:00-12:00"],
                               "label": "Christmas Eve morning"}])
    assert plan.state(at(2026, 12, 24, 10)) == ScheduleState(
        True, "exception", "Christmas Eve morning", at(2026, 12, 24, 12))
    closed = plan.state(at(2026, 12, 24, 13))
    assert (closed.open, closed.reason) == (False, "exception")
    assert local(closed.next_change) == datetime(2026, 12, 28, 8)
    assert plan.state(at(2026, 12, 25, 10)).reason == "holiday"


def test_an_exception_closes_a_working_day_and_is_named_by_its_date() -> None:
    plan = office(exceptions=[{"date": "2026-12-01"}])
    state = plan.state(at(2026, 12, 1, 10))
    assert state == ScheduleState(False, "exception", "2026-12-01", at(2026, 12, 2, 8))
    assert plan.state(at(2026, 11, 30, 10)).next_change == at(2026, 11, 30, 17)


# ------------------------------------------------------------------ overrides


def test_close_now_until_a_time_then_back_to_the_hours() -> None:
    now = at(2026, 11, 30, 10)
    plan = office().switched("close", now, until=at(2026, 11, 30, 13), label="staff meeting")
    assert plan.state(now) == ScheduleState(False, "override", "staff meeting",
                                            at(2026, 11, 30, 13))
    assert plan.state(at(2026, 11, 30, 13)) == ScheduleState(True, "schedule", "",
                                                             at(2026, 11, 30, 17))


def test_close_now_without_end_lasts_until_changed_back() -> None:
    now = at(2026, 11, 30, 10)
    closed = office().switched("close", now)
    assert closed.state(now) == ScheduleState(False, "override", "", None)
    assert closed.state(at(2027, 1, 12, 10)).reason == "override"  # weeks later still
    back = closed.switched("schedule", now + 60)
    assert back.state(now + 60) == ScheduleState(True, "schedule", "", at(2026, 11, 30, 17))
    assert back.overrides == ()


def test_open_now_beats_holiday_and_exception() -> None:
    plan = office(exceptions=[{"date": "2026-12-01"}])
    opened = plan.switched("open", at(2026, 12, 1, 9), until=at(2026, 12, 1, 11))
    assert opened.state(at(2026, 12, 1, 10)).reason == "override"
    assert opened.state(at(2026, 12, 1, 10)).open
    xmas = plan.switched("open", at(2026, 12, 24, 9))
    assert xmas.state(at(2026, 12, 24, 9, 30)) == ScheduleState(True, "override", "", None)


def test_open_until_a_time_that_the_hours_would_reach_anyway() -> None:
    """Open from 07:00 until 09:00: the hours take over at 08:00, no change at 09:00."""
    plan = office().switched("open", at(2026, 11, 30, 7), until=at(2026, 11, 30, 9))
    assert plan.state(at(2026, 11, 30, 7)).next_change == at(2026, 11, 30, 17)


def test_a_planned_override_and_the_latest_start_wins() -> None:
    now = at(2026, 11, 30, 9)
    plan = office().switched("close", now, start=at(2026, 12, 2, 12), until=at(2026, 12, 2, 14),
                             label="all-hands")
    assert plan.state(now).next_change == at(2026, 11, 30, 17)
    assert plan.state(at(2026, 12, 2, 11)).next_change == at(2026, 12, 2, 12)
    assert plan.state(at(2026, 12, 2, 12, 30)) == ScheduleState(
        False, "override", "all-hands", at(2026, 12, 2, 14))
    # closed by hand now, open for the planned hours later, closed again after them
    both = plan.switched("close", now).switched("open", now, start=at(2026, 12, 3, 10),
                                                until=at(2026, 12, 3, 11))
    assert both.state(now) == ScheduleState(False, "override", "", at(2026, 12, 3, 10))
    assert both.state(at(2026, 12, 3, 10, 30)).open
    assert both.state(at(2026, 12, 3, 11)).reason == "override"
    assert not both.state(at(2026, 12, 3, 11)).open
    assert both.state(at(2026, 12, 2, 12, 30)).label == "all-hands"


def test_back_to_schedule_keeps_planned_overrides_and_forgets_ended_ones() -> None:
    now = at(2026, 11, 30, 9)
    plan = (office()
            .switched("close", now, until=now + 600)
            .switched("close", now, start=at(2026, 12, 2, 12), until=at(2026, 12, 2, 14)))
    later = now + 3600  # the first has ended
    opened = plan.switched("open", later)
    assert [o.start for o in opened.overrides] == [later, at(2026, 12, 2, 12)]
    back = opened.switched("schedule", later + 1)
    assert [o.start for o in back.overrides] == [at(2026, 12, 2, 12)]
    assert back.without_overrides().overrides == ()


def test_next_edge_includes_an_override_ending_without_a_change() -> None:
    """Closed by hand until 20:00 on an evening the hours are closed anyway: nothing
    opens, but the reason changes, and a watcher wants to wake up then."""
    now = at(2026, 11, 30, 18)
    plan = office().switched("close", now, until=at(2026, 11, 30, 20))
    assert plan.state(now).next_change == at(2026, 12, 1, 8)
    assert plan.next_edge(now) == at(2026, 11, 30, 20)


def test_overrides_refuse_times_that_make_no_sense() -> None:
    now = at(2026, 11, 30, 9)
    with pytest.raises(OverrideError, match="until: must be later"):
        office().switched("close", now, until=now - 60)
    with pytest.raises(OverrideError, match="until: must be later"):
        office().switched("close", now, start=now + 3600, until=now + 60)
    with pytest.raises(OverrideError, match="start: back to schedule takes effect now"):
        office().switched("schedule", now, start=now + 60)
    with pytest.raises(OverrideError, match="until: more than ten years ahead"):
        office().switched("close", now, until=at(2037, 1, 1))


# ------------------------------------------------------------------ invalid input


@pytest.mark.parametrize("fields,where,message", [
    ({"mon": ["08:00-12:00", "11:00-13:00"]}, ("mon",), "08:00-12:00 and 11:00-13:00 overlap"),
    ({"tue": ["13:00-17:00", "08:00-12:00"]}, ("tue",),
     "08:00-12:00 is listed after 13:00-17:00"),
    ({"wed": ["08:00-08:00"]}, ("wed", 0), "08:00-08:00 is empty"),
    ({"thu": ["08:00-25:00"]}, ("thu", 0), "25:00 is not a time of day"),
    ({"fri": ["08:60-12:00"]}, ("fri", 0), "08:60 is not a time of day"),
    ({"fri": ["24:00-02:00"]}, ("fri", 0), "cannot start at 24:00"),
    ({"sat": ["8 to 5"]}, ("sat", 0), "is not an interval like 08:00-17:00"),
    ({"sun": [17]}, ("sun", 0), "an interval is a string"),
    ({"mon": ["22:00-03:00"], "tue": ["02:00-05:00"]}, ("tue",),
     "mon 22:00-03:00 runs past midnight into tue 02:00-05:00"),
    ({"sun": ["22:00-09:00"], "mon": ["08:00-17:00"]}, ("sun",),
     "sun 22:00-09:00 runs past midnight into mon 08:00-17:00"),
    ({"holiday_hours": ["10:00-12:00", "11:00-13:00"]}, ("holiday_hours",), "overlap"),
    ({"holidays": "XX"}, ("holidays",), "unknown country 'XX'"),
    ({"timezone": "Mars/Olympus_Mons"}, ("timezone",), "unknown time zone 'Mars/Olympus_Mons'"),
    ({"timezone": "../etc/passwd"}, ("timezone",), "unknown time zone"),
    ({"exceptions": [{"date": "2026-12-24"}, {"date": "2026-12-24", "hours": []}]},
     ("exceptions",), "2026-12-24 is listed twice"),
    ({"exceptions": [{"date": "2026-02-30"}]}, ("exceptions", 0, "date"), "date"),
    ({"exceptions": [{"date": "2026-12-31", "hours": ["09:00-12:00", "10:00-11:00"]}]},
     ("exceptions", 0, "hours"), "overlap"),
    ({"weekdays": ["08:00-17:00"]}, ("weekdays",), "Extra inputs are not permitted"),
])
def test_invalid_definitions_are_refused_naming_the_field(
        fields: dict[str, Any], where: tuple[Any, ...], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Definition(**fields)
    error = caught.value.errors()[0]
    assert error["loc"] == where
    assert message in error["msg"]


def test_intervals_read_and_write_as_text() -> None:
    definition = Definition(mon=["8:00-12:00", " 13:00 - 17:30 "], fri=["22:00-02:00"],
                            holidays="se")
    assert definition.mon == [Interval(480, 720), Interval(780, 1050)]
    dumped = definition.model_dump(mode="json")
    assert dumped["mon"] == ["08:00-12:00", "13:00-17:30"] and dumped["fri"] == ["22:00-02:00"]
    assert dumped["holidays"] == "SE"
    assert Definition.model_validate_json(definition.model_dump_json()) == definition
    assert Interval.parse("00:00-24:00").stop == 1440 and Interval.parse("22:00-02:00").stop == 1560
