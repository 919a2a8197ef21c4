"""The organisation's call policy: the numbering plan its users dial in, its
toll-fraud limits and the longest call (``pbx.config.CallPolicyConfig`` says
what each key means).  What it does not set follows the node's ``[general]``
keys; setting a key to null goes back to them.  Admins only, audited, in
force for the next call.
"""

from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field, ValidationError
from sqlmodel import Session, select

from admin_api.deps import ERRORS, Db, Sip, User, audit, require
from pbx.config import POLICY_KEYS, CallPolicyConfig
from pbx.models import CallPolicy
from pbx.server import SipServer

router = APIRouter(prefix="/api", tags=["call policy"])


class CallPolicyPatch(BaseModel):
    """The keys to change; null: back to the node's default."""

    country: str | None = None
    outside_prefix: str | None = None
    max_outbound_calls: int | None = None
    max_outbound_per_extension: int | None = None
    max_calls_per_hour: int | None = None
    max_org_calls_per_hour: int | None = None
    international: bool | None = None
    international_prefixes: list[str] | None = Field(None, max_length=100)
    max_call_duration: int | None = None


class CallPolicyOut(CallPolicyConfig):
    defaults: list[str]  # the keys that follow the node's [general] values


def _row(db: Session, organisation_id: int) -> CallPolicy | None:
    return db.exec(select(CallPolicy).where(
        CallPolicy.organisation_id == organisation_id)).first()


def policy_of(db: Session, sip: SipServer, organisation_id: int) -> CallPolicyConfig:
    """The organisation's policy in force: its own keys over the node's."""
    return sip.config.general.of(_row(db, organisation_id))


def _shown(sip: Sip, row: CallPolicy | None) -> CallPolicyOut:
    policy = sip.config.general.of(row)
    own = {key for key in POLICY_KEYS if row is not None and getattr(row, key) is not None}
    return CallPolicyOut(**policy.model_dump(),
                         defaults=[key for key in POLICY_KEYS if key not in own])


@router.get("/call-policy", response_model=CallPolicyOut, responses=ERRORS)
def get_call_policy(user: User, db: Db, sip: Sip) -> CallPolicyOut:
    """The policy in force, and which keys are the node's defaults."""
    require(user, "admin")
    return _shown(sip, _row(db, user.organisation_id))


@router.patch("/call-policy", response_model=CallPolicyOut,
              responses={**ERRORS, 422: {"description": "a value out of range, an unknown "
                                                        "country, a prefix that is not E.164"}})
def update_call_policy(body: CallPolicyPatch, user: User, db: Db, sip: Sip) -> CallPolicyOut:
    require(user, "admin")
    row = _row(db, user.organisation_id) or CallPolicy(organisation_id=user.organisation_id)
    before = _shown(sip, row if row.id is not None else None).model_dump()
    changes: dict[str, Any] = {key: getattr(body, key) for key in body.model_fields_set}
    if changes.get("international_prefixes") is not None:
        changes["international_prefixes"] = ", ".join(changes["international_prefixes"])
    for key, value in changes.items():
        setattr(row, key, value)
    try:
        policy = sip.config.general.of(row)
    except ValidationError as exc:
        raise HTTPException(422, [{"loc": ["body", *error["loc"]], "msg": error["msg"],
                                   "type": error["type"]} for error in exc.errors()]) from None
    for key in changes:  # stored as validated: upper-case country, trimmed prefixes
        if getattr(row, key) is not None:
            value = getattr(policy, key)
            setattr(row, key, ", ".join(value) if isinstance(value, tuple) else value)
    db.add(row)
    after = _shown(sip, row)
    audit(db, user, "callpolicy.update", "call-policy", before, after.model_dump())
    db.commit()
    sip.directory.reload()
    return after
