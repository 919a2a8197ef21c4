"""The switchboard watcher over a real directory and store: what it publishes, and when."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from ivr.schedule import Definition, Schedule
from ivr.schedule_watch import SwitchboardWatch
from pbx.config import Config, General, ScheduleConfig
from pbx.directory import Directory
from pbx.events import SwitchboardChanged
from pbx.models import SwitchboardSchedule
from pbx.store import Store

TZ = ZoneInfo("Europe/Stockholm")
OFFICE = Definition(**{day: ["08:00-17:00"] for day in ("mon", "tue", "wed", "thu", "fri")})


def at(days: int, hour: int, minute: int = 0, second: float = 0.0) -> float:
    """A local time ``days`` after Monday 30 November 2026."""
    day = datetime(2026, 11, 30, hour, minute, tzinfo=TZ) + timedelta(days=days)
    return day.timestamp() + second


def directory() -> Directory:
    store = Store("sqlite://")
    store.seed(Config(general=General(), schedules=(ScheduleConfig("office-hours", OFFICE),)))
    return Directory(store, "pbx.test")


def switch(found: Directory, action: str, now: float) -> None:
    """What the admin API does: store the override, reload the directory."""
    with Session(found.store.engine) as db:
        row = db.exec(select(SwitchboardSchedule)).one()
        schedule = Schedule.load(row.definition, row.overrides)
        row.overrides = schedule.switched(action, now).overrides_json()  # type: ignore[arg-type]
        db.add(row)
        db.commit()
    found.reload()


def test_it_notes_first_then_publishes_flips_and_overrides() -> None:
    found = directory()
    org = found.default.id
    watch = SwitchboardWatch(found, lambda event: None)
    assert watch.check(at(0, 16, 59)) == ([], at(0, 17))  # first look: noted, not published
    assert watch.check(at(0, 16, 59, 30)) == ([], at(0, 17))
    events, edge = watch.check(at(0, 17))
    assert events == [SwitchboardChanged(org, "office-hours", False, "schedule", at(1, 8),
                                         at(0, 17))]
    assert edge == at(1, 8)
    assert watch.check(at(0, 18)) == ([], at(1, 8))
    switch(found, "close", at(1, 7))  # closed by hand before it would open
    events, edge = watch.check(at(1, 7))
    assert events == [SwitchboardChanged(org, "office-hours", False, "override", None, at(1, 7))]
    assert edge is None  # closed until someone opens it: nothing to wake up for
    switch(found, "schedule", at(1, 9))
    events, edge = watch.check(at(1, 9))
    assert events == [SwitchboardChanged(org, "office-hours", True, "schedule", at(1, 17),
                                         at(1, 9))]
    assert edge == at(1, 17)


async def test_the_running_watch_wakes_at_the_edge_and_on_a_reload() -> None:
    """A clock 0.3 s before Monday 17:00: the closing is published when it comes,
    and an override right after it as soon as the directory is reloaded."""
    found = directory()
    offset = at(0, 16, 59, 59.7) - time.time()
    published: list[SwitchboardChanged] = []
    arrived = asyncio.Event()

    def publish(event: SwitchboardChanged) -> None:
        published.append(event)
        arrived.set()

    SwitchboardWatch(found, publish, now=lambda: time.time() + offset).start()
    await asyncio.wait_for(arrived.wait(), 3)
    assert [(e.open, e.reason) for e in published] == [(False, "schedule")]
    assert at(0, 17) <= published[0].at < at(0, 17, second=0.5)
    arrived.clear()
    await asyncio.to_thread(switch, found, "open", time.time() + offset)  # as the API does
    await asyncio.wait_for(arrived.wait(), 3)
    assert [(e.open, e.reason) for e in published] == [(False, "schedule"), (True, "override")]
    assert published[1].next_change is None
