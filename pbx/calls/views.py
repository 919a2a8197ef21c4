"""Read-only views of live calls for whoever watches them: the dialogs of
extensions (BLF, RFC 4235), the live calls of an organisation (the admin
API, wallboards, CRMs), and the conference rooms in use.  They read call
control's and the engine's state and change nothing."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from media.engine import MediaEngine
from pbx.router import PARK

from pbx.calls.model import Call, Leg, LegState
from pbx.calls.session import CONFERENCE_ROOM, LegChannel


@dataclass(frozen=True, slots=True)
class DialogState:
    """One dialog of a watched extension, as a ``<dialog>`` of RFC 4235 §4.1
    describes it: the tags are the watched phone's view (its local tag)."""

    id: str
    direction: str  # initiator (the extension called) or recipient (it is called)
    state: str  # trying, early, confirmed, terminated
    call_id: str = ""
    local_tag: str = ""
    remote_tag: str = ""
    remote: str = ""  # the other party's URI
    remote_name: str = ""


def extension_dialogs(calls: Iterable[Call],
                      organisation: int) -> dict[str, tuple[DialogState, ...]]:
    """Every extension of ``organisation`` that takes part in one of the live
    ``calls``, with its dialogs.  A phone that sent its INVITE is the
    ``initiator``: ``trying``, ``early`` once it hears ringing, then
    ``confirmed``; a phone we send an INVITE is the ``recipient``: ``early``
    while it rings (all devices of an extension are one dialog), then
    ``confirmed``."""
    found: dict[str, list[DialogState]] = {}
    for call in calls:
        if call.ended or call.tenant.id != organisation:
            continue
        domain = call.tenant.domain
        caller = f"sip:{call.caller_number}@{domain}"
        a, b = call.a, call.b
        if a is not None:
            if call.answered_at is not None:
                state = "confirmed"
            else:
                state = "early" if a.state is LegState.RINGING else "trying"
            callee = b.number if b is not None else call.dialled
            found.setdefault(a.number, []).append(
                _dialog_of(f"{call.id}-a", a, state, f"sip:{callee}@{domain}", ""))
        if b is not None and call.answered_at is not None:
            found.setdefault(b.number, []).append(
                _dialog_of(f"{call.id}-b", b, "confirmed", caller, call.caller_name))
        ringing: dict[str, Leg] = {}
        for fork in call.ring.forks if call.ring is not None else ():
            if fork.state.pending:
                ringing.setdefault(fork.number, fork)
        for number, fork in ringing.items():
            found.setdefault(number, []).append(
                _dialog_of(f"{call.id}-b", fork, "early", caller, call.caller_name))
    return {number: tuple(sorted(dialogs, key=lambda d: d.id))
            for number, dialogs in found.items()}


def _dialog_of(ident: str, leg: Leg, state: str, remote: str, remote_name: str) -> DialogState:
    """A leg as its phone sees it: who sent the INVITE, and the tags from the
    phone's side (its own tag is the local one)."""
    dialog = leg.dialog
    our_tag = leg.invite.from_addr.tag if leg.outgoing else dialog.local_tag if dialog else ""
    phone_tag = (dialog.remote_tag if dialog else "") if leg.outgoing \
        else leg.invite.from_addr.tag
    return DialogState(ident, "recipient" if leg.outgoing else "initiator", state,
                       leg.invite.call_id, phone_tag or "", our_tag or "", remote, remote_name)


def conferences_in_use(engine: MediaEngine, room_key: str) -> list[dict[str, object]]:
    """The conference rooms of one organisation in use, with who is in them;
    ``room_key`` is the organisation's suffix of engine room names (see
    :meth:`~pbx.directory.Tenant.room_key`: "" for the default organisation)."""
    return [
        {
            "room": room.name.removesuffix(room_key) if room_key else room.name,
            "locked": room.locked,
            "recording": room.recorder is not None,
            "participants": [
                {"leg": m.port.leg.label, "muted": m.muted, "moderator": m.moderator}
                for m in room.members
            ],
        }
        for room in engine.rooms.values()
        if room.kind == CONFERENCE_ROOM and ("@" in room.name) == bool(room_key)
        and room.name.endswith(room_key)
    ]


def did_of(call: Call) -> str:
    """The organisation's number (DID) the caller dialled, when the call came in
    on one: what a screen-pop shows as "called on"."""
    return call.dialled if call.dialled in call.tenant.numbers else ""


def service_of(call: Call) -> str:
    """The service holding the caller (``ivr:500``, ``voicemail:1002``,
    ``conference:800``, ``park:701``), or ""."""
    channel = call.a.channel if call.a is not None else None
    return channel.service if isinstance(channel, LegChannel) and channel.alive else ""


def parties(call: Call) -> tuple[str, ...]:
    """The numbers on the call: both sides and every extension it rings."""
    forks = call.ring.forks if call.ring is not None else []
    found = [leg.number for leg in (call.a, call.b, *forks) if leg is not None]
    return tuple(dict.fromkeys(found))


@dataclass(frozen=True, slots=True)
class LiveCall:
    """A call in progress as the admin API lists it (Asterisk ``core show
    channels``, 3CX's active calls): who, to what, in which state, for how long."""

    id: str
    caller: str  # the caller ID: number and name
    caller_name: str
    dialled: str
    did: str  # the organisation's number dialled, when it came in on one
    answered_by: str  # the extension or service that answered, "" while nobody has
    state: str  # ringing, answered, held, transferring, parked, or the service (ivr:500)
    service: str  # the service the caller is in (ivr:500, park:701), ""
    ringing: tuple[str, ...]  # extensions whose devices ring now
    parties: tuple[str, ...]
    started_at: float
    answered_at: float | None
    duration: float


def state_of(call: Call) -> str:
    """``ringing`` until someone (or a service) answers and again while the
    caller is sent on; ``transferring`` while a transfer target rings;
    ``held`` while a party holds; the service's ``kind:ident`` (``parked``
    for the parking lot) while one holds the caller; else ``answered``."""
    a, b = call.a, call.b
    if call.ring is not None:
        return "transferring" if b is not None else "ringing"
    if call.answered_at is None or (a is not None and a.state.pending):
        return "ringing"
    service = service_of(call)
    if service:
        return "parked" if service.split(":")[0] == PARK else service
    if any(leg.held for leg in (a, b) if leg is not None):
        return "held"
    return "answered"


def live_calls(calls: Iterable[Call], organisation: int, now: float,
               extension: str | None = None) -> list[LiveCall]:
    """The live calls of ``organisation`` (only those ``extension`` is on, when
    given), oldest first."""
    found = []
    for call in calls:
        if call.ended or call.tenant.id != organisation:
            continue
        on_it = parties(call)
        if extension is not None and extension not in on_it:
            continue
        ringing = [f.number for f in call.ring.forks if f.state.pending] if call.ring else []
        found.append(LiveCall(
            id=call.id, caller=call.caller_number, caller_name=call.caller_name,
            dialled=call.dialled, did=did_of(call),
            answered_by=call.answered_by if call.answered_at is not None else "",
            state=state_of(call), service=service_of(call),
            ringing=tuple(dict.fromkeys(ringing)), parties=on_it, started_at=call.started_at,
            answered_at=call.answered_at, duration=max(0.0, now - call.started_at),
        ))
    return sorted(found, key=lambda c: c.started_at)
