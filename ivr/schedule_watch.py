"""The switchboard watcher: tells the event bus when a switchboard opens or closes.

Every organisation's schedules live in the directory.  The watcher sleeps
until the earliest instant any of them may change (:meth:`Schedule.next_edge`:
17:00 on a weekday, a holiday's midnight, an override starting or ending),
or until the directory is reloaded (an admin changed hours or switched by
hand).  Then it looks again at the schedules that were due or changed and
publishes :class:`~pbx.events.SwitchboardChanged` for each whose state
differs from the one it last saw: it opened or closed, or an override began
or ended, or an edit changed what decides it.  The bus feeds the WebSocket
and MQTT.  It never polls the store.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from ivr.schedule import Schedule
from pbx.directory import Directory
from pbx.events import SwitchboardChanged

log = logging.getLogger("ivr.schedule_watch")

MAX_SLEEP = 300.0  # a wall-clock step (NTP, a suspended host) is noticed within this
LATE = 0.005  # wake just after an edge, not a hair before it


@dataclass(frozen=True, slots=True)
class _Seen:
    """What the watcher last saw of one schedule."""

    schedule: Schedule
    open: bool
    reason: str
    edge: float | None  # when to look at it again


class SwitchboardWatch:
    """Publishes switchboard changes of every organisation's schedules."""

    def __init__(self, directory: Directory, publish: Callable[[SwitchboardChanged], None],
                 now: Callable[[], float] = time.time) -> None:
        self.directory = directory
        self.publish = publish
        # whose switchboards: all, unless one of several workers (its organisations')
        self.watches: Callable[[int], bool] = lambda organisation: True
        self.now = now
        self._seen: dict[tuple[int, str], _Seen] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Run on the running loop and follow every reload of the directory."""
        self._loop = asyncio.get_running_loop()
        self.directory.on_reload(self.changed)
        self._task = self._loop.create_task(self.run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def changed(self) -> None:
        """Schedules changed: look again now.  Callable from any thread (the admin
        API reloads the directory in its worker threads)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self) -> None:
        while True:
            self._wake.clear()
            now = self.now()
            try:
                events, edge = await asyncio.to_thread(self.check, now)  # many organisations
            except Exception:
                log.exception("switchboard watch failed; next try in %d s", MAX_SLEEP)
                events, edge = [], None
            for event in events:
                log.info("switchboard %s of organisation %d: %s (%s)", event.schedule,
                         event.organisation, "open" if event.open else "closed", event.reason)
                self.publish(event)
            delay = MAX_SLEEP if edge is None else min(MAX_SLEEP, max(0.0, edge - now) + LATE)
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except TimeoutError:
                pass

    def check(self, now: float) -> tuple[list[SwitchboardChanged], float | None]:
        """The changes since the last check and when to check again.  A schedule
        seen for the first time is only noted; one unchanged and not yet due is
        not evaluated again."""
        events: list[SwitchboardChanged] = []
        seen: dict[tuple[int, str], _Seen] = {}
        for tenant in self.directory.tenants.values():
            if not self.watches(tenant.id):
                continue
            for name, schedule in tenant.schedules.items():
                key = (tenant.id, name)
                last = self._seen.get(key)
                if last is not None and last.schedule == schedule \
                        and (last.edge is None or last.edge > now):
                    seen[key] = last
                    continue
                state = schedule.state(now)
                seen[key] = _Seen(schedule, state.open, state.reason, schedule.next_edge(now))
                if last is not None and (last.open, last.reason) != (state.open, state.reason):
                    events.append(SwitchboardChanged(tenant.id, name, state.open, state.reason,
                                                     state.next_change, now))
        self._seen = seen
        return events, min((s.edge for s in seen.values() if s.edge is not None), default=None)
