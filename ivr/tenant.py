"""What an IVR sees of its organisation (a :class:`~pbx.directory.Tenant`):
the dial plan its targets must exist in (for :mod:`ivr.check`), and the
opening hours its time conditions ask (for :mod:`ivr.machine`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ivr.check import Targets
from ivr.machine import OpeningHours
from pbx.directory import Tenant


class _State(Protocol):
    open: bool


class Schedule(Protocol):
    """A switchboard schedule (``ivr.schedule.Schedule``) as a time condition uses it."""

    def state(self, at: float) -> _State: ...


@dataclass(frozen=True)
class ScheduleHours:
    """:class:`~ivr.machine.OpeningHours` over an organisation's schedules by
    name.  A schedule that is not there counts as closed, as the dial plan's
    time conditions take it: nobody is there to answer."""

    schedules: Mapping[str, Schedule] = field(default_factory=dict)

    def state(self, schedule: str, at: float) -> bool:
        found = self.schedules.get(schedule)
        return found is not None and found.state(at).open


def targets(tenant: Tenant) -> Targets:
    """The extensions (and so mailboxes), ring groups and rooms an IVR may send to."""
    return Targets(extensions=frozenset(tenant.extensions),
                   ring_groups=frozenset(tenant.ring_groups), rooms=frozenset(tenant.rooms))


def hours(tenant: Tenant) -> OpeningHours:
    """The organisation's opening hours.  Schedules are not in the directory on
    this branch yet (they come with ``ivr/schedule.py``): until then an
    organisation has none, and every time condition takes its closed branch."""
    return ScheduleHours()
