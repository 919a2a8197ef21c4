"""Live queue statistics, folded from the queue events of the bus (pbx/events.py)
and nothing else: the engine publishes, this counts.  Pure: every figure is
computed for a ``now`` given by the caller, so a scripted scenario gives exact,
hand-checkable numbers.

Counters are "today" (local calendar day of the PBX): the first event or
snapshot of a new day starts them from zero; waiting callers and agent states
carry over.

Service level (the Asterisk ``queue show`` convention, with abandons counted):
``answered within the threshold / (answered + abandoned)``.  A caller who hangs
up within the threshold counts in the denominator like any other abandon (a
miss); ``service_level_excluding_short_abandons`` leaves those out of the
denominator instead: ``answered within / (answered + abandoned after the
threshold)``.  Overflowed calls and callbacks count in neither.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from pbx.events import (
    AgentStateChanged, Event, QueueAbandoned, QueueAnswered, QueueCallback, QueueCompleted,
    QueueEvent, QueueJoined, QueueOverflowed, SurveyAnswered,
)
from queues.erlang import staffing

AGENT_STATES = ("logged_out", "available", "ringing", "on_queue_call", "on_direct_call",
                "wrap_up", "paused")
ON_DUTY = frozenset(AGENT_STATES) - {"logged_out", "paused"}
ARRIVAL_WINDOW = 3600.0  # the live arrival rate: callers joined in the last hour


def day_of(at: float) -> int:
    """The local calendar day of ``at`` (an ordinal), which "today" resets on."""
    return datetime.fromtimestamp(at).toordinal()


@dataclass(slots=True)
class Settings:
    """What the statistics of one queue are measured against."""

    threshold: float = 20.0  # seconds: the service-level threshold
    target: float = 0.8  # the service level aimed at, for the staffing advice
    public: bool = True  # the wait-time widget may show it


@dataclass(slots=True)
class Survey:
    count: int = 0
    total: int = 0

    def add(self, score: int) -> None:
        self.count += 1
        self.total += score

    def shown(self) -> dict[str, Any]:
        return {"answers": self.count,
                "average": round(self.total / self.count, 2) if self.count else None}


@dataclass(slots=True)
class QueueDay:
    """One queue's counters for one day (or one period of history)."""

    joined: int = 0
    answered: int = 0
    answered_within: int = 0
    abandoned: int = 0
    abandoned_within: int = 0
    overflowed: int = 0
    callbacks: int = 0
    completed: int = 0
    wait_total: float = 0.0  # of the answered
    talk_total: float = 0.0  # of the completed
    survey: Survey = field(default_factory=Survey)

    def count(self, event: QueueEvent, threshold: float) -> None:
        """Count what ``event`` adds to the day (live and history alike)."""
        match event:
            case QueueJoined():
                self.joined += 1
            case QueueAnswered():
                self.answered += 1
                self.answered_within += event.wait <= threshold
                self.wait_total += event.wait
            case QueueCompleted():
                self.completed += 1
                self.talk_total += event.talk
            case QueueAbandoned():
                self.abandoned += 1
                self.abandoned_within += event.wait <= threshold
            case QueueOverflowed():
                self.overflowed += 1
            case QueueCallback() if event.state == "requested":
                self.callbacks += 1
            case SurveyAnswered():
                self.survey.add(event.score)

    def figures(self, threshold: float) -> dict[str, Any]:
        """The counts and what follows from them (averages, service levels)."""
        return {
            "joined": self.joined,
            "answered": self.answered,
            "abandoned": self.abandoned,
            "overflowed": self.overflowed,
            "callbacks": self.callbacks,
            "average_wait": mean(self.wait_total, self.answered),
            "average_talk": mean(self.talk_total, self.completed),
            "threshold": threshold,
            "answered_within": self.answered_within,
            "abandoned_within": self.abandoned_within,
            "service_level": share(self.answered_within, self.answered + self.abandoned),
            "service_level_excluding_short_abandons": share(
                self.answered_within, self.answered + self.abandoned - self.abandoned_within),
            "survey": self.survey.shown(),
        }


@dataclass(slots=True)
class QueueLive:
    day: int
    settings: Settings = field(default_factory=Settings)
    counts: QueueDay = field(default_factory=QueueDay)
    waiting: dict[str, float] = field(default_factory=dict)  # call id → joined at
    callbacks_pending: dict[str, float] = field(default_factory=dict)
    arrivals: deque[float] = field(default_factory=deque)


