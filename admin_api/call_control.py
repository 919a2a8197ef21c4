"""Call control over the API (for CRMs and the wallboard): the live calls,
hanging up, blind transfer, the parking lot, and click-to-call.

Every endpoint here is ``async``: it runs on the event loop the calls live
on (pbx/calls/commands.py), never in a worker thread.  A transfer or a
retrieval answers when the target has answered or failed (as long as the
target rings: clients should wait that long); click-to-call answers as soon
as the user's phones ring.

Admins and supervisors act on every call of their organisation; agents and
users see and act on their own calls only (their extension is on it), and
place calls from their own extension.
"""

import asyncio
from collections.abc import Callable
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from admin_api.deps import ERRORS, NUMBER, User
from ivr.park import Park, ParkedCall, SlotBusy
from pbx.calls.commands import CallCommands, CommandError, Done, Outcome, refused
from pbx.calls.model import Call
from pbx.calls.views import live_calls, parties
from pbx.models import ApiUser
from pbx.router import PARK

router = APIRouter(prefix="/api", tags=["call control"])

DIALLED = r"^[0-9A-Za-z_.+*#-]{1,40}$"  # an extension, a group, a service, an outside number
CallId = Annotated[str, Path(pattern=r"^[0-9A-Za-z_.@-]{1,100}$")]
ON_CALL = {**ERRORS, 404: {"description": "no such live call"},
           409: {"description": "the call is not in a state that allows it"}}
RINGS = {**ON_CALL, 502: {"description": "the target did not take the call (busy, no answer, "
                                         "declined); the call stays as it was"}}
SUPERVISING = ("admin", "supervisor")


def call_commands(request: Request) -> CallCommands:
    commands = getattr(request.app.state, "calls", None)
    if commands is None:
        raise HTTPException(503, "call control is not available on this node")
    return commands  # type: ignore[no-any-return]


Commands = Annotated[CallCommands, Depends(call_commands)]


class LiveCallOut(BaseModel):
    id: str
    caller: str = Field(description="the caller ID (number)")
    caller_name: str
    dialled: str
    did: str = Field(description="the organisation's number dialled, when it came in on one")
    answered_by: str = Field(description="the extension or service that answered")
    state: str = Field(description="ringing, answered, held, transferring, parked, or the "
                                   "service holding the caller: ivr:500, voicemail:1002 …")
    service: str = Field(description="the service the caller is in: ivr:500, park:701 …")
    ringing: list[str]
    parties: list[str]
    started_at: float
    answered_at: float | None
    duration: float


class TransferIn(BaseModel):
    to: str = Field(pattern=DIALLED, description="an extension or ring group")
    extension: str | None = Field(
        default=None, pattern=NUMBER, description="the party that hands the call on and "
        "leaves it: by default your own extension when you are on the call, else the side "
        "that answered")


class ParkIn(BaseModel):
    extension: str | None = Field(default=None, pattern=NUMBER,
                                  description="the party that parks the call and leaves it "
                                  "(as for a transfer); the call comes back to it")


class Answered(BaseModel):
    call_id: str
    answered_by: str


class Parked(BaseModel):
    slot: str
    call_id: str


class ParkedOut(BaseModel):
    slot: str
    call_id: str
    caller: str
    caller_name: str
    parked_by: str = Field(description="where the call comes back to when left too long")
    since: float
    comeback_at: float
    retrieving: bool


class RetrieveIn(BaseModel):
    to: str | None = Field(default=None, pattern=DIALLED,
                           description="who takes the call; by default your own extension")


class ClickToCallIn(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from", pattern=NUMBER, description="the extension whose phones "
                       "ring first (users: their own)")
    to: str = Field(pattern=DIALLED, description="the number dialled when they answer")


class Placed(BaseModel):
    call_id: str


def http_error(error: CommandError) -> HTTPException:
    return HTTPException(error.status, error.reason)


def own_call(user: ApiUser, commands: CallCommands, call_id: str) -> Call:
    """The live call ``call_id`` of the user's organisation (404), one of their
    own unless they supervise (403)."""
    try:
        call = commands.find(user.organisation_id, call_id)
    except CommandError as exc:
        raise http_error(exc) from None
    if user.role not in SUPERVISING and (not user.extension
                                         or user.extension not in parties(call)):
        raise HTTPException(403, "agents and users act only on their own calls")
    return call


def holder_of(user: ApiUser, call: Call, named: str | None) -> str | None:
    """Who hands the call on: agents and users themselves; supervisors whom
    they name, else themselves when on the call, else the side that answered."""
    if user.role not in SUPERVISING:
        if named not in (None, user.extension):
            raise HTTPException(403, "agents and users hand on only their own calls")
        return user.extension
    if named is None and user.extension in parties(call):
        return user.extension
    return named


async def outcome_of(start: Callable[[Done], None]) -> Outcome:
    """Start a command that rings and wait for how it ends."""
    future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()

    def done(outcome: Outcome) -> None:
        if not future.done():
            future.set_result(outcome)

    try:
        start(done)
    except CommandError as exc:
        raise http_error(exc) from None
    return await future


def answered(outcome: Outcome) -> Answered:
    """200 when it was answered; 409 when the call ended meanwhile, else 502."""
    if outcome.ok:
        return Answered(call_id=outcome.call_id, answered_by=outcome.answered_by)
    raise HTTPException(409 if outcome.status == 487 else 502, outcome.reason)


# ------------------------------------------------------------------ live calls

@router.get("/calls/live", response_model=list[LiveCallOut], responses=ERRORS)
async def list_live_calls(user: User, commands: Commands) -> list[LiveCallOut]:
    """The organisation's calls in progress, oldest first (agents and users:
    their own)."""
    mine = None if user.role in SUPERVISING else user.extension
    if mine == "":
        return []
    calls = live_calls(commands.b2bua.live_calls(), user.organisation_id,
                       commands.b2bua.clock.now(), mine)
    return [LiveCallOut(**asdict(call)) for call in calls]


