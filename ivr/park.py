"""The parking lot (Asterisk ``res_parking``, 3CX's park): a caller handed
here waits on music in a numbered slot of their organisation until someone
retrieves them (their phone rings, and the two are connected when it
answers) or, left too long, comes back to the extension that parked them
(Asterisk's ``comebacktoorigin``).

A service on the application interface: it holds channels and plays them
music on hold; call control hands a party to it (``CallCommands.park``), and
it retrieves them with call control's ``dial`` and ``connect``, so the call
keeps its one record from the first ring to the last word.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pbx.calls.channel import CallControl, Cancel, Channel, Clock, Dialling, Party
from pbx.router import PARK

log = logging.getLogger("ivr.park")

Retrieved = Callable[[str, int], None]
"""How a retrieval went: (the number that answered, 200), or ("", the SIP
status it failed with: 486 busy, 480 no answer, 487 the caller left or went back)."""


class SlotBusy(Exception):
    """The parked call is being retrieved already."""


@dataclass(eq=False)
class ParkedCall:
    """A caller waiting in a slot."""

    organisation: int
    slot: str
    channel: Channel
    parked_by: str  # where they come back to ("": nowhere, they are hung up)
    since: float
    comeback_at: float
    comeback: Cancel | None = None
    retrieving: Dialling | None = None
    retrieved: Retrieved | None = None  # who asked, told how it went

    def report(self, answered_by: str, status: int) -> None:
        """Tell whoever retrieves the call how it went, once."""
        self.retrieving = None
        done, self.retrieved = self.retrieved, None
        if done is not None:
            done(answered_by, status)


class Park:
    """The parking lots of one node (destination kind ``park``, ident: the slot).
    The caller comes back to the extension their call was deflected from
    (``Party.diverted_from``: who parked them) after ``timeout`` seconds."""

    kind = PARK

    def __init__(self, calls: CallControl, clock: Clock, slots: Sequence[str],
                 timeout: float) -> None:
        self.calls = calls
        self.clock = clock
        self.slots = tuple(slots)
        self.timeout = timeout
        self.lots: dict[int, dict[str, ParkedCall]] = {}

    def free_slot(self, organisation: int) -> str | None:
        taken = self.lots.get(organisation, {})
        return next((slot for slot in self.slots if slot not in taken), None)

    def parked(self, organisation: int) -> list[ParkedCall]:
        """The organisation's parked calls, by slot."""
        lot = self.lots.get(organisation, {})
        return [lot[slot] for slot in self.slots if slot in lot]

    def start(self, channel: Channel, ident: str) -> None:
        organisation = channel.party.organisation
        lot = self.lots.setdefault(organisation, {})
        if ident not in self.slots or ident in lot:
            log.warning("call %s: parking slot %s is no free slot", channel.id, ident)
            channel.hang_up(486)
            return
        if not channel.answer():
            return
        now = self.clock.now()
        parked = ParkedCall(organisation, ident, channel, channel.party.diverted_from, now,
                            now + self.timeout)
        lot[ident] = parked
        channel.music_on_hold()
        channel.on_hangup(lambda: self._left(parked))
        parked.comeback = channel.after(self.timeout, lambda: self._come_back(parked))
        log.info("call %s parked in slot %s by %s", channel.id, ident, parked.parked_by or "?")

    def _unpark(self, parked: ParkedCall) -> None:
        lot = self.lots.get(parked.organisation, {})
        if lot.get(parked.slot) is parked:
            del lot[parked.slot]
        if parked.comeback is not None:
            parked.comeback.cancel()
            parked.comeback = None

    def _stop_retrieving(self, parked: ParkedCall) -> None:
        if parked.retrieving is not None:
            parked.retrieving.cancel()
        parked.report("", 487)

    def _left(self, parked: ParkedCall) -> None:
        """The caller hung up (or was hung up on) while parked."""
        self._unpark(parked)
        self._stop_retrieving(parked)
        log.info("call %s left parking slot %s", parked.channel.id, parked.slot)

    def _come_back(self, parked: ParkedCall) -> None:
        """Left too long: back to whoever parked the call, through the dial plan
        (their forwards and mailbox apply); with nobody to go back to, hung up."""
        parked.comeback = None
        self._unpark(parked)
        self._stop_retrieving(parked)
        channel = parked.channel
        log.info("call %s: parked %.0f s in slot %s, back to %s", channel.id, self.timeout,
                 parked.slot, parked.parked_by or "nobody")
        if parked.parked_by:
            channel.redirect(parked.parked_by)
        else:
            channel.hang_up()

    def retrieve(self, organisation: int, slot: str, number: str, done: Retrieved) -> str:
        """Ring ``number`` for the call in ``slot`` and connect the two when it
        answers; meanwhile the caller stays parked (and stays so if nobody
        answers).  Returns the id of the ringing call.  KeyError: nothing is
        parked there; :class:`SlotBusy`: it is being retrieved already."""
        parked = self.lots.get(organisation, {}).get(slot)
        if parked is None:
            raise KeyError(slot)
        if parked.retrieved is not None:
            raise SlotBusy(slot)
        parked.retrieved = done
        party = parked.channel.party

        def answered(channel: Channel) -> None:
            self._unpark(parked)
            log.info("call %s: %s retrieves it from slot %s", parked.channel.id,
                     channel.party.number, slot)
            self.calls.connect(parked.channel, channel)
            parked.report(channel.party.number, 200)

        dialling = self.calls.dial(organisation, number,
                                   caller=Party(organisation, party.number, party.name),
                                   on_answer=answered,
                                   on_fail=lambda status: parked.report("", status))
        if parked.retrieved is not None:  # still ringing (a refusal reports at once)
            parked.retrieving = dialling
        return dialling.id
