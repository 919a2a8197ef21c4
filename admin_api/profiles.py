"""Presence profiles of an extension, their weekly schedules and its calendar.

The rules (which profile is active, what it does to a call) are in
:mod:`pbx.profiles`.  An extension gets the default profiles (Working, Lunch,
Meeting, Off) the first time any of these endpoints is used for it; until
then no profile is active and every call comes through, as with Working.

Admins manage every extension's profiles; a user (agent, supervisor …)
manages their own extension's — the one on their login.  Supervisors may
read everyone's.  Every change is audited and reloads the directory.
"""

import logging
import time
from datetime import datetime, timezone
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime, BaseModel, Field, ValidationError
from sqlmodel import Session, col, func, select

from admin_api.deps import (
    NOT_FOUND, TARGET, Db, Offset, Page, RowId, Sip, User, audit, fields_of, own_extension,
)
from admin_api.services import kind_of
from pbx.calendars import FEED_DAYS, UPLOAD_DAYS, FetchError, events_from, fetch, replace_events
from pbx.models import (
    ApiUser, CalendarEvent, Extension, Organisation, Profile, ProfileSchedule,
)
from pbx.profiles import DAYS, DEFAULT_PROFILES, CalendarError, active_profile, zone
from pbx.server import SipServer

log = logging.getLogger("admin_api")
router = APIRouter(prefix="/api", tags=["profiles"])

Accept = Literal["direct", "queue", "both", "none"]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
NAME = r"^[^\x00-\x1f\x7f]{1,40}$"
CALLER_ID = r"^(\+?[0-9]{1,30})?$"
START = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
END = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"
CALENDAR_URL = r"^(https?|webcal)://[^\s]{1,1990}$"
Limit = Annotated[int, Query(ge=1, le=500)]
ProfileRef = Annotated[int, Field(ge=1, le=2**31 - 1)]  # a profile's id in a body, like RowId
WRITE = {**NOT_FOUND, 422: {"description": "invalid fields, with the reason"}}
CONFLICT = {**WRITE, 409: {"description": "conflicts with another profile of the extension"}}


# ------------------------------------------------------------------ models


class ProfileIn(BaseModel):
    name: str = Field(pattern=NAME)
    accept: Accept = Field("both", description="the calls that come through")
    divert: str = Field("", pattern=TARGET,
                        description='where the others go: "voicemail", a number, "" = busy')
    caller_id: str = Field("", pattern=CALLER_ID, description="number shown on outgoing calls")
    calendar_match: str = Field("", max_length=400,
                                description='comma-separated words of event titles; "*" = any')


class ProfilePatch(BaseModel):
    name: str | None = Field(None, pattern=NAME)
    accept: Accept | None = None
    divert: str | None = Field(None, pattern=TARGET)
    caller_id: str | None = Field(None, pattern=CALLER_ID)
    calendar_match: str | None = Field(None, max_length=400)


class ProfileOut(BaseModel):
    id: int
    extension: str
    name: str
    accept: str
    divert: str
    caller_id: str
    calendar_match: str


class ProfilePage(Page):
    items: list[ProfileOut]


class Switch(BaseModel):
    profile_id: ProfileRef | None = Field(description="the profile chosen by hand; null: none")
    until: AwareDatetime | None = Field(None, description="when the choice ends (with offset)")


class ActiveOut(BaseModel):
    profile: ProfileOut | None
    reason: Literal["manual", "calendar", "schedule", "none"]
    until: datetime | None = Field(description="when this reason stops applying, if known")
    detail: str


class ScheduleIn(BaseModel):
    profile_id: ProfileRef
    days: list[Day] = Field(default=["mon", "tue", "wed", "thu", "fri"], min_length=1,
                            max_length=7)
    start: str = Field(pattern=START, description="HH:MM in the organisation's time zone")
    end: str = Field(pattern=END, description="HH:MM; at or before start: over midnight")


class SchedulePatch(BaseModel):
    profile_id: ProfileRef | None = None
    days: list[Day] | None = Field(None, min_length=1, max_length=7)
    start: str | None = Field(None, pattern=START)
    end: str | None = Field(None, pattern=END)


class ScheduleOut(BaseModel):
    id: int
    profile_id: int
    days: list[str]
    start: str
    end: str


class SchedulePage(Page):
    items: list[ScheduleOut]


