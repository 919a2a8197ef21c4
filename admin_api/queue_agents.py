"""Supervisors steer queue agents (the wallboard's buttons): log in and out,
pause with a reason, unpause — through the queue engine's
:class:`~queues.control.AgentControl` — and listen, whisper or barge on an
agent's call: click-to-call rings the supervisor's own phones and, once
answered, dials ``*55`` + agent + ``*4``/``*5``/``*6`` (ivr/spy.py).

Admins and supervisors act on any agent of their organisation; an agent may
log itself in or out and pause or unpause itself.  Every change is audited.
"""

import asyncio
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from pydantic import BaseModel, Field
from sqlmodel import Session

from admin_api.call_control import Commands, Placed, http_error
from admin_api.deps import ERRORS, NUMBER, Sip, User, audit, one_of
from pbx.calls.commands import CommandError
from pbx.models import ApiUser
from pbx.router import SPY_PREFIX
from pbx.server import SipServer
from queues.control import PAUSE_REASONS, AgentControl, ControlError

router = APIRouter(prefix="/api/queue-agents", tags=["queue agents"])

SUPERVISING = ("admin", "supervisor")
MONITOR_KEYS = {"listen": "4", "whisper": "5", "barge": "6"}
Agent = Annotated[str, Path(pattern=NUMBER)]
ACTS = {**ERRORS, 404: {"description": "no such agent or queue"},
        409: {"description": "the agent's state does not allow it"},
        503: {"description": "no queue engine runs on this node"}}


class LoginIn(BaseModel):
    queues: list[Annotated[str, Field(pattern=NUMBER)]] = Field(
        default_factory=list, max_length=100,
        description="the queues to log into; empty: all the agent is a member of")


class PauseIn(BaseModel):
    reason: str = Field(default="other", pattern=one_of(PAUSE_REASONS))


class MonitorIn(BaseModel):
    mode: str = Field(pattern=one_of(tuple(MONITOR_KEYS)), description="listen, whisper, barge")
    extension: str | None = Field(default=None, pattern=NUMBER,
                                  description="the supervisor's phone; by default your own")


class Done(BaseModel):
    agent: str
    action: str


def agent_control(request: Request) -> AgentControl:
    control = getattr(request.app.state, "agent_control", None)
    if control is None:
        raise HTTPException(503, "no queue engine runs on this node")
    return control  # type: ignore[no-any-return]


Control = Annotated[AgentControl, Depends(agent_control)]


def supervising(user: User) -> ApiUser:
    if user.role not in SUPERVISING:
        raise HTTPException(403, f"role {user.role} may not listen in")
    return user


Supervising = Annotated[ApiUser, Depends(supervising)]


def may_steer(user: ApiUser, agent: str) -> None:
    if user.role not in SUPERVISING and agent != user.extension:
        raise HTTPException(403, f"role {user.role} may act on its own extension only")


def known_extension(sip: SipServer, user: ApiUser, agent: str) -> None:
    tenant = sip.directory.tenants.get(user.organisation_id)
    if tenant is None or agent not in tenant.extensions:
        raise HTTPException(404, f"no extension {agent}")


def audited(sip: SipServer, user: ApiUser, action: str, agent: str, detail: object) -> None:
    with Session(sip.store.engine) as db:
        audit(db, user, action, f"agent:{agent}", None, detail)
        db.commit()


async def act(sip: SipServer, user: ApiUser, agent: str, action: str, detail: object,
              command: Callable[[], None]) -> Done:
    """Run an engine command (on the event loop, where the engine lives), then audit it."""
    may_steer(user, agent)
    known_extension(sip, user, agent)
    try:
        command()
    except ControlError as exc:
        raise HTTPException(exc.status, exc.reason) from None
    await asyncio.to_thread(audited, sip, user, f"queue-agent.{action}", agent, detail)
    return Done(agent=agent, action=action)


@router.post("/{agent}/login", response_model=Done, responses=ACTS)
async def log_in(agent: Agent, user: User, sip: Sip, control: Control,
                 body: LoginIn | None = None) -> Done:
    queues = body.queues if body is not None else []
    return await act(sip, user, agent, "login", {"queues": queues},
                     lambda: control.log_in(user.organisation_id, agent, queues))


@router.post("/{agent}/logout", response_model=Done, responses=ACTS)
async def log_out(agent: Agent, user: User, sip: Sip, control: Control) -> Done:
    return await act(sip, user, agent, "logout", None,
                     lambda: control.log_out(user.organisation_id, agent))


@router.post("/{agent}/pause", response_model=Done, responses=ACTS)
async def pause(agent: Agent, user: User, sip: Sip, control: Control,
                body: PauseIn | None = None) -> Done:
    reason = body.reason if body is not None else "other"
    return await act(sip, user, agent, "pause", {"reason": reason},
                     lambda: control.pause(user.organisation_id, agent, reason))


@router.post("/{agent}/unpause", response_model=Done, responses=ACTS)
async def unpause(agent: Agent, user: User, sip: Sip, control: Control) -> Done:
    return await act(sip, user, agent, "unpause", None,
                     lambda: control.unpause(user.organisation_id, agent))


@router.post("/{agent}/monitor", response_model=Placed, status_code=201, responses={
    **ACTS, 409: {"description": "the supervisor has no phone registered"}})
async def monitor(agent: Agent, body: MonitorIn, user: Supervising, sip: Sip,
                  commands: Commands) -> Placed:
    """Ring the supervisor's phones; answered, they listen, whisper or barge on
    the agent's call (keys 4, 5, 6 switch during the call)."""
    known_extension(sip, user, agent)
    own = body.extension or user.extension
    if not own:
        raise HTTPException(422, "you have no extension: give the phone to ring as extension")
    try:
        call = commands.click_to_call(user.organisation_id, own,
                                      f"{SPY_PREFIX}{agent}*{MONITOR_KEYS[body.mode]}")
    except CommandError as exc:
        raise http_error(exc) from None
    await asyncio.to_thread(audited, sip, user, f"queue-agent.{body.mode}", agent,
                            {"from": own})
    return Placed(call_id=call.id)
