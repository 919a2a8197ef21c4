"""Outbound routes (FreePBX outbound routes, 3CX outbound rules): which trunks
carry calls to which numbers, in which order, rewritten how and shown with
which caller ID.  Admins only; every change is audited and taken by the
next call.  The pattern syntax and the caller-ID choices are those of
``pbx.outbound``; a pattern that cannot be read is a 422 naming it.
"""

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Response
from pydantic import AfterValidator, BaseModel, Field
from sqlmodel import Session, col, select

from admin_api.deps import ERRORS, NOT_FOUND, Db, Limit, Offset, Page, Sip, User, audit, require
from admin_api.services import kind_of
from pbx.models import ApiUser, OutboundRoute
from pbx.fields import split_commas
from pbx.outbound import MAX_STRIP, NAME, PREPEND, check_caller_id, parse_pattern
from pbx.trunks.settings import TRUNK_NAME

router = APIRouter(prefix="/api", tags=["outbound routes"])

INVALID = {422: {"description": "invalid fields: a dial pattern, an unknown trunk, a caller ID"}}
TAKEN = {409: {"description": "the organisation has a route of that name"}}
PATTERNS_HELP = ("FreePBX dial patterns matched against the E.164 number: X, Z, N, [1-5], "
                 ". (one or more), ! (zero or more); +46. is Sweden, +. everything, 112 itself")
CALLER_ID_HELP = "user, trunk, anonymous (RFC 3325 privacy) or an E.164 number of the organisation"


def _pattern(text: str) -> str:
    parse_pattern(text)  # PatternError (a ValueError): 422 with the pattern's index
    return text.strip()


Patterns = Annotated[list[Annotated[str, AfterValidator(_pattern)]],
                     Field(min_length=1, max_length=50, description=PATTERNS_HELP)]
Trunks = Annotated[list[Annotated[str, Field(pattern=TRUNK_NAME)]],
                   Field(min_length=1, max_length=10, description="trunk names, in failover order")]


class RoutePatch(BaseModel):
    patterns: Patterns | None = None
    trunks: Trunks | None = None
    strip: int | None = Field(None, ge=0, le=MAX_STRIP,
                              description="leading characters removed from the number sent")
    prepend: str | None = Field(None, pattern=PREPEND, description="put before the number sent")
    caller_id: Annotated[str, AfterValidator(check_caller_id)] | None = Field(
        None, description=CALLER_ID_HELP)
    position: int | None = Field(None, ge=0, le=10_000,
                                 description="its place in the order; 0 first")


class RouteIn(RoutePatch):
    name: str = Field(pattern=NAME)
    patterns: Patterns  # type: ignore[assignment]  # required here
    trunks: Trunks  # type: ignore[assignment]


class RouteOut(BaseModel):
    name: str
    position: int
    patterns: list[str]
    trunks: list[str]
    strip: int
    prepend: str
    caller_id: str


class RoutePage(Page):
    items: list[RouteOut]


def shown(route: OutboundRoute) -> RouteOut:
    return RouteOut(name=route.name, position=route.position,
                    patterns=list(split_commas(route.patterns)),
                    trunks=list(split_commas(route.trunks)), strip=route.strip,
                    prepend=route.prepend, caller_id=route.caller_id)


def _ordered(db: Session, organisation_id: int) -> list[OutboundRoute]:
    return list(db.exec(select(OutboundRoute)
                        .where(OutboundRoute.organisation_id == organisation_id)
                        .order_by(col(OutboundRoute.position), col(OutboundRoute.id))))


def _own(db: Session, user: ApiUser, name: str) -> OutboundRoute:
    route = db.exec(select(OutboundRoute).where(
        OutboundRoute.organisation_id == user.organisation_id,
        OutboundRoute.name == name)).first()
    if route is None:
        raise HTTPException(404, f"no outbound route {name}")
    return route


def _check_caller_id(db: Session, user: ApiUser, caller_id: str | None) -> None:
    """A fixed caller ID is a number the organisation has (carriers refuse others)."""
    if caller_id is not None and caller_id.startswith("+") \
            and kind_of(db, user.organisation_id, caller_id) != "number":
        raise HTTPException(422, [{"loc": ["body", "caller_id"], "type": "value_error",
                                   "msg": f"{caller_id} is not a number of the organisation"}])