class CalendarUrl(BaseModel):
    url: str = Field(pattern=CALENDAR_URL, max_length=2000, description="an ICS feed")


class EventOut(BaseModel):
    summary: str
    starts_at: datetime
    ends_at: datetime


class CalendarOut(BaseModel):
    url: str
    events: list[EventOut] = Field(description="the next events (at most 100)")


# ------------------------------------------------------------------ helpers


def extension_for(db: Session, user: ApiUser, number: str, *, change: bool) -> Extension:
    """The extension, if ``user`` may read (or ``change``) its profiles: 404 / 403."""
    ext = own_extension(db, user, number)
    if user.role == "admin" or (user.extension and user.extension == number):
        return ext
    if not change and user.role == "supervisor":
        return ext
    log.info("%s (%s) refused the profiles of %s", user.username, user.role, number)
    raise HTTPException(403, f"role {user.role} may only manage the profiles of its own extension")


def profiles_of(db: Session, user: ApiUser, ext: Extension) -> list[Profile]:
    """The extension's profiles; the defaults are made the first time."""
    scope = (col(Profile.organisation_id) == ext.organisation_id,
             col(Profile.extension) == ext.number)
    found = list(db.exec(select(Profile).where(*scope).order_by(col(Profile.id))).all())
    if found:
        return found
    for name, accept, divert, match in DEFAULT_PROFILES:
        db.add(Profile(organisation_id=ext.organisation_id, extension=ext.number, name=name,
                       accept=accept, divert=divert, calendar_match=match))
    audit(db, user, "profile.defaults", ext.number, None,
          [name for name, *_ in DEFAULT_PROFILES])
    db.commit()
    return list(db.exec(select(Profile).where(*scope).order_by(col(Profile.id))).all())


def commit_change(db: Session, sip: SipServer, user: ApiUser, action: str, target: str,
                  before: Any, after: Any) -> None:
    """Audit a change, commit it with its entry, and let the SIP side see it."""
    audit(db, user, action, target, before, after)
    db.commit()
    sip.directory.reload()


def shown(profile: Profile) -> ProfileOut:
    return ProfileOut(**fields_of(ProfileOut, profile))


def shown_schedule(row: ProfileSchedule) -> ScheduleOut:
    assert row.id is not None
    return ScheduleOut(id=row.id, profile_id=row.profile_id, days=row.days.split(","),
                       start=row.start, end=row.end)


def instant(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, timezone.utc)


def owned_profile(db: Session, user: ApiUser, profile_id: int, *, change: bool) -> Profile:
    profile = db.get(Profile, profile_id)
    if profile is None or profile.organisation_id != user.organisation_id:
        raise HTTPException(404, f"no profile {profile_id}")
    extension_for(db, user, profile.extension, change=change)
    return profile


def profile_of_extension(db: Session, ext: Extension, profile_id: int) -> Profile:
    """``profile_id`` as a profile of ``ext``, or 422 naming the field."""
    profile = db.get(Profile, profile_id)
    if profile is None or profile.organisation_id != ext.organisation_id \
            or profile.extension != ext.number:
        raise HTTPException(
            422, f"profile_id: {profile_id} is not a profile of extension {ext.number}")
    return profile


def org_zone(db: Session, ext: Extension) -> ZoneInfo:
    org = db.get(Organisation, ext.organisation_id)
    return zone(org.timezone if org is not None else "")


def current(db: Session, user: ApiUser, ext: Extension) -> ActiveOut:
    """The active profile of ``ext`` now, and why."""
    now = time.time()
    profiles = profiles_of(db, user, ext)
    scope = (col(ProfileSchedule.organisation_id) == ext.organisation_id,
             col(ProfileSchedule.extension) == ext.number)
    schedules = db.exec(select(ProfileSchedule).where(*scope)).all()
    events = db.exec(select(CalendarEvent).where(
        col(CalendarEvent.organisation_id) == ext.organisation_id,
        col(CalendarEvent.extension) == ext.number,
        col(CalendarEvent.starts_at) <= now, col(CalendarEvent.ends_at) > now,
    )).all()
    found = active_profile(ext, profiles, schedules, events, now, org_zone(db, ext))
    return ActiveOut(profile=shown(found.profile) if found.profile else None, reason=found.reason,
                     until=instant(found.until), detail=found.detail)


