"""Queue history by hour, day, week and month from stored events."""

import asyncio
from datetime import datetime
from pathlib import Path

import pytest

from pbx.events import (
    AgentStateChanged, EventBus, QueueAbandoned, QueueAnswered, QueueCompleted, QueueJoined,
    SurveyAnswered,
)
from pbx.store import Store
from queues.history import (
    QueueEventWriter, QueueHistory, agent_history, as_csv, buckets, event_of, queue_history,
    row_of,
)
from queues.stats import Settings
from tests.unit.queue_scenario import scenario


def at(day: int, hour: int, minute: int = 0) -> float:
    return datetime(2026, 12, day, hour, minute).timestamp()


def two_days() -> list:
    """Monday 30 Nov: one answered (10 s) at 9:05, one abandoned (40 s) at 9:30,
    one answered (30 s) at 10:10; Tuesday 1 Dec: one answered (5 s)."""
    return [
        QueueJoined(1, "700", "a", "+461", 1, 0, datetime(2026, 11, 30, 9, 5).timestamp()),
        QueueAnswered(1, "700", "a", "1002", 10, datetime(2026, 11, 30, 9, 5, 10).timestamp()),
        QueueCompleted(1, "700", "a", "1002", 300, "agent",
                       datetime(2026, 11, 30, 9, 10, 10).timestamp()),
        QueueJoined(1, "700", "b", "+462", 1, 0, datetime(2026, 11, 30, 9, 30).timestamp()),
        QueueAbandoned(1, "700", "b", 1, 40, datetime(2026, 11, 30, 9, 30, 40).timestamp()),
        QueueJoined(1, "700", "c", "+463", 1, 0, datetime(2026, 11, 30, 10, 10).timestamp()),
        QueueAnswered(1, "700", "c", "1003", 30, datetime(2026, 11, 30, 10, 10, 30).timestamp()),
        QueueJoined(1, "700", "d", "+464", 1, 0, at(1, 8)),
        QueueAnswered(1, "700", "d", "1002", 5, at(1, 8) + 5),
    ]


def staffing_of_two_days() -> tuple[list, list]:
    """1003 on duty all along (since before the window); 1002 from 9:00, paused
    9:30–9:45; 1004 on duty in another queue only."""
    def state(agent: str, name: str, hour: int, minute: int, queues: tuple = ("700",)):
        return AgentStateChanged(1, agent, name, "", queues,
                                 datetime(2026, 11, 30, hour, minute).timestamp())

    before = [AgentStateChanged(1, "1003", "available", "", ("700",), at(1, 0) - 3 * 86400)]
    return before, [state("1002", "available", 9, 0), state("1002", "paused", 9, 30),
                    state("1002", "available", 9, 45), state("1004", "available", 9, 0, ("701",))]


def test_hours_and_days_count_what_fell_into_them() -> None:
    before, states = staffing_of_two_days()
    hours = queue_history(two_days() + states, buckets(at(1, 0) - 86400, at(1, 0), "hour"),
                          "hour", Settings(20, 0.8), "700", before, now=at(1, 0))
    nine = next(row for row in hours if row["start"].startswith("2026-11-30T09:00"))
    assert (nine["joined"], nine["answered"], nine["abandoned"], nine["service_level"],
            nine["average_wait"], nine["average_talk"]) == (2, 1, 1, 50.0, 10.0, 300.0)
    # 1003 the whole hour, 1002 for 45 minutes of it
    assert [row["agents_on_duty"] for row in hours[8:11]] == [1.0, 1.75, 2.0]
    # 2 callers in the hour × 300 s = 0.17 Erlang: one agent, 1 - 0.1667·e^(-0.833·20/300)
    assert nine["staffing"] == {"erlangs": 0.17, "agents_needed": 1, "service_level": 84.2}
    days = queue_history(two_days(), buckets(at(1, 0) - 86400, at(2, 0), "day"), "day",
                         Settings(20, 0.8), "700")
    assert [(d["start"][:10], d["answered"], d["abandoned"], d["service_level"], d["staffing"])
            for d in days] == [("2026-11-30", 2, 1, 33.3, None), ("2026-12-01", 1, 0, 100.0, None)]


