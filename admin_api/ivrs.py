"""IVRs (Telavox "knappval"): the organisation's menu trees, as JSON or YAML,
checked before they are stored; greetings uploaded per menu; a simulator.

An IVR is a switchboard service the plan counts (``admin_api.services``);
its number means one thing in the organisation (409 otherwise).  A tree is
refused with 422 and every problem at once, each naming its menu and key:
its shape (``ivr.tree``), what it means in the organisation (``ivr.check``:
targets that exist, menus that can be reached, no loop without the
caller), and its greetings (a recording that was never uploaded, text that
espeak-ng cannot speak).  Admins change IVRs; supervisors read and simulate.
"""

# No ``from __future__ import annotations``: FastAPI reads the annotations.
import asyncio
import hashlib
import io
import shutil
from datetime import datetime
from typing import Annotated, Any

import soundfile
from fastapi import APIRouter, Body, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, Field
from sqlmodel import Session, col, func, select

from admin_api.deps import ERRORS, NOT_FOUND, Db, Offset, Page, Sip, User, audit, require
from admin_api.media import REFUSED, UPLOAD, checked, upload, write_atomically
from admin_api.services import OVER_PLAN, check_plan, referrers, refuse_taken
from ivr.check import Problem, parse, problems
from ivr.greetings import load_greetings, recording_folder, recording_name
from ivr.simulate import Walk, render, simulate
from ivr.tenant import hours, targets
from ivr.tree import NAME, Greeting, IvrTree, YamlError, read_yaml, to_data, to_json, to_yaml
from media.codecs import ENGINE_RATE
from pbx.models import ApiUser, Ivr
from pbx.profiles import zone

router = APIRouter(prefix="/api", tags=["ivrs"])

READERS = ("admin", "supervisor")
IvrName = Annotated[str, PathParam(pattern=NAME)]
TREE_BODY: dict[str, Any] = {"requestBody": {
    "required": True, "description": "the IVR tree (see docs/switchboard.md, IVR)",
    "content": {"application/json": {"schema": {"type": "object"}}},
}}
YAML_BODY: dict[str, Any] = {"requestBody": {
    "required": True, "description": "the IVR tree as YAML (what GET …/yaml gives)",
    "content": {"application/yaml": {"schema": {"type": "string"}}},
}}
INVALID: dict[int | str, dict[str, Any]] = {
    422: {"description": "the tree's problems, each naming its menu and key"},
}
IN_USE: dict[int | str, dict[str, Any]] = {
    409: {"description": "something still points at the IVR's number (a DID, a forward)"},
}


class IvrSummary(BaseModel):
    name: str
    number: str
    language: str
    schedule: str | None
    menus: list[str]


class IvrPage(Page):
    items: list[IvrSummary]


class SimulateIn(BaseModel):
    digits: list[Annotated[str, Field(pattern=r"^([0-9*#]|timeout)$")]] = Field(
        default_factory=list, max_length=100,
        description="keys the caller presses, in order; timeout: a silence")
    at: datetime | None = Field(default=None, description="when the call comes (without an "
                                "offset: the organisation's time zone); default now")


class StepOut(BaseModel):
    what: str
    detail: str


class WalkOut(BaseModel):
    at: datetime
    menus: list[str]
    said: list[str]
    steps: list[StepOut]
    outcome: str = Field(description="redirect, hangup, or waiting (for more keys)")
    destination: str | None = Field(description="the dial-plan target the caller is sent to")
    unused: list[str]
    text: str = Field(description="the walk as lines to read (what pbx ivr simulate prints)")


class GreetingOut(BaseModel):
    menu: str
    recording: str
    seconds: float


def summary(tree: IvrTree) -> IvrSummary:
    return IvrSummary(name=tree.name, number=tree.number, language=tree.language,
                      schedule=tree.schedule, menus=list(tree.menus))


def _audited(tree: IvrTree) -> dict[str, Any]:
    """What the audit log keeps of a tree: its outline and a digest of the whole."""
    return {**summary(tree).model_dump(),
            "sha256": hashlib.sha256(to_json(tree).encode()).hexdigest()[:16]}


def _unprocessable(found: list[Problem]) -> HTTPException:
    return HTTPException(422, [{"loc": ["body", *p.loc], "msg": str(p), "type": "ivr"}
                               for p in found])


def _row(db: Session, user: ApiUser, name: str) -> tuple[Ivr, IvrTree]:
    row = db.exec(select(Ivr).where(Ivr.organisation_id == user.organisation_id,
                                    Ivr.name == name)).first()
    if row is None:
        raise HTTPException(404, f"no IVR {name}")
    return row, IvrTree.model_validate_json(row.tree)


