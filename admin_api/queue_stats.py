"""Queue statistics over the API (admins and supervisors): the live figures of
every queue and agent, history by hour/day/week/month as JSON or CSV, the raw
stored events for BI tools (Power BI reads CSV and JSON over HTTP), and a
WebSocket that pushes each queue event with the snapshots it changed.

A queue or agent is known once it has an event (live or stored) or the engine
announced it; anything else is 404 with the reason.
"""

import asyncio
import json
import logging
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, WebSocket
from fastapi import WebSocketDisconnect
from sqlmodel import Session

from admin_api.deps import ERRORS, NUMBER, Limit, Offset, User, find_token, one_of, require
from pbx.models import ApiUser
from queues.history import (
    PERIODS, QueueHistory, agent_history, as_csv, buckets, event_of, queue_history, raw,
)
from queues.live import QueueStatistics, Update
from queues.stats import Settings

log = logging.getLogger("admin_api")
router = APIRouter(prefix="/api/queue-stats", tags=["queue statistics"])

SUPERVISING = ("admin", "supervisor")
UNKNOWN = {**ERRORS, 404: {"description": "no such queue or agent"},
           422: {"description": "a bad period or time range, with the reason"}}
CSV = {**UNKNOWN, 200: {"content": {"text/csv": {}}}}
DEFAULT_SPAN = {"hour": 86400.0, "day": 31 * 86400.0, "week": 12 * 7 * 86400.0,
                "month": 366 * 86400.0}
RAW_COLUMNS = ["id", "time", "type", "organisation", "queue", "agent", "call_id", "at", "caller",
               "position", "priority", "wait", "talk", "hangup_by", "destination", "reason",
               "number", "state", "queues", "score"]
Name = Annotated[str, Path(pattern=NUMBER)]
Period = Annotated[str, Query(pattern=one_of(PERIODS), description="hour, day, week or month")]
Since = Annotated[float | None, Query(ge=0, le=1e11, description="Unix time, inclusive; by "
                                      "default a day of hours, a month of days, 12 weeks, "
                                      "a year of months back")]
Until = Annotated[float | None, Query(ge=0, le=1e11, description="Unix time, exclusive; "
                                      "by default now")]


def queue_statistics(request: Request) -> QueueStatistics:
    stats = getattr(request.app.state, "queue_stats", None)
    if stats is None:
        raise HTTPException(503, "queue statistics are not running on this node")
    return stats  # type: ignore[no-any-return]


Stats = Annotated[QueueStatistics, Depends(queue_statistics)]


def supervisor(user: User) -> ApiUser:
    require(user, *SUPERVISING)
    return user


Supervisor = Annotated[ApiUser, Depends(supervisor)]


def history_of(request: Request) -> QueueHistory:
    return QueueHistory(request.app.state.sip.store.engine)


History = Annotated[QueueHistory, Depends(history_of)]


def span(period: str, since: float | None, until: float | None) -> list[tuple[float, float]]:
    """The buckets asked for, or 422 with the reason."""
    end = time.time() if until is None else until
    start = end - DEFAULT_SPAN[period] if since is None else since
    try:
        return buckets(start, end, period)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


def known_queue(stats: QueueStatistics, history: QueueHistory, user: ApiUser, queue: str) -> None:
    if not stats.live.known(user.organisation_id, queue) and \
            not history.has_queue(user.organisation_id, queue):
        raise HTTPException(404, f"no queue {queue}: it has no events and the engine did not "
                                 "announce it")


def known_agent(stats: QueueStatistics, history: QueueHistory, user: ApiUser, agent: str) -> None:
    if (user.organisation_id, agent) not in stats.live.agents and \
            not history.has_agent(user.organisation_id, agent):
        raise HTTPException(404, f"no queue agent {agent}: it has no queue events")


def settings_of(stats: QueueStatistics, organisation: int, queue: str) -> Settings:
    live = stats.live.queues.get((organisation, queue))
    return live.settings if live is not None else stats.live.defaults


