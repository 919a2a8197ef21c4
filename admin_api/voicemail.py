"""Voicemail messages: listing, listening (the WAV), marking heard, deleting.

Agents and users see their own mailboxes: that of the extension on their
login and the shared mailboxes it is member of; admins and supervisors see
every mailbox of the organisation.  Only admins and the mailbox's owners
(a shared mailbox's members) change or delete a message.
"""

import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from sqlmodel import Session, col, func, select

from admin_api.deps import ERRORS, NOT_FOUND, NUMBER, Db, Offset, Page, RowId, Sip, User, audit
from pbx.models import ApiUser, Extension, SharedMailbox, Voicemail
from pbx.voicemail import discard_message, lamp_mailboxes, mark_heard

log = logging.getLogger("admin_api")
router = APIRouter(prefix="/api", tags=["voicemail"])
EVERY_MAILBOX = ("admin", "supervisor")


class MessageOut(BaseModel):
    id: int
    mailbox: str
    caller: str
    duration: float = Field(description="seconds")
    created_at: datetime
    heard: bool
    callback_number: str = Field(description="a caller's call-back request: the number keyed "
                                             "in (the WAV says it); empty for a message")
    transcript: str | None = Field(description="what the caller said, as speech recognition "
                                   "heard it; null: none (yet, or not in this language)")


class MessagePage(Page):
    items: list[MessageOut]


class MessagePatch(BaseModel):
    heard: bool


def own_mailboxes(db: Session, user: ApiUser) -> tuple[str, ...]:
    """The mailboxes of the extension on the user's login: its own, then the
    shared ones it is member of (none without an extension)."""
    if not user.extension:
        return ()
    ext = db.exec(select(Extension).where(Extension.organisation_id == user.organisation_id,
                                          Extension.number == user.extension)).first()
    if ext is None:
        return ()
    shared = db.exec(select(SharedMailbox).where(
        SharedMailbox.organisation_id == user.organisation_id)).all()
    return lamp_mailboxes({box.number: box for box in shared}, ext)


def shown(message: Voicemail) -> MessageOut:
    assert message.id is not None
    return MessageOut(id=message.id, mailbox=message.mailbox, caller=message.caller,
                      duration=message.duration, heard=message.heard,
                      transcript=message.transcript,
                      created_at=datetime.fromtimestamp(message.created_at, timezone.utc),
                      callback_number=message.callback_number)


def message_for(db: Session, user: ApiUser, message_id: int, *, change: bool) -> Voicemail:
    """The message if ``user`` may see (or ``change``) it; else 404 (another
    organisation's, or nobody's) or 403 (a colleague's)."""
    message = db.get(Voicemail, message_id)
    if message is None or message.organisation_id != user.organisation_id:
        raise HTTPException(404, f"no voicemail message {message_id}")
    allowed = ("admin",) if change else EVERY_MAILBOX
    if user.role not in allowed and message.mailbox not in own_mailboxes(db, user):
        raise HTTPException(403, "this message is in another user's mailbox")
    return message


@router.get("/voicemail", response_model=MessagePage, responses=ERRORS)
def list_messages(
    user: User, db: Db, limit: Annotated[int, Query(ge=1, le=500)] = 100, offset: Offset = 0,
    mailbox: Annotated[str | None, Query(pattern=NUMBER)] = None,
    own: Annotated[bool, Query(description="only one's own mailboxes, for admins and "
                                           "supervisors too (the softphone page)")] = False,
) -> MessagePage:
    """The newest messages first: one's own mailboxes (a shared one's too), or
    every mailbox for admins and supervisors (``mailbox`` narrows it down)."""
    scope = [col(Voicemail.organisation_id) == user.organisation_id]
    if own or user.role not in EVERY_MAILBOX:
        mine = own_mailboxes(db, user)
        if mailbox is not None and mailbox not in mine:
            raise HTTPException(403, f"mailbox {mailbox} is another user's")
        scope.append(col(Voicemail.mailbox).in_(mine))
    if mailbox is not None:
        scope.append(col(Voicemail.mailbox) == mailbox)
    total = db.exec(select(func.count()).select_from(Voicemail).where(*scope)).one()
    rows = db.exec(select(Voicemail).where(*scope).order_by(col(Voicemail.id).desc())
                   .offset(offset).limit(limit)).all()
    return MessagePage(total=total, limit=limit, offset=offset, items=[shown(m) for m in rows])


@router.get("/voicemail/{message_id}/audio", response_class=FileResponse,
            responses={**NOT_FOUND, 200: {"content": {"audio/wav": {}},
                                          "description": "the message, 8 kHz mono WAV"}})
def message_audio(message_id: RowId, user: User, db: Db) -> FileResponse:
    message = message_for(db, user, message_id, change=False)
    path = Path(message.path)
    if not path.exists():
        log.error("voicemail %d: file %s is missing", message_id, path)
        raise HTTPException(404, f"the audio of message {message_id} is missing")
    return FileResponse(path, media_type="audio/wav", filename=f"voicemail-{message_id}.wav")


@router.patch("/voicemail/{message_id}", response_model=MessageOut, responses=NOT_FOUND)
def mark_message(
    message_id: RowId, body: MessagePatch, user: User, db: Db, sip: Sip,
) -> MessageOut:
    message = message_for(db, user, message_id, change=True)
    audit(db, user, "voicemail.update", f"{message.mailbox}/{message_id}",
          {"heard": message.heard}, {"heard": body.heard})
    mark_heard(db, message, body.heard)
    sip.mailbox_changed(user.organisation_id, message.mailbox)  # the phones' lamps
    return shown(message)


@router.delete("/voicemail/{message_id}", status_code=204, responses=NOT_FOUND)
def delete_message(message_id: RowId, user: User, db: Db, sip: Sip) -> Response:
    message = message_for(db, user, message_id, change=True)
    audit(db, user, "voicemail.delete", f"{message.mailbox}/{message_id}",
          shown(message).model_dump(), None)
    discard_message(db, message)
    sip.mailbox_changed(user.organisation_id, message.mailbox)
    return Response(status_code=204)
