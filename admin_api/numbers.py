"""Numbers: the organisation's DIDs and local or foreign numbers (E.164 ``+46…``
or national digits), each reaching a target of the organisation: an
extension, a ring group, a conference room or another number.  An extension
shows one of them as its outgoing caller ID (``caller_id_number``).  A number
of its own is a right of the fixed and mobile licenses (``pbx.rights``): a
number cannot lead to the extension of a user whose license is free (409).
"""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, Field
from sqlmodel import Session, col, func, select

from admin_api.deps import ERRORS, NOT_FOUND, NUMBER, Db, Offset, Page, Sip, User, require
from admin_api.services import IN_USE, delete_row, kind_of, own_row, refuse_taken, save_row
from pbx import rights
from pbx.models import ApiUser, License, Number

router = APIRouter(prefix="/api", tags=["numbers"])

PHONE_NUMBER = r"^(\+[1-9][0-9]{2,14}|[0-9]{3,20})$"  # E.164 or national digits
INVALID = {422: {"description": "invalid fields, an unknown target or a loop of numbers"}}
FREE_LICENSE = {409: {"description": "the target extension's user holds a free license"}}


class NumberTarget(BaseModel):
    target: str = Field(pattern=NUMBER, description="an extension, ring group, conference room, "
                                                    "time condition or another number of the "
                                                    "organisation")


class NumberIn(NumberTarget):
    number: str = Field(pattern=PHONE_NUMBER, description="E.164 (+46…) or national digits")


class NumberOut(BaseModel):
    number: str
    target: str
    target_kind: str | None = Field(description="extension, ringgroup, conference, "
                                                "timecondition or number; None if the target "
                                                "is gone")


class NumberPage(Page):
    items: list[NumberOut]


def shown(db: Session, entry: Number) -> NumberOut:
    return NumberOut(number=entry.number, target=entry.target,
                     target_kind=kind_of(db, entry.organisation_id, entry.target))


def _check_target(db: Session, user: ApiUser, number: str, target: str) -> str:
    """The target is something of the organisation, and following numbers from it
    never comes back to ``number`` (a loop would ring nothing); returns where it ends."""
    def invalid(message: str) -> HTTPException:
        return HTTPException(422, [{"loc": ["body", "target"], "msg": message,
                                    "type": "value_error"}])

    seen, current = {number}, target
    while True:
        kind = kind_of(db, user.organisation_id, current)
        if kind is None:
            raise invalid(f"no extension, service or number {current}")
        if kind != "number":
            return current
        if current in seen:
            raise invalid(f"{number} → {target} would make a loop of numbers")
        seen.add(current)
        current = own_row(db, user, "number", current).target


def license_kind(db: Session, organisation_id: int, extension: str) -> str | None:
    """The kind of active license the user of ``extension`` holds (None: none, or no user)."""
    return db.exec(select(License.kind).join(
        ApiUser, col(License.user_id) == col(ApiUser.id)).where(
        ApiUser.organisation_id == organisation_id, ApiUser.extension == extension,
        License.state == "active")).first()


def numbers_reaching(db: Session, organisation_id: int, extension: str) -> list[str]:
    """The organisation's numbers that lead to ``extension``, directly or through others."""
    targets = {n.number: n.target for n in db.exec(select(Number).where(
        Number.organisation_id == organisation_id))}

    def final(target: str) -> str:
        seen = set()
        while target in targets and target not in seen:
            seen.add(target)
            target = targets[target]
        return target

    return sorted(number for number, target in targets.items() if final(target) == extension)


def _check_license(db: Session, user: ApiUser, final: str) -> None:
    """A number may reach an extension (``final``, where its numbers lead) only if
    its user's license includes one."""
    if kind_of(db, user.organisation_id, final) != "extension":
        return
    reason = rights.may_hold_number(license_kind(db, user.organisation_id, final))
    if reason is not None:
        raise HTTPException(409, f"extension {final} cannot have a number: {reason}")


@router.get("/numbers", response_model=NumberPage, responses=ERRORS)
def list_numbers(
    user: User, db: Db, limit: Annotated[int, Query(ge=1, le=500)] = 100, offset: Offset = 0,
) -> NumberPage:
    scope = Number.organisation_id == user.organisation_id
    total = db.exec(select(func.count()).select_from(Number).where(scope)).one()
    rows = db.exec(select(Number).where(scope).order_by(col(Number.number))
                   .offset(offset).limit(limit)).all()
    return NumberPage(total=total, limit=limit, offset=offset, items=[shown(db, n) for n in rows])


@router.get("/numbers/{number}", response_model=NumberOut, responses=NOT_FOUND)
def get_number(number: str, user: User, db: Db) -> NumberOut:
    return shown(db, own_row(db, user, "number", number))


@router.post("/numbers", response_model=NumberOut, status_code=201,
             responses={**ERRORS, 409: {"description": "the number is taken, or the target "
                                                       "extension's user holds a free license"},
                        **INVALID})
def create_number(body: NumberIn, user: User, db: Db, sip: Sip) -> NumberOut:
    require(user, "admin")
    refuse_taken(db, sip, user.organisation_id, body.number)
    _check_license(db, user, _check_target(db, user, body.number, body.target))
    entry = Number(organisation_id=user.organisation_id, number=body.number, target=body.target)
    save_row(db, user, sip, "number", entry, None, body.model_dump())
    return shown(db, entry)


@router.patch("/numbers/{number}", response_model=NumberOut,
              responses={**NOT_FOUND, **INVALID, **FREE_LICENSE})
def update_number(number: str, body: NumberTarget, user: User, db: Db, sip: Sip) -> NumberOut:
    """Point the number somewhere else; the next call goes there."""
    require(user, "admin")
    entry = own_row(db, user, "number", number)
    _check_license(db, user, _check_target(db, user, number, body.target))
    before = {"number": number, "target": entry.target}
    entry.target = body.target
    save_row(db, user, sip, "number", entry, before, {"number": number, "target": body.target})
    return shown(db, entry)


@router.delete("/numbers/{number}", status_code=204, responses={**NOT_FOUND, **IN_USE})
def delete_number(number: str, user: User, db: Db, sip: Sip) -> Response:
    delete_row(db, user, sip, "number", number, lambda entry: shown(db, entry))
    return Response(status_code=204)


def check_caller_id(db: Session, user: ApiUser, number: str) -> None:
    """An extension shows only a number the organisation has (else 422)."""
    if number and kind_of(db, user.organisation_id, number) != "number":
        raise HTTPException(422, [{"loc": ["body", "caller_id_number"], "type": "value_error",
                                   "msg": f"{number} is not a number of the organisation"}])