def _unique_name(db: Session, ext: Extension, name: str, other_than: int | None = None) -> None:
    clash = db.exec(select(Profile).where(
        col(Profile.organisation_id) == ext.organisation_id, col(Profile.extension) == ext.number,
        col(Profile.name) == name,
    )).first()
    if clash is not None and clash.id != other_than:
        raise HTTPException(409, f"extension {ext.number} already has a profile {name!r}")


def _check_caller_id(db: Session, ext: Extension, caller_id: str | None) -> None:
    """A profile shows only a number the organisation has, as an extension does."""
    if caller_id and kind_of(db, ext.organisation_id, caller_id) != "number":
        raise HTTPException(422, [{"loc": ["body", "caller_id"], "type": "value_error",
                                   "msg": f"{caller_id} is not a number of the organisation"}])


def _ordered_days(days: list[str]) -> str:
    return ",".join(d for d in DAYS if d in days)


def _check_times(start: str, end: str) -> None:
    if start == end:
        raise HTTPException(422, "end: equal to start; a schedule needs some time")


# ------------------------------------------------------------------ profiles


@router.get("/extensions/{number}/profiles", response_model=ProfilePage, responses=NOT_FOUND)
def list_profiles(number: str, user: User, db: Db, limit: Limit = 100,
                  offset: Offset = 0) -> ProfilePage:
    ext = extension_for(db, user, number, change=False)
    rows = profiles_of(db, user, ext)
    return ProfilePage(total=len(rows), limit=limit, offset=offset,
                       items=[shown(p) for p in rows[offset : offset + limit]])


@router.post("/extensions/{number}/profiles", response_model=ProfileOut, status_code=201,
             responses=CONFLICT)
def create_profile(number: str, body: ProfileIn, user: User, db: Db, sip: Sip) -> ProfileOut:
    ext = extension_for(db, user, number, change=True)
    profiles_of(db, user, ext)
    _unique_name(db, ext, body.name)
    _check_caller_id(db, ext, body.caller_id)
    profile = Profile(organisation_id=ext.organisation_id, extension=ext.number,
                      **body.model_dump())
    db.add(profile)
    db.flush()
    commit_change(db, sip, user, "profile.create", number, None, shown(profile).model_dump())
    return shown(profile)


@router.patch("/profiles/{profile_id}", response_model=ProfileOut, responses=CONFLICT)
def update_profile(profile_id: RowId, body: ProfilePatch, user: User, db: Db,
                   sip: Sip) -> ProfileOut:
    profile = owned_profile(db, user, profile_id, change=True)
    before = shown(profile).model_dump()
    changes = body.model_dump(exclude_none=True)
    ext = own_extension(db, user, profile.extension)
    if "name" in changes:
        _unique_name(db, ext, changes["name"], profile.id)
    _check_caller_id(db, ext, body.caller_id)
    for name, value in changes.items():
        setattr(profile, name, value)
    db.add(profile)
    commit_change(db, sip, user, "profile.update", profile.extension, before,
                  shown(profile).model_dump())
    return shown(profile)


@router.delete("/profiles/{profile_id}", status_code=204,
               responses={**NOT_FOUND, 409: {"description": "the extension's last profile"}})
def delete_profile(profile_id: RowId, user: User, db: Db, sip: Sip) -> Response:
    profile = owned_profile(db, user, profile_id, change=True)
    ext = own_extension(db, user, profile.extension)
    if len(profiles_of(db, user, ext)) == 1:
        raise HTTPException(409, "an extension keeps at least one profile")
    for schedule in db.exec(select(ProfileSchedule).where(
            col(ProfileSchedule.profile_id) == profile.id)).all():
        db.delete(schedule)
    if ext.profile_id == profile.id:
        ext.profile_id, ext.profile_until = None, None
        db.add(ext)
    db.flush()
    db.delete(profile)
    commit_change(db, sip, user, "profile.delete", profile.extension, shown(profile).model_dump(),
                  None)
    return Response(status_code=204)


# ------------------------------------------------------------------ the active profile


@router.get("/extensions/{number}/profile", response_model=ActiveOut, responses=NOT_FOUND)
def get_active(number: str, user: User, db: Db) -> ActiveOut:
    """The profile active now and why: manual, calendar, schedule or none."""
    return current(db, user, extension_for(db, user, number, change=False))


