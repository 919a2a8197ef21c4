"""Operations on live calls that the admin API asks for (in the spirit of
Asterisk AMI's Hangup, BlindTransfer, Park and Originate, and ARI's
``/channels``): hang a call up, blind-transfer it, park it, hand one of its
parties to a service, and place a call for a user (click-to-call).

They run on the event loop the calls live on and act through the B2BUA's
parts.  What needs no ring is decided at once: a refusal raises
:class:`CommandError` with the HTTP status and the reason.  What rings (a
transfer target, the user's own phone) ends later: its :class:`Outcome`
goes to the ``done`` callback, exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from media.tones import render, tone
from pbx.directory import Tenant
from pbx.events import CallStarted
from pbx.profiles import caller_id
from pbx.router import PARK, PickupDest, RingStep, Unknown
from pbx.sip.message import REASONS, Response, new_call_id

from pbx.calls.b2bua import B2BUA, DIALOG_LINGER, DISPOSITIONS, parse_callerid
from pbx.calls.model import Call, Leg, LegState, Ring, Transfer

log = logging.getLogger("pbx.calls")

HANGUP_BY = "api"  # the CDR's hangup_by of a call the API hung up
RINGBACK_SECONDS = 60.0  # what a click-to-call user hears while the number rings


class CommandError(Exception):
    """A command refused at once: ``status`` is the HTTP status it maps to."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a ring a command started ended: answered by ``answered_by``, or not
    (``status``: the SIP status it ended with, ``reason``: in words)."""

    call_id: str
    answered_by: str = ""
    status: int = 200
    reason: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.answered_by)


Done = Callable[[Outcome], None]


class ParkingLot(Protocol):
    """The parking lot's slots (the ``park`` service, :mod:`ivr.park`)."""

    def free_slot(self, organisation: int) -> str | None:
        """The first free slot of ``organisation``'s lot; None: it is full."""


class _Report:
    """Hands an outcome to ``done`` once, whichever comes first: the ring's end
    or the call's."""

    def __init__(self, done: Done) -> None:
        self.done: Done | None = done

    def __call__(self, outcome: Outcome) -> None:
        done, self.done = self.done, None
        if done is not None:
            done(outcome)


def refused(number: str, status: int, reason: str | None = None) -> str:
    """Why ``number`` did not take a call, in words: ``1003 did not answer (480
    Temporarily Unavailable)``."""
    phrase = reason or REASONS.get(status, "")
    return f"{number} did not take the call ({status} {phrase})".rstrip()


class _TransferRing:
    """The ring of a blind transfer's target asked for by the API: the caller
    of the command hears how it went (a REFER's referrer would get NOTIFYs)."""

    def __init__(self, commands: CallCommands, call: Call, number: str,
                 report: _Report) -> None:
        self.commands = commands
        self.call = call
        self.number = number
        self.report = report

    def early(self, ring: Ring, leg: Leg, response: Response) -> None:
        pass  # both parties go on talking while the target rings

    def answered(self, ring: Ring, leg: Leg) -> None:
        self.commands.transferred(self.call, leg)
        self.report(Outcome(self.call.id, leg.number))

    def failed(self, ring: Ring, status: int, reason: str | None) -> None:
        self.report(Outcome(self.call.id, status=status,
                            reason=refused(self.number, status, reason)))
        self.commands.not_transferred(self.call, status)


class _UserRing:
    """The ring of a user's own phones for a call they place through the API:
    when one answers, the number is dialled as if that phone had dialled it."""

    def __init__(self, commands: CallCommands, call: Call, user: tuple[str, str, str],
                 number: str, report: _Report) -> None:
        self.commands = commands
        self.call = call
        self.user = user  # extension, name and number shown to the one called
        self.number = number
        self.report = report

    def early(self, ring: Ring, leg: Leg, response: Response) -> None:
        pass

    def answered(self, ring: Ring, leg: Leg) -> None:
        self.report(Outcome(self.call.id, leg.number))
        self.commands.user_answered(self.call, leg, self.user, self.number)

    def failed(self, ring: Ring, status: int, reason: str | None) -> None:
        call = self.call
        extension, name, _ = self.user
        call.caller_name, call.caller_number = name, extension  # the record: who placed it
        self.commands.b2bua.end_call(call, DISPOSITIONS.get(status, "failed"), status, "pbx")
        self.report(Outcome(call.id, status=status, reason=refused(extension, status, reason)))


