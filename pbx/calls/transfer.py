"""Moving parties between calls: blind transfer (REFER, RFC 3515), attended
transfer (REFER with Replaces, RFC 3891), an INVITE that replaces a dialog
(RFC 3891: a phone completing a transfer itself, or picking up a ringing
colleague from a BLF key), and call pickup (``*8``, ``**NNN``).

Every move ends the same way: a leg takes another's place in a call
(:meth:`Transfers.swap_in`), the call's media is bridged again, and the
leg that left is hung up and its port given back.
"""

from __future__ import annotations

import logging
from typing import Protocol
from urllib.parse import unquote as url_unquote

from pbx.router import RingStep
from pbx.sip.errors import ParseError, SipError
from pbx.sip.message import URI, Address, Request, Response

from pbx.calls.media_paths import MediaPaths
from pbx.calls.model import Call, Leg, LegState, Ring, Transfer
from pbx.calls.ringing import Ringer
from pbx.calls.signalling import LegSignalling

log = logging.getLogger("pbx.calls")


class CallOps(Protocol):
    """What moving parties needs of the facade."""

    def live_calls(self) -> list[Call]: ...

    def answer_incoming(self, leg: Leg, prefer: Leg | None = None) -> bool:
        """200 OK to a phone's INVITE with our answer; False (and refused) when
        no codec is common."""

    def answered(self, call: Call, by: str) -> None:
        """The call is answered (again, after a move) by ``by``: the record, the event."""

    def transfer_plan(self, call: Call, number: str) -> list[RingStep] | int:
        """The ring steps that reach a transfer target, or why not (a SIP status)."""

    def end_call(self, call: Call, disposition: str, status: int, hangup_by: str) -> None: ...

    def hangup(self, call: Call, leg: Leg, status: int) -> None:
        """``leg`` left: the other legs are ended, and the call."""

    def fail(self, call: Call, status: int, reason: str | None = None) -> None: ...

    def release(self, leg: Leg) -> None:
        """Give back a port that left its call."""


class TransferRing:
    """The ring of a blind transfer's target: the referrer hears how it goes."""

    def __init__(self, transfers: Transfers, call: Call) -> None:
        self.transfers = transfers
        self.call = call

    def early(self, ring: Ring, leg: Leg, response: Response) -> None:
        pass  # the referrer heard "100 Trying"; the next NOTIFY is final

    def answered(self, ring: Ring, leg: Leg) -> None:
        self.transfers.transfer_answered(self.call, leg)

    def failed(self, ring: Ring, status: int, reason: str | None) -> None:
        self.transfers.transfer_failed(self.call, status)