@router.post("/extensions/{number}/profile", response_model=ActiveOut, responses=WRITE)
def switch_profile(number: str, body: Switch, user: User, db: Db, sip: Sip) -> ActiveOut:
    """Choose a profile by hand, optionally until a time (then it beats calendar
    and schedule); answers with the profile now active, which without an end
    time may still be a calendar's or a schedule's."""
    ext = extension_for(db, user, number, change=True)
    profiles_of(db, user, ext)
    if body.profile_id is not None:
        profile_of_extension(db, ext, body.profile_id)
    until = body.until.timestamp() if body.until is not None else None
    if until is not None and (body.profile_id is None or until <= time.time()):
        raise HTTPException(422, "until: must be in the future, with a profile_id")
    before = {"profile_id": ext.profile_id, "until": instant(ext.profile_until)}
    ext.profile_id, ext.profile_until = body.profile_id, until
    db.add(ext)
    commit_change(db, sip, user, "profile.switch", number, before,
                  {"profile_id": ext.profile_id, "until": instant(until)})
    log.info("%s switched %s to profile %s until %s", user.username, number, body.profile_id,
             body.until)
    return current(db, user, ext)


# ------------------------------------------------------------------ schedules


@router.get("/extensions/{number}/schedules", response_model=SchedulePage, responses=NOT_FOUND)
def list_schedules(number: str, user: User, db: Db, limit: Limit = 100,
                   offset: Offset = 0) -> SchedulePage:
    ext = extension_for(db, user, number, change=False)
    scope = (col(ProfileSchedule.organisation_id) == ext.organisation_id,
             col(ProfileSchedule.extension) == ext.number)
    total = db.exec(select(func.count()).select_from(ProfileSchedule).where(*scope)).one()
    rows = db.exec(select(ProfileSchedule).where(*scope).order_by(col(ProfileSchedule.id))
                   .offset(offset).limit(limit)).all()
    return SchedulePage(total=total, limit=limit, offset=offset,
                        items=[shown_schedule(r) for r in rows])


@router.post("/extensions/{number}/schedules", response_model=ScheduleOut, status_code=201,
             responses=WRITE)
def create_schedule(number: str, body: ScheduleIn, user: User, db: Db, sip: Sip) -> ScheduleOut:
    ext = extension_for(db, user, number, change=True)
    profiles_of(db, user, ext)
    profile_of_extension(db, ext, body.profile_id)
    _check_times(body.start, body.end)
    row = ProfileSchedule(organisation_id=ext.organisation_id, extension=ext.number,
                          profile_id=body.profile_id, days=_ordered_days(body.days),
                          start=body.start, end=body.end)
    db.add(row)
    db.flush()
    commit_change(db, sip, user, "schedule.create", number, None,
                  shown_schedule(row).model_dump())
    return shown_schedule(row)


def _owned_schedule(db: Session, user: ApiUser, schedule_id: int,
                    number: str) -> tuple[Extension, ProfileSchedule]:
    ext = extension_for(db, user, number, change=True)
    row = db.get(ProfileSchedule, schedule_id)
    if row is None or row.organisation_id != ext.organisation_id or row.extension != ext.number:
        raise HTTPException(404, f"no schedule {schedule_id} of extension {number}")
    return ext, row


@router.patch("/extensions/{number}/schedules/{schedule_id}", response_model=ScheduleOut,
              responses=WRITE)
def update_schedule(number: str, schedule_id: RowId, body: SchedulePatch, user: User, db: Db,
                    sip: Sip) -> ScheduleOut:
    ext, row = _owned_schedule(db, user, schedule_id, number)
    before = shown_schedule(row).model_dump()
    if body.profile_id is not None:
        profile_of_extension(db, ext, body.profile_id)
        row.profile_id = body.profile_id
    if body.days is not None:
        row.days = _ordered_days(body.days)
    row.start = body.start or row.start
    row.end = body.end or row.end
    _check_times(row.start, row.end)
    db.add(row)
    commit_change(db, sip, user, "schedule.update", number, before,
                  shown_schedule(row).model_dump())
    return shown_schedule(row)


@router.delete("/extensions/{number}/schedules/{schedule_id}", status_code=204,
               responses=NOT_FOUND)
def delete_schedule(number: str, schedule_id: RowId, user: User, db: Db, sip: Sip) -> Response:
    _, row = _owned_schedule(db, user, schedule_id, number)
    db.delete(row)
    commit_change(db, sip, user, "schedule.delete", number, shown_schedule(row).model_dump(), None)
    return Response(status_code=204)