class CallCommands:
    """What the admin API may do to the live calls of one node."""

    def __init__(self, b2bua: B2BUA, lot: ParkingLot | None = None) -> None:
        self.b2bua = b2bua
        self.lot = lot
        self._ringback: dict[str, np.ndarray] = {}  # by tone country, rendered once

    def find(self, organisation: int, call_id: str) -> Call:
        """The live call ``call_id`` of ``organisation``, or 404."""
        call = self.b2bua.calls.get(call_id)
        if call is None or call.ended or call.tenant.id != organisation:
            raise CommandError(404, f"no live call {call_id}")
        return call

    # ------------------------------------------------------------ hang up

    def hang_up(self, organisation: int, call_id: str) -> Call:
        """End the call: BYE to the answered phones, CANCEL to ringing ones, a
        final 480 to a caller still waiting; the record says ``hangup_by=api``."""
        call = self.find(organisation, call_id)
        call.path.append("hangup:api")
        log.info("call %s hung up through the API", call.id)
        if call.answered_at is not None:
            self.b2bua.end_all(call, "answered", 200, HANGUP_BY)
        else:
            self.b2bua.end_all(call, "cancelled", 480, HANGUP_BY)
        return call

    # ------------------------------------------------------------ the two sides

    def sides(self, call: Call, holder: str | None) -> tuple[Leg, Leg]:
        """(kept, leaving): the party a transfer or park moves on, and
        ``holder``, the extension that hands the call on and leaves it (by
        default the side that answered).  Both must be answered phones and no
        transfer may be under way (409); a holder not on the call is a 422."""
        a, b = call.a, call.b
        if (a is None or b is None or call.answered_at is None
                or a.state is not LegState.ANSWERED or b.state is not LegState.ANSWERED):
            raise CommandError(409, f"call {call.id} is not a call between two answered phones")
        if call.transfer is not None or call.ring is not None:
            raise CommandError(409, f"call {call.id} is being transferred")
        if holder is None or holder == b.number:
            return a, b
        if holder == a.number:
            return b, a
        raise CommandError(422, f"{holder} is not on call {call.id}")

    def drop(self, leg: Leg) -> None:
        """``leg`` leaves its call for good: it is hung up, its port given back,
        and its dialog forgotten once retransmissions had their time."""
        legs = self.b2bua.legs
        legs.end(leg)
        self.b2bua.release(leg)
        self.b2bua.clock.call_later(DIALOG_LINGER, lambda: legs.forget(leg))

    # ------------------------------------------------------------ blind transfer

    def transfer(self, organisation: int, call_id: str, number: str, holder: str | None,
                 done: Done) -> None:
        """Blind-transfer the call as a REFER from ``holder`` would: the other
        party stays, ``number`` rings through the dial plan (extensions and
        ring groups, DND and profiles respected), and when it answers it takes
        ``holder``'s place, who is hung up.  If it does not, the call stays as
        it was.  Either way ``done`` hears it."""
        call = self.find(organisation, call_id)
        keep, leaving = self.sides(call, holder)
        if number in (keep.number, leaving.number):
            raise CommandError(409, f"{number} is already on call {call.id}")
        plan = self.b2bua.transfer_plan(call, number)
        if plan == 404:
            raise CommandError(404, f"{number} is no extension or ring group")
        if isinstance(plan, int):
            raise CommandError(502, refused(number, plan))
        log.info("call %s: the API transfers %s from %s to %s", call.id, keep.number,
                 leaving.number, number)
        call.path.append(f"transfer:{number}:api")
        call.transfer = Transfer(referrer=leaving, keep=keep)
        report = _Report(done)
        call.on_end.append(lambda: report(Outcome(call.id, status=487,
                                                  reason=f"call {call.id} ended")))
        self.b2bua.ringer.start(Ring(call, _TransferRing(self, call, number, report),
                                     steps=plan, rung=number))

    def transferred(self, call: Call, leg: Leg) -> None:
        """The target answered: the leaving party is hung up, the kept one and
        the target are bridged (one call, one record)."""
        transfer = call.transfer
        assert transfer is not None
        call.transfer = None
        self.drop(transfer.referrer)
        call.a, call.b = transfer.keep, None
        self.b2bua.connect_answer(call, leg)

    def not_transferred(self, call: Call, status: int) -> None:
        """The target did not answer: the call stays; if the leaving party hung
        up meanwhile, nobody is left to go back to and the call ends."""
        transfer = call.transfer
        if transfer is None:
            return
        call.transfer = None
        call.path.append(f"transfer-failed:{status}")
        if transfer.referrer.state is LegState.ENDED:
            self.b2bua.hangup(call, transfer.referrer, status)

    # ------------------------------------------------------------ services and parking

    def hand_to(self, call: Call, leg: Leg, kind: str, ident: str) -> None:
        """Hand ``leg``, answered, to the service ``kind`` for ``ident`` (as an
        Asterisk channel redirect to an application): the other side is hung
        up and the call goes on, one call with one record, with the service
        holding ``leg`` as its caller."""
        if kind not in self.b2bua.apps:
            raise CommandError(503, f"no {kind} service on this node")
        other = call.b if leg is call.a else call.a
        if other is not None:
            self.drop(other)
        if leg.channel is not None:
            leg.channel.release()  # type: ignore[attr-defined]
        call.a, call.b, call.stereo = leg, None, None
        self.b2bua.serve(call, kind, ident)

    def park(self, organisation: int, call_id: str, holder: str | None) -> str:
        """Park the party ``holder`` talks to in the organisation's next free
        slot (music on hold) and hang ``holder`` up; returns the slot.  Left
        there too long, the call comes back to ``holder`` (Asterisk's
        ``comebacktoorigin``): the parked call is ``holder``'s, deflected
        (RFC 5806 ``deflection``)."""
        call = self.find(organisation, call_id)
        keep, leaving = self.sides(call, holder)
        if self.lot is None or PARK not in self.b2bua.apps:
            raise CommandError(503, "no parking lot on this node")
        slot = self.lot.free_slot(organisation)
        if slot is None:
            raise CommandError(409, "every parking slot is taken")
        log.info("call %s: %s parks %s in slot %s", call.id, leaving.number, keep.number, slot)
        call.diverted_from, call.diversion_reason = leaving.number, "deflection"
        self.hand_to(call, keep, PARK, slot)
        return slot

    # ------------------------------------------------------------ click-to-call

    def click_to_call(self, organisation: int, extension: str, number: str,
                      done: Done | None = None) -> Call:
        """Place a call for ``extension`` to ``number`` (what CRMs do): its own
        phones ring first, showing ``number``; when one answers, ``number`` is
        dialled through the dial plan as if that phone had dialled it, and the
        user hears ringback meanwhile.  One call, one record (``extension`` →
        ``number``).  ``done`` hears whether the user answered."""
        b2bua = self.b2bua
        tenant = b2bua.directory.tenants.get(organisation)
        ext = tenant.extensions.get(extension) if tenant is not None else None
        if tenant is None or ext is None:
            raise CommandError(404, f"no extension {extension}")
        if extension in tenant.unlicensed:
            raise CommandError(403, f"{extension} holds no active license")
        now = b2bua.clock.now()
        dest = b2bua.router.resolve(tenant, number, now)
        external = b2bua.planner is not None and b2bua.planner.is_external(tenant, number)
        if isinstance(dest, Unknown) and not external:  # a public number: its route decides
            raise CommandError(404, f"{number} leads nowhere in the dial plan")
        if isinstance(dest, PickupDest) or number == extension:
            raise CommandError(422, f"{number} cannot be called from {extension} this way")
        if not b2bua.ringer.location.lookup(tenant.aor(extension), now):
            raise CommandError(409, f"{extension} has no phone registered")
        name, own = parse_callerid(ext.display_name, ext.number)
        user = (extension, name, caller_id(tenant.presence.active(ext, now), own))
        called = tenant.extensions.get(number)
        shown = parse_callerid(called.display_name, number)[0] if called is not None else ""
        call = Call(id=new_call_id(), tenant=tenant, dialled=number, started_at=now,
                    caller_name=shown, caller_number=number)  # what the user's phone shows
        call.path.append(f"click-to-call:{extension}")
        b2bua.calls[call.id] = call
        log.info("call %s: click-to-call from %s to %s", call.id, extension, number)
        b2bua.events.publish(CallStarted(tenant.id, call.id, extension, number, now, name))
        report = _Report(done or (lambda outcome: None))
        b2bua.ringer.start(Ring(call, _UserRing(self, call, user, number, report),
                                steps=[RingStep((extension,), float(ext.ring_timeout))],
                                rung=extension))
        return call

    def user_answered(self, call: Call, leg: Leg, user: tuple[str, str, str],
                      number: str) -> None:
        """The user took the call: they are its caller now, hear ringback, and
        ``number`` is dialled for them."""
        b2bua = self.b2bua
        assert leg.offer is not None
        b2bua.sdp.apply_remote(leg, leg.offer)
        call.a = leg
        _, call.caller_name, call.caller_number = user
        ringing = b2bua.channel_of(leg)
        ringing.play(self.ringback(call.tenant))
        ringing.release()  # the tone plays on until the call is bridged or served
        b2bua.guarded(call, lambda: b2bua.route(call, number))

    def ringback(self, tenant: Tenant) -> np.ndarray:
        """The organisation's ringback tone (ITU-T E.180), rendered once per country."""
        country = tenant.tone_country
        if country not in self._ringback:
            self._ringback[country] = render(tone(country, "ringback"), RINGBACK_SECONDS)
        return self._ringback[country]
