"""Erlang C (M/M/N queue, callers wait, nobody hangs up): the staffing advice
shown beside the agents logged in.

Offered traffic ``A = arrivals per second × average handling time`` (Erlangs).
With ``N`` agents the probability that a caller waits is Erlang's C formula,
computed here through the Erlang B recursion (``B(0) = 1``,
``B(n) = A·B(n-1) / (n + A·B(n-1))``, ``C = N·B / (N - A·(1 - B))``) so that
hundreds of agents neither overflow ``A**N`` nor ``N!``.  The service level for a
threshold ``t`` is ``1 - C·exp(-(N - A)·t / AHT)``; the average speed of answer is
``C·AHT / (N - A)``.  With ``N <= A`` the queue grows without bound: every caller
waits (``C = 1``), the service level is 0 and the ASA infinite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_AGENTS = 10_000  # staffing advice beyond this is not advice


def traffic(calls: float, period: float, handling_time: float) -> float:
    """Offered traffic in Erlangs: ``calls`` in ``period`` seconds, each taking
    ``handling_time`` seconds of an agent."""
    if period <= 0:
        raise ValueError("the period must be positive")
    return calls / period * handling_time


def probability_of_waiting(agents: int, erlangs: float) -> float:
    """Erlang C: the share of callers who find every agent busy."""
    if agents <= erlangs:
        return 1.0
    blocking = 1.0
    for n in range(1, agents + 1):
        blocking = erlangs * blocking / (n + erlangs * blocking)
    return agents * blocking / (agents - erlangs * (1.0 - blocking))


def service_level(agents: int, erlangs: float, handling_time: float, threshold: float) -> float:
    """The share of callers answered within ``threshold`` seconds."""
    if agents <= erlangs:
        return 0.0
    waiting = probability_of_waiting(agents, erlangs)
    return 1.0 - waiting * math.exp(-(agents - erlangs) * threshold / handling_time)


def average_speed_of_answer(agents: int, erlangs: float, handling_time: float) -> float:
    """The mean wait of all callers (those answered at once count 0 s)."""
    if agents <= erlangs:
        return math.inf
    return probability_of_waiting(agents, erlangs) * handling_time / (agents - erlangs)


@dataclass(frozen=True, slots=True)
class Staffing:
    """The advice: ``agents`` reach the target; what they would achieve."""

    erlangs: float
    agents: int
    probability_of_waiting: float
    service_level: float
    average_speed_of_answer: float
    occupancy: float


def staffing(erlangs: float, handling_time: float, threshold: float, target: float) -> Staffing:
    """The fewest agents whose service level within ``threshold`` seconds reaches
    ``target`` (0–1) for ``erlangs`` of traffic."""
    if not 0 < target < 1:
        raise ValueError("the service-level target must lie between 0 and 1")
    if erlangs < 0 or handling_time <= 0 or threshold < 0:
        raise ValueError("traffic, handling time and threshold must not be negative")
    agents = max(1, math.floor(erlangs) + 1)
    while service_level(agents, erlangs, handling_time, threshold) < target:
        agents += 1
        if agents > MAX_AGENTS:
            raise ValueError(f"more than {MAX_AGENTS} agents would be needed")
    return Staffing(
        erlangs=erlangs, agents=agents,
        probability_of_waiting=probability_of_waiting(agents, erlangs),
        service_level=service_level(agents, erlangs, handling_time, threshold),
        average_speed_of_answer=average_speed_of_answer(agents, erlangs, handling_time),
        occupancy=erlangs / agents,
    )
