"""Call records: lists per organisation (admins, supervisors) or per user
(agents and users see their own calls), filters, CSV export.

A call's direction is derived from the organisation's numbering, so every
record has one, old ones too: ``internal`` when an extension called an
extension, service or number of the organisation (or one of its extensions
answered), ``outbound`` when an extension called anything else, ``inbound``
when someone outside called in.
"""

import csv
import io
import json
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, case, or_
from sqlmodel import col, func, select

from admin_api.deps import ERRORS, NUMBER, Db, Limit, Offset, Page, User, fields_of, one_of
from admin_api.services import NUMBERED
from pbx.models import ApiUser, Cdr, Extension

router = APIRouter(prefix="/api", tags=["calls"])

DIRECTIONS = ("inbound", "outbound", "internal")


class CdrFilter(BaseModel):
    since: float | None = Field(default=None, ge=0, le=1e11, description="Unix time, inclusive")
    until: float | None = Field(default=None, ge=0, le=1e11, description="Unix time, exclusive")
    disposition: str | None = Field(default=None, max_length=20)
    direction: str | None = Field(default=None, pattern=one_of(DIRECTIONS))
    extension: str | None = Field(default=None, pattern=NUMBER,
                                  description="one extension's calls (agents, users: their own)")
    queue: str | None = Field(default=None, pattern=NUMBER,
                              description="calls that went through this ACD queue "
                                          "(answered_by: the agent)")


Filter = Annotated[CdrFilter, Query()]
OWN_ONLY = {**ERRORS, 403: {"description": "agents and users see only their own calls"}}


class CdrOut(BaseModel):
    call_id: str
    caller: str
    callee: str
    answered_by: str
    disposition: str
    status: int
    started_at: float
    answered_at: float | None
    ended_at: float | None
    duration: float
    billsec: float
    direction: str
    hangup_by: str = ""
    trunk: str = Field("", description="the trunk it came in or went out by")
    path: list[str] = Field(default_factory=list, description="what happened, in order: "
                            "dial:1002, ring:1002x2, 486:1002, user-busy:voicemail, answer:1002 …")


class CdrPage(Page):
    items: list[CdrOut]


def direction_of(organisation_id: int) -> ColumnElement[str]:
    """The call's direction for ``organisation_id``, as an SQL expression."""
    extensions = select(Extension.number).where(Extension.organisation_id == organisation_id)
    from_inside = col(Cdr.caller).in_(extensions)
    to_inside = or_(col(Cdr.answered_by).in_(extensions), *(
        col(Cdr.callee).in_(select(kind.table.number)
                            .where(kind.table.organisation_id == organisation_id))
        for kind in NUMBERED.values()))
    return case((from_inside & to_inside, "internal"), (from_inside, "outbound"),
                else_="inbound")


def party(number: str) -> ColumnElement[bool]:
    """Calls ``number`` made, was called on or answered."""
    return (Cdr.caller == number) | (Cdr.callee == number) | (Cdr.answered_by == number)


def cdr_query(user: ApiUser, where: CdrFilter) -> Any:
    """The caller's organisation's records (``Cdr``, direction) matching ``where``."""
    direction = direction_of(user.organisation_id)
    query = select(Cdr, direction.label("direction")).where(
        Cdr.organisation_id == user.organisation_id)
    if user.role in ("agent", "user"):  # their own calls only
        if where.extension not in (None, user.extension):
            raise HTTPException(403, "agents and users see only their own calls")
        query = query.where(party(user.extension))
    elif where.extension is not None:
        query = query.where(party(where.extension))
    if where.since is not None:
        query = query.where(Cdr.started_at >= where.since)
    if where.until is not None:
        query = query.where(Cdr.started_at < where.until)
    if where.disposition is not None:
        query = query.where(Cdr.disposition == where.disposition)
    if where.direction is not None:
        query = query.where(direction == where.direction)
    if where.queue is not None:  # the service step in the record's path (JSON)
        query = query.where(col(Cdr.path).contains(f'"queue:{where.queue}"'))
    return query


def shown(cdr: Cdr, direction: str) -> CdrOut:
    return CdrOut(**fields_of(CdrOut, cdr, direction=direction,
                              path=json.loads(cdr.path) if cdr.path else []))


@router.get("/cdrs", response_model=CdrPage, responses=OWN_ONLY)
def list_cdrs(user: User, db: Db, where: Filter, limit: Limit = 100, offset: Offset = 0,
              ) -> CdrPage:
    query = cdr_query(user, where)
    total = db.exec(select(func.count()).select_from(query.subquery())).one()
    rows = db.exec(query.order_by(col(Cdr.id).desc()).offset(offset).limit(limit)).all()
    return CdrPage(total=total, limit=limit, offset=offset, items=[shown(*r) for r in rows])


@router.get("/cdrs.csv", responses={**OWN_ONLY, 200: {"content": {"text/csv": {}}}})
def export_cdrs(user: User, db: Db, where: Filter) -> Response:
    rows = db.exec(cdr_query(user, where).order_by(col(Cdr.id))).all()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(list(CdrOut.model_fields))
    for row in rows:
        writer.writerow([" ".join(v) if isinstance(v, list) else v
                         for v in shown(*row).model_dump().values()])
    return Response(out.getvalue(), media_type="text/csv")