def _checked_tree(data: Any, sip: Sip, user: ApiUser) -> IvrTree:
    """A tree that may be stored in the organisation, or 422 with all its problems."""
    tree, found = parse(data)
    if tree is None:
        raise _unprocessable(found)
    tenant = sip.directory.tenants[user.organisation_id]
    found = problems(tree, targets(tenant))
    if not found:
        _, found = load_greetings(sip.config.data_path, user.organisation_id, tree)
    if found:
        raise _unprocessable(found)
    return tree


def _same(stored: IvrTree, tree: IvrTree) -> None:
    for field in ("name", "number"):
        if getattr(tree, field) != getattr(stored, field):
            raise _unprocessable([Problem((field,), f"{getattr(stored, field)} cannot change; "
                                                    "create a new IVR and delete this one")])


def _create(db: Session, sip: Sip, user: ApiUser, tree: IvrTree) -> None:
    refuse_taken(db, sip, user.organisation_id, tree.number)
    if db.exec(select(Ivr).where(Ivr.organisation_id == user.organisation_id,
                                 Ivr.name == tree.name)).first() is not None:
        raise HTTPException(409, f"there is an IVR named {tree.name} already")
    check_plan(db, user.organisation_id)
    db.add(Ivr(organisation_id=user.organisation_id, number=tree.number, name=tree.name,
               tree=to_json(tree)))
    audit(db, user, "ivr.create", tree.name, None, _audited(tree))
    db.commit()
    sip.directory.reload()


def _replace(db: Session, sip: Sip, user: ApiUser, row: Ivr, stored: IvrTree,
             tree: IvrTree) -> None:
    _same(stored, tree)
    row.tree = to_json(tree)
    db.add(row)
    audit(db, user, "ivr.update", tree.name, _audited(stored), _audited(tree))
    db.commit()
    sip.directory.reload()
    _forget_recordings(sip, user.organisation_id, tree)


def _forget_recordings(sip: Sip, organisation: int, tree: IvrTree) -> None:
    """Remove the uploads the tree no longer plays."""
    folder = recording_folder(sip.config.data_path, organisation, tree.name)
    used = {g.recording for _, g in tree.greetings()}
    for path in folder.glob("*.wav") if folder.is_dir() else ():
        if path.name not in used:
            path.unlink()


@router.get("/ivrs", response_model=IvrPage, responses=ERRORS)
def list_ivrs(user: User, db: Db, limit: Annotated[int, Query(ge=1, le=500)] = 100,
              offset: Offset = 0) -> IvrPage:
    require(user, *READERS)
    scope = Ivr.organisation_id == user.organisation_id
    total = db.exec(select(func.count()).select_from(Ivr).where(scope)).one()
    rows = db.exec(select(Ivr).where(scope).order_by(col(Ivr.number))
                   .offset(offset).limit(limit)).all()
    return IvrPage(total=total, limit=limit, offset=offset,
                   items=[summary(IvrTree.model_validate_json(r.tree)) for r in rows])


@router.get("/ivrs/{name}", responses=NOT_FOUND)
def get_ivr(name: IvrName, user: User, db: Db) -> dict[str, Any]:
    """The tree, as the admin writes it (defaults left out)."""
    require(user, *READERS)
    return to_data(_row(db, user, name)[1])


@router.get("/ivrs/{name}/yaml", responses=NOT_FOUND,
            response_class=Response, openapi_extra={"responses": {"200": {
                "content": {"application/yaml": {"schema": {"type": "string"}}}}}})
def export_ivr(name: IvrName, user: User, db: Db) -> Response:
    """The tree as YAML, to edit and import again."""
    require(user, *READERS)
    return Response(to_yaml(_row(db, user, name)[1]), media_type="application/yaml",
                    headers={"Content-Disposition": f'attachment; filename="{name}.yaml"'})


@router.post("/ivrs", status_code=201, openapi_extra=TREE_BODY,
             responses={**ERRORS, **OVER_PLAN, **INVALID})
def create_ivr(user: User, db: Db, sip: Sip,
               body: Annotated[Any, Body()] = None) -> dict[str, Any]:
    require(user, "admin")
    tree = _checked_tree(body, sip, user)
    _create(db, sip, user, tree)
    return to_data(tree)


@router.put("/ivrs/{name}", openapi_extra=TREE_BODY, responses={**NOT_FOUND, **INVALID})
def replace_ivr(name: IvrName, user: User, db: Db, sip: Sip,
                body: Annotated[Any, Body()] = None) -> dict[str, Any]:
    """The whole tree anew (its name and number stay)."""
    require(user, "admin")
    row, stored = _row(db, user, name)
    tree = _checked_tree(body, sip, user)
    _replace(db, sip, user, row, stored, tree)
    return to_data(tree)


@router.post("/ivrs/import", openapi_extra=YAML_BODY,
             responses={**ERRORS, **OVER_PLAN, **INVALID,
                        201: {"description": "a new IVR"}, 200: {"description": "replaced"}})
