"""What every admin API resource shares: the SIP node, a database session, the
caller and their role, the audit log, pagination.

Every request carries a bearer token; every query is limited to the caller's
organisation, so no request sees or changes another tenant's data.
"""

# No ``from __future__ import annotations``: FastAPI reads these annotations.
import json
import time
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Path, Query, Request
from pydantic import BaseModel
from sqlmodel import Session, select

from admin_api.security import token_hash
from pbx.models import ApiToken, ApiUser, AuditEntry, Extension
from pbx.server import SipServer

NUMBER = r"^[0-9A-Za-z_.+-]{1,40}$"
TARGET = r"^([0-9A-Za-z_.+*-]{1,40})?$"  # a number to divert to, or empty
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or invalid token"},
    403: {"description": "the role does not allow this"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {**ERRORS, 404: {"description": "no such item"}}


def sip_server(request: Request) -> SipServer:
    return request.app.state.sip  # type: ignore[no-any-return]


Sip = Annotated[SipServer, Depends(sip_server)]


def db_session(sip: Sip) -> Iterator[Session]:
    with Session(sip.store.engine) as db:
        yield db


Db = Annotated[Session, Depends(db_session)]


def find_token(db: Session, raw: str) -> ApiToken:
    """The stored token ``raw`` hashes to, if known and unexpired, else 401."""
    found = db.exec(select(ApiToken).where(ApiToken.token_hash == token_hash(raw.strip()))).first()
    if found is None:
        raise HTTPException(401, "invalid token", headers={"WWW-Authenticate": "Bearer"})
    if found.expires_at is not None and found.expires_at <= time.time():
        raise HTTPException(401, "token expired", headers={"WWW-Authenticate": "Bearer"})
    return found


def current_token(db: Db, authorization: Annotated[str | None, Header()] = None) -> ApiToken:
    """The request's bearer token (RFC 6750), or 401."""
    if not authorization or not authorization.lower().startswith("bearer "):
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    return find_token(db, authorization[7:])


Token = Annotated[ApiToken, Depends(current_token)]


def current_user(db: Db, token: Token) -> ApiUser:
    """The token's owner."""
    user = db.get(ApiUser, token.user_id)
    if user is None:
        raise HTTPException(401, "invalid token", headers={"WWW-Authenticate": "Bearer"})
    return user


User = Annotated[ApiUser, Depends(current_user)]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]
RowId = Annotated[int, Path(ge=1, le=2**31 - 1)]  # a row id in a path: bounded, never an overflow


class Page(BaseModel):
    total: int
    limit: int
    offset: int


def require(user: ApiUser, *roles: str) -> None:
    if user.role not in roles:
        raise HTTPException(403, f"role {user.role} may not do this")


def audit(db: Session, user: ApiUser, action: str, target: str, before: Any, after: Any) -> None:
    """Add an audit entry to the session; it commits with the change it describes."""
    db.add(AuditEntry(
        organisation_id=user.organisation_id, actor=user.username, action=action,
        target=target, before=json.dumps(before, default=str) if before else "",
        after=json.dumps(after, default=str) if after else "", at=time.time(),
    ))


def own_extension(db: Session, user: ApiUser, number: str) -> Extension:
    """The caller's organisation's extension ``number``, or 404."""
    ext = db.exec(select(Extension).where(
        Extension.organisation_id == user.organisation_id, Extension.number == number,
    )).first()
    if ext is None:
        raise HTTPException(404, f"no extension {number}")
    return ext


def fields_of(model: type[BaseModel], row: Any, **extra: Any) -> dict[str, Any]:
    """The values of ``row`` that the response ``model`` shows; ``extra`` gives the
    ones the row does not have (a derived or joined value)."""
    return {name: extra[name] if name in extra else getattr(row, name)
            for name in model.model_fields}


def one_of(values: tuple[str, ...]) -> str:
    """A pattern accepting exactly ``values`` (so 422 names the field and the choices stay
    in one place: the model's tuple)."""
    return "^(" + "|".join(values) + ")$"
