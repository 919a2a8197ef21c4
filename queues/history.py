"""Queue history: every queue event is stored as a row (``QueueEventRow``), and
the figures of any hour, day, week or month are folded from those rows with the
same counting as the live statistics (queues/stats.py), so a day's history and
the wallboard's "today" agree.  Buckets follow the PBX's local calendar; weeks
start on Monday (ISO 8601).

The folding is pure (events in, rows of figures out); :class:`QueueHistory`
reads and writes the store and :class:`QueueEventWriter` stores what the bus
carries in batches, off the event loop.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from pbx.events import (
    AgentStateChanged, Event, QueueCompleted, QueueEvent, SurveyAnswered, as_dict, event_type,
    from_dict,
)
from pbx.models import QueueEventRow
from pbx.tasks import Tasks
from queues.stats import ON_DUTY, QueueDay, Settings, Survey, advise

log = logging.getLogger("queues.history")

PERIODS = ("hour", "day", "week", "month")
MAX_BUCKETS = 2000  # a request for more (hours over a quarter) is refused: ask for days


def bucket_start(at: float, period: str) -> float:
    """The local start of the hour, day, week (Monday) or month holding ``at``."""
    moment = datetime.fromtimestamp(at)
    if period == "hour":
        moment = moment.replace(minute=0, second=0, microsecond=0)
    else:
        moment = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        if period == "week":
            moment -= timedelta(days=moment.weekday())
        elif period == "month":
            moment = moment.replace(day=1)
    return moment.timestamp()


def next_bucket(start: float, period: str) -> float:
    """The start of the bucket after the one starting at ``start`` (DST-proof:
    calendar arithmetic on local dates, not a fixed number of seconds)."""
    moment = datetime.fromtimestamp(start)
    if period == "hour":
        return bucket_start(start + 3600 + 60, "hour")
    if period == "month":
        year, month = divmod(moment.month, 12)
        return moment.replace(year=moment.year + year, month=month + 1).timestamp()
    days = 7 if period == "week" else 1
    return bucket_start((moment + timedelta(days=days, hours=12)).timestamp(), period)


def buckets(start: float, end: float, period: str) -> list[tuple[float, float]]:
    """The buckets covering ``[start, end)``, the first one aligned to its period."""
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}")
    if end <= start:
        raise ValueError("the start must come before the end")
    spans: list[tuple[float, float]] = []
    at = bucket_start(start, period)
    while at < end:
        following = next_bucket(at, period)
        spans.append((at, following))
        at = following
        if len(spans) > MAX_BUCKETS:
            raise ValueError(f"more than {MAX_BUCKETS} {period}s: choose a longer period")
    return spans


def local_time(at: float) -> str:
    return datetime.fromtimestamp(at).astimezone().isoformat(timespec="seconds")


def _index(spans: Sequence[tuple[float, float]], at: float) -> int | None:
    """The bucket holding ``at`` (spans are sorted and adjacent)."""
    low, high = 0, len(spans)
    while low < high:
        mid = (low + high) // 2
        if at < spans[mid][0]:
            high = mid
        elif at >= spans[mid][1]:
            low = mid + 1
        else:
            return mid
    return None


def time_in(states: Iterable[AgentStateChanged], spans: Sequence[tuple[float, float]],
            before: Iterable[AgentStateChanged], now: float,
            counts: Callable[[AgentStateChanged], bool]) -> list[float]:
    """Agent-seconds per bucket spent in states ``counts`` accepts, cut at the
    bucket edges.  ``before`` are the agents' last states before the first
    bucket (a pause begun yesterday counts from midnight); a state still
    running counts up to ``now``."""
    totals = [0.0] * len(spans)
    first, last = spans[0][0], min(spans[-1][1], now)

    def spread(begin: float, end: float) -> None:
        for i, (start, stop) in enumerate(spans):
            overlap = min(stop, end) - max(start, begin)
            if overlap > 0:
                totals[i] += overlap

    since = {state.agent: first for state in before if counts(state)}
    for state in sorted(states, key=lambda e: e.at):
        if not first <= state.at < last:
            continue
        begun = since.pop(state.agent, None)
        if begun is not None:
            spread(begun, state.at)
        if counts(state):
            since[state.agent] = state.at
    for begun in since.values():
        spread(begun, last)
    return totals


def queue_history(events: Iterable[Event], spans: Sequence[tuple[float, float]], period: str,
                  settings: Settings, queue: str, before: Iterable[AgentStateChanged] = (),
                  now: float = float("inf")) -> list[dict[str, Any]]:
    """One row of figures per bucket, with ``agents_on_duty`` (the average number
    of members logged in and not paused, from the agents' states); hours also
    carry the Erlang C advice for the traffic they saw (callers joined ×
    average talk), to be read beside it."""
    events = list(events)
    days = [QueueDay() for _ in spans]
    for event in events:
        where = _index(spans, event.at)
        if where is not None and isinstance(event, QueueEvent):
            days[where].count(event, settings.threshold)
    on_duty = time_in((e for e in events if isinstance(e, AgentStateChanged)), spans, before,
                      now, lambda state: state.state in ON_DUTY and queue in state.queues)
    rows = []
    for (start, end), day, duty in zip(spans, days, on_duty, strict=True):
        figures = day.figures(settings.threshold)
        advice = advise(day.joined, end - start, figures["average_talk"], settings) \
            if period == "hour" else None
        rows.append({"start": local_time(start), "end": local_time(end), **figures,
                     "agents_on_duty": round(duty / (end - start), 2), "staffing": advice})
    return rows


@dataclass(slots=True)
class AgentPeriod:
    calls: int = 0
    talk: float = 0.0
    survey: Survey = field(default_factory=Survey)


def agent_history(events: Iterable[Event], spans: Sequence[tuple[float, float]],
                  state_before: AgentStateChanged | None, now: float) -> list[dict[str, Any]]:
    """One agent's calls, talk time, pause time and survey per bucket."""
    events = list(events)
    periods = [AgentPeriod() for _ in spans]
    for event in events:
        where = _index(spans, event.at)
        if where is None:
            continue
        if isinstance(event, QueueCompleted):
            periods[where].calls += 1
            periods[where].talk += event.talk
        elif isinstance(event, SurveyAnswered):
            periods[where].survey.add(event.score)
    paused = time_in((e for e in events if isinstance(e, AgentStateChanged)), spans,
                     [state_before] if state_before is not None else [], now,
                     lambda state: state.state == "paused")
    return [{"start": local_time(start), "end": local_time(end), "calls": period.calls,
             "talk_time": round(period.talk, 1), "pause_time": round(pause, 1),
             "survey": period.survey.shown()}
            for (start, end), period, pause in zip(spans, periods, paused, strict=True)]


def flat(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested figures as CSV columns: ``survey`` → ``survey_answers``, ``survey_average``."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}_"))
        else:
            out[prefix + key] = "" if value is None else value
    return out


