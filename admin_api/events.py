"""Live events over WebSocket: calls starting, ringing, being answered and
ending, registrations and voicemail changes, as they happen (the wallboard
and the softphone listen here).

Browsers cannot set headers on a WebSocket, so the bearer token comes as the
``token`` query parameter.  Admins and supervisors get every event of their
organisation; agents and users those of their own extension.
"""

import asyncio
import logging

from fastapi import APIRouter, HTTPException, WebSocket, WebSocketDisconnect
from sqlmodel import Session

from admin_api.deps import find_token
from pbx.events import NODE, Event, as_dict
from pbx.models import ApiUser

log = logging.getLogger("admin_api")
router = APIRouter(prefix="/api", tags=["events"])


def concerns(user: ApiUser, event: Event) -> bool:
    """Is ``event`` one ``user`` may see?  Node-wide ones (overload) go to admins."""
    if event.organisation == NODE:
        return user.role == "admin"
    if event.organisation != user.organisation_id:
        return False
    if user.role in ("admin", "supervisor"):
        return True
    mine = user.extension
    return bool(mine) and mine in {getattr(event, name, None)
                                   for name in ("caller", "dialled", "answered_by", "extension",
                                                "mailbox", "agent")}


@router.websocket("/events")
async def events(websocket: WebSocket, token: str = "") -> None:
    sip = websocket.app.state.sip
    try:
        with Session(sip.store.engine) as db:
            user = db.get(ApiUser, find_token(db, token).user_id)
    except HTTPException as exc:
        log.info("event feed refused: %s", exc.detail)
        await websocket.close(code=4401, reason=str(exc.detail))
        return
    if user is None:
        await websocket.close(code=4401, reason="invalid token")
        return
    await websocket.accept()
    subscription = sip.events.queue(1000)
    closed = asyncio.ensure_future(websocket.receive())  # the client going away
    try:
        while True:
            getting = asyncio.ensure_future(subscription.get())
            done, _ = await asyncio.wait({getting, closed}, return_when=asyncio.FIRST_COMPLETED)
            if closed in done:
                if closed.result()["type"] == "websocket.disconnect":
                    getting.cancel()
                    break
                closed = asyncio.ensure_future(websocket.receive())  # ignore what clients say
            if getting not in done:
                getting.cancel()
                continue
            event = getting.result()
            if concerns(user, event):
                await websocket.send_json(as_dict(event))
    except WebSocketDisconnect:
        pass
    finally:
        subscription.close()
        closed.cancel()
