"""Conference rooms in use: who is in them, and calling someone into one."""

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from admin_api.deps import ERRORS, Sip, User, require

router = APIRouter(prefix="/api", tags=["conferences"])


class Invitation(BaseModel):
    number: str = Field(pattern=r"^[0-9A-Za-z_.+*#-]{1,40}$", description="extension to call")


@router.get("/conferences", responses=ERRORS)
async def conferences(sip: Sip, user: User) -> list[dict[str, object]]:
    """The organisation's conference rooms in use and who is in them."""
    tenant = sip.directory.tenants.get(user.organisation_id)
    if tenant is None:
        return []
    suffix = tenant.room_key("")  # "" in the default organisation, else "@domain"
    return [
        {
            "room": room.name.removesuffix(suffix),
            "locked": room.locked,
            "recording": room.recorder is not None,
            "participants": [
                {"leg": m.port.leg.label, "muted": m.muted, "moderator": m.moderator}
                for m in room.members
            ],
        }
        for room in sip.engine.rooms.values()
        if not room.name.startswith(("lobby-", "moh-", "call-"))
        and ("@" in room.name) == bool(suffix) and room.name.endswith(suffix)
    ]


@router.post("/conferences/{room}/invite", status_code=202,
             responses={**ERRORS, 404: {"description": "no such conference room"}})
async def invite(room: str, body: Invitation, sip: Sip, user: User) -> dict[str, str]:
    """Call a number out of a conference room; it joins when it answers.

    ``async``: it runs on the event loop the SIP side lives on, not in a thread.
    """
    require(user, "admin", "supervisor")
    tenant = sip.directory.tenants.get(user.organisation_id)
    if sip.b2bua is None or tenant is None or sip.conference(tenant, room) is None:
        raise HTTPException(404, f"no conference room {room}")
    call = sip.b2bua.invite_to_room(tenant, room, body.number)
    return {"call_id": call.id}
