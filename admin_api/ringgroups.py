"""Ring groups: one number that rings several extensions by a ring strategy.

A switchboard service, so the plan counts it (admin_api.services).  Changes
take effect on the next call: the directory is reloaded.
"""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, Field
from sqlmodel import Session, col, func, select

from admin_api.deps import (
    ERRORS, NOT_FOUND, NUMBER, TARGET, Db, Offset, Page, Sip, User, one_of, require,
)
from admin_api.services import (
    IN_USE, OVER_PLAN, check_plan, delete_row, kind_of, own_row, refuse_taken, save_row,
)
from pbx.config import RING_STRATEGIES
from pbx.models import ApiUser, Extension, RingGroup
from pbx.server import SipServer

router = APIRouter(prefix="/api", tags=["ring groups"])

Member = Annotated[str, Field(pattern=NUMBER)]
INVALID = {422: {"description": "invalid fields, unknown members or an unknown fallback"}}


class RingGroupFields(BaseModel):
    """What a ring group is besides its number (a PATCH sends any of them)."""

    name: str = Field(default="", max_length=200)
    strategy: str = Field(default="ringall", pattern=one_of(RING_STRATEGIES))
    members: list[Member] = Field(default_factory=list, max_length=40,
                                  description="extensions, rung in this order")
    member_timeout: int = Field(default=15, ge=1, le=600)
    timeout: int = Field(default=60, ge=1, le=3600)
    fallback: str = Field(default="", pattern=TARGET,
                          description="a number of the organisation for unanswered calls")


class RingGroupIn(RingGroupFields):
    number: str = Field(pattern=NUMBER)


class RingGroupOut(BaseModel):
    number: str
    name: str
    strategy: str
    members: list[str]
    member_timeout: int
    timeout: int
    fallback: str


class RingGroupPage(Page):
    items: list[RingGroupOut]


def shown(group: RingGroup) -> RingGroupOut:
    return RingGroupOut(
        number=group.number, name=group.name, strategy=group.strategy,
        members=[m for m in group.members.split(",") if m], member_timeout=group.member_timeout,
        timeout=group.timeout, fallback=group.fallback,
    )


def _invalid(field: str, message: str) -> HTTPException:
    return HTTPException(422, [{"loc": ["body", field], "msg": message, "type": "value_error"}])


def _check(db: Session, user: ApiUser, sip: SipServer, number: str, members: list[str] | None,
           fallback: str | None) -> None:
    """Members are extensions of the organisation or external numbers (a mobile),
    each once; the fallback is a number of the organisation other than the group."""
    if members is not None:
        if len(set(members)) != len(members):
            raise _invalid("members", "an extension is listed twice")
        known = set(db.exec(select(Extension.number).where(
            Extension.organisation_id == user.organisation_id,
            col(Extension.number).in_(members))).all())
        tenant = sip.directory.tenants.get(user.organisation_id, sip.directory.default)
        unknown = [m for m in members if m not in known
                   and not tenant.dialling.looks_external(m)]
        if unknown:
            raise _invalid("members", f"neither extensions nor external numbers: "
                                      f"{', '.join(unknown)}")
    if fallback:
        if fallback == number:
            raise _invalid("fallback", "the group cannot fall back to itself")
        if kind_of(db, user.organisation_id, fallback) is None:
            raise _invalid("fallback", f"no extension, service or number {fallback}")


@router.get("/ringgroups", response_model=RingGroupPage, responses=ERRORS)
def list_ring_groups(
    user: User, db: Db, limit: Annotated[int, Query(ge=1, le=500)] = 100, offset: Offset = 0,
) -> RingGroupPage:
    scope = RingGroup.organisation_id == user.organisation_id
    total = db.exec(select(func.count()).select_from(RingGroup).where(scope)).one()
    rows = db.exec(select(RingGroup).where(scope).order_by(col(RingGroup.number))
                   .offset(offset).limit(limit)).all()
    return RingGroupPage(total=total, limit=limit, offset=offset, items=[shown(g) for g in rows])


@router.get("/ringgroups/{number}", response_model=RingGroupOut, responses=NOT_FOUND)
def get_ring_group(number: str, user: User, db: Db) -> RingGroupOut:
    return shown(own_row(db, user, "ringgroup", number))


@router.post("/ringgroups", response_model=RingGroupOut, status_code=201,
             responses={**ERRORS, **OVER_PLAN, **INVALID})
def create_ring_group(body: RingGroupIn, user: User, db: Db, sip: Sip) -> RingGroupOut:
    require(user, "admin")
    refuse_taken(db, sip, user.organisation_id, body.number)
    _check(db, user, sip, body.number, body.members, body.fallback)
    check_plan(db, user.organisation_id)
    group = RingGroup(organisation_id=user.organisation_id,
                      **body.model_dump(exclude={"members"}), members=",".join(body.members))
    save_row(db, user, sip, "ringgroup", group, None, shown(group).model_dump())
    return shown(group)


@router.patch("/ringgroups/{number}", response_model=RingGroupOut,
              responses={**NOT_FOUND, **INVALID})
def update_ring_group(number: str, body: RingGroupFields, user: User, db: Db, sip: Sip,
                      ) -> RingGroupOut:
    require(user, "admin")
    group = own_row(db, user, "ringgroup", number)
    changes = body.model_dump(exclude_unset=True)
    _check(db, user, sip, number, changes.get("members"), changes.get("fallback"))
    before = shown(group).model_dump()
    for name, value in changes.items():
        setattr(group, name, ",".join(value) if name == "members" else value)
    save_row(db, user, sip, "ringgroup", group, before, shown(group).model_dump())
    return shown(group)


@router.delete("/ringgroups/{number}", status_code=204, responses={**NOT_FOUND, **IN_USE})
def delete_ring_group(number: str, user: User, db: Db, sip: Sip) -> Response:
    delete_row(db, user, sip, "ringgroup", number, shown)
    return Response(status_code=204)
