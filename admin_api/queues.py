"""ACD queues over the API: the queues with their callers and agents, and
agents logged in, out, paused (with a reason) and unpaused — the wallboard's
buttons — and supervisors listening, whispering or barging on an agent's call:
click-to-call rings the supervisor's own phones and, once answered, dials
``*55`` + agent + ``*4``/``*5``/``*6`` (ivr/spy.py).

Admins and supervisors act on every agent of their organisation; an agent
(or any user with an extension) on themself only.  Every change is in the
audit log.  The endpoints are ``async``: the queue engine lives on the event
loop, and only the audit entry is written in a worker thread.
"""

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from pydantic import BaseModel, Field
from sqlmodel import Session

from admin_api.call_control import Commands, Placed, http_error
from admin_api.deps import ERRORS, NOT_FOUND, NUMBER, Sip, User, audit, one_of
from pbx.calls.commands import CommandError
from pbx.models import ApiUser
from pbx.router import SPY_PREFIX
from queues.engine import AGENT_STATES, Agent, Queue, QueueError
from queues.service import QueueApp

router = APIRouter(prefix="/api", tags=["queues"])

SUPERVISING = ("admin", "supervisor")
MONITOR_KEYS = {"listen": "4", "whisper": "5", "barge": "6"}
Number = Annotated[str, Path(pattern=NUMBER)]
CHANGES = {**NOT_FOUND, 409: {"description": "the agent is in another state already "
                                             "(logged in, logged out, paused, not paused)"}}


def queue_app(request: Request) -> QueueApp:
    queues = getattr(request.app.state, "queues", None)
    if queues is None:
        raise HTTPException(503, "queues are not available on this node")
    return queues  # type: ignore[no-any-return]


Queues = Annotated[QueueApp, Depends(queue_app)]


class AgentOut(BaseModel):
    extension: str
    state: str = Field(description=", ".join(AGENT_STATES))
    pause_reason: str | None
    queues: list[str]
    wrap_up_left: float | None = Field(None, description="seconds of wrap-up left, in wrap_up")


class MemberOut(AgentOut):
    penalty: int


class CallerOut(BaseModel):
    call_id: str
    number: str
    position: int
    priority: int
    waiting: float = Field(description="seconds since they joined")
    callback: bool = Field(description="waiting on hook for a callback")
    ringing: list[str] = Field(description="agents rung for them now")


class QueueOut(BaseModel):
    number: str
    name: str
    strategy: str
    waiting: int
    agents: int = Field(description="members logged in")
    estimated_wait: float = Field(description="seconds a new caller may expect")


class QueueDetail(QueueOut):
    settings: dict[str, object]
    members: list[MemberOut]
    callers: list[CallerOut]


class MonitorIn(BaseModel):
    mode: str = Field(pattern=one_of(tuple(MONITOR_KEYS)), description="listen, whisper, barge")
    extension: str | None = Field(default=None, pattern=NUMBER,
                                  description="the supervisor's phone; by default your own")


class PauseIn(BaseModel):
    reason: str = Field("break", min_length=1, max_length=80,
                        description="lunch, admin, training, …")


def _agent_out(queues: QueueApp, agent: Agent) -> AgentOut:
    now = queues.clock.now()
    state = agent.state(now)
    return AgentOut(extension=agent.extension, state=state, pause_reason=agent.pause_reason,
                    queues=list(queues.acd.queues_of(agent)),
                    wrap_up_left=round(agent.wrap_until - now, 1) if state == "wrap_up" else None)


def _summary(queues: QueueApp, queue: Queue) -> QueueOut:
    settings = queue.settings
    return QueueOut(number=settings.number, name=settings.name, strategy=settings.strategy,
                    waiting=len(queue.callers),
                    agents=sum(a.logged_in for a in queues.acd.agents_of(queue)),
                    estimated_wait=queues.acd.estimated_wait(queue))


@router.get("/queues", response_model=list[QueueOut], responses=ERRORS)
async def list_queues(user: User, queues: Queues) -> list[QueueOut]:
    """The organisation's queues with callers waiting and agents logged in."""
    queues.sync()
    return [_summary(queues, q) for (org, _), q in sorted(queues.acd.queues.items())
            if org == user.organisation_id]


def _queue(queues: QueueApp, user: ApiUser, number: str) -> Queue:
    queues.sync()
    try:
        return queues.acd.queue(user.organisation_id, number)
    except QueueError as refused:
        raise HTTPException(refused.status, refused.reason) from None


@router.get("/queues/{number}", response_model=QueueDetail, responses=NOT_FOUND)
async def get_queue(number: Number, user: User, queues: Queues) -> QueueDetail:
    """A queue's settings, its members (penalty, state) and its callers in order."""
    queue = _queue(queues, user, number)
    now = queues.clock.now()
    callers = [CallerOut(call_id=c.call_id, number=c.number, position=i, priority=c.priority,
                         waiting=now - c.joined_at, callback=bool(c.callback),
                         ringing=sorted(c.ringing))
               for i, c in enumerate(queue.callers, 1)]
    return QueueDetail(**_summary(queues, queue).model_dump(),
                       settings=queue.settings.model_dump(by_alias=True),
                       members=_members(queues, queue), callers=callers)