class Transfers:
    """Blind and attended transfer, Replaces and pickup for one node."""

    def __init__(self, ops: CallOps, legs: LegSignalling, ringer: Ringer,
                 media: MediaPaths) -> None:
        self.ops = ops
        self.legs = legs
        self.ringer = ringer
        self.media = media

    # ------------------------------------------------------------ REFER

    def on_refer(self, request: Request) -> None:
        leg = self.legs.leg_of(request)
        call = leg.call
        refer_to = request.headers.get("Refer-To")
        if refer_to is None:
            raise SipError(400, "Bad Request - Missing Refer-To")
        try:
            target = Address.parse(refer_to).uri
        except ParseError as exc:
            raise SipError(400, exc.reason) from None
        other = call.b if leg is call.a else call.a
        if call.transfer is not None:
            raise SipError(491, "Request Pending - A transfer is in progress")
        if other is None or call.answered_at is None or other.state is not LegState.ANSWERED:
            raise SipError(403, "Forbidden - Call not answered")
        replaces = replaces_of(target)
        if replaces is not None:
            self._attended(request, leg, other, replaces)
            return
        number = target.user or ""
        self.legs.respond(request, 202)
        self.legs.notify_refer(leg, "SIP/2.0 100 Trying", active=True)
        log.info("call %s: %s transfers %s to %s", call.id, leg.number, other.number, number)
        call.transfer = Transfer(referrer=leg, keep=other)
        call.path.append(f"transfer:{number}")
        plan = self.ops.transfer_plan(call, number)
        if isinstance(plan, int):
            self.transfer_failed(call, plan)
            return
        self.ringer.start(Ring(call, TransferRing(self, call), steps=plan, rung=number))

    def transfer_answered(self, call: Call, leg: Leg) -> None:
        transfer = call.transfer
        assert transfer is not None and leg.offer is not None
        call.transfer = None
        referrer = transfer.referrer
        self.ringer.sdp.apply_remote(leg, leg.offer)
        self.legs.notify_refer(referrer, "SIP/2.0 200 OK", active=False)
        self.legs.bye(referrer)
        call.a, call.b = transfer.keep, leg
        self.ops.release(referrer)
        self.media.bridge(call)
        log.info("call %s: transfer to %s answered", call.id, leg.number)
        self.ops.answered(call, leg.number)

    def transfer_failed(self, call: Call, status: int) -> None:
        """The target refused or never answered: the referrer keeps the call and
        hears so; if the referrer has already hung up, the call ends."""
        transfer = call.transfer
        if transfer is None:
            return
        call.transfer = None
        log.info("call %s: transfer failed with %d", call.id, status)
        call.path.append(f"transfer-failed:{status}")
        referrer = transfer.referrer
        if referrer.state is LegState.ENDED:
            self.ops.hangup(call, referrer, status)
            return
        self.legs.notify_refer(referrer, f"SIP/2.0 {status} Transfer Failed", active=False)

    def referrer_left(self, call: Call, leg: Leg) -> bool:
        """The referrer of a blind transfer hung up while the target rings: the
        transfer goes on without them.  False: not a referrer."""
        transfer = call.transfer
        if transfer is None or transfer.referrer is not leg:
            return False
        leg.state = LegState.ENDED
        self.legs.stop_timers(leg)
        call.path.append(f"referrer-left:{leg.number}")
        return True

    def _attended(self, request: Request, leg: Leg, other: Leg,
                  replaces: tuple[str, str, str]) -> None:
        """REFER with Replaces: join ``other`` to the party of the replaced dialog."""
        target_leg = self.find(replaces)
        if target_leg is None or target_leg.state is LegState.ENDED:
            raise SipError(481, "Call/Transaction Does Not Exist - Replaces")
        second = target_leg.call
        partner = second.b if target_leg is second.a else second.a
        if partner is None or second.answered_at is None or partner.media is None:
            raise SipError(481, "Call/Transaction Does Not Exist - Not answered")
        self.legs.respond(request, 202)
        call = leg.call
        log.info("call %s: %s joins %s with %s", call.id, leg.number, other.number,
                 partner.number)
        # the partner moves into the first call; the referrer leaves both
        if partner is second.a:
            second.a = None
        else:
            second.b = None
        partner.call = call
        if leg is call.a:
            call.a = partner
        else:
            call.b = partner
        call.path.append(f"attended:{partner.number}")
        self.legs.notify_refer(leg, "SIP/2.0 200 OK", active=False)
        self.legs.bye(leg)
        self.legs.bye(target_leg)
        self.ops.release(leg)
        self.media.bridge(call)
        self.ops.end_call(second, "transferred", 200, "transfer")

    # ------------------------------------------------------------ INVITE with Replaces

    def find(self, replaces: tuple[str, str, str]) -> Leg | None:
        """The leg of the dialog a Replaces names: the tags are matched as if the
        request came in that dialog, either way round (RFC 3891 §3)."""
        call_id, to_tag, from_tag = replaces
        dialogs = self.legs.dialogs
        found = dialogs.get((call_id, to_tag, from_tag)) or dialogs.get((call_id, from_tag, to_tag))
        if found is not None:
            return found
        for call in self.ops.live_calls():  # a ringing fork has no dialog yet: its INVITE's tags
            for fork in call.ring.forks if call.ring is not None else ():
                tag = fork.invite.from_addr.tag
                if fork.invite.call_id == call_id and tag in (to_tag, from_tag):
                    return fork
        return None

    def replace(self, new: Leg, header: str) -> None:
        """An INVITE with ``Replaces`` (RFC 3891 §3): the new phone takes the
        replaced leg's place.  An answered leg is swapped out and hung up; a
        ringing fork means the new phone picks that call up.  481 when no
        dialog matches; 486 for ``early-only`` against an answered one."""
        parsed = parse_replaces(header)
        old = self.find(parsed[:3]) if parsed is not None else None
        if parsed is None:
            self.ops.fail(new.call, 400, "Bad Request - Malformed Replaces")
            return
        if old is None or old.state is LegState.ENDED or old.call.ended:
            self.ops.fail(new.call, 481, "Call/Transaction Does Not Exist - Replaces")
            return
        if old.outgoing and old.state.pending:
            self.pickup_call(new, old.call)
            return
        if old.state is not LegState.ANSWERED:
            self.ops.fail(new.call, 481, "Call/Transaction Does Not Exist - Not answered")
            return
        if parsed[3]:
            self.ops.fail(new.call, 486, "Busy Here - Early-only")
            return
        target = old.call
        log.info("call %s: %s replaces %s", target.id, new.number, old.number)
        own = new.call
        own.a = None
        own.write_cdr = False  # one call, one record: the replaced one goes on
        own.merged_into = target.id
        new.call = target
        partner = target.b if old is target.a else target.a
        if not self.ops.answer_incoming(new, prefer=partner):
            new.call = own
            own.a = new
            return
        if target.a is old:
            target.a = new
        else:
            target.b = new
        target.path.append(f"replaces:{old.number}>{new.number}")
        self.legs.bye(old)
        self.ops.release(old)
        self.ops.end_call(own, "replaced", 200, "replaces")
        self.media.bridge(target)

    # ------------------------------------------------------------ pickup

    def pickup(self, call: Call, number: str | None) -> None:
        """``*8``/``**NNN``: answer a colleague's ringing call from this phone."""
        target = next(
            (c for c in self.ops.live_calls()
             if c is not call and c.b is None and c.ring is not None and c.ring.forks
             and c.a is not None and c.tenant.id == call.tenant.id and c.transfer is None
             and (number is None or any(f.number == number for f in c.ring.forks))),
            None,
        )
        if target is None:
            self.ops.fail(call, 404, "Not Found - Nothing to pick up")
            return
        assert call.a is not None
        self.pickup_call(call.a, target)

    def pickup_call(self, picker: Leg, target: Call) -> None:
        """``picker`` (a phone's INVITE, not yet answered) answers ``target``,
        which rings elsewhere: the ring stops, the picker keeps its own port."""
        own = picker.call
        own.write_cdr = False  # the picked-up call is the one on record
        own.merged_into = target.id
        log.info("call %s: %s picks up call %s", own.id, picker.number, target.id)
        if target.ring is not None:
            self.ringer.finish(target.ring)
        own.a = None
        picker.call = target
        target.b = picker
        target.path.append(f"pickup:{picker.number}")
        caller = target.a
        assert caller is not None
        if not self.ops.answer_incoming(picker, prefer=caller):
            self.ops.hangup(target, picker, 488)
            self.ops.end_call(own, "pickup", 488, "pickup")
            return
        self.ops.end_call(own, "pickup", 200, "pickup")
        if caller.state is not LegState.ANSWERED and not self.ops.answer_incoming(caller,
                                                                                prefer=picker):
            self.ops.hangup(target, caller, 488)
            return
        self.media.bridge(target)
        self.ops.answered(target, picker.number)


def replaces_of(target: URI) -> tuple[str, str, str] | None:
    """The dialog named by ``?Replaces=`` in a Refer-To URI (RFC 3891), if any."""
    if not target.headers:
        return None
    for item in target.headers.split("&"):
        name, _, value = item.partition("=")
        if name.lower() == "replaces":
            parsed = parse_replaces(url_unquote(value))
            return parsed[:3] if parsed is not None else None
    return None


def parse_replaces(value: str) -> tuple[str, str, str, bool] | None:
    """``callid;to-tag=a;from-tag=b[;early-only]`` → (callid, to-tag, from-tag, early-only)."""
    parts = [p.strip() for p in value.split(";")]
    params: dict[str, str] = {}
    for part in parts[1:]:
        name, _, val = part.partition("=")
        params[name.lower()] = val
    if not parts[0] or "to-tag" not in params or "from-tag" not in params:
        return None
    return parts[0], params["to-tag"], params["from-tag"], "early-only" in params
