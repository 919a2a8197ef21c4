"""Call records: one :class:`~pbx.models.Cdr` row per call, written from its
``call.ended`` event by a subscriber of the event bus, off the event loop.
Call control only publishes; a store that is slow or down never holds a call up.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from pbx.events import CallEnded, Event
from pbx.models import Cdr
from pbx.tasks import Tasks

log = logging.getLogger("pbx.calls")


def cdr_of(event: CallEnded) -> Cdr:
    """The record of a finished call."""
    return Cdr(
        call_id=event.call_id,
        organisation_id=event.organisation,
        caller=event.caller,
        callee=event.dialled,
        answered_by=event.answered_by,
        path=json.dumps(list(event.path)),
        started_at=event.started_at,
        answered_at=event.answered_at,
        ended_at=event.at,
        disposition=event.disposition,
        status=event.status,
        duration=event.duration,
        billsec=event.at - event.answered_at if event.answered_at else 0.0,
        hangup_by=event.hangup_by,
        quality=json.dumps(event.quality, default=float),
        trunk=event.trunk,
    )


class CdrWriter:
    """Subscribes to the bus; stores each finished call's record in a worker thread."""

    def __init__(self, add_cdr: Callable[[Cdr], None]) -> None:
        self.add_cdr = add_cdr
        self.tasks = Tasks(log, "storing a call record")

    def on_event(self, event: Event) -> None:
        if isinstance(event, CallEnded) and event.recorded:
            self.tasks.thread(self.add_cdr, cdr_of(event))