def _members(queues: QueueApp, queue: Queue) -> list[MemberOut]:
    penalty = queue.settings.penalties
    return [MemberOut(**_agent_out(queues, agent).model_dump(), penalty=penalty[agent.extension])
            for agent in queues.acd.agents_of(queue)]


@router.get("/queues/{number}/members", response_model=list[MemberOut], responses=NOT_FOUND)
async def queue_members(number: Number, user: User, queues: Queues) -> list[MemberOut]:
    return _members(queues, _queue(queues, user, number))


def _may(user: ApiUser, extension: str) -> None:
    if user.role not in SUPERVISING and user.extension != extension:
        raise HTTPException(403, f"role {user.role} may change only its own extension's "
                                 "agent state")


@router.get("/agents", response_model=list[AgentOut], responses=ERRORS)
async def list_agents(user: User, queues: Queues) -> list[AgentOut]:
    """Every agent of the organisation's queues (an agent: only themself)."""
    queues.sync()
    return [_agent_out(queues, agent) for (org, ext), agent in sorted(queues.acd.agents.items())
            if org == user.organisation_id and queues.acd.queues_of(agent)
            and (user.role in SUPERVISING or ext == user.extension)]


@router.get("/agents/{extension}", response_model=AgentOut, responses=NOT_FOUND)
async def get_agent(extension: Number, user: User, queues: Queues) -> AgentOut:
    _may(user, extension)
    return _agent_out(queues, _agent(queues, user, extension))


def _agent(queues: QueueApp, user: ApiUser, extension: str) -> Agent:
    queues.sync()
    try:
        return queues.acd.agent(user.organisation_id, extension)
    except QueueError as refused:
        raise HTTPException(refused.status, refused.reason) from None


async def _change(queues: QueueApp, sip: Sip, user: ApiUser, extension: str, action: str,
                  reason: str = "") -> AgentOut:
    _may(user, extension)
    before = _agent_out(queues, _agent(queues, user, extension)).model_dump()
    try:
        agent = queues.set_agent(user.organisation_id, extension, action, reason)
    except QueueError as refused:
        raise HTTPException(refused.status, refused.reason) from None
    after = _agent_out(queues, agent)

    def write() -> None:
        with Session(sip.store.engine) as db:
            audit(db, user, f"agent.{action}", extension, before, after.model_dump())
            db.commit()

    await asyncio.to_thread(write)
    return after


@router.post("/agents/{extension}/login", response_model=AgentOut, responses=CHANGES)
async def login(extension: Number, user: User, queues: Queues, sip: Sip) -> AgentOut:
    """Into distribution in every queue the extension is a member of."""
    return await _change(queues, sip, user, extension, "login")


@router.post("/agents/{extension}/logout", response_model=AgentOut, responses=CHANGES)
async def logout(extension: Number, user: User, queues: Queues, sip: Sip) -> AgentOut:
    """Out of distribution (a call in progress goes on)."""
    return await _change(queues, sip, user, extension, "logout")


@router.post("/agents/{extension}/pause", response_model=AgentOut, responses=CHANGES)
async def pause(extension: Number, user: User, queues: Queues, sip: Sip,
                body: PauseIn | None = None) -> AgentOut:
    """Out of distribution with a reason (no body: a break) until unpaused."""
    return await _change(queues, sip, user, extension, "pause", (body or PauseIn()).reason)


@router.post("/agents/{extension}/unpause", response_model=AgentOut, responses=CHANGES)
async def unpause(extension: Number, user: User, queues: Queues, sip: Sip) -> AgentOut:
    return await _change(queues, sip, user, extension, "unpause")


@router.post("/agents/{extension}/monitor", response_model=Placed, status_code=201, responses={
    **NOT_FOUND, 409: {"description": "the supervisor has no phone registered"}})
async def monitor(extension: Number, body: MonitorIn, user: User, queues: Queues, sip: Sip,
                  commands: Commands) -> Placed:
    """Ring the supervisor's phones; answered, they listen, whisper or barge on
    the agent's call (keys 4, 5, 6 switch during the call)."""
    if user.role not in SUPERVISING:
        raise HTTPException(403, f"role {user.role} may not listen in")
    _agent(queues, user, extension)
    own = body.extension or user.extension
    if not own:
        raise HTTPException(422, "you have no extension: give the phone to ring as extension")
    try:
        call = commands.click_to_call(user.organisation_id, own,
                                      f"{SPY_PREFIX}{extension}*{MONITOR_KEYS[body.mode]}")
    except CommandError as exc:
        raise http_error(exc) from None

    def write() -> None:
        with Session(sip.store.engine) as db:
            audit(db, user, f"agent.{body.mode}", extension, None, {"from": own})
            db.commit()

    await asyncio.to_thread(write)
    return Placed(call_id=call.id)
