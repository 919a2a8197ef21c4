"""Switchboard services and the plan that counts them (Telavox model).

Ring groups, conference rooms, IVRs, shared mailboxes and ACD queues.  Each kind is one line of ``SERVICE_KINDS`` (its table has
``organisation_id``, ``number`` and ``name``): the listing, the plan count and
the check that a number is free all read that table.  An organisation's plan
(``Organisation.plan``, a key of ``pbx.models.PLANS``) caps how many it may
have; creating one more is refused with 402 Payment Required, the answer that
says "upgrade the plan" rather than "fix the request".
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel
from sqlmodel import Session, col, func, select

from admin_api.callpolicy import policy_of
from admin_api.deps import ERRORS, Db, Limit, Offset, Page, User, audit, require
from ivr.check import where
from ivr.tree import IvrTree
from pbx.models import (
    PLANS, ApiUser, ConferenceRoom, Extension, Ivr, Number, Organisation, OutboundRoute, Profile,
    Queue, RingGroup, SharedMailbox, TimeCondition,
)
from pbx.numbering import COUNTRIES
from pbx.queue_settings import QueueConfig
from pbx.router import MAILBOX_PREFIX, PICKUP_ANY, PICKUP_PREFIX
from pbx.server import SipServer

router = APIRouter(prefix="/api", tags=["services"])


@dataclass(frozen=True)
class Numbered:
    """A table of things a number of the organisation can be."""

    table: Any  # a table with organisation_id and number (a service's also has name)
    label: str  # as a sentence names it


SERVICE_KINDS: dict[str, Numbered] = {
    "ringgroup": Numbered(RingGroup, "ring group"),
    "conference": Numbered(ConferenceRoom, "conference room"),
    "ivr": Numbered(Ivr, "IVR"),
    "sharedmailbox": Numbered(SharedMailbox, "shared mailbox"),
    "queue": Numbered(Queue, "queue"),
}
# Everything a number of the organisation can be; the plan counts only the services.
NUMBERED: dict[str, Numbered] = {
    "extension": Numbered(Extension, "extension"),
    "number": Numbered(Number, "number"),
    "timecondition": Numbered(TimeCondition, "time condition"),
    **SERVICE_KINDS,
}
OVER_PLAN: dict[int | str, dict[str, Any]] = {
    402: {"description": "the organisation's plan allows no more switchboard services"},
    409: {"description": "the number is taken"},
}
IN_USE: dict[int | str, dict[str, Any]] = {
    409: {"description": "something still points at the number (a DID, a forward, a fallback)"},
}


class ServiceOut(BaseModel):
    kind: str
    number: str
    name: str


class PlanUse(BaseModel):
    plan: str
    allowed: int | None  # None: unlimited
    used: int


class ServicePage(Page):
    items: list[ServiceOut]
    plan: PlanUse


def _rows(db: Session, kind: Numbered, organisation_id: int) -> list[Any]:
    table = kind.table
    return list(db.exec(select(table).where(table.organisation_id == organisation_id)).all())


def plan_use(db: Session, organisation_id: int) -> PlanUse:
    """How many switchboard services the organisation has and its plan allows."""
    org = db.get(Organisation, organisation_id)
    plan = org.plan if org is not None else ""
    used = 0
    for kind in SERVICE_KINDS.values():
        table = kind.table
        used += db.exec(select(func.count()).select_from(table)
                        .where(table.organisation_id == organisation_id)).one()
    return PlanUse(plan=plan, allowed=PLANS[plan] if plan in PLANS else 0, used=used)


def check_plan(db: Session, organisation_id: int) -> None:
    """Refuse one more switchboard service beyond the plan (402, with the figures)."""
    use = plan_use(db, organisation_id)
    if use.allowed is not None and use.used >= use.allowed:
        raise HTTPException(402, f"plan {use.plan} allows {use.allowed} switchboard services; "
                                 f"{use.used} in use")


def kind_of(db: Session, organisation_id: int, number: str) -> str | None:
    """What ``number`` is in the organisation (a key of ``NUMBERED``), or None."""
    for name, kind in NUMBERED.items():
        table = kind.table
        if db.exec(select(table).where(table.organisation_id == organisation_id,
                                       table.number == number)).first() is not None:
            return name
    return None


def refuse_taken(db: Session, sip: SipServer, organisation_id: int, number: str) -> None:
    """One number, one meaning: a number in use by anything of the organisation,
    or one the dial plan keeps (the voicemail menus, pickup codes, the emergency
    numbers of its country), is a 409."""
    general = sip.config.general
    menus = {general.voicemail_number, general.voicemail_main} - {""}
    if number in menus or number.startswith((PICKUP_ANY, PICKUP_PREFIX)):
        raise HTTPException(409, f"number {number} is reserved by the dial plan "
                                 f"(voicemail {' and '.join(sorted(menus))}, pickup "
                                 f"{PICKUP_ANY} and {PICKUP_PREFIX}…)")
    country = policy_of(db, sip, organisation_id).country
    if number in COUNTRIES[country].emergency:
        raise HTTPException(409, f"number {number} is an emergency number in {country}")
    kind = kind_of(db, organisation_id, number)
    if kind is not None:
        raise HTTPException(409, f"number {number} is taken by {NUMBERED[kind].label} {number}")


def referrers(db: Session, organisation_id: int, number: str) -> list[str]:
    """What points at ``number``: numbers reaching it, forwards, fallbacks, caller IDs,
    profiles diverting to it or showing it, outbound routes showing it, time conditions
    and IVR keys leading to it (or to its mailbox), queues it is a member or the
    overflow of."""
    found = [f"number {n.number}" for n in db.exec(select(Number).where(
        Number.organisation_id == organisation_id, Number.target == number))]
    found += [f"ring group {g.number}" for g in db.exec(select(RingGroup).where(
        RingGroup.organisation_id == organisation_id, RingGroup.fallback == number))]
    found += [f"extension {e.number}" for e in db.exec(select(Extension).where(
        Extension.organisation_id == organisation_id,
        (Extension.forward_always == number) | (Extension.forward_busy == number)
        | (Extension.forward_noanswer == number) | (Extension.caller_id_number == number)))]
    found += [f"profile {p.name} of {p.extension}" for p in db.exec(select(Profile).where(
        Profile.organisation_id == organisation_id,
        (Profile.divert == number) | (Profile.caller_id == number)))]
    found += [f"outbound route {r.name}" for r in db.exec(select(OutboundRoute).where(
        OutboundRoute.organisation_id == organisation_id, OutboundRoute.caller_id == number))]
    targets = (number, MAILBOX_PREFIX + number)
    found += [f"time condition {c.number}" for c in db.exec(select(TimeCondition).where(
        TimeCondition.organisation_id == organisation_id,
        col(TimeCondition.open_target).in_(targets)
        | col(TimeCondition.closed_target).in_(targets)))]
    for ivr in db.exec(select(Ivr).where(Ivr.organisation_id == organisation_id)):
        found += [f"IVR {ivr.name} ({where(loc)})"
                  for loc in IvrTree.model_validate_json(ivr.tree).references(number)]
    for row in db.exec(select(Queue).where(Queue.organisation_id == organisation_id)):
        queue = QueueConfig.model_validate_json(row.settings)
        if number in queue.penalties:
            found.append(f"queue {row.number} (member)")
        if queue.overflow in targets:
            found.append(f"queue {row.number} (overflow)")
    return found


def own_row(db: Session, user: ApiUser, kind: str, number: str) -> Any:
    """The organisation's ``kind`` (a key of ``NUMBERED``) numbered ``number``, or 404."""
    spec = NUMBERED[kind]
    row = db.exec(select(spec.table).where(spec.table.organisation_id == user.organisation_id,
                                           spec.table.number == number)).first()
    if row is None:
        raise HTTPException(404, f"no {spec.label} {number}")
    return row