@dataclass(slots=True)
class AgentLive:
    day: int
    state: str = "logged_out"
    reason: str = ""
    since: float = 0.0
    queues: tuple[str, ...] = ()
    calls: int = 0
    talk: float = 0.0
    paused: float = 0.0  # closed pauses of today, seconds
    pause_from: float = 0.0  # where the running pause starts counting (at most midnight)
    survey: Survey = field(default_factory=Survey)


def share(part: int, whole: int) -> float | None:
    """``part / whole`` as a percentage with one decimal, or None for 0/0."""
    return round(100.0 * part / whole, 1) if whole else None


def mean(total: float, count: int) -> float | None:
    return round(total / count, 1) if count else None


class LiveStatistics:
    """Every queue's and agent's live figures in one process, keyed by
    (organisation, queue) and (organisation, agent)."""

    def __init__(self, defaults: Settings | None = None) -> None:
        self.defaults = defaults or Settings()
        self.queues: dict[tuple[int, str], QueueLive] = {}
        self.agents: dict[tuple[int, str], AgentLive] = {}
        self._members: dict[tuple[int, str], set[str]] = {}  # (org, queue) → its agents

    # ------------------------------------------------------------ folding events

    def configure(self, organisation: int, queue: str, settings: Settings, now: float) -> None:
        """The engine announces a queue (so it is known before its first caller)
        with its threshold and service-level target."""
        self._queue(organisation, queue, now).settings = settings

    def apply(self, event: Event) -> tuple[set[str], set[str]]:
        """Fold ``event`` in; returns the queues and the agents whose figures changed
        (nothing for events that are not queue events)."""
        if not isinstance(event, QueueEvent):
            return set(), set()
        if isinstance(event, AgentStateChanged):
            known = self.agents.get((event.organisation, event.agent))
            left = known.queues if known is not None else ()
            self._agent_state(event)
            return {*event.queues, *left}, {event.agent}
        q = self._queue(event.organisation, event.queue, event.at)
        q.counts.count(event, q.settings.threshold)
        agents: set[str] = set()
        match event:
            case QueueJoined():
                q.waiting[event.call_id] = event.at
                q.arrivals.append(event.at)
                while q.arrivals and q.arrivals[0] <= event.at - ARRIVAL_WINDOW:
                    q.arrivals.popleft()
            case QueueAnswered():
                q.waiting.pop(event.call_id, None)
                q.callbacks_pending.pop(event.call_id, None)
            case QueueAbandoned() | QueueOverflowed():
                q.waiting.pop(event.call_id, None)
            case QueueCallback() if event.state == "requested":
                q.callbacks_pending[event.call_id] = q.waiting.pop(event.call_id, event.at)
            case QueueCallback() if event.state in ("connected", "failed"):
                q.callbacks_pending.pop(event.call_id, None)
            case QueueCompleted():
                agent = self._agent(event.organisation, event.agent, event.at)
                agent.calls += 1
                agent.talk += event.talk
                agents.add(event.agent)
            case SurveyAnswered():
                self._agent(event.organisation, event.agent, event.at).survey.add(event.score)
                agents.add(event.agent)
        return {event.queue}, agents

    def _queue(self, organisation: int, queue: str, at: float) -> QueueLive:
        key = (organisation, queue)
        q = self.queues.get(key)
        if q is None:
            q = self.queues[key] = QueueLive(day=day_of(at), settings=replace(self.defaults))
        elif day_of(at) > q.day:
            q.day, q.counts = day_of(at), QueueDay()
        return q

    def _agent(self, organisation: int, name: str, at: float) -> AgentLive:
        key = (organisation, name)
        agent = self.agents.get(key)
        if agent is None:
            agent = self.agents[key] = AgentLive(day=day_of(at), since=at)
        elif day_of(at) > agent.day:
            midnight = datetime.fromordinal(day_of(at)).timestamp()
            agent.day, agent.calls, agent.talk, agent.paused = day_of(at), 0, 0.0, 0.0
            agent.survey = Survey()
            agent.pause_from = max(agent.pause_from, midnight)  # today's part of a long pause
        return agent

    def _agent_state(self, event: AgentStateChanged) -> None:
        agent = self._agent(event.organisation, event.agent, event.at)
        if agent.state == "paused":
            agent.paused += event.at - agent.pause_from
        agent.state, agent.reason, agent.since = event.state, event.reason, event.at
        agent.pause_from = event.at
        if event.queues and event.queues != agent.queues:
            org = event.organisation
            for queue in agent.queues:
                self._members.get((org, queue), set()).discard(event.agent)
            for queue in event.queues:
                self._members.setdefault((org, queue), set()).add(event.agent)
            agent.queues = event.queues
        for queue in event.queues:
            self._queue(event.organisation, queue, event.at)

    # ------------------------------------------------------------ what is shown

    def known(self, organisation: int, queue: str) -> bool:
        return (organisation, queue) in self.queues

    def queue_names(self, organisation: int) -> list[str]:
        return sorted(name for org, name in self.queues if org == organisation)

    def members(self, organisation: int, queue: str) -> list[tuple[str, AgentLive]]:
        """The agents whose last state named ``queue``, by name."""
        return [(name, self.agents[(organisation, name)])
                for name in sorted(self._members.get((organisation, queue), ()))]

    def estimated_wait(self, organisation: int, queue: str, now: float) -> float | None:
        """What a caller joining now would wait, in seconds: nothing when an agent
        is free and nobody waits; otherwise one average talk time per round of
        the agents on duty ahead of them (``ceil((waiting + 1) / on duty) × average
        talk``); None when nobody is on duty or no talk time is known yet."""
        q = self._queue(organisation, queue, now)
        members = [agent for _, agent in self.members(organisation, queue)]
        on_duty = sum(agent.state in ON_DUTY for agent in members)
        free = sum(agent.state == "available" for agent in members)
        ahead = len(q.waiting) + len(q.callbacks_pending)
        if free > ahead:
            return 0.0
        talk = mean(q.counts.talk_total, q.counts.completed)
        if not on_duty or talk is None:
            return None
        return math.ceil((ahead + 1) / on_duty) * talk

    def queue_snapshot(self, organisation: int, queue: str, now: float) -> dict[str, Any]:
        """Everything the wallboard shows about one queue at ``now``."""
        q = self._queue(organisation, queue, now)
        c = q.counts
        members = self.members(organisation, queue)
        by_state = dict.fromkeys(AGENT_STATES, 0)
        for _, agent in members:
            by_state[agent.state] += 1
        logged_in = len(members) - by_state["logged_out"]
        recent = sum(at > now - ARRIVAL_WINDOW for at in q.arrivals)
        advice = advise(recent, ARRIVAL_WINDOW, mean(c.talk_total, c.completed), q.settings)
        return {
            "queue": queue,
            "waiting": len(q.waiting),
            "longest_wait": round(now - min(q.waiting.values()), 1) if q.waiting else 0.0,
            "callbacks_pending": len(q.callbacks_pending),
            "agents": by_state,
            "logged_in": logged_in,
            **c.figures(q.settings.threshold),
            "estimated_wait": self.estimated_wait(organisation, queue, now),
            "open": is_open(by_state),
            "staffing": advice,
            "at": now,
        }

    def agent_snapshot(self, organisation: int, name: str, now: float) -> dict[str, Any]:
        """One agent's day: calls, talk and pause time, state and time in it."""
        agent = self._agent(organisation, name, now)
        pausing = now - agent.pause_from if agent.state == "paused" else 0.0
        return {
            "agent": name,
            "state": agent.state,
            "reason": agent.reason,
            "in_state": round(now - agent.since, 1),
            "queues": list(agent.queues),
            "calls": agent.calls,
            "talk_time": round(agent.talk, 1),
            "pause_time": round(agent.paused + pausing, 1),
            "survey": agent.survey.shown(),
            "at": now,
        }

    def agent_names(self, organisation: int) -> list[str]:
        return sorted(name for org, name in self.agents if org == organisation)


def advise(arrivals: int, period: float, handling_time: float | None,
           settings: Settings) -> dict[str, Any] | None:
    """Erlang C staffing advice for ``arrivals`` callers in ``period`` seconds each
    handled in ``handling_time``: the agents needed for the queue's target."""
    if not arrivals or not handling_time:
        return None
    erlangs = arrivals / period * handling_time
    try:
        advice = staffing(erlangs, handling_time, settings.threshold, settings.target)
    except ValueError:  # beyond any advice
        return None
    return {"erlangs": round(erlangs, 2), "agents_needed": advice.agents,
            "service_level": round(advice.service_level * 100, 1)}


def is_open(by_state: dict[str, int]) -> bool:
    """A queue is open while at least one agent is on duty (logged in, not paused)."""
    return any(by_state[state] for state in ON_DUTY)
