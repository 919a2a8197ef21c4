"""Shared mailboxes (Telavox "gemensam röstbrevlåda"): a mailbox with a number
of its own in the dial plan and member extensions, who all list and hear its
messages and whose message-waiting lamps count them.

A switchboard service, so the plan counts it (admin_api.services); its
number must be free (409).  It is deleted only once it holds no messages
(409 names how many): nobody's voicemail is lost by a cleanup.  Members'
lamps follow every change of who is a member.
"""

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, Field
from sqlmodel import Session, col, func, select

from admin_api.deps import ERRORS, NOT_FOUND, NUMBER, Db, Offset, Page, Sip, User, require
from admin_api.services import (
    IN_USE, OVER_PLAN, check_plan, delete_row, own_row, refuse_taken, save_row,
)
from pbx.addresses import EmailAddresses
from pbx.models import ApiUser, Extension, MailboxSettings, SharedMailbox, Voicemail
from pbx.server import SipServer
from pbx.voicemail import greetings_of, mailbox_of, members

router = APIRouter(prefix="/api", tags=["shared mailboxes"])

Member = Annotated[str, Field(pattern=NUMBER)]
INVALID = {422: {"description": "invalid fields or unknown members"}}


class SharedMailboxFields(BaseModel):
    """What a shared mailbox is besides its number (a PATCH sends any of them)."""

    name: str = Field(default="", max_length=200, description="what callers and members hear "
                                                              "of it: record its name greeting")
    members: list[Member] = Field(default_factory=list, max_length=100,
                                  description="extensions that share it")
    email: EmailAddresses = Field(default="", description="voicemail-to-email recipients: "
                                  "a@x, b@y (each checked: 422 with why)")


class SharedMailboxIn(SharedMailboxFields):
    number: str = Field(pattern=NUMBER)


class SharedMailboxOut(BaseModel):
    number: str
    name: str
    members: list[str]
    email: str


class SharedMailboxPage(Page):
    items: list[SharedMailboxOut]


def shown(box: SharedMailbox) -> SharedMailboxOut:
    return SharedMailboxOut(number=box.number, name=box.name, members=members(box),
                            email=box.email)


def _check_members(db: Session, user: ApiUser, listed: list[str]) -> None:
    """Members are extensions of the organisation, each once (else 422)."""
    problem = ""
    if len(set(listed)) != len(listed):
        problem = "an extension is listed twice"
    else:
        known = set(db.exec(select(Extension.number).where(
            Extension.organisation_id == user.organisation_id,
            col(Extension.number).in_(listed))).all())
        unknown = [m for m in listed if m not in known]
        if unknown:
            problem = f"unknown extensions: {', '.join(unknown)}"
    if problem:
        raise HTTPException(422, [{"loc": ["body", "members"], "msg": problem,
                                   "type": "value_error"}])


def _lamps_follow(db: Session, sip: SipServer, user: ApiUser, number: str,
                  extensions: set[str]) -> None:
    """Members joined or left: their lamps count the shared mailbox, or stop."""
    sip.mailbox_changed(user.organisation_id, number)
    for ext in db.exec(select(Extension).where(Extension.organisation_id == user.organisation_id,
                                               col(Extension.number).in_(extensions))):
        sip.mailbox_changed(user.organisation_id, mailbox_of(ext))


@router.get("/sharedmailboxes", response_model=SharedMailboxPage, responses=ERRORS)
def list_shared_mailboxes(
    user: User, db: Db, limit: Annotated[int, Query(ge=1, le=500)] = 100, offset: Offset = 0,
) -> SharedMailboxPage:
    scope = SharedMailbox.organisation_id == user.organisation_id
    total = db.exec(select(func.count()).select_from(SharedMailbox).where(scope)).one()
    rows = db.exec(select(SharedMailbox).where(scope).order_by(col(SharedMailbox.number))
                   .offset(offset).limit(limit)).all()
    return SharedMailboxPage(total=total, limit=limit, offset=offset,
                             items=[shown(b) for b in rows])


@router.get("/sharedmailboxes/{number}", response_model=SharedMailboxOut, responses=NOT_FOUND)
def get_shared_mailbox(number: str, user: User, db: Db) -> SharedMailboxOut:
    return shown(own_row(db, user, "sharedmailbox", number))


@router.post("/sharedmailboxes", response_model=SharedMailboxOut, status_code=201,
             responses={**ERRORS, **OVER_PLAN, **INVALID})
def create_shared_mailbox(body: SharedMailboxIn, user: User, db: Db,
                          sip: Sip) -> SharedMailboxOut:
    require(user, "admin")
    refuse_taken(db, sip, user.organisation_id, body.number)
    _check_members(db, user, body.members)
    check_plan(db, user.organisation_id)
    box = SharedMailbox(organisation_id=user.organisation_id, number=body.number,
                        name=body.name, members=",".join(body.members), email=body.email)
    save_row(db, user, sip, "sharedmailbox", box, None, shown(box).model_dump())
    _lamps_follow(db, sip, user, body.number, set(body.members))
    return shown(box)


@router.patch("/sharedmailboxes/{number}", response_model=SharedMailboxOut,
              responses={**NOT_FOUND, **INVALID})
def update_shared_mailbox(number: str, body: SharedMailboxFields, user: User, db: Db,
                          sip: Sip) -> SharedMailboxOut:
    require(user, "admin")
    box = own_row(db, user, "sharedmailbox", number)
    changes = body.model_dump(exclude_unset=True)
    if "members" in changes:
        _check_members(db, user, changes["members"])
    before = shown(box).model_dump()
    for name, value in changes.items():
        setattr(box, name, ",".join(value) if name == "members" else value)
    after = shown(box).model_dump()
    save_row(db, user, sip, "sharedmailbox", box, before, after)
    _lamps_follow(db, sip, user, number, set(before["members"]) ^ set(after["members"]))
    return SharedMailboxOut(**after)


@router.delete("/sharedmailboxes/{number}", status_code=204,
               responses={**NOT_FOUND, **IN_USE})
def delete_shared_mailbox(number: str, user: User, db: Db, sip: Sip) -> Response:
    """Remove a shared mailbox that holds no messages and nothing leads to, with
    its greetings and settings."""
    require(user, "admin")
    box = own_row(db, user, "sharedmailbox", number)
    held = db.exec(select(func.count()).select_from(Voicemail).where(
        Voicemail.organisation_id == user.organisation_id, Voicemail.mailbox == number)).one()
    if held:
        raise HTTPException(409, f"shared mailbox {number} holds {held} messages; delete them "
                                 "first")
    former = set(members(box))
    greetings = greetings_of(db, user.organisation_id, number)
    for row in [*greetings, *db.exec(select(MailboxSettings).where(
            MailboxSettings.organisation_id == user.organisation_id,
            MailboxSettings.mailbox == number))]:
        db.delete(row)  # committed with the mailbox, or not at all
    delete_row(db, user, sip, "sharedmailbox", number, shown)
    for greeting in greetings:
        Path(greeting.path).unlink(missing_ok=True)
    _lamps_follow(db, sip, user, number, former)
    return Response(status_code=204)
