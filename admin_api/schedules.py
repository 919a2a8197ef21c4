"""Opening hours of the switchboard (schedules) and opening or closing it by hand
(Telavox "växeln öppen/stängd", FreePBX time groups).

A schedule is an :class:`ivr.schedule.Definition` with a name unique in the
organisation.  Admins define them; admins and supervisors switch them with
one call (close now, open until 13:00, back to schedule, or planned ahead);
every user of the organisation may read them and their state.  Every change
is audited and reloads the directory: the next call through a time
condition follows it, and the switchboard watcher publishes the change.
"""

import logging
import time
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlmodel import Session, col, func, select

from admin_api.deps import ERRORS, NOT_FOUND, Db, Offset, Page, Sip, User, audit, require
from ivr.schedule import (
    Action, DatedHours, Definition, Hours, OverrideError, Reason, Schedule,
)
from pbx.config import SCHEDULE_NAME
from pbx.models import ApiUser, Organisation, SwitchboardSchedule, TimeCondition
from pbx.profiles import zone
from pbx.server import SipServer

log = logging.getLogger("admin_api")
router = APIRouter(prefix="/api", tags=["schedules"])

Name = Annotated[str, Path(pattern=SCHEDULE_NAME)]
INVALID = {422: {"description": "invalid hours, time zone, country or times, with the field"}}
SWITCHERS = ("admin", "supervisor")


class SwitchboardScheduleIn(Definition):
    """A new schedule: its name and opening hours (``timezone`` defaults to the
    organisation's)."""

    name: str = Field(pattern=SCHEDULE_NAME)


class SwitchboardSchedulePatch(BaseModel):
    """Any fields of the definition; the result is validated as a whole."""

    model_config = ConfigDict(extra="forbid")

    timezone: str | None = Field(None, max_length=64)
    mon: Hours | None = None
    tue: Hours | None = None
    wed: Hours | None = None
    thu: Hours | None = None
    fri: Hours | None = None
    sat: Hours | None = None
    sun: Hours | None = None
    holidays: str | None = Field(None, max_length=8)
    holiday_hours: Hours | None = None
    exceptions: list[DatedHours] | None = Field(None, max_length=1000)


class OverrideIn(BaseModel):
    action: Action = Field(description="close, open, or schedule (back to the opening hours)")
    start: datetime | None = Field(None, description="a planned override: when it begins "
                                                     "(without offset: the schedule's zone)")
    until: datetime | None = Field(None, description="when it ends; none: until changed back")
    label: str = Field("", max_length=80, description="shown as the reason, e.g. Staff meeting")


class OverrideOut(BaseModel):
    action: Literal["open", "close"]
    start: datetime
    until: datetime | None
    label: str


class StateOut(BaseModel):
    schedule: str
    open: bool
    reason: Reason = Field(description="schedule, holiday, exception or override")
    label: str = Field(description="the holiday's name, the exception's or override's label")
    next_change: datetime | None = Field(description="when it next opens or closes, in the "
                                                     "organisation's time zone")
    overrides: list[OverrideOut] = Field(description="in force and planned")


class SwitchboardScheduleOut(Definition):
    name: str
    state: StateOut


class SwitchboardSchedulePage(Page):
    items: list[SwitchboardScheduleOut]


class SwitchboardPage(Page):
    items: list[StateOut]


# ------------------------------------------------------------------ helpers


def _zone(db: Session, user: ApiUser) -> ZoneInfo:
    org = db.get(Organisation, user.organisation_id)
    return zone(org.timezone if org is not None else "")


def state_of(row: SwitchboardSchedule, tz: ZoneInfo, now: float) -> StateOut:
    """The schedule's state at ``now``, times in ``tz``."""
    schedule = Schedule.load(row.definition, row.overrides)
    state = schedule.state(now)

    def local(epoch: float | None) -> datetime | None:
        return None if epoch is None else datetime.fromtimestamp(epoch, tz)

    return StateOut(
        schedule=row.name, open=state.open, reason=state.reason, label=state.label,
        next_change=local(state.next_change),
        overrides=[OverrideOut(action="open" if o.open else "close", start=local(o.start),
                               until=local(o.until), label=o.label)
                   for o in schedule.overrides if o.until is None or o.until > now],
    )