def save_row(db: Session, user: ApiUser, sip: SipServer, kind: str, row: Any,
             before: dict[str, Any] | None, after: dict[str, Any]) -> None:
    """Commit a new (``before`` None) or changed row with its audit entry; the next
    call sees it."""
    db.add(row)
    audit(db, user, f"{kind}.{'create' if before is None else 'update'}", row.number, before,
          after)
    db.commit()
    sip.directory.reload()


def delete_row(db: Session, user: ApiUser, sip: SipServer, kind: str, number: str,
               shown: Callable[[Any], BaseModel]) -> None:
    """Delete the organisation's ``kind`` ``number`` unless something still points at it."""
    require(user, "admin")
    row = own_row(db, user, kind, number)
    users = referrers(db, user.organisation_id, number)
    if users:
        raise HTTPException(409, f"{NUMBERED[kind].label} {number} is in use by "
                                 f"{', '.join(users)}")
    audit(db, user, f"{kind}.delete", number, shown(row).model_dump(), None)
    db.delete(row)
    db.commit()
    sip.directory.reload()


@router.get("/services", response_model=ServicePage, responses=ERRORS)
def list_services(user: User, db: Db, limit: Limit = 100, offset: Offset = 0) -> ServicePage:
    """Every switchboard service of the organisation, and the plan's accounting."""
    services = sorted(
        (ServiceOut(kind=name, number=row.number, name=row.name)
         for name, kind in SERVICE_KINDS.items()
         for row in _rows(db, kind, user.organisation_id)),
        key=lambda s: (s.number, s.kind),
    )
    return ServicePage(total=len(services), limit=limit, offset=offset,
                       items=services[offset:offset + limit],
                       plan=plan_use(db, user.organisation_id))
