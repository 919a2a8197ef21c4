"""Time conditions: numbers of the dial plan that lead one way while a schedule
is open and another while it is closed (FreePBX time conditions; Telavox's
"open / closed" routing of the switchboard number).

Targets are numbers of the organisation (an extension, a ring group, a
service, a number, another time condition) or ``voicemail:<mailbox>``.
Changes take effect on the next call: the directory is reloaded.
"""

import time
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, Field
from sqlmodel import Session, col, func, select

from admin_api.deps import ERRORS, NOT_FOUND, NUMBER, Db, Offset, Page, Sip, User, require
from admin_api.services import IN_USE, delete_row, kind_of, own_row, refuse_taken, save_row
from ivr.schedule import Schedule
from pbx.config import DIAL_TARGET, SCHEDULE_NAME
from pbx.models import ApiUser, Number, SwitchboardSchedule, TimeCondition
from pbx.router import MAILBOX_PREFIX

router = APIRouter(prefix="/api", tags=["time conditions"])

INVALID = {422: {"description": "invalid fields, an unknown schedule or target, or a loop"}}
TARGET_HELP = "a number of the organisation, or voicemail:<mailbox>"


class TimeConditionPatch(BaseModel):
    name: str | None = Field(None, max_length=200)
    schedule: str | None = Field(None, pattern=SCHEDULE_NAME)
    open_target: str | None = Field(None, pattern=DIAL_TARGET, description=TARGET_HELP)
    closed_target: str | None = Field(None, pattern=DIAL_TARGET, description=TARGET_HELP)


class TimeConditionIn(BaseModel):
    number: str = Field(pattern=NUMBER)
    name: str = Field("", max_length=200)
    schedule: str = Field(pattern=SCHEDULE_NAME, description="the schedule it follows")
    open_target: str = Field(pattern=DIAL_TARGET, description=TARGET_HELP)
    closed_target: str = Field(pattern=DIAL_TARGET, description=TARGET_HELP)


class TimeConditionOut(BaseModel):
    number: str
    name: str
    schedule: str
    open_target: str
    closed_target: str
    routes_to: str = Field(description="where a call goes now")


class TimeConditionPage(Page):
    items: list[TimeConditionOut]


def shown(db: Session, condition: TimeCondition) -> TimeConditionOut:
    row = db.exec(select(SwitchboardSchedule).where(
        SwitchboardSchedule.organisation_id == condition.organisation_id,
        SwitchboardSchedule.name == condition.schedule)).first()
    is_open = row is not None and Schedule.load(row.definition, row.overrides).state(
        time.time()).open
    return TimeConditionOut(
        number=condition.number, name=condition.name, schedule=condition.schedule,
        open_target=condition.open_target, closed_target=condition.closed_target,
        routes_to=condition.open_target if is_open else condition.closed_target)


def _invalid(field: str, message: str) -> HTTPException:
    return HTTPException(422, [{"loc": ["body", field], "msg": message, "type": "value_error"}])


def _check(db: Session, user: ApiUser, number: str, fields: dict[str, str]) -> None:
    """The schedule exists; each target is something of the organisation, and
    following numbers and time conditions from it never comes back to ``number``."""
    org = user.organisation_id
    schedule = fields.get("schedule")
    if schedule is not None and db.exec(select(SwitchboardSchedule).where(
            SwitchboardSchedule.organisation_id == org,
            SwitchboardSchedule.name == schedule)).first() is None:
        raise _invalid("schedule", f"no schedule {schedule}")
    for field in ("open_target", "closed_target"):
        target = fields.get(field)
        if target is None:
            continue
        mailbox = target.removeprefix(MAILBOX_PREFIX)
        if mailbox != target:
            if kind_of(db, org, mailbox) not in ("extension", "sharedmailbox"):
                raise _invalid(field, f"no extension {mailbox} (nor shared mailbox) for voicemail")
            continue
        if target != number and kind_of(db, org, target) is None:
            raise _invalid(field, f"no extension, service or number {target}")
        if _leads_to(db, org, target, number):
            raise _invalid(field, f"{number} → {target} would make a loop")


def _leads_to(db: Session, organisation_id: int, start: str, number: str) -> bool:
    """Does following numbers and time conditions from ``start`` reach ``number``?"""
    seen, todo = set(), [start]
    while todo:
        current = todo.pop()
        if current == number:
            return True
        if current in seen:
            continue
        seen.add(current)
        todo += db.exec(select(Number.target).where(Number.organisation_id == organisation_id,
                                                    Number.number == current)).all()
        for condition in db.exec(select(TimeCondition).where(
                TimeCondition.organisation_id == organisation_id,
                TimeCondition.number == current)):
            todo += [condition.open_target, condition.closed_target]
    return False


@router.get("/timeconditions", response_model=TimeConditionPage, responses=ERRORS)
def list_time_conditions(
    user: User, db: Db, limit: Annotated[int, Query(ge=1, le=500)] = 100, offset: Offset = 0,
) -> TimeConditionPage:
    scope = TimeCondition.organisation_id == user.organisation_id
    total = db.exec(select(func.count()).select_from(TimeCondition).where(scope)).one()
    rows = db.exec(select(TimeCondition).where(scope).order_by(col(TimeCondition.number))
                   .offset(offset).limit(limit)).all()
    return TimeConditionPage(total=total, limit=limit, offset=offset,
                             items=[shown(db, c) for c in rows])


@router.get("/timeconditions/{number}", response_model=TimeConditionOut, responses=NOT_FOUND)
def get_time_condition(number: str, user: User, db: Db) -> TimeConditionOut:
    return shown(db, own_row(db, user, "timecondition", number))


@router.post("/timeconditions", response_model=TimeConditionOut, status_code=201,
             responses={**ERRORS, 409: {"description": "the number is taken"}, **INVALID})
def create_time_condition(body: TimeConditionIn, user: User, db: Db,
                          sip: Sip) -> TimeConditionOut:
    require(user, "admin")
    refuse_taken(db, sip, user.organisation_id, body.number)
    _check(db, user, body.number, body.model_dump())
    condition = TimeCondition(organisation_id=user.organisation_id, **body.model_dump())
    save_row(db, user, sip, "timecondition", condition, None, body.model_dump())
    return shown(db, condition)


@router.patch("/timeconditions/{number}", response_model=TimeConditionOut,
              responses={**NOT_FOUND, **INVALID})
def update_time_condition(number: str, body: TimeConditionPatch, user: User, db: Db,
                          sip: Sip) -> TimeConditionOut:
    require(user, "admin")
    condition = own_row(db, user, "timecondition", number)
    changes = body.model_dump(exclude_none=True)
    _check(db, user, number, changes)
    before = condition.model_dump(exclude={"id", "organisation_id"})
    for name, value in changes.items():
        setattr(condition, name, value)
    save_row(db, user, sip, "timecondition", condition, before,
             condition.model_dump(exclude={"id", "organisation_id"}))
    return shown(db, condition)


@router.delete("/timeconditions/{number}", status_code=204, responses={**NOT_FOUND, **IN_USE})
def delete_time_condition(number: str, user: User, db: Db, sip: Sip) -> Response:
    delete_row(db, user, sip, "timecondition", number, lambda c: shown(db, c))
    return Response(status_code=204)