def shown(row: SwitchboardSchedule, tz: ZoneInfo, now: float) -> SwitchboardScheduleOut:
    definition = Definition.model_validate_json(row.definition)
    return SwitchboardScheduleOut(name=row.name, state=state_of(row, tz, now), **dict(definition))


def own_schedule(db: Session, user: ApiUser, name: str) -> SwitchboardSchedule:
    """The organisation's schedule ``name``, or 404."""
    row = db.exec(select(SwitchboardSchedule).where(
        SwitchboardSchedule.organisation_id == user.organisation_id,
        SwitchboardSchedule.name == name)).first()
    if row is None:
        raise HTTPException(404, f"no schedule {name}")
    return row


def _invalid(exc: ValidationError) -> HTTPException:
    """422 in FastAPI's shape: each error's place in the body and its reason."""
    return HTTPException(422, [{"loc": ["body", *error["loc"]], "msg": error["msg"],
                                "type": error["type"]} for error in exc.errors()])


def _instant(value: datetime | None, field: str, tz: ZoneInfo) -> float | None:
    """An API time as epoch seconds; one without offset is in the schedule's zone."""
    if value is None:
        return None
    try:
        return (value if value.tzinfo is not None else value.replace(tzinfo=tz)).timestamp()
    except (OverflowError, ValueError, OSError):
        raise HTTPException(422, [{"loc": ["body", field], "msg": "not a time the clock can "
                                   "reach", "type": "value_error"}]) from None


def _commit(db: Session, sip: SipServer, user: ApiUser, row: SwitchboardSchedule, action: str,
            before: Any, after: Any) -> None:
    """Audit, commit and let the SIP side (router, watcher) see the change."""
    row.changed_at = time.time()
    db.add(row)
    audit(db, user, action, row.name, before, after)
    db.commit()
    sip.directory.reload()


def _summary(state: StateOut) -> dict[str, Any]:
    return state.model_dump(mode="json", exclude={"schedule", "next_change"})


# ------------------------------------------------------------------ schedules


@router.get("/schedules", response_model=SwitchboardSchedulePage, responses=ERRORS)
def list_schedules(user: User, db: Db, limit: Annotated[int, Query(ge=1, le=500)] = 100,
                   offset: Offset = 0) -> SwitchboardSchedulePage:
    scope = SwitchboardSchedule.organisation_id == user.organisation_id
    total = db.exec(select(func.count()).select_from(SwitchboardSchedule).where(scope)).one()
    rows = db.exec(select(SwitchboardSchedule).where(scope)
                   .order_by(col(SwitchboardSchedule.name)).offset(offset).limit(limit)).all()
    tz, now = _zone(db, user), time.time()
    return SwitchboardSchedulePage(total=total, limit=limit, offset=offset,
                        items=[shown(row, tz, now) for row in rows])


@router.get("/schedules/{name}", response_model=SwitchboardScheduleOut, responses=NOT_FOUND)
def get_schedule(name: Name, user: User, db: Db) -> SwitchboardScheduleOut:
    return shown(own_schedule(db, user, name), _zone(db, user), time.time())


@router.post("/schedules", response_model=SwitchboardScheduleOut, status_code=201,
             responses={**ERRORS, **INVALID, 409: {"description": "the name is taken"}})
def create_schedule(body: SwitchboardScheduleIn, user: User, db: Db,
                    sip: Sip) -> SwitchboardScheduleOut:
    require(user, "admin")
    if db.exec(select(SwitchboardSchedule).where(
            SwitchboardSchedule.organisation_id == user.organisation_id,
            SwitchboardSchedule.name == body.name)).first() is not None:
        raise HTTPException(409, f"schedule {body.name} exists")
    fields = body.model_dump(mode="json", exclude={"name"})
    if "timezone" not in body.model_fields_set:
        org = db.get(Organisation, user.organisation_id)
        fields["timezone"] = org.timezone if org is not None else fields["timezone"]
    try:
        definition = Definition.model_validate(fields)
    except ValidationError as exc:
        raise _invalid(exc) from None
    row = SwitchboardSchedule(organisation_id=user.organisation_id, name=body.name,
                              definition=definition.model_dump_json())
    _commit(db, sip, user, row, "schedule.create", None, definition.model_dump(mode="json"))
    log.info("%s created schedule %s", user.username, body.name)
    return shown(row, _zone(db, user), time.time())


@router.patch("/schedules/{name}", response_model=SwitchboardScheduleOut,
              responses={**NOT_FOUND, **INVALID})