@router.get("/calls/{call_id}", response_model=LiveCallOut, responses=ON_CALL)
async def get_live_call(call_id: CallId, user: User, commands: Commands) -> LiveCallOut:
    call = own_call(user, commands, call_id)
    (shown,) = live_calls([call], user.organisation_id, commands.b2bua.clock.now())
    return LiveCallOut(**asdict(shown))


@router.delete("/calls/{call_id}", status_code=204, responses=ON_CALL)
async def hang_up(call_id: CallId, user: User, commands: Commands) -> Response:
    """Hang the call up: BYE to answered phones, CANCEL or a final 480 to ringing
    ones; its record says ``hangup_by`` ``api``."""
    own_call(user, commands, call_id)
    commands.hang_up(user.organisation_id, call_id)
    return Response(status_code=204)


@router.post("/calls/{call_id}/transfer", response_model=Answered, responses=RINGS)
async def transfer(call_id: CallId, body: TransferIn, user: User,
                   commands: Commands) -> Answered:
    """Blind transfer: the party the holder talks to stays, ``to`` rings; when
    it answers it takes the holder's place and the holder is hung up.  The
    answer comes when ``to`` has answered (200) or not (502: busy, no
    answer …; the call goes on as it was)."""
    call = own_call(user, commands, call_id)
    holder = holder_of(user, call, body.extension)
    return answered(await outcome_of(lambda done: commands.transfer(
        user.organisation_id, call_id, body.to, holder, done)))


@router.post("/calls/{call_id}/park", response_model=Parked, responses=ON_CALL)
async def park(call_id: CallId, user: User, commands: Commands,
               body: ParkIn | None = None) -> Parked:
    """Park the party the holder talks to (music on hold, a numbered slot of the
    organisation) and hang the holder up."""
    call = own_call(user, commands, call_id)
    holder = holder_of(user, call, body.extension if body is not None else None)
    try:
        slot = commands.park(user.organisation_id, call_id, holder)
    except CommandError as exc:
        raise http_error(exc) from None
    return Parked(slot=slot, call_id=call_id)


# ------------------------------------------------------------------ the parking lot

def parking_lot(commands: CallCommands) -> Park:
    lot = commands.b2bua.apps.get(PARK)
    if not isinstance(lot, Park):
        raise HTTPException(503, "no parking lot on this node")
    return lot


def shown_parked(parked: ParkedCall) -> ParkedOut:
    party = parked.channel.party
    return ParkedOut(slot=parked.slot, call_id=parked.channel.id, caller=party.number,
                     caller_name=party.name, parked_by=parked.parked_by, since=parked.since,
                     comeback_at=parked.comeback_at, retrieving=parked.retrieved is not None)


@router.get("/parked", response_model=list[ParkedOut], responses=ERRORS)
async def list_parked(user: User, commands: Commands) -> list[ParkedOut]:
    """The organisation's parked calls, by slot (everyone sees the lot, as a
    BLF key on a parking slot would)."""
    return [shown_parked(p) for p in parking_lot(commands).parked(user.organisation_id)]


@router.post("/parked/{slot}/retrieve", response_model=Answered, responses={
    **RINGS, 404: {"description": "nothing is parked in that slot"},
    409: {"description": "it is being retrieved already"}})
async def retrieve(slot: Annotated[str, Path(pattern=r"^[0-9]{1,8}$")], user: User,
                   commands: Commands, body: RetrieveIn | None = None) -> Answered:
    """Ring ``to`` (by default your own extension) and connect the parked call
    when it answers (200); if it does not (502), the call stays parked."""
    to = body.to if body is not None else None
    if user.role not in SUPERVISING and to not in (None, user.extension):
        raise HTTPException(403, "agents and users retrieve parked calls to their own phone")
    to = to or user.extension
    if not to:
        raise HTTPException(422, [{"loc": ["body", "to"], "type": "missing",
                                   "msg": "say whose phone takes the call"}])
    lot = parking_lot(commands)
    parked = next((p for p in lot.parked(user.organisation_id) if p.slot == slot), None)
    if parked is None:
        raise HTTPException(404, f"nothing is parked in slot {slot}")
    call_id, taker = parked.channel.id, to

    def start(done: Done) -> None:
        def retrieved(answered_by: str, status: int) -> None:
            reason = (f"the call in slot {slot} left the parking lot" if status == 487
                      else refused(taker, status))
            done(Outcome(call_id, answered_by, status, reason))

        try:
            lot.retrieve(user.organisation_id, slot, taker, retrieved)
        except SlotBusy:
            raise HTTPException(409, f"the call in slot {slot} is being retrieved") from None

    return answered(await outcome_of(start))


# ------------------------------------------------------------------ click-to-call

@router.post("/calls", response_model=Placed, status_code=201, responses={
    **ERRORS, 404: {"description": "no such extension, or the number leads nowhere"},
    409: {"description": "the extension has no phone registered"},
    422: {"description": "a number that cannot be called this way"}})
async def click_to_call(body: ClickToCallIn, user: User, commands: Commands) -> Placed:
    """Click-to-call: the user's own phones ring first, showing ``to``; when one
    answers, ``to`` is dialled through the dial plan and the two are
    connected.  One call, one record.  201 as soon as the phones ring; the
    user not answering ends it."""
    if user.role != "admin" and body.from_ != user.extension:
        raise HTTPException(403, "you may call only from your own extension")
    try:
        call = commands.click_to_call(user.organisation_id, body.from_, body.to)
    except CommandError as exc:
        raise http_error(exc) from None
    return Placed(call_id=call.id)
