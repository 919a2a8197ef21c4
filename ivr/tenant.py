"""What an IVR sees of its organisation (a :class:`~pbx.directory.Tenant`):
the dial plan its targets must exist in (for :mod:`ivr.check`), and the
opening hours its time conditions ask (for :mod:`ivr.machine`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ivr.check import Targets
from ivr.schedule import Schedule
from pbx.directory import Tenant


@dataclass(frozen=True)
class ScheduleHours:
    """:class:`~ivr.machine.OpeningHours` over an organisation's schedules by
    name.  A schedule that is not there counts as closed, as the dial plan's
    time conditions take it: nobody is there to answer."""

    schedules: Mapping[str, Schedule]

    def state(self, schedule: str, at: float) -> bool:
        found = self.schedules.get(schedule)
        return found is not None and found.state(at).open


def targets(tenant: Tenant) -> Targets:
    """The extensions (and so mailboxes), ring groups, rooms, schedules,
    queues and shared mailboxes an IVR may lead to."""
    return Targets(extensions=frozenset(tenant.extensions),
                   ring_groups=frozenset(tenant.ring_groups), rooms=frozenset(tenant.rooms),
                   schedules=frozenset(tenant.schedules),
                   mailboxes=frozenset(tenant.mailboxes), queues=frozenset(tenant.queues))


def hours(tenant: Tenant) -> ScheduleHours:
    """The organisation's opening hours, for time conditions."""
    return ScheduleHours(tenant.schedules)