def update_schedule(name: Name, body: SwitchboardSchedulePatch, user: User, db: Db,
                    sip: Sip) -> SwitchboardScheduleOut:
    """Change some fields of the opening hours; overrides stay as they are."""
    require(user, "admin")
    row = own_schedule(db, user, name)
    before = Definition.model_validate_json(row.definition).model_dump(mode="json")
    try:
        definition = Definition.model_validate(
            {**before, **body.model_dump(mode="json", exclude_unset=True)})
    except ValidationError as exc:
        raise _invalid(exc) from None
    row.definition = definition.model_dump_json()
    _commit(db, sip, user, row, "schedule.update", before, definition.model_dump(mode="json"))
    return shown(row, _zone(db, user), time.time())


@router.delete("/schedules/{name}", status_code=204,
               responses={**NOT_FOUND, 409: {"description": "a time condition uses it"}})
def delete_schedule(name: Name, user: User, db: Db, sip: Sip) -> Response:
    require(user, "admin")
    row = own_schedule(db, user, name)
    users = db.exec(select(TimeCondition.number).where(
        TimeCondition.organisation_id == user.organisation_id,
        TimeCondition.schedule == name)).all()
    if users:
        raise HTTPException(409, f"schedule {name} is used by time condition "
                                 f"{', '.join(users)}")
    audit(db, user, "schedule.delete", name,
          Definition.model_validate_json(row.definition).model_dump(mode="json"), None)
    db.delete(row)
    db.commit()
    sip.directory.reload()
    return Response(status_code=204)


# ------------------------------------------------------------------ the switch


@router.get("/switchboard", response_model=SwitchboardPage, responses=ERRORS)
def switchboard(user: User, db: Db) -> SwitchboardPage:
    """Open or closed, per schedule: what a receptionist's or a wallboard's screen shows."""
    rows = db.exec(select(SwitchboardSchedule).where(
        SwitchboardSchedule.organisation_id == user.organisation_id)
        .order_by(col(SwitchboardSchedule.name))).all()
    tz, now = _zone(db, user), time.time()
    return SwitchboardPage(total=len(rows), limit=len(rows), offset=0,
                           items=[state_of(row, tz, now) for row in rows])


@router.get("/schedules/{name}/state", response_model=StateOut, responses=NOT_FOUND)
def get_state(name: Name, user: User, db: Db) -> StateOut:
    return state_of(own_schedule(db, user, name), _zone(db, user), time.time())


@router.post("/schedules/{name}/override", response_model=StateOut,
             responses={**NOT_FOUND, **INVALID})
def override(name: Name, body: OverrideIn, user: User, db: Db, sip: Sip) -> StateOut:
    """Close or open the switchboard now (until a time, or until changed back),
    plan it for later (``start``), or go back to the opening hours."""
    require(user, *SWITCHERS)
    row = own_schedule(db, user, name)
    schedule, tz, now = Schedule.load(row.definition, row.overrides), _zone(db, user), time.time()
    before = state_of(row, tz, now)
    local = schedule.zone
    try:
        switched = schedule.switched(body.action, now, start=_instant(body.start, "start", local),
                                     until=_instant(body.until, "until", local), label=body.label)
    except OverrideError as exc:
        raise HTTPException(422, [{"loc": ["body", exc.field], "msg": exc.message,
                                   "type": "value_error"}]) from None
    row.overrides = switched.overrides_json()
    after = state_of(row, tz, now)
    _commit(db, sip, user, row, "schedule.override", _summary(before), _summary(after))
    log.info("%s (%s): schedule %s %s → %s (%s)", user.username, user.role, name, body.action,
             "open" if after.open else "closed", after.reason)
    return after


@router.delete("/schedules/{name}/overrides", response_model=StateOut, responses=NOT_FOUND)
def clear_overrides(name: Name, user: User, db: Db, sip: Sip) -> StateOut:
    """Drop every override, in force and planned: the opening hours alone decide."""
    require(user, *SWITCHERS)
    row = own_schedule(db, user, name)
    tz, now = _zone(db, user), time.time()
    before = state_of(row, tz, now)
    row.overrides = Schedule.load(row.definition, row.overrides).without_overrides() \
        .overrides_json()
    after = state_of(row, tz, now)
    _commit(db, sip, user, row, "schedule.override", _summary(before), _summary(after))
    return after
