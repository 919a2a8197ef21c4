"""A mailbox's greetings, PIN and settings: what callers hear and how its
owners get in.

Greetings (unavailable, busy, temporary, name) are uploaded as audio files,
checked with ``media.audiofile`` on arrival (a file that will not play is a
422 with the reason) and kept as the 8 kHz WAV callers hear; deleting one
goes back to the spoken default.  A temporary greeting may carry an end
(``until``); while it is in force it replaces the others.  The same
greetings are recorded by phone in the mailbox menu.

A mailbox is an extension's (its ``mailbox``, else its number) or a shared
one's number.  Its owners (the extension's user, a shared mailbox's
members), admins and supervisors change greetings; owners and admins set
the PIN (stored hashed) and the settings.
"""

# No ``from __future__ import annotations``: FastAPI reads the annotations.
import asyncio
import logging
import time
from datetime import datetime, timezone
from pathlib import Path as FilePath
from typing import Annotated

import numpy as np
from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from admin_api.deps import NOT_FOUND, NUMBER, TARGET, Db, Sip, User, audit, one_of
from admin_api.media import REFUSED, UPLOAD, checked, upload
from admin_api.services import kind_of
from admin_api.voicemail import own_mailboxes
from ivr.voicemail_greeting import choose_greeting
from media.codecs import ENGINE_RATE
from pbx.config import PIN_PATTERN
from pbx.models import GREETING_KINDS, ApiUser, Extension, Greeting, Organisation, SharedMailbox
from pbx.profiles import zone
from pbx.voicemail import (
    delete_greeting, greeting_path, greetings_of, mailbox_settings, save_greeting, set_pin,
)

log = logging.getLogger("admin_api")
router = APIRouter(prefix="/api", tags=["voicemail"])

Mailbox = Annotated[str, Path(pattern=NUMBER, description="an extension's mailbox or a "
                                                          "shared mailbox's number")]
Kind = Annotated[str, Path(pattern=one_of(GREETING_KINDS))]
GREETERS = ("admin", "supervisor")  # change any mailbox's greetings
KEEPERS = ("admin",)  # set any mailbox's PIN and settings


class GreetingOut(BaseModel):
    kind: str
    seconds: float
    created_at: datetime
    expires_at: datetime | None = Field(description="a temporary greeting's end (none: "
                                                    "until deleted)")
    in_force: bool = Field(description="false: a temporary greeting past its end")


class GreetingsOut(BaseModel):
    mailbox: str
    items: list[GreetingOut]
    heard_now: dict[str, str] = Field(description="what a caller hears now when the call "
                                                  "was diverted because the extension is "
                                                  "unavailable or busy: a greeting's kind, "
                                                  "or default")


class SettingsOut(BaseModel):
    mailbox: str
    pin_set: bool
    pin_from_own_device: bool = Field(description="the PIN is asked on the voicemail number "
                                                  "from the mailbox's own phone too")
    operator: str = Field(description="where 0 at the greeting leads; empty: the "
                                      "organisation's operator ([general] operator)")


class SettingsPatch(BaseModel):
    pin_from_own_device: bool | None = None
    operator: str | None = Field(None, pattern=TARGET,
                                 description="a number of the organisation; empty: the default")


class PinIn(BaseModel):
    pin: str = Field(pattern=PIN_PATTERN, description="4-12 digits")


def mailbox_of_org(db: Session, user: ApiUser, mailbox: str, roles: tuple[str, ...]) -> None:
    """404 unless ``mailbox`` is one of the organisation's; 403 unless ``user``
    has one of ``roles`` or owns it (a shared mailbox: is a member)."""
    org = user.organisation_id
    ext = db.exec(select(Extension).where(
        Extension.organisation_id == org,
        (col(Extension.mailbox) == mailbox)
        | ((col(Extension.mailbox) == "") & (col(Extension.number) == mailbox)))).first()
    shared = db.exec(select(SharedMailbox).where(SharedMailbox.organisation_id == org,
                                                 SharedMailbox.number == mailbox)).first()
    if ext is None and shared is None:
        raise HTTPException(404, f"no mailbox {mailbox}")
    if user.role not in roles and mailbox not in own_mailboxes(db, user):
        raise HTTPException(403, f"mailbox {mailbox} is another user's")


