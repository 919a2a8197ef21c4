"""SIP trunks to carriers: the organisation's own, and the operator's shared
ones (only the operator — the default organisation's admins — may make a
trunk shared).  A trunk's password is write-only.  The live registration
state comes from the node (``GET /api/trunks/{name}/state``); changes take
effect at once: the directory is reloaded and the node registers anew."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel, Field, ValidationError
from sqlmodel import Session, col, select

from admin_api.deps import ERRORS, NOT_FOUND, Db, Sip, User, audit, require
from admin_api.organisations import is_operator
from pbx.models import ApiUser, Trunk
from pbx.trunks.settings import TrunkSettings

router = APIRouter(prefix="/api", tags=["trunks"])
INVALID = {422: {"description": "a setting is wrong: the field and the reason are named"}}
SECRET = "password"


class TrunkOut(BaseModel):
    """A trunk as the API shows it: its settings without the password."""

    settings: dict[str, Any]
    password_set: bool


class TrunkState(BaseModel):
    name: str
    state: str = Field(description="registered, registering, failed, unregistered")
    code: int = Field(description="the carrier's last answer (408: none)")
    reason: str
    expires_at: float | None
    retry_at: float | None


def shown(row: Trunk) -> TrunkOut:
    settings = TrunkSettings.model_validate_json(row.settings)
    return TrunkOut(settings=settings.model_dump(exclude={SECRET}, mode="json"),
                    password_set=bool(settings.password))


def _validated(values: dict[str, Any]) -> TrunkSettings:
    """The settings, or a 422 naming the field (as FastAPI's own errors do)."""
    try:
        return TrunkSettings.model_validate(values)
    except ValidationError as exc:
        errors = [{"loc": ["body", *map(str, e["loc"])], "msg": e["msg"], "type": e["type"]}
                  for e in exc.errors()]
        raise HTTPException(422, errors) from None


def _own(db: Session, user: ApiUser, name: str) -> Trunk:
    row = db.exec(select(Trunk).where(Trunk.organisation_id == user.organisation_id,
                                      Trunk.name == name)).first()
    if row is None:
        raise HTTPException(404, f"no trunk {name}")
    return row


def _may_share(db: Session, user: ApiUser, settings: TrunkSettings) -> None:
    if settings.shared and not is_operator(db, user):
        raise HTTPException(403, "only the operator shares trunks with every organisation")


@router.get("/trunks", response_model=list[TrunkOut], responses=ERRORS)
def list_trunks(user: User, db: Db) -> list[TrunkOut]:
    require(user, "admin", "supervisor")
    rows = db.exec(select(Trunk).where(Trunk.organisation_id == user.organisation_id)
                   .order_by(col(Trunk.name))).all()
    return [shown(row) for row in rows]


@router.get("/trunks/{name}", response_model=TrunkOut, responses=NOT_FOUND)
def get_trunk(name: str, user: User, db: Db) -> TrunkOut:
    require(user, "admin", "supervisor")
    return shown(_own(db, user, name))


@router.post("/trunks", response_model=TrunkOut, status_code=201,
             responses={**ERRORS, **INVALID, 409: {"description": "the name is taken"}})
def create_trunk(body: dict[str, Any], user: User, db: Db, sip: Sip) -> TrunkOut:
    """Settings as ``TrunkSettings`` (see the trunk keys in docs/trunks.md)."""
    require(user, "admin")
    settings = _validated(body)
    _may_share(db, user, settings)
    if db.exec(select(Trunk).where(Trunk.organisation_id == user.organisation_id,
                                   Trunk.name == settings.name)).first() is not None:
        raise HTTPException(409, f"trunk {settings.name} exists")
    row = Trunk(organisation_id=user.organisation_id, name=settings.name,
                settings=settings.model_dump_json())
    db.add(row)
    audit(db, user, "trunk.create", settings.name, None, shown(row).model_dump())
    db.commit()
    sip.directory.reload()
    return shown(row)


@router.patch("/trunks/{name}", response_model=TrunkOut, responses={**NOT_FOUND, **INVALID})
def update_trunk(name: str, body: dict[str, Any], user: User, db: Db, sip: Sip) -> TrunkOut:
    """Any settings; the name stays (a new name is a new trunk)."""
    require(user, "admin")
    row = _own(db, user, name)
    if "name" in body and body["name"] != name:
        raise HTTPException(422, [{"loc": ["body", "name"], "msg": "a trunk keeps its name",
                                   "type": "value_error"}])
    current = TrunkSettings.model_validate_json(row.settings).model_dump()
    settings = _validated({**current, **body})
    _may_share(db, user, settings)
    before = shown(row).model_dump()
    row.settings = settings.model_dump_json()
    db.add(row)
    audit(db, user, "trunk.update", name, before, shown(row).model_dump())
    db.commit()
    sip.directory.reload()
    return shown(row)


@router.delete("/trunks/{name}", status_code=204, responses=NOT_FOUND)
def delete_trunk(name: str, user: User, db: Db, sip: Sip) -> Response:
    require(user, "admin")
    row = _own(db, user, name)
    audit(db, user, "trunk.delete", name, shown(row).model_dump(), None)
    db.delete(row)
    db.commit()
    sip.directory.reload()
    return Response(status_code=204)


@router.get("/trunks/{name}/state", response_model=TrunkState, responses=NOT_FOUND)
def trunk_state(name: str, user: User, db: Db, sip: Sip) -> TrunkState:
    """The trunk's registration with its carrier, as this node sees it now."""
    require(user, "admin", "supervisor")
    _own(db, user, name)
    status = sip.trunks.status(user.organisation_id, name)
    if status is None:
        raise HTTPException(404, f"trunk {name} is disabled or not loaded yet")
    return TrunkState(name=name, state=status.state.value, code=status.code,
                      reason=status.reason, expires_at=status.expires_at,
                      retry_at=status.retry_at)