def csv_response(rows: list[dict[str, Any]], name: str,
                 columns: list[str] | None = None) -> Response:
    return Response(as_csv(rows, columns), media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


# ------------------------------------------------------------------ live

@router.get("", responses=ERRORS)
async def live_statistics(user: Supervisor, stats: Stats) -> dict[str, Any]:
    """Every queue's and agent's live figures (what the wallboard starts from)."""
    return stats.snapshot(user.organisation_id)


# ------------------------------------------------------------------ raw events

def raw_rows(user: ApiUser, history: QueueHistory, since: float | None, until: float | None,
             queue: str | None, agent: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
    end = time.time() if until is None else until
    start = end - 86400.0 if since is None else since
    if end <= start:
        raise HTTPException(422, "since must come before until")
    return [raw(row) for row in history.rows(user.organisation_id, start, end, queue=queue,
                                             agent=agent, limit=limit, offset=offset)]


@router.get("/events", responses=UNKNOWN)
def raw_events(user: Supervisor, history: History, since: Since = None, until: Until = None,
               queue: Annotated[str | None, Query(pattern=NUMBER)] = None,
               agent: Annotated[str | None, Query(pattern=NUMBER)] = None,
               limit: Limit = 1000, offset: Offset = 0) -> list[dict[str, Any]]:
    """The stored queue events, oldest first (by default the last 24 hours), each
    with all its fields as published."""
    return raw_rows(user, history, since, until, queue, agent, limit, offset)


@router.get("/events.csv", responses=CSV)
def raw_events_csv(user: Supervisor, history: History, since: Since = None, until: Until = None,
                   queue: Annotated[str | None, Query(pattern=NUMBER)] = None,
                   agent: Annotated[str | None, Query(pattern=NUMBER)] = None,
                   limit: Annotated[int, Query(ge=1, le=100_000)] = 100_000,
                   offset: Offset = 0) -> Response:
    """The same as CSV: one column per event field across all event types."""
    rows = raw_rows(user, history, since, until, queue, agent, limit, offset)
    return csv_response([{**row, "queues": " ".join(row.get("queues", ()))} for row in rows],
                        "queue-events", RAW_COLUMNS)


# ------------------------------------------------------------------ agents

@router.get("/agents/{agent}", responses=UNKNOWN)
async def agent_live(agent: Name, user: Supervisor, stats: Stats,
                     history: History) -> dict[str, Any]:
    """One agent now: state and time in it, today's calls, talk and pause time."""
    await asyncio.to_thread(known_agent, stats, history, user, agent)
    return stats.live.agent_snapshot(user.organisation_id, agent, time.time())


def agent_rows(agent: str, user: ApiUser, stats: QueueStatistics, history: QueueHistory,
               period: str, since: float | None, until: float | None) -> list[dict[str, Any]]:
    known_agent(stats, history, user, agent)
    spans = span(period, since, until)
    org = user.organisation_id
    events = [event_of(row) for row in history.rows(org, spans[0][0], spans[-1][1], agent=agent)]
    return agent_history(events, spans, history.state_before(org, agent, spans[0][0]),
                         time.time())


@router.get("/agents/{agent}/history", responses=UNKNOWN)
def agent_history_json(agent: Name, user: Supervisor, stats: Stats, history: History,
                       period: Period = "day", since: Since = None,
                       until: Until = None) -> list[dict[str, Any]]:
    """An agent's calls, talk, pause time and survey per period."""
    return agent_rows(agent, user, stats, history, period, since, until)


@router.get("/agents/{agent}/history.csv", responses=CSV)
def agent_history_csv(agent: Name, user: Supervisor, stats: Stats, history: History,
                      period: Period = "day", since: Since = None,
                      until: Until = None) -> Response:
    return csv_response(agent_rows(agent, user, stats, history, period, since, until),
                        f"agent-{agent}-{period}")


# ------------------------------------------------------------------ feed

def queued(first: Update, updates: asyncio.Queue[Update]) -> list[Update]:
    """``first`` and every update already queued behind it, to send in one go.
    A loaded event loop gives the feed few turns; waiting afresh for each
    update took several turns apiece, and with 1,000 callers on hold the feed
    fell seconds behind the events (bench/queues.py)."""
    batch = [first]
    while not updates.empty():
        batch.append(updates.get_nowait())
    return batch


@router.websocket("/feed")
async def feed(websocket: WebSocket, token: str = "") -> None:
    """First every queue and agent (``{"type": "snapshot", ...}``), then per queue
    event ``{"type": "update", "event": …, "queues": […], "agents": […]}``.
    The token comes as a query parameter (browsers cannot set headers here)."""
    sip = websocket.app.state.sip
    stats: QueueStatistics | None = getattr(websocket.app.state, "queue_stats", None)
    try:
        with Session(sip.store.engine) as db:
            user = db.get(ApiUser, find_token(db, token).user_id)
    except HTTPException as exc:
        await websocket.close(code=4401, reason=str(exc.detail))
        return
    if user is None or user.role not in SUPERVISING or stats is None:
        await websocket.close(code=4403, reason="admins and supervisors only")
        return
    await websocket.accept()
    updates: asyncio.Queue[Update] = asyncio.Queue(1000)

    def listen(update: Update) -> None:
        if update.organisation == user.organisation_id:
            if updates.full():
                updates.get_nowait()  # a stalled browser loses the oldest, nobody else
            updates.put_nowait(update)

    stats.listeners.append(listen)
    closed = asyncio.ensure_future(websocket.receive())
    try:
        await websocket.send_json({"type": "snapshot", **stats.snapshot(user.organisation_id)})
        while True:
            getting = asyncio.ensure_future(updates.get())
            done, _ = await asyncio.wait({getting, closed}, return_when=asyncio.FIRST_COMPLETED)
            if closed in done:
                if closed.result()["type"] == "websocket.disconnect":
                    getting.cancel()
                    break
                closed = asyncio.ensure_future(websocket.receive())
            if getting not in done:
                getting.cancel()
                continue
            for update in queued(getting.result(), updates):
                await websocket.send_text(json.dumps({
                    "type": "update", "event": update.event, "queues": update.queues,
                    "agents": update.agents}))
    except WebSocketDisconnect:
        pass
    finally:
        stats.listeners.remove(listen)
        closed.cancel()


# ------------------------------------------------------------------ queues

@router.get("/{queue}", responses=UNKNOWN)
async def queue_live(queue: Name, user: Supervisor, stats: Stats,
                     history: History) -> dict[str, Any]:
    """One queue now (runs on the event loop, where the statistics change)."""
    await asyncio.to_thread(known_queue, stats, history, user, queue)
    return stats.live.queue_snapshot(user.organisation_id, queue, time.time())


def queue_rows(queue: str, user: ApiUser, stats: QueueStatistics, history: QueueHistory,
               period: str, since: float | None, until: float | None) -> list[dict[str, Any]]:
    known_queue(stats, history, user, queue)
    spans = span(period, since, until)
    org = user.organisation_id
    start, end = spans[0][0], spans[-1][1]
    events = [event_of(row) for row in history.rows(org, start, end, queue=queue)]
    return queue_history([*events, *history.agent_states(org, start, end)], spans, period,
                         settings_of(stats, org, queue), queue, history.states_before(org, start),
                         time.time())


@router.get("/{queue}/history", responses=UNKNOWN)
def queue_history_json(queue: Name, user: Supervisor, stats: Stats, history: History,
                       period: Period = "day", since: Since = None,
                       until: Until = None) -> list[dict[str, Any]]:
    """A queue's figures per period (hours with Erlang C staffing advice)."""
    return queue_rows(queue, user, stats, history, period, since, until)


@router.get("/{queue}/history.csv", responses=CSV)
def queue_history_csv(queue: Name, user: Supervisor, stats: Stats, history: History,
                      period: Period = "day", since: Since = None,
                      until: Until = None) -> Response:
    return csv_response(queue_rows(queue, user, stats, history, period, since, until),
                        f"queue-{queue}-{period}")
