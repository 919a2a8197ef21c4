"""Call recordings: the organisation's list and each one's audio file.

Admins and supervisors see the organisation's recordings; agents and users
only those of calls their extension took part in (another's is a 404, as if
it did not exist).  The retention job deletes old ones, file and row.
"""

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, false, literal
from sqlmodel import Session, col, func, select

from admin_api.deps import (
    ERRORS, NOT_FOUND, Db, Limit, Offset, Page, RowId, Sip, User, fields_of,
)
from pbx.models import ApiUser, Recording

router = APIRouter(prefix="/api", tags=["recordings"])

MEDIA_TYPES = {".wav": "audio/wav", ".flac": "audio/flac"}


class RecordingOut(BaseModel):
    id: int
    call_id: str
    kind: str
    parties: list[str] = Field(description="the left and right channel's parties")
    started_at: float
    duration: float
    size: int
    retain_until: float


class RecordingPage(Page):
    items: list[RecordingOut]


def _took_part(extension: str) -> ColumnElement[bool]:
    """``extension`` is one of the comma-separated parties (LIKE, wildcards escaped)."""
    escaped = extension.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return (literal(",") + col(Recording.parties) + literal(",")).like(
        f"%,{escaped},%", escape="\\")


def _visible(user: ApiUser) -> ColumnElement[bool]:
    scope = Recording.organisation_id == user.organisation_id
    if user.role in ("agent", "user"):
        return scope & _took_part(user.extension) if user.extension else false()
    return scope


def _own_recording(db: Session, user: ApiUser, recording_id: int) -> Recording:
    found = db.exec(select(Recording).where(Recording.id == recording_id, _visible(user))).first()
    if found is None:
        raise HTTPException(404, f"no recording {recording_id}")
    return found


@router.get("/recordings", response_model=RecordingPage, responses=ERRORS)
def list_recordings(user: User, db: Db, limit: Limit = 100, offset: Offset = 0) -> RecordingPage:
    """The newest first."""
    query = select(Recording).where(_visible(user))
    total = db.exec(select(func.count()).select_from(query.subquery())).one()
    rows = db.exec(query.order_by(col(Recording.id).desc()).offset(offset).limit(limit)).all()
    return RecordingPage(total=total, limit=limit, offset=offset, items=[
        RecordingOut(**fields_of(RecordingOut, r, parties=[p for p in r.parties.split(",") if p]))
        for r in rows])


@router.get("/recordings/{recording_id}/audio", response_class=FileResponse,
            responses={**NOT_FOUND, 200: {"content": {t: {} for t in MEDIA_TYPES.values()}}})
def recording_audio(recording_id: RowId, user: User, db: Db, sip: Sip) -> FileResponse:
    """The recorded file as written (WAV or FLAC, by the PBX's recording_format)."""
    recording = _own_recording(db, user, recording_id)
    path = Path(recording.path).resolve()
    if (not path.is_file() or path.suffix not in MEDIA_TYPES
            or not path.is_relative_to(sip.config.data_path.resolve())):
        raise HTTPException(404, f"recording {recording_id} has no file any more")
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], filename=path.name)
