"""Licenses (Telavox model): the organisation buys them and hands them to users.

A license belongs to the organisation, not to a number or a person: it is
assigned to a user, moved to another, frozen (the user keeps it but cannot
register or call), unfrozen, upgraded from fixed to mobile, or terminated
(final).  A user holds at most one live (active or frozen) license.  The SIP
side reads the result from the directory: an extension whose user holds no
active license is ``unlicensed`` and gets 403 on REGISTER and INVITE; what
an active one allows follows its kind (``pbx.rights``).  A free license comes
with no number: it is not given to a user whose extension a number reaches.
"""

import time
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field
from sqlmodel import Session, col, func, select

from admin_api.deps import (
    ERRORS, NOT_FOUND, Db, Limit, Offset, Page, RowId, Sip, User, audit, fields_of, one_of, require,
)
from admin_api.numbers import numbers_reaching
from pbx import rights
from pbx.models import LICENSE_KINDS, LICENSE_STATES, ApiUser, License
from pbx.server import SipServer

router = APIRouter(prefix="/api", tags=["licenses"])

# The state machine, as a table (h11 style): (action, state) -> next state.
# Anything not in it is refused with 409.
TRANSITIONS: dict[tuple[str, str], str] = {
    ("freeze", "active"): "frozen",
    ("unfreeze", "frozen"): "active",
    ("terminate", "active"): "terminated",
    ("terminate", "frozen"): "terminated",
}
UPGRADES = {"fixed": "mobile"}
CONFLICT = {409: {"description": "not allowed in the license's state, or the user holds one"}}
CHANGES = {**NOT_FOUND, **CONFLICT, 422: {"description": "invalid fields or an unknown user"}}


class LicenseIn(BaseModel):
    kind: str = Field(default="fixed", pattern=one_of(LICENSE_KINDS))
    user_id: int | None = Field(default=None, ge=1, le=2**31, description="assign it at once")


class Assignment(BaseModel):
    user_id: int = Field(ge=1, le=2**31 - 1)


class LicenseOut(BaseModel):
    id: int
    kind: str
    state: str
    user_id: int | None
    created_at: float
    changed_at: float


class LicensePage(Page):
    items: list[LicenseOut]


def shown(lic: License) -> LicenseOut:
    return LicenseOut(**fields_of(LicenseOut, lic))


def held_license(db: Session, user_id: int) -> License | None:
    """The live (active or frozen) license a user holds, if any."""
    return db.exec(select(License).where(
        License.user_id == user_id, License.state != "terminated")).first()


def _own_license(db: Session, user: ApiUser, license_id: int) -> License:
    lic = db.get(License, license_id)
    if lic is None or lic.organisation_id != user.organisation_id:
        raise HTTPException(404, f"no license {license_id}")
    return lic


def _check_holder(db: Session, user: ApiUser, lic: License | None, user_id: int,
                  kind: str) -> None:
    """``user_id`` is a user of the caller's organisation free to take ``lic`` (of
    ``kind``), and no number reaches their extension if ``kind`` has none."""
    holder = db.get(ApiUser, user_id)
    if holder is None or holder.organisation_id != user.organisation_id:
        raise HTTPException(422, [{"loc": ["body", "user_id"], "msg": f"no user {user_id}",
                                   "type": "value_error.unknown_user"}])
    held = held_license(db, user_id)
    if held is not None and (lic is None or held.id != lic.id):
        raise HTTPException(409, f"user {holder.username} already holds license {held.id} "
                                 f"({held.state} {held.kind}); unassign it first")
    extension, reason = holder.extension, rights.may_hold_number(kind)
    numbers = numbers_reaching(db, user.organisation_id, extension) if extension else []
    if reason is not None and numbers:
        raise HTTPException(409, f"number {', '.join(numbers)} reaches extension {extension} "
                                 f"of user {holder.username}, but {reason}")


def _refuse_if_terminated(lic: License, action: str) -> None:
    if lic.state == "terminated":
        raise HTTPException(409, f"license {lic.id} is terminated; it cannot {action}")


def _save(db: Session, user: ApiUser, sip: SipServer, lic: License, action: str,
          before: dict[str, object] | None) -> LicenseOut:
    """Commit a change with its audit entry; the SIP side sees it at once."""
    lic.changed_at = time.time()
    db.add(lic)
    db.flush()
    audit(db, user, f"license.{action}", str(lic.id), before, shown(lic).model_dump())
    db.commit()
    sip.directory.reload()  # a user without an active license can no longer register or call
    return shown(lic)


