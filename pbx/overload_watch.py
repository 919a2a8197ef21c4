"""The overload probe: the I/O half of :mod:`pbx.overload`.

Every ``interval`` it measures how late the event loop woke it (lag), asks the
node for its other signals, feeds the governor and reports a change of state.
Under uvloop a UDP flood does not show as lag (the loop serves its timers
between datagrams, the datagrams wait in the kernel), which is why the node's
signals include the bytes waiting in its SIP UDP socket
(:meth:`pbx.transport.udp.UdpTransport.backlog_bytes`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable

from pbx.overload import LoadGovernor, LoadSample, OverloadChange

log = logging.getLogger("pbx.overload")

PROBE_INTERVAL = 0.1  # seconds


class OverloadWatch:
    """Runs the probe as a task; ``read(lag_ms, seconds)`` gives the node's sample
    (``seconds`` since the last one), to which the probe adds the node's CPU share."""

    def __init__(self, governor: LoadGovernor, read: Callable[[float, float], LoadSample],
                 on_change: Callable[[OverloadChange], None],
                 interval: float = PROBE_INTERVAL) -> None:
        self.governor = governor
        self.read = read
        self.on_change = on_change
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last, cpu_last = loop.time(), time.process_time()
        while True:
            due = last + self.interval
            await asyncio.sleep(self.interval)
            now, cpu_now = loop.time(), time.process_time()
            try:
                sample = dataclasses.replace(self.read(max(0.0, now - due) * 1000, now - last),
                                             cpu=(cpu_now - cpu_last) / max(now - last, 1e-3))
                last, cpu_last = now, cpu_now
                change = self.governor.observe(sample, now)
                if change is not None:
                    self._report(change)
            except Exception:
                log.exception("overload probe failed")

    def _report(self, change: OverloadChange) -> None:
        sample = change.sample
        if change.overloaded:
            log.warning("overload: shedding new INVITE/REGISTER/SUBSCRIBE with 503 (%s; loop "
                        "lag %.0f ms, UDP wait %.0f ms, %d open transactions, media tick "
                        "%.1f ms)", change.reason, sample.loop_lag_ms, sample.udp_wait_ms,
                        sample.transactions, sample.media_tick_ms)
        else:
            log.warning("overload over: %d requests were refused with 503", change.shed)
        self.on_change(change)
