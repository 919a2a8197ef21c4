"""Conference rooms in use: who is in them, and calling someone into one."""

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from admin_api.deps import Sip

router = APIRouter(prefix="/api", tags=["conferences"])


class Invitation(BaseModel):
    number: str = Field(pattern=r"^[0-9A-Za-z_.+*#-]{1,40}$", description="extension to call")


@router.get("/conferences")
async def conferences(sip: Sip) -> list[dict[str, object]]:
    """The conference rooms in use and who is in them."""
    return [
        {
            "room": room.name,
            "locked": room.locked,
            "recording": room.recorder is not None,
            "participants": [
                {"leg": m.port.leg.label, "muted": m.muted, "moderator": m.moderator}
                for m in room.members
            ],
        }
        for room in sip.engine.rooms.values()
        if not room.name.startswith(("lobby-", "moh-", "call-"))
    ]


@router.post("/conferences/{room}/invite", status_code=202,
             responses={404: {"description": "no such conference room"}})
async def invite(room: str, body: Invitation, sip: Sip) -> dict[str, str]:
    """Call a number out of a conference room; it joins when it answers.

    ``async``: it runs on the event loop the SIP side lives on, not in a thread.
    """
    if sip.b2bua is None or sip.conference(room) is None:
        raise HTTPException(404, f"no conference room {room}")
    call = sip.b2bua.invite_to_room(room, body.number)
    return {"call_id": call.id}
