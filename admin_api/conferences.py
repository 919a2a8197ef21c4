"""Conference rooms: the dial-in rooms of the organisation (a switchboard
service the plan counts), the rooms in use with who is in them, and calling
someone into one."""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, Field
from sqlmodel import col, func, select

from admin_api.deps import ERRORS, NOT_FOUND, NUMBER, Db, Offset, Page, Sip, User, require
from admin_api.services import (
    IN_USE, OVER_PLAN, check_plan, delete_row, own_row, refuse_taken, save_row,
)
from ivr.conference import ConferenceApp
from pbx.calls.views import conferences_in_use
from pbx.models import ConferenceRoom

router = APIRouter(prefix="/api", tags=["conferences"])


class Invitation(BaseModel):
    number: str = Field(pattern=r"^[0-9A-Za-z_.+*#-]{1,40}$", description="extension to call")


@router.get("/conferences", responses=ERRORS)
async def conferences(sip: Sip, user: User) -> list[dict[str, object]]:
    """The organisation's conference rooms in use and who is in them."""
    tenant = sip.directory.tenants.get(user.organisation_id)
    if tenant is None:
        return []
    return conferences_in_use(sip.engine, tenant.room_key(""))


@router.post("/conferences/{room}/invite", status_code=202,
             responses={**ERRORS, 404: {"description": "no such conference room"}})
async def invite(room: str, body: Invitation, sip: Sip, user: User) -> dict[str, str]:
    """Call a number out of a conference room; it joins when it answers.

    ``async``: it runs on the event loop the SIP side lives on, not in a thread.
    """
    require(user, "admin", "supervisor")
    app = sip.b2bua.apps.get(ConferenceApp.kind)
    if not isinstance(app, ConferenceApp):
        raise HTTPException(503, "conferences are not available on this node")
    try:
        return {"call_id": app.invite(user.organisation_id, room, body.number)}
    except KeyError:
        raise HTTPException(404, f"no conference room {room}") from None


PIN = r"^[0-9]{0,12}$"


class RoomFields(BaseModel):
    """What a room is besides its number (a PATCH sends any of them)."""

    name: str = Field(default="", max_length=200)
    pin: str = Field(default="", pattern=PIN, description="asked of callers; empty: none")
    moderator_pin: str = Field(default="", pattern=PIN,
                               description="joins as moderator; empty: none")
    record: bool = False


class Room(RoomFields):
    number: str = Field(pattern=NUMBER)


class RoomPage(Page):
    items: list[Room]


def shown_room(room: ConferenceRoom) -> Room:
    return Room(number=room.number, name=room.name, pin=room.pin,
                moderator_pin=room.moderator_pin, record=room.record)


def _refuse_same_pins(pin: str, moderator_pin: str) -> None:
    """A moderator is told apart from a participant by the PIN alone."""
    if moderator_pin and moderator_pin == pin:
        raise HTTPException(422, [{"loc": ["body", "moderator_pin"], "type": "value_error",
                                   "msg": "moderator_pin must differ from pin"}])


@router.get("/conferences/rooms", response_model=RoomPage, responses=ERRORS)
def list_rooms(
    user: User, db: Db, limit: Annotated[int, Query(ge=1, le=500)] = 100, offset: Offset = 0,
) -> RoomPage:
    """The organisation's dial-in rooms with their PINs (admins and supervisors)."""
    require(user, "admin", "supervisor")
    scope = ConferenceRoom.organisation_id == user.organisation_id
    total = db.exec(select(func.count()).select_from(ConferenceRoom).where(scope)).one()
    rows = db.exec(select(ConferenceRoom).where(scope).order_by(col(ConferenceRoom.number))
                   .offset(offset).limit(limit)).all()
    return RoomPage(total=total, limit=limit, offset=offset, items=[shown_room(r) for r in rows])


@router.get("/conferences/rooms/{number}", response_model=Room, responses=NOT_FOUND)
def get_room(number: str, user: User, db: Db) -> Room:
    require(user, "admin", "supervisor")
    return shown_room(own_row(db, user, "conference", number))


@router.post("/conferences/rooms", response_model=Room, status_code=201,
             responses={**ERRORS, **OVER_PLAN})
def create_room(body: Room, user: User, db: Db, sip: Sip) -> Room:
    require(user, "admin")
    _refuse_same_pins(body.pin, body.moderator_pin)
    refuse_taken(db, sip, user.organisation_id, body.number)
    check_plan(db, user.organisation_id)
    room = ConferenceRoom(organisation_id=user.organisation_id, **body.model_dump())
    save_row(db, user, sip, "conference", room, None, shown_room(room).model_dump())
    return shown_room(room)


@router.patch("/conferences/rooms/{number}", response_model=Room, responses=NOT_FOUND)
def update_room(number: str, body: RoomFields, user: User, db: Db, sip: Sip) -> Room:
    require(user, "admin")
    room = own_row(db, user, "conference", number)
    before = shown_room(room).model_dump()
    changes = body.model_dump(exclude_unset=True)
    _refuse_same_pins(changes.get("pin", room.pin),
                      changes.get("moderator_pin", room.moderator_pin))
    for name, value in changes.items():
        setattr(room, name, value)
    save_row(db, user, sip, "conference", room, before, shown_room(room).model_dump())
    return shown_room(room)


@router.delete("/conferences/rooms/{number}", status_code=204,
               responses={**NOT_FOUND, **IN_USE})
def delete_room(number: str, user: User, db: Db, sip: Sip) -> Response:
    delete_row(db, user, sip, "conference", number, shown_room)
    return Response(status_code=204)
