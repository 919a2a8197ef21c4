"""Extensions: numbers phones register and are called on.  Changes reach the
SIP side at once (the directory is reloaded) and go to the audit log."""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, Field
from sqlmodel import col, func, select

from admin_api.deps import (
    ERRORS, NOT_FOUND, NUMBER, TARGET, Db, Offset, Page, Sip, User, audit, fields_of,
    own_extension, require,
)
from admin_api.devices import drop_devices_of
from admin_api.numbers import check_caller_id
from admin_api.profiles import forget_extension
from admin_api.security import new_sip_secret
from admin_api.services import referrers, refuse_taken
from pbx.addresses import EmailAddresses
from pbx.config import MEDIA_ENCRYPTION
from pbx.models import ApiUser, Extension, RingGroup, SharedMailbox

router = APIRouter(prefix="/api", tags=["extensions"])
EMAIL = "its voicemail is emailed to these addresses: a@x, b@y (each checked: 422 with why)"


class ExtensionIn(BaseModel):
    number: str = Field(pattern=NUMBER)
    display_name: str = Field(default="", max_length=200)
    mailbox: str = Field(default="", max_length=40)
    email: EmailAddresses = Field(default="", description=EMAIL)


class ExtensionPatch(BaseModel):
    display_name: str | None = Field(default=None, max_length=200)
    dnd: bool | None = None
    forward_always: str | None = Field(default=None, pattern=TARGET)
    forward_busy: str | None = Field(default=None, pattern=TARGET)
    forward_noanswer: str | None = Field(default=None, pattern=TARGET)
    ring_timeout: int | None = Field(default=None, ge=5, le=600)
    record: bool | None = None
    voicemail: bool | None = Field(default=None, description="calls it cannot take go to its "
                                   "mailbox (unless a forward says otherwise)")
    caller_id_number: str | None = Field(default=None, pattern=TARGET,
                                         description="a number of the organisation; empty: none")
    mwi_unsolicited: bool | None = Field(default=None, description="message-waiting NOTIFYs "
                                         "to its phones without a SUBSCRIBE (RFC 3842 §3.3)")
    email: EmailAddresses | None = Field(default=None, description=EMAIL)
    voicemail_delete: bool | None = Field(
        default=None, description="delete a message once emailed; null: as the node's "
        "voicemail_delete")
    media_encryption: str | None = Field(
        default=None, pattern=MEDIA_ENCRYPTION, description="SRTP (SDES) for its phones: off, "
        "optional, required (plain RTP refused with 488); empty: the node's media_encryption")


class ExtensionOut(BaseModel):
    number: str
    display_name: str
    mailbox: str
    dnd: bool
    forward_always: str
    forward_busy: str
    forward_noanswer: str
    ring_timeout: int
    record: bool
    voicemail: bool
    caller_id_number: str
    mwi_unsolicited: bool
    email: str
    voicemail_delete: bool | None
    media_encryption: str


class ExtensionCreated(ExtensionOut):
    secret: str = Field(description="the SIP password; shown this once only")


class ExtensionPage(Page):
    items: list[ExtensionOut]


def shown(ext: Extension) -> ExtensionOut:
    return ExtensionOut(**fields_of(ExtensionOut, ext))


@router.get("/extensions", response_model=ExtensionPage, responses=ERRORS)
def list_extensions(
    user: User, db: Db, limit: Annotated[int, Query(ge=1, le=500)] = 100, offset: Offset = 0,
) -> ExtensionPage:
    scope = Extension.organisation_id == user.organisation_id
    total = db.exec(select(func.count()).select_from(Extension).where(scope)).one()
    rows = db.exec(select(Extension).where(scope).order_by(col(Extension.number))
                   .offset(offset).limit(limit)).all()
    return ExtensionPage(total=total, limit=limit, offset=offset, items=[shown(e) for e in rows])


@router.get("/extensions/{number}", response_model=ExtensionOut, responses=NOT_FOUND)
def get_extension(number: str, user: User, db: Db) -> ExtensionOut:
    return shown(own_extension(db, user, number))


@router.post("/extensions", response_model=ExtensionCreated, status_code=201,
             responses={**ERRORS, 409: {"description": "the number is taken"}})
def create_extension(body: ExtensionIn, user: User, db: Db, sip: Sip) -> ExtensionCreated:
    require(user, "admin")
    refuse_taken(db, sip, user.organisation_id, body.number)
    secret = new_sip_secret()
    ext = Extension(organisation_id=user.organisation_id, number=body.number, secret=secret,
                    display_name=body.display_name, mailbox=body.mailbox, email=body.email)
    db.add(ext)
    audit(db, user, "extension.create", body.number, None, shown(ext).model_dump())
    db.commit()
    sip.directory.reload()  # phones can register with it at once
    return ExtensionCreated(**shown(ext).model_dump(), secret=secret)


@router.patch("/extensions/{number}", response_model=ExtensionOut,
              responses={**NOT_FOUND, 422: {"description": "invalid fields or a caller ID "
                                                          "number the organisation lacks"}})
def update_extension(number: str, body: ExtensionPatch, user: User, db: Db, sip: Sip) -> ExtensionOut:
    require(user, "admin")
    ext = own_extension(db, user, number)
    check_caller_id(db, user, body.caller_id_number or "")
    before = shown(ext).model_dump()
    for name, value in body.model_dump(exclude_none=True).items():
        setattr(ext, name, value)
    if "voicemail_delete" in body.model_fields_set:  # null given: back to the node's setting
        ext.voicemail_delete = body.voicemail_delete
    db.add(ext)
    audit(db, user, "extension.update", number, before, shown(ext).model_dump())
    db.commit()
    sip.directory.reload()  # the next call sees it
    return shown(ext)


@router.delete("/extensions/{number}", status_code=204,
               responses={**NOT_FOUND, 409: {"description": "a number, forward or fallback leads to it"}})
def delete_extension(number: str, user: User, db: Db, sip: Sip) -> Response:
    """Remove an extension: its devices go, it leaves its ring groups and shared
    mailboxes and its user keeps their login without it; refused (409) while a
    number, a forward or a fallback still leads to it."""
    require(user, "admin")
    ext = own_extension(db, user, number)
    pointing = [r for r in referrers(db, user.organisation_id, number) if r != f"extension {number}"]
    if pointing:
        raise HTTPException(409, f"extension {number} is in use by {', '.join(pointing)}")
    audit(db, user, "extension.delete", number, shown(ext).model_dump(), None)
    drop_devices_of(db, user.organisation_id, number)
    org = user.organisation_id
    for group in [*db.exec(select(RingGroup).where(RingGroup.organisation_id == org)),
                  *db.exec(select(SharedMailbox).where(SharedMailbox.organisation_id == org))]:
        members = [m for m in group.members.split(",") if m]
        if number in members:
            group.members = ",".join(m for m in members if m != number)
            db.add(group)
    for owner in db.exec(select(ApiUser).where(ApiUser.organisation_id == user.organisation_id,
                                                ApiUser.extension == number)):
        owner.extension = ""
        db.add(owner)
    forget_extension(db, ext)
    db.delete(ext)
    db.commit()
    sip.directory.reload()  # its call records stay
    sip.unregister(user.organisation_id, number)
    sip.end_calls_of(user.organisation_id, number)
    return Response(status_code=204)
