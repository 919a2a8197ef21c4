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
from admin_api.security import new_sip_secret
from pbx.models import Extension

router = APIRouter(prefix="/api", tags=["extensions"])


class ExtensionIn(BaseModel):
    number: str = Field(pattern=NUMBER)
    display_name: str = Field(default="", max_length=200)
    mailbox: str = Field(default="", max_length=40)


class ExtensionPatch(BaseModel):
    display_name: str | None = Field(default=None, max_length=200)
    dnd: bool | None = None
    forward_always: str | None = Field(default=None, pattern=TARGET)
    forward_busy: str | None = Field(default=None, pattern=TARGET)
    forward_noanswer: str | None = Field(default=None, pattern=TARGET)
    ring_timeout: int | None = Field(default=None, ge=5, le=600)
    record: bool | None = None


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
             responses={**ERRORS, 409: {"description": "number taken"}})
def create_extension(body: ExtensionIn, user: User, db: Db, sip: Sip) -> ExtensionCreated:
    require(user, "admin")
    if db.exec(select(Extension).where(Extension.organisation_id == user.organisation_id,
                                       Extension.number == body.number)).first():
        raise HTTPException(409, f"extension {body.number} exists")
    secret = new_sip_secret()
    ext = Extension(organisation_id=user.organisation_id, number=body.number, secret=secret,
                    display_name=body.display_name, mailbox=body.mailbox)
    db.add(ext)
    audit(db, user, "extension.create", body.number, None, shown(ext).model_dump())
    db.commit()
    sip.directory.reload()  # phones can register with it at once
    return ExtensionCreated(**shown(ext).model_dump(), secret=secret)


@router.patch("/extensions/{number}", response_model=ExtensionOut, responses=NOT_FOUND)
def update_extension(number: str, body: ExtensionPatch, user: User, db: Db, sip: Sip) -> ExtensionOut:
    require(user, "admin")
    ext = own_extension(db, user, number)
    before = shown(ext).model_dump()
    for name, value in body.model_dump(exclude_none=True).items():
        setattr(ext, name, value)
    db.add(ext)
    audit(db, user, "extension.update", number, before, shown(ext).model_dump())
    db.commit()
    sip.directory.reload()  # the next call sees it
    return shown(ext)


@router.delete("/extensions/{number}", status_code=204, responses=NOT_FOUND)
def delete_extension(number: str, user: User, db: Db, sip: Sip) -> Response:
    require(user, "admin")
    ext = own_extension(db, user, number)
    audit(db, user, "extension.delete", number, shown(ext).model_dump(), None)
    db.delete(ext)
    db.commit()
    sip.directory.reload()  # its call records stay
    sip.end_calls_of(user.organisation_id, number)
    return Response(status_code=204)