@router.get("/licenses", response_model=LicensePage, responses=ERRORS)
def list_licenses(
    user: User, db: Db,
    state: Annotated[str | None, Query(pattern=one_of(LICENSE_STATES))] = None,
    kind: Annotated[str | None, Query(pattern=one_of(LICENSE_KINDS))] = None,
    user_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    limit: Limit = 100, offset: Offset = 0,
) -> LicensePage:
    """The organisation's licenses (agents and users: their own only)."""
    query = select(License).where(License.organisation_id == user.organisation_id)
    if user.role in ("agent", "user"):
        query = query.where(License.user_id == user.id)
    if state is not None:
        query = query.where(License.state == state)
    if kind is not None:
        query = query.where(License.kind == kind)
    if user_id is not None:
        query = query.where(License.user_id == user_id)
    total = db.exec(select(func.count()).select_from(query.subquery())).one()
    rows = db.exec(query.order_by(col(License.id)).offset(offset).limit(limit)).all()
    return LicensePage(total=total, limit=limit, offset=offset, items=[shown(r) for r in rows])


@router.get("/licenses/{license_id}", response_model=LicenseOut, responses=NOT_FOUND)
def get_license(license_id: RowId, user: User, db: Db) -> LicenseOut:
    lic = _own_license(db, user, license_id)
    if user.role in ("agent", "user") and lic.user_id != user.id:
        raise HTTPException(404, f"no license {license_id}")
    return shown(lic)


@router.post("/licenses", response_model=LicenseOut, status_code=201, responses=CHANGES)
def add_license(body: LicenseIn, user: User, db: Db, sip: Sip) -> LicenseOut:
    """Buy a license, optionally assigned to a user at once."""
    require(user, "admin")
    if body.user_id is not None:
        _check_holder(db, user, None, body.user_id, body.kind)
    now = time.time()
    lic = License(organisation_id=user.organisation_id, kind=body.kind, state="active",
                  user_id=body.user_id, created_at=now, changed_at=now)
    return _save(db, user, sip, lic, "add", None)


@router.post("/licenses/{license_id}/assign", response_model=LicenseOut, responses=CHANGES)
def assign(license_id: RowId, body: Assignment, user: User, db: Db, sip: Sip) -> LicenseOut:
    """Give the license to a user; if someone held it, it moves (they lose it)."""
    require(user, "admin")
    lic = _own_license(db, user, license_id)
    _refuse_if_terminated(lic, "be assigned")
    _check_holder(db, user, lic, body.user_id, lic.kind)
    before = shown(lic).model_dump()
    action = "assign" if lic.user_id is None else "move"
    lic.user_id = body.user_id
    return _save(db, user, sip, lic, action, before)


@router.post("/licenses/{license_id}/unassign", response_model=LicenseOut, responses=CHANGES)
def unassign(license_id: RowId, user: User, db: Db, sip: Sip) -> LicenseOut:
    require(user, "admin")
    lic = _own_license(db, user, license_id)
    _refuse_if_terminated(lic, "be unassigned")
    before = shown(lic).model_dump()
    lic.user_id = None
    return _save(db, user, sip, lic, "unassign", before)


def _transition(
    license_id: int, action: str, user: ApiUser, db: Session, sip: SipServer,
) -> LicenseOut:
    require(user, "admin")
    lic = _own_license(db, user, license_id)
    state = TRANSITIONS.get((action, lic.state))
    if state is None:
        raise HTTPException(409, f"license {lic.id} is {lic.state}; it cannot {action}")
    before = shown(lic).model_dump()
    lic.state = state
    if state == "terminated":
        lic.user_id = None  # final: it belongs to nobody any more
    return _save(db, user, sip, lic, action, before)


@router.post("/licenses/{license_id}/freeze", response_model=LicenseOut, responses=CHANGES)
def freeze(license_id: RowId, user: User, db: Db, sip: Sip) -> LicenseOut:
    """The holder keeps the license but cannot register or call until unfrozen."""
    return _transition(license_id, "freeze", user, db, sip)


@router.post("/licenses/{license_id}/unfreeze", response_model=LicenseOut, responses=CHANGES)
def unfreeze(license_id: RowId, user: User, db: Db, sip: Sip) -> LicenseOut:
    return _transition(license_id, "unfreeze", user, db, sip)


@router.post("/licenses/{license_id}/terminate", response_model=LicenseOut, responses=CHANGES)
def terminate(license_id: RowId, user: User, db: Db, sip: Sip) -> LicenseOut:
    """End the license for good: no later change is allowed."""
    return _transition(license_id, "terminate", user, db, sip)


@router.post("/licenses/{license_id}/upgrade", response_model=LicenseOut, responses=CHANGES)
def upgrade(license_id: RowId, user: User, db: Db, sip: Sip) -> LicenseOut:
    """Fixed → mobile, the only upgrade there is."""
    require(user, "admin")
    lic = _own_license(db, user, license_id)
    _refuse_if_terminated(lic, "be upgraded")
    if lic.kind not in UPGRADES:
        raise HTTPException(409, f"license {lic.id} is {lic.kind}; only a fixed license "
                                 "upgrades (to mobile)")
    before = shown(lic).model_dump()
    lic.kind = UPGRADES[lic.kind]
    return _save(db, user, sip, lic, "upgrade", before)