def test_weeks_start_on_monday_and_months_on_the_first() -> None:
    weeks = buckets(at(3, 12), at(10, 12), "week")
    assert [datetime.fromtimestamp(s).strftime("%a %d") for s, _ in weeks] == ["Mon 30", "Mon 07"]
    months = buckets(datetime(2026, 11, 15).timestamp(), datetime(2027, 1, 2).timestamp(), "month")
    assert [datetime.fromtimestamp(s).strftime("%Y-%m-%d") for s, _ in months] == [
        "2026-11-01", "2026-12-01", "2027-01-01"]


@pytest.mark.parametrize("period, start, end, reason", [
    ("fortnight", 0, 10, "period must be one of"),
    ("day", 10, 10, "start must come before"),
    ("hour", 0, 400 * 86400, "more than 2000 hours"),
])
def test_bad_periods_are_refused_with_a_reason(period: str, start: float, end: float,
                                               reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        buckets(start, end, period)


def test_agent_pause_is_cut_at_the_edges_of_hours() -> None:
    events = [
        AgentStateChanged(1, "1004", "paused", "lunch", ("700",), at(3, 11, 45)),
        AgentStateChanged(1, "1004", "available", "", ("700",), at(3, 12, 30)),
        QueueCompleted(1, "700", "x", "1004", 120, "caller", at(3, 12, 50)),
        SurveyAnswered(1, "700", "x", "1004", 3, at(3, 12, 51)),
        AgentStateChanged(1, "1004", "paused", "admin", ("700",), at(3, 12, 55)),
    ]
    spans = buckets(at(3, 11), at(3, 14), "hour")
    rows = agent_history(events, spans, None, now=at(3, 13, 10))
    assert [(r["calls"], r["talk_time"], r["pause_time"]) for r in rows] == [
        (0, 0.0, 900.0), (1, 120.0, 30 * 60 + 5 * 60), (0, 0.0, 600.0)]
    assert rows[1]["survey"] == {"answers": 1, "average": 3.0}
    # paused since before the window: counted from its start
    before = AgentStateChanged(1, "1004", "paused", "lunch", ("700",), at(3, 10))
    assert agent_history([], spans[:1], before, now=at(3, 14))[0]["pause_time"] == 3600.0


def test_csv_flattens_nested_figures() -> None:
    text = as_csv([{"start": "s", "survey": {"answers": 1, "average": 4.0}, "staffing": None}])
    assert text.splitlines() == ["start,survey_answers,survey_average,staffing", "s,1,4.0,"]


def test_events_are_stored_in_batches_and_read_back(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'pbx.db'}")
    history = QueueHistory(store.engine)
    bus = EventBus()
    writer = QueueEventWriter(history)
    bus.subscribe(writer.on_event)

    async def publish() -> None:
        for event in scenario():
            bus.publish(event)
        await writer.drain()

    asyncio.run(publish())
    events = scenario()
    first, last = events[0].at, events[-1].at + 1
    rows = history.rows(1, first, last)
    assert len(rows) == len(events) - 1  # CallStarted is no queue event
    assert [event_of(row) for row in rows] == sorted(events[:-1], key=lambda e: e.at)
    assert history.has_queue(1, "700") and not history.has_queue(1, "701")
    assert history.state_before(1, "1002", last).state == "on_direct_call"
    assert {(s.agent, s.state) for s in history.states_before(1, last)} == {
        ("1002", "on_direct_call"), ("1003", "available"), ("1004", "available"),
        ("1005", "logged_out")}
    assert len(history.agent_states(1, first, last)) == 13  # 7 of 1002, 3, 2 and 1
    assert [r.call_id for r in history.rows(1, first, last, queue="700", limit=2, offset=1)] == [
        "c1", "c1"]
    assert (row_of(events[4])["queue"], row_of(events[0])["agent"]) == ("700", "1002")
    store.close()