def shown(greeting: Greeting, now: float) -> GreetingOut:
    ends = greeting.expires_at
    return GreetingOut(
        kind=greeting.kind, seconds=greeting.seconds,
        created_at=datetime.fromtimestamp(greeting.created_at, timezone.utc),
        expires_at=datetime.fromtimestamp(ends, timezone.utc) if ends is not None else None,
        in_force=ends is None or now < ends)


def _listed(db: Session, user: ApiUser, mailbox: str) -> GreetingsOut:
    rows, now = greetings_of(db, user.organisation_id, mailbox), time.time()
    recorded = {g.kind: g.expires_at for g in rows}
    heard = {reason: choose_greeting(recorded, diverted, now) or "default"
             for reason, diverted in (("unavailable", "no-answer"), ("busy", "user-busy"))}
    return GreetingsOut(mailbox=mailbox, items=[shown(g, now) for g in rows], heard_now=heard)


def _greeting(db: Session, user: ApiUser, mailbox: str, kind: str) -> Greeting:
    found = next((g for g in greetings_of(db, user.organisation_id, mailbox) if g.kind == kind),
                 None)
    if found is None:
        raise HTTPException(404, f"mailbox {mailbox} has no {kind} greeting")
    return found


def _until(db: Session, user: ApiUser, kind: str, until: datetime | None) -> float | None:
    """A temporary greeting's end as epoch seconds (without an offset: in the
    organisation's time zone); 422 for another kind, or an end already past."""
    if until is None:
        return None
    if kind != "temporary":
        raise HTTPException(422, [{"loc": ["query", "until"], "type": "value_error",
                                   "msg": "only a temporary greeting has an end"}])
    org = db.get(Organisation, user.organisation_id)
    tz = zone(org.timezone if org is not None else "")
    ends = (until if until.tzinfo is not None else until.replace(tzinfo=tz)).timestamp()
    if ends <= time.time():
        raise HTTPException(422, [{"loc": ["query", "until"], "type": "value_error",
                                   "msg": "the end is already past"}])
    return ends


@router.get("/voicemail/{mailbox}/greetings", response_model=GreetingsOut, responses=NOT_FOUND)
def list_greetings(mailbox: Mailbox, user: User, db: Db) -> GreetingsOut:
    """The mailbox's recorded greetings and which one callers hear now."""
    mailbox_of_org(db, user, mailbox, GREETERS)
    return _listed(db, user, mailbox)


@router.get("/voicemail/{mailbox}/greetings/{kind}", response_class=FileResponse,
            responses={**NOT_FOUND, 200: {"content": {"audio/wav": {}},
                                          "description": "the greeting, 8 kHz mono WAV"}})
def greeting_audio(mailbox: Mailbox, kind: Kind, user: User, db: Db) -> FileResponse:
    mailbox_of_org(db, user, mailbox, GREETERS)
    greeting = _greeting(db, user, mailbox, kind)
    if not FilePath(greeting.path).is_file():
        log.error("greeting %s/%s: file %s is missing", mailbox, kind, greeting.path)
        raise HTTPException(404, f"the audio of the {kind} greeting of {mailbox} is missing")
    return FileResponse(greeting.path, media_type="audio/wav",
                        filename=f"greeting-{mailbox}-{kind}.wav")


@router.put("/voicemail/{mailbox}/greetings/{kind}", response_model=GreetingsOut,
            responses={**REFUSED, 404: {"description": "no such mailbox"}},
            openapi_extra=UPLOAD)
async def put_greeting(
    mailbox: Mailbox, kind: Kind, request: Request, user: User, db: Db, sip: Sip,
    until: Annotated[datetime | None, Query(description="a temporary greeting's end; "
                                                        "without an offset, local time")] = None,
) -> GreetingsOut:
    """Record a greeting from an audio file (the body); callers hear it from the
    next call on.  The store is used in worker threads: this runs on the loop
    that carries the calls."""
    ends = await asyncio.to_thread(_may_upload, db, user, mailbox, kind, until)
    samples = await checked(await upload(request))
    path = greeting_path(sip.config.data_path, user.organisation_id, mailbox, kind)
    return await asyncio.to_thread(_keep, db, user, path, Greeting(
        organisation_id=user.organisation_id, mailbox=mailbox, kind=kind, path="",
        seconds=round(len(samples) / ENGINE_RATE, 2), expires_at=ends, created_at=time.time(),
    ), samples)