def as_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """RFC 4180 CSV with a header line (what Power BI and spreadsheets read)."""
    flattened = [flat(row) for row in rows]
    names = list(columns or (flattened[0] if flattened else []))
    out = io.StringIO()
    writer = csv.DictWriter(out, names, extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(flattened)
    return out.getvalue()


# ------------------------------------------------------------------ the store

def row_of(event: QueueEvent) -> dict[str, Any]:
    """The stored row of ``event``, as plain values (one executemany stores a
    batch: no ORM objects built on the event loop)."""
    return {"organisation_id": event.organisation, "type": event_type(event),
            "queue": getattr(event, "queue", ""), "agent": getattr(event, "agent", ""),
            "call_id": getattr(event, "call_id", ""), "at": event.at,
            "data": json.dumps(as_dict(event), separators=(",", ":"))}


def event_of(row: QueueEventRow) -> Event:
    return from_dict(json.loads(row.data))


def raw(row: QueueEventRow) -> dict[str, Any]:
    """A stored row as the raw export shows it: the event's own fields."""
    return {"id": row.id, "time": local_time(row.at), **json.loads(row.data)}


class QueueHistory:
    """Reads and writes the stored queue events (blocking: call from a thread)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, rows: Sequence[dict[str, Any]]) -> None:
        """Store rows made by :func:`row_of` in one transaction."""
        with self.engine.begin() as connection:
            connection.execute(insert(QueueEventRow), list(rows))

    def rows(self, organisation: int, start: float, end: float, *, queue: str | None = None,
             agent: str | None = None, limit: int | None = None,
             offset: int = 0) -> list[QueueEventRow]:
        """Stored events of ``[start, end)``, oldest first, of one queue or agent."""
        query = select(QueueEventRow).where(
            QueueEventRow.organisation_id == organisation,
            QueueEventRow.at >= start, QueueEventRow.at < end)
        if queue is not None:
            query = query.where(QueueEventRow.queue == queue)
        if agent is not None:
            query = query.where(QueueEventRow.agent == agent)
        query = query.order_by(col(QueueEventRow.at), col(QueueEventRow.id)).offset(offset)
        with Session(self.engine) as db:
            return list(db.exec(query.limit(limit) if limit is not None else query))

    def has_queue(self, organisation: int, queue: str) -> bool:
        with Session(self.engine) as db:
            return db.exec(select(QueueEventRow.id).where(
                QueueEventRow.organisation_id == organisation,
                QueueEventRow.queue == queue).limit(1)).first() is not None

    def has_agent(self, organisation: int, agent: str) -> bool:
        with Session(self.engine) as db:
            return db.exec(select(QueueEventRow.id).where(
                QueueEventRow.organisation_id == organisation,
                QueueEventRow.agent == agent).limit(1)).first() is not None

    def count(self, organisation: int, start: float, end: float) -> int:
        with Session(self.engine) as db:
            return db.exec(select(func.count()).select_from(QueueEventRow).where(
                QueueEventRow.organisation_id == organisation,
                QueueEventRow.at >= start, QueueEventRow.at < end)).one()

    def agent_states(self, organisation: int, start: float, end: float) -> list[AgentStateChanged]:
        """Every agent state change of ``[start, end)``, oldest first."""
        with Session(self.engine) as db:
            rows = db.exec(select(QueueEventRow).where(
                QueueEventRow.organisation_id == organisation, QueueEventRow.type == "agent.state",
                QueueEventRow.at >= start, QueueEventRow.at < end,
            ).order_by(col(QueueEventRow.at), col(QueueEventRow.id))).all()
        return [event for event in map(event_of, rows) if isinstance(event, AgentStateChanged)]

    def states_before(self, organisation: int, at: float) -> list[AgentStateChanged]:
        """Each agent's last state change before ``at``."""
        latest = select(func.max(QueueEventRow.id)).where(
            QueueEventRow.organisation_id == organisation, QueueEventRow.type == "agent.state",
            QueueEventRow.at < at).group_by(QueueEventRow.agent)
        with Session(self.engine) as db:
            rows = db.exec(select(QueueEventRow).where(col(QueueEventRow.id).in_(latest))).all()
        return [event for event in map(event_of, rows) if isinstance(event, AgentStateChanged)]

    def state_before(self, organisation: int, agent: str, at: float) -> AgentStateChanged | None:
        """The agent's last state change before ``at``."""
        with Session(self.engine) as db:
            row = db.exec(select(QueueEventRow).where(
                QueueEventRow.organisation_id == organisation, QueueEventRow.agent == agent,
                QueueEventRow.type == "agent.state", QueueEventRow.at < at,
            ).order_by(col(QueueEventRow.at).desc()).limit(1)).first()
        found = event_of(row) if row is not None else None
        return found if isinstance(found, AgentStateChanged) else None


class QueueEventWriter:
    """A bus subscriber: queue events are gathered and stored in one transaction
    per batch in a worker thread, so a burst costs one write, not hundreds, and a
    slow store never holds the event loop."""

    def __init__(self, history: QueueHistory) -> None:
        self.history = history
        self.pending: list[dict[str, Any]] = []
        self.tasks = Tasks(log, "storing queue events")

    def on_event(self, event: Event) -> None:
        if not isinstance(event, QueueEvent):
            return
        self.pending.append(row_of(event))
        if not self.tasks:
            self._flush()

    def _flush(self) -> None:
        batch, self.pending = self.pending, []
        self.tasks.thread(self.history.add, batch, then=lambda _: self._more())

    def _more(self) -> None:
        if self.pending:
            self._flush()

    async def drain(self) -> None:
        """Store what is still pending (at shutdown, and in tests)."""
        while self.tasks or self.pending:
            if self.pending and not self.tasks:
                self._flush()
            await self.tasks.drain()
