"""The audit log: who changed what, when, from what to what (admins only)."""

from fastapi import APIRouter
from pydantic import BaseModel
from sqlmodel import col, select

from admin_api.deps import ERRORS, Db, Limit, User, fields_of, require
from pbx.models import AuditEntry

router = APIRouter(prefix="/api", tags=["audit"])


class AuditOut(BaseModel):
    actor: str
    action: str
    target: str
    before: str
    after: str
    at: float


@router.get("/audit", response_model=list[AuditOut], responses=ERRORS)
def audit_log(user: User, db: Db, limit: Limit = 100) -> list[AuditOut]:
    require(user, "admin")
    rows = db.exec(select(AuditEntry).where(AuditEntry.organisation_id == user.organisation_id)
                   .order_by(col(AuditEntry.id).desc()).limit(limit)).all()
    return [AuditOut(**fields_of(AuditOut, r)) for r in rows]