def _may_upload(db: Session, user: ApiUser, mailbox: str, kind: str,
                until: datetime | None) -> float | None:
    mailbox_of_org(db, user, mailbox, GREETERS)
    return _until(db, user, kind, until)


def _keep(db: Session, user: ApiUser, path: FilePath, greeting: Greeting,
          samples: np.ndarray) -> GreetingsOut:
    mailbox, kind = greeting.mailbox, greeting.kind
    audit(db, user, "voicemail.greeting", f"{mailbox}/{kind}", None,
          {"seconds": greeting.seconds, "expires_at": greeting.expires_at})
    save_greeting(db, path, samples, greeting)
    return _listed(db, user, mailbox)


@router.delete("/voicemail/{mailbox}/greetings/{kind}", status_code=204, responses=NOT_FOUND)
def remove_greeting(mailbox: Mailbox, kind: Kind, user: User, db: Db) -> Response:
    """Back to the spoken default for this kind."""
    mailbox_of_org(db, user, mailbox, GREETERS)
    greeting = _greeting(db, user, mailbox, kind)
    audit(db, user, "voicemail.greeting.delete", f"{mailbox}/{kind}",
          {"seconds": greeting.seconds}, None)
    delete_greeting(db, greeting)
    return Response(status_code=204)


def _settings_out(db: Session, user: ApiUser, mailbox: str) -> SettingsOut:
    settings = mailbox_settings(db, user.organisation_id, mailbox)
    return SettingsOut(mailbox=mailbox, pin_set=bool(settings.pin_hash),
                       pin_from_own_device=settings.pin_from_own_device,
                       operator=settings.operator)


@router.get("/voicemail/{mailbox}/settings", response_model=SettingsOut, responses=NOT_FOUND)
def get_settings(mailbox: Mailbox, user: User, db: Db) -> SettingsOut:
    mailbox_of_org(db, user, mailbox, GREETERS)
    return _settings_out(db, user, mailbox)


@router.patch("/voicemail/{mailbox}/settings", response_model=SettingsOut,
              responses={**NOT_FOUND, 422: {"description": "an operator the organisation "
                                                           "lacks"}})
def patch_settings(mailbox: Mailbox, body: SettingsPatch, user: User, db: Db) -> SettingsOut:
    mailbox_of_org(db, user, mailbox, KEEPERS)
    if body.operator and kind_of(db, user.organisation_id, body.operator) is None:
        raise HTTPException(422, [{"loc": ["body", "operator"], "type": "value_error",
                                   "msg": f"no extension, service or number {body.operator}"}])
    settings = mailbox_settings(db, user.organisation_id, mailbox)
    before = _settings_out(db, user, mailbox).model_dump()
    for name, value in body.model_dump(exclude_none=True).items():
        setattr(settings, name, value)
    db.add(settings)
    audit(db, user, "voicemail.settings", mailbox, before,
          {**before, **body.model_dump(exclude_none=True)})
    db.commit()
    return _settings_out(db, user, mailbox)


@router.put("/voicemail/{mailbox}/pin", status_code=204, responses=NOT_FOUND)
def put_pin(mailbox: Mailbox, body: PinIn, user: User, db: Db) -> Response:
    """A new PIN (kept hashed): asked when the menu is reached from another phone."""
    mailbox_of_org(db, user, mailbox, KEEPERS)
    audit(db, user, "voicemail.pin", mailbox, None, {"pin": "changed"})
    set_pin(db, mailbox_settings(db, user.organisation_id, mailbox), body.pin)
    return Response(status_code=204)


@router.delete("/voicemail/{mailbox}/pin", status_code=204, responses=NOT_FOUND)
def delete_pin(mailbox: Mailbox, user: User, db: Db) -> Response:
    """No PIN: the mailbox is reached only from its own phone."""
    mailbox_of_org(db, user, mailbox, KEEPERS)
    audit(db, user, "voicemail.pin", mailbox, {"pin": "set"}, None)
    set_pin(db, mailbox_settings(db, user.organisation_id, mailbox), "")
    return Response(status_code=204)
