"""Call records: lists per organisation (admins, supervisors) or per user
(agents and users see their own calls), filters, CSV export."""

import csv
import io
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel
from sqlmodel import col, func, select

from admin_api.deps import ERRORS, Db, Limit, Offset, Page, User, fields_of
from pbx.models import ApiUser, Cdr

router = APIRouter(prefix="/api", tags=["calls"])

Since = Annotated[float | None, Query(ge=0, le=1e11, description="Unix time, inclusive")]
Until = Annotated[float | None, Query(ge=0, le=1e11, description="Unix time, exclusive")]
Disposition = Annotated[str | None, Query(max_length=20)]


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


class CdrPage(Page):
    items: list[CdrOut]


def cdr_query(user: ApiUser, since: float | None, until: float | None,
              disposition: str | None) -> Any:
    query = select(Cdr).where(Cdr.organisation_id == user.organisation_id)
    if user.role in ("agent", "user"):  # their own calls only
        query = query.where((Cdr.caller == user.extension) | (Cdr.callee == user.extension)
                            | (Cdr.answered_by == user.extension))
    if since is not None:
        query = query.where(Cdr.started_at >= since)
    if until is not None:
        query = query.where(Cdr.started_at < until)
    if disposition is not None:
        query = query.where(Cdr.disposition == disposition)
    return query


@router.get("/cdrs", response_model=CdrPage, responses=ERRORS)
def list_cdrs(user: User, db: Db, since: Since = None, until: Until = None,
              disposition: Disposition = None, limit: Limit = 100, offset: Offset = 0) -> CdrPage:
    query = cdr_query(user, since, until, disposition)
    total = db.exec(select(func.count()).select_from(query.subquery())).one()
    rows = db.exec(query.order_by(col(Cdr.id).desc()).offset(offset).limit(limit)).all()
    return CdrPage(total=total, limit=limit, offset=offset,
                   items=[CdrOut(**fields_of(CdrOut, r)) for r in rows])


@router.get("/cdrs.csv", responses={**ERRORS, 200: {"content": {"text/csv": {}}}})
def export_cdrs(user: User, db: Db, since: Since = None, until: Until = None,
                disposition: Disposition = None) -> Response:
    rows = db.exec(cdr_query(user, since, until, disposition).order_by(col(Cdr.id))).all()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(list(CdrOut.model_fields))
    for row in rows:
        writer.writerow([getattr(row, name) for name in CdrOut.model_fields])
    return Response(out.getvalue(), media_type="text/csv")