async def import_ivr(request: Request, response: Response, user: User, db: Db,
                     sip: Sip) -> dict[str, Any]:
    """A YAML tree: a new IVR, or the one of that name replaced."""
    require(user, "admin")
    try:
        data = read_yaml((await upload(request)).decode("utf-8"))
    except UnicodeDecodeError:
        raise HTTPException(422, [{"loc": ["body"], "msg": "not UTF-8 text",
                                   "type": "yaml"}]) from None
    except YamlError as exc:
        raise HTTPException(422, [{"loc": ["body"], "msg": str(exc), "type": "yaml"}]) from None
    return await asyncio.to_thread(_import, data, response, user, db, sip)


def _import(data: Any, response: Response, user: ApiUser, db: Session,
            sip: Sip) -> dict[str, Any]:
    tree = _checked_tree(data, sip, user)
    row = db.exec(select(Ivr).where(Ivr.organisation_id == user.organisation_id,
                                    Ivr.name == tree.name)).first()
    if row is None:
        _create(db, sip, user, tree)
        response.status_code = 201
    else:
        _replace(db, sip, user, row, IvrTree.model_validate_json(row.tree), tree)
    return to_data(tree)


@router.delete("/ivrs/{name}", status_code=204, responses={**NOT_FOUND, **IN_USE})
def delete_ivr(name: IvrName, user: User, db: Db, sip: Sip) -> Response:
    """Delete the IVR and its greetings, unless something still points at its number."""
    require(user, "admin")
    row, tree = _row(db, user, name)
    users = referrers(db, user.organisation_id, row.number)
    if users:
        raise HTTPException(409, f"IVR {name} ({row.number}) is in use by {', '.join(users)}")
    audit(db, user, "ivr.delete", name, _audited(tree), None)
    db.delete(row)
    db.commit()
    sip.directory.reload()
    shutil.rmtree(recording_folder(sip.config.data_path, user.organisation_id, name),
                  ignore_errors=True)
    return Response(status_code=204)


@router.post("/ivrs/{name}/simulate", response_model=WalkOut, responses=NOT_FOUND)
def simulate_ivr(name: IvrName, body: SimulateIn, user: User, db: Db, sip: Sip) -> WalkOut:
    """Where a caller pressing ``digits`` at ``at`` would go: the menus, what they
    hear, the destination.  Nothing is called."""
    require(user, *READERS)
    _, tree = _row(db, user, name)
    tenant = sip.directory.tenants[user.organisation_id]
    at = body.at or datetime.now(zone(tenant.timezone))
    if at.tzinfo is None:
        at = at.replace(tzinfo=zone(tenant.timezone))
    walk = simulate(tree, body.digits, at.timestamp(), hours(tenant), tenant.extensions)
    return _shown_walk(walk, at)


def _shown_walk(walk: Walk, at: datetime) -> WalkOut:
    return WalkOut(at=at, menus=walk.menus, said=walk.said,
                   steps=[StepOut(what=s.what, detail=s.detail) for s in walk.steps],
                   outcome=walk.outcome, destination=walk.destination, unused=walk.unused,
                   text=render(walk))


@router.post("/ivrs/{name}/greetings/{menu}", response_model=GreetingOut,
             responses={**REFUSED, 404: {"description": "no such IVR or menu"}},
             openapi_extra=UPLOAD)
async def upload_greeting(name: IvrName, menu: Annotated[str, PathParam(pattern=NAME)],
                          request: Request, user: User, db: Db, sip: Sip) -> GreetingOut:
    """A recorded greeting for a menu (the body is the audio file): checked, stored
    as the 8 kHz WAV the engine plays, and played from the next call on (the
    menu's text stays, spoken should the recording ever fail)."""
    require(user, "admin")
    row, tree = await asyncio.to_thread(_row, db, user, name)
    if menu not in tree.menus:
        raise HTTPException(404, f"no menu {menu} in IVR {name}")
    samples = await checked(await upload(request))
    wav = io.BytesIO()
    soundfile.write(wav, samples, ENGINE_RATE, format="WAV", subtype="PCM_16")
    file = recording_name(menu, wav.getvalue())
    path = recording_folder(sip.config.data_path, user.organisation_id, name) / file
    await asyncio.to_thread(write_atomically, path, lambda f: f.write(wav.getvalue()))
    old = tree.menus[menu]
    greeting = Greeting(text=old.greeting.text, recording=file)
    new = tree.model_copy(update={"menus": {
        **tree.menus, menu: old.model_copy(update={"greeting": greeting})}})
    await asyncio.to_thread(_replace, db, sip, user, row, tree, new)
    return GreetingOut(menu=menu, recording=file, seconds=round(len(samples) / ENGINE_RATE, 2))