def _check_trunks(sip: Sip, user: ApiUser, trunks: list[str] | None) -> None:
    """Each trunk is the organisation's own or one the operator shares."""
    tenant = sip.directory.tenants.get(user.organisation_id)
    known = tenant.trunks if tenant is not None else {}
    for index, name in enumerate(trunks or ()):
        if name not in known:
            raise HTTPException(422, [{"loc": ["body", "trunks", index], "type": "value_error",
                                       "msg": f"no trunk {name} (of the organisation, or "
                                              "shared by the operator)"}])


def _place(db: Session, organisation_id: int, route: OutboundRoute | None,
           position: int | None = None) -> None:
    """Put ``route`` at ``position`` (None: where it is, or last if new) and number
    the organisation's routes 0, 1, 2 … again (``route`` None: after a deletion)."""
    routes = [r for r in _ordered(db, organisation_id) if route is None or r.id != route.id]
    if route is not None:
        if position is None:
            position = route.position if route.id is not None else len(routes)
        routes.insert(min(position, len(routes)), route)
    for index, each in enumerate(routes):
        each.position = index
        db.add(each)


def _fields(body: RoutePatch) -> dict[str, Any]:
    """The body's changes as the table keeps them (lists comma-separated)."""
    changes = body.model_dump(exclude_none=True, exclude={"position", "name"})
    for name in ("patterns", "trunks"):
        if name in changes:
            changes[name] = ", ".join(changes[name])
    return changes


def _commit(db: Session, user: ApiUser, sip: Sip, action: str, name: str,
            before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
    audit(db, user, f"outboundroute.{action}", name, before, after)
    db.commit()
    sip.directory.reload()  # the next call takes the routes as they are now


@router.get("/outbound-routes", response_model=RoutePage, responses=ERRORS)
def list_routes(user: User, db: Db, limit: Limit = 100, offset: Offset = 0) -> RoutePage:
    """The organisation's outbound routes in the order calls try them."""
    require(user, "admin")
    routes = _ordered(db, user.organisation_id)
    return RoutePage(total=len(routes), limit=limit, offset=offset,
                     items=[shown(r) for r in routes[offset:offset + limit]])


@router.get("/outbound-routes/{name}", response_model=RouteOut, responses=NOT_FOUND)
def get_route(name: str, user: User, db: Db) -> RouteOut:
    require(user, "admin")
    return shown(_own(db, user, name))


@router.post("/outbound-routes", response_model=RouteOut, status_code=201,
             responses={**ERRORS, **TAKEN, **INVALID})
def create_route(body: RouteIn, user: User, db: Db, sip: Sip) -> RouteOut:
    """A new route, last unless ``position`` says where."""
    require(user, "admin")
    if db.exec(select(OutboundRoute).where(OutboundRoute.organisation_id == user.organisation_id,
                                           OutboundRoute.name == body.name)).first():
        raise HTTPException(409, f"outbound route {body.name} exists")
    _check_trunks(sip, user, body.trunks)
    _check_caller_id(db, user, body.caller_id)
    route = OutboundRoute(organisation_id=user.organisation_id, name=body.name, **_fields(body))
    _place(db, user.organisation_id, route, body.position)
    db.flush()
    _commit(db, user, sip, "create", route.name, None, shown(route).model_dump())
    return shown(route)


@router.patch("/outbound-routes/{name}", response_model=RouteOut,
              responses={**NOT_FOUND, **INVALID})
def update_route(name: str, body: RoutePatch, user: User, db: Db, sip: Sip) -> RouteOut:
    """Change a route; ``position`` moves it in the order."""
    require(user, "admin")
    route = _own(db, user, name)
    _check_trunks(sip, user, body.trunks)
    _check_caller_id(db, user, body.caller_id)
    before = shown(route).model_dump()
    for field, value in _fields(body).items():
        setattr(route, field, value)
    _place(db, user.organisation_id, route, body.position)
    _commit(db, user, sip, "update", name, before, shown(route).model_dump())
    return shown(route)


@router.delete("/outbound-routes/{name}", status_code=204, responses=NOT_FOUND)
def delete_route(name: str, user: User, db: Db, sip: Sip) -> Response:
    require(user, "admin")
    route = _own(db, user, name)
    before = shown(route).model_dump()
    db.delete(route)
    db.flush()
    _place(db, user.organisation_id, None)
    _commit(db, user, sip, "delete", name, before, None)
    return Response(status_code=204)
