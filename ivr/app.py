"""The IVR as a switchboard service: a caller reaches an IVR's number, hears
its greetings and is sent on by their keys.

:class:`IvrApp` is the :class:`~pbx.calls.channel.Application` of kind
``ivr`` (the dial plan's ``ServiceDest("ivr", number)``): it finds the
organisation's tree, makes sure its greetings are loaded (in a worker
thread, the first time), answers and hands the caller to an
:class:`IvrCall`, which runs the pure :class:`~ivr.machine.IvrMachine` over
the channel: greetings play (a key cuts them short), silences are the
channel's timers, a destination is ``channel.redirect(target)`` (call
control takes the caller back into the dial plan), ``hangup`` hangs up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

import numpy as np

from ivr.greetings import GreetingLibrary
from ivr.machine import (
    Checked, End, Enter, IvrMachine, OpeningHours, Output, Redirect, Say, Wait,
)
from ivr.tree import Greeting
from pbx.calls.channel import Cancel, Channel, Clock
from pbx.directory import Directory, Tenant
from pbx.tasks import Worker, in_thread

log = logging.getLogger("ivr.app")

class IvrApp:
    """Destination kind ``ivr``: ``ident`` is the IVR's number in the caller's
    organisation."""

    kind = "ivr"

    def __init__(self, directory: Directory, clock: Clock,
                 hours: Callable[[Tenant], OpeningHours], greetings: GreetingLibrary,
                 worker: Worker = in_thread) -> None:
        self.directory = directory
        self.clock = clock
        self.hours = hours  # the organisation's schedules, for time conditions
        self.greetings = greetings
        self.worker = worker

    def start(self, channel: Channel, ident: str) -> None:
        tenant = self.directory.tenants.get(channel.party.organisation)
        tree = tenant.ivrs.get(ident) if tenant is not None else None
        if tenant is None or tree is None:
            log.warning("call %s: no IVR %s in organisation %d", channel.id, ident,
                        channel.party.organisation)
            channel.hang_up(404)
            return
        org = tenant.id

        def begin() -> None:
            if not channel.alive or not channel.answer():
                return
            log.info("call %s: IVR %s (%s)", channel.id, tree.name, ident)
            machine = IvrMachine(tree, self.hours(tenant), tenant.extensions)
            IvrCall(channel, machine, self.clock,
                    partial(self.greetings.audio, org, tree)).begin()

        if self.greetings.ready(org, tree):
            begin()
        else:  # the first call since the tree changed: it rings while they load
            self.worker(partial(self.greetings.load, org, tree), begin)


class IvrCall:
    """One caller in an IVR: the machine's answers carried out over the channel."""

    def __init__(self, channel: Channel, machine: IvrMachine, clock: Clock,
                 audio: Callable[[Greeting], np.ndarray | None]) -> None:
        self.channel = channel
        self.machine = machine
        self.clock = clock
        self.audio = audio
        self.timer: Cancel | None = None

    def begin(self) -> None:
        self.channel.on_key(self._key)
        self._run(self.machine.start(self.clock.now()))

    def _key(self, key: str) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self._run(self.machine.key(key, self.clock.now()))

    def _timed_out(self) -> None:
        self.timer = None
        self._run(self.machine.timeout(self.clock.now()))

    def _arm(self, seconds: float) -> None:
        self.timer = self.channel.after(seconds, self._timed_out)

    def _run(self, outputs: list[Output]) -> None:
        """Say what is said as one play; then wait for a key (a key cuts the play
        short), or leave once it has all been heard."""
        channel = self.channel
        audio: list[np.ndarray] = []
        then: Callable[[], None] | None = None
        leaving = False
        for out in outputs:
            if isinstance(out, Enter):
                log.info("call %s: IVR menu %s", channel.id, out.menu)
            elif isinstance(out, Checked):
                log.info("call %s: schedule %s is %s", channel.id, out.schedule,
                         "open" if out.open else "closed")
            elif isinstance(out, Say):
                audio += [a for a in map(self.audio, out.greetings) if a is not None]
            elif isinstance(out, Wait):
                then = partial(self._arm, out.seconds)
            elif isinstance(out, Redirect):
                log.info("call %s: IVR sends the caller to %s", channel.id, out.target)
                then, leaving = partial(channel.redirect, out.target), True
            elif isinstance(out, End):
                then, leaving = channel.hang_up, True
        if then is None:
            return
        if leaving:
            channel.on_key(None)
        if audio:
            channel.play(*audio, on_done=then, interrupt=not leaving)
        else:
            then()
