"""Read-only views of live calls for whoever watches them: the dialogs of
extensions (BLF, RFC 4235), and the conference rooms in use.  They read
call control's and the engine's state and change nothing."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from media.engine import MediaEngine

from pbx.calls.model import Call, Leg, LegState
from pbx.calls.session import CONFERENCE_ROOM


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
