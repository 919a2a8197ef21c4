"""Colleagues' presence: every extension of one's organisation with its line
(available, ringing, on a call, offline: no registered device) and the status
of its presence profile (name and end time).

Any logged-in user of the organisation reads it: colleagues see each other's
profile *status*, never its settings (what it diverts where, the caller ID),
which stay with ``/api/extensions/{number}/profile(s)`` for the owner,
supervisors and admins.  The softphone page gets the same, pushed over its
WebSocket; desk phones get it through the SIP ``presence`` package.
"""

from datetime import datetime, timezone
from typing import Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from admin_api.deps import ERRORS, NOT_FOUND, Sip, User
from pbx.directory import Tenant
from pbx.presence import PresenceStatus

router = APIRouter(prefix="/api", tags=["presence"])


class PresenceOut(BaseModel):
    extension: str
    display_name: str
    line: Literal["available", "ringing", "on_call", "offline"] = Field(
        description="offline: no device registered")
    profile: str | None = Field(description="the presence profile in force (Lunch, Meeting …); "
                                            "null: none")
    until: datetime | None = Field(description="when that profile ends, if known")


def shown(tenant: Tenant, status: PresenceStatus) -> PresenceOut:
    ext = tenant.extensions.get(status.extension)
    until = status.until
    return PresenceOut(extension=status.extension,
                       display_name=ext.display_name if ext is not None else "",
                       line=status.line,  # type: ignore[arg-type]
                       profile=status.profile or None,
                       until=datetime.fromtimestamp(until, timezone.utc) if until else None)


def tenant_of(sip: Sip, user: User) -> Tenant:
    tenant = sip.directory.tenants.get(user.organisation_id)
    if tenant is None:
        raise HTTPException(404, "no such organisation")
    return tenant


# async: live calls and registrations are read on the SIP side's loop
@router.get("/presence", response_model=list[PresenceOut], responses=ERRORS)
async def list_presence(user: User, sip: Sip) -> list[PresenceOut]:
    """Every colleague's presence, by extension number."""
    tenant = tenant_of(sip, user)
    statuses = sip.presence.statuses(tenant.id)
    return [shown(tenant, statuses[number]) for number in sorted(statuses)]


@router.get("/presence/{number}", response_model=PresenceOut, responses=NOT_FOUND)
async def get_presence(number: str, user: User, sip: Sip) -> PresenceOut:
    tenant = tenant_of(sip, user)
    status = sip.presence.statuses(tenant.id).get(number)
    if status is None:
        raise HTTPException(404, f"no extension {number}")
    return shown(tenant, status)