# ------------------------------------------------------------------ calendar


async def calendar_body(request: Request) -> tuple[str, bytes]:
    """The PUT body and its media type (JSON with a URL, or an ICS file)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return kind, await request.body()


def calendar_of(db: Session, ext: Extension) -> CalendarOut:
    upcoming = db.exec(select(CalendarEvent).where(
        col(CalendarEvent.organisation_id) == ext.organisation_id,
        col(CalendarEvent.extension) == ext.number, col(CalendarEvent.ends_at) > time.time(),
    ).order_by(col(CalendarEvent.starts_at)).limit(100)).all()
    return CalendarOut(url=ext.calendar_url, events=[
        EventOut(summary=e.summary, starts_at=instant(e.starts_at), ends_at=instant(e.ends_at))
        for e in upcoming
    ])


@router.get("/extensions/{number}/calendar", response_model=CalendarOut, responses=NOT_FOUND)
def get_calendar(number: str, user: User, db: Db) -> CalendarOut:
    return calendar_of(db, extension_for(db, user, number, change=False))


@router.put(
    "/extensions/{number}/calendar", response_model=CalendarOut,
    responses={**WRITE, 415: {"description": "neither application/json nor text/calendar"}},
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": CalendarUrl.model_json_schema()},
        "text/calendar": {"schema": {"type": "string", "description": "an iCalendar file"}},
    }}},
)
def put_calendar(number: str, user: User, db: Db, sip: Sip,
                 body: Annotated[tuple[str, bytes], Depends(calendar_body)]) -> CalendarOut:
    """Subscribe to an ICS URL (``{"url": …}``, fetched now and every 15 minutes),
    or upload an ICS file (``text/calendar``, its events for a year ahead).
    Events matching a profile's ``calendar_match`` switch to it while they last."""
    ext = extension_for(db, user, number, change=True)
    profiles_of(db, user, ext)
    kind, data = body
    now = time.time()
    tz = org_zone(db, ext)
    before = {"url": ext.calendar_url}
    try:
        if kind == "application/json":
            try:
                url = CalendarUrl.model_validate_json(data).url
            except ValidationError as exc:
                raise RequestValidationError([  # without the input: it may not be text
                    {"type": e["type"], "loc": ("body", *e["loc"]), "msg": e["msg"]}
                    for e in exc.errors()]) from None
            ics = fetch(url, sip.config.general.calendar_private_hosts)
            rows = events_from(ics, ext, tz, now, FEED_DAYS)
            ext.calendar_url = url
        elif kind == "text/calendar":
            rows = events_from(data, ext, tz, now, UPLOAD_DAYS)
            ext.calendar_url = ""
        else:
            raise HTTPException(415, "send application/json with a url, or a text/calendar file")
    except (CalendarError, FetchError) as exc:
        log.info("calendar of %s refused: %s", number, exc)
        raise HTTPException(422, str(exc)) from None
    replace_events(db, ext, rows)
    db.add(ext)
    commit_change(db, sip, user, "calendar.set", number, before,
                  {"url": ext.calendar_url, "events": len(rows)})
    return calendar_of(db, ext)


@router.delete("/extensions/{number}/calendar", status_code=204, responses=NOT_FOUND)
def delete_calendar(number: str, user: User, db: Db, sip: Sip) -> Response:
    """Forget the calendar: its URL and its events."""
    ext = extension_for(db, user, number, change=True)
    before = {"url": ext.calendar_url}
    ext.calendar_url = ""
    replace_events(db, ext, [])
    db.add(ext)
    commit_change(db, sip, user, "calendar.delete", number, before, None)
    return Response(status_code=204)


def forget_extension(db: Session, ext: Extension) -> None:
    """Remove what belongs to an extension being deleted: its profiles,
    schedules and calendar events (in the caller's transaction)."""
    for model in (ProfileSchedule, CalendarEvent):
        for row in db.exec(select(model).where(
                col(model.organisation_id) == ext.organisation_id,
                col(model.extension) == ext.number)).all():
            db.delete(row)
    ext.profile_id = None
    db.add(ext)
    db.flush()
    for row in db.exec(select(Profile).where(
            col(Profile.organisation_id) == ext.organisation_id,
            col(Profile.extension) == ext.number)).all():
        db.delete(row)
