"""Admin API resources: login, users, extensions, call records, audit log.

Every request carries a bearer token; every query is limited to the caller's
organisation, so no request sees or changes another tenant's data.  Changes
to extensions reach the SIP side at once (the directory is reloaded) and are
written to the audit log with their before and after.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the dependency
# annotations (closures over the SIP server) at definition time.
import csv
import io
import json
import logging
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field
from sqlmodel import Session, col, func, select

from admin_api.security import (
    LoginLimiter, check_password, hash_password, new_sip_secret, new_token, token_hash,
    weak_password_reason,
)
from pbx.models import (
    DEFAULT_ORGANISATION, ApiToken, ApiUser, AuditEntry, Cdr, Extension, Organisation,
)

if TYPE_CHECKING:
    from pbx.server import SipServer

log = logging.getLogger("admin_api")

NUMBER = r"^[0-9A-Za-z_.+-]{1,40}$"
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or invalid token"},
    403: {"description": "the role does not allow this"},
}


class Login(BaseModel):
    username: str = Field(min_length=1, max_length=80)
    password: str = Field(min_length=1, max_length=200)


class TokenOut(BaseModel):
    token: str
    role: str


class UserIn(BaseModel):
    username: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,80}$")
    password: str = Field(min_length=1, max_length=200)
    role: str = Field(pattern="^(admin|supervisor|agent|user)$")
    extension: str = Field(default="", pattern=r"^([0-9A-Za-z_.+-]{1,40})?$")


class UserOut(BaseModel):
    id: int
    username: str
    role: str
    extension: str


class ExtensionIn(BaseModel):
    number: str = Field(pattern=NUMBER)
    display_name: str = Field(default="", max_length=200)
    mailbox: str = Field(default="", max_length=40)


class ExtensionPatch(BaseModel):
    display_name: str | None = Field(default=None, max_length=200)
    dnd: bool | None = None
    forward_always: str | None = Field(default=None, pattern=r"^([0-9A-Za-z_.+*-]{1,40})?$")
    forward_busy: str | None = Field(default=None, pattern=r"^([0-9A-Za-z_.+*-]{1,40})?$")
    forward_noanswer: str | None = Field(default=None, pattern=r"^([0-9A-Za-z_.+*-]{1,40})?$")
    ring_timeout: int | None = Field(default=None, ge=5, le=600)
    record: bool | None = None


class ExtensionOut(BaseModel):
    number: str
    display_name: str
    mailbox: str
    dnd: bool
    forward_always: str
    forward_busy: str
    forward_noanswer: str
    ring_timeout: int
    record: bool


class ExtensionCreated(ExtensionOut):
    secret: str = Field(description="the SIP password; shown this once only")


class Page(BaseModel):
    total: int
    limit: int
    offset: int


class ExtensionPage(Page):
    items: list[ExtensionOut]


class CdrOut(BaseModel):
    call_id: str
    caller: str
    callee: str
    answered_by: str
    disposition: str
    status: int
    started_at: float
    answered_at: float | None
    ended_at: float | None
    duration: float
    billsec: float


class CdrPage(Page):
    items: list[CdrOut]


class AuditOut(BaseModel):
    actor: str
    action: str
    target: str
    before: str
    after: str
    at: float


def bootstrap_admin(sip: "SipServer") -> None:
    """Make sure an admin exists: password from PBX_ADMIN_PASSWORD, or generated
    once into data_dir/admin-password (mode 0600)."""
    with Session(sip.store.engine) as session:
        if session.exec(select(ApiUser).where(ApiUser.role == "admin")).first() is not None:
            return
        org = session.exec(
            select(Organisation).where(Organisation.slug == DEFAULT_ORGANISATION)
        ).one()
        password = os.environ.get("PBX_ADMIN_PASSWORD") or secrets.token_urlsafe(18)
        if "PBX_ADMIN_PASSWORD" not in os.environ:
            path = Path(sip.config.data_path) / "admin-password"
            path.write_text(password + "\n")
            path.chmod(0o600)
            log.warning("created user 'admin'; its password is in %s", path)
        assert org.id is not None
        session.add(ApiUser(organisation_id=org.id, username="admin",
                            password_hash=hash_password(password), role="admin"))
        session.commit()


def build_router(sip: "SipServer") -> APIRouter:
    router = APIRouter(prefix="/api")
    limiter = LoginLimiter()

    def session() -> Iterator[Session]:
        with Session(sip.store.engine) as db:
            yield db

    Db = Annotated[Session, Depends(session)]

    def current_user(db: Db, authorization: Annotated[str | None, Header()] = None) -> ApiUser:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        found = db.exec(
            select(ApiToken).where(ApiToken.token_hash == token_hash(authorization[7:].strip()))
        ).first()
        user = db.get(ApiUser, found.user_id) if found is not None else None
        if user is None:
            raise HTTPException(401, "invalid token", headers={"WWW-Authenticate": "Bearer"})
        return user

    User = Annotated[ApiUser, Depends(current_user)]

    def require(user: ApiUser, *roles: str) -> None:
        if user.role not in roles:
            raise HTTPException(403, f"role {user.role} may not do this")

    def audit(db: Session, user: ApiUser, action: str, target: str, before: Any, after: Any) -> None:
        db.add(AuditEntry(
            organisation_id=user.organisation_id, actor=user.username, action=action,
            target=target, before=json.dumps(before, default=str) if before else "",
            after=json.dumps(after, default=str) if after else "", at=time.time(),
        ))

    def own_extension(db: Session, user: ApiUser, number: str) -> Extension:
        ext = db.exec(select(Extension).where(
            Extension.organisation_id == user.organisation_id, Extension.number == number,
        )).first()
        if ext is None:
            raise HTTPException(404, f"no extension {number}")
        return ext

    def shown(ext: Extension) -> ExtensionOut:
        return ExtensionOut(**{name: getattr(ext, name) for name in ExtensionOut.model_fields})

    @router.post("/login", response_model=TokenOut, tags=["auth"],
                 responses={401: {"description": "wrong username or password"},
                            429: {"description": "too many attempts from this address"}})
    def login(body: Login, request: Request, db: Db) -> TokenOut:
        source = request.client.host if request.client else "?"
        if not limiter.allow(source):
            log.warning("login rate limit hit by %s", source)
            raise HTTPException(429, "too many login attempts; wait a minute")
        user = db.exec(select(ApiUser).where(ApiUser.username == body.username)).first()
        if user is None or not check_password(body.password, user.password_hash):
            log.info("failed login for %r from %s", body.username, source)
            raise HTTPException(401, "wrong username or password")
        token, hashed = new_token()
        assert user.id is not None
        db.add(ApiToken(user_id=user.id, token_hash=hashed, created_at=time.time()))
        db.commit()
        return TokenOut(token=token, role=user.role)

    @router.get("/me", response_model=UserOut, tags=["auth"], responses=ERRORS)
    def me(user: User) -> UserOut:
        assert user.id is not None
        return UserOut(id=user.id, username=user.username, role=user.role, extension=user.extension)

    @router.post("/users", response_model=UserOut, status_code=201, tags=["users"],
                 responses={**ERRORS, 409: {"description": "username taken"},
                            422: {"description": "invalid fields or a weak password"}})
    def create_user(body: UserIn, user: User, db: Db) -> UserOut:
        require(user, "admin")
        reason = weak_password_reason(body.password)
        if reason:
            raise HTTPException(422, [{"loc": ["body", "password"], "msg": f"needs {reason}",
                                       "type": "value_error.weak_password"}])
        if db.exec(select(ApiUser).where(ApiUser.username == body.username)).first():
            raise HTTPException(409, f"username {body.username} is taken")
        created = ApiUser(organisation_id=user.organisation_id, username=body.username,
                          password_hash=hash_password(body.password), role=body.role,
                          extension=body.extension)
        db.add(created)
        audit(db, user, "user.create", body.username, None,
              {"role": body.role, "extension": body.extension})
        db.commit()
        db.refresh(created)
        assert created.id is not None
        return UserOut(id=created.id, username=created.username, role=created.role,
                       extension=created.extension)

    @router.get("/extensions", response_model=ExtensionPage, tags=["extensions"], responses=ERRORS)
    def list_extensions(
        user: User, db: Db, limit: Annotated[int, Query(ge=1, le=500)] = 100,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    ) -> ExtensionPage:
        scope = Extension.organisation_id == user.organisation_id
        total = db.exec(select(func.count()).select_from(Extension).where(scope)).one()
        rows = db.exec(select(Extension).where(scope).order_by(col(Extension.number))
                       .offset(offset).limit(limit)).all()
        return ExtensionPage(total=total, limit=limit, offset=offset, items=[shown(e) for e in rows])

    @router.get("/extensions/{number}", response_model=ExtensionOut, tags=["extensions"],
                responses={**ERRORS, 404: {"description": "no such extension"}})
    def get_extension(number: str, user: User, db: Db) -> ExtensionOut:
        return shown(own_extension(db, user, number))

    @router.post("/extensions", response_model=ExtensionCreated, status_code=201,
                 tags=["extensions"], responses={**ERRORS, 409: {"description": "number taken"}})
    def create_extension(body: ExtensionIn, user: User, db: Db) -> ExtensionCreated:
        require(user, "admin")
        if db.exec(select(Extension).where(Extension.organisation_id == user.organisation_id,
                                           Extension.number == body.number)).first():
            raise HTTPException(409, f"extension {body.number} exists")
        secret = new_sip_secret()
        ext = Extension(organisation_id=user.organisation_id, number=body.number, secret=secret,
                        display_name=body.display_name, mailbox=body.mailbox)
        db.add(ext)
        audit(db, user, "extension.create", body.number, None, shown(ext).model_dump())
        db.commit()
        sip.directory.reload()  # phones can register with it at once
        return ExtensionCreated(**shown(ext).model_dump(), secret=secret)

    @router.patch("/extensions/{number}", response_model=ExtensionOut, tags=["extensions"],
                  responses={**ERRORS, 404: {"description": "no such extension"}})
    def update_extension(number: str, body: ExtensionPatch, user: User, db: Db) -> ExtensionOut:
        require(user, "admin")
        ext = own_extension(db, user, number)
        before = shown(ext).model_dump()
        for name, value in body.model_dump(exclude_none=True).items():
            setattr(ext, name, value)
        db.add(ext)
        audit(db, user, "extension.update", number, before, shown(ext).model_dump())
        db.commit()
        sip.directory.reload()  # the next call sees it
        return shown(ext)

    @router.delete("/extensions/{number}", status_code=204, tags=["extensions"],
                   responses={**ERRORS, 404: {"description": "no such extension"}})
    def delete_extension(number: str, user: User, db: Db) -> Response:
        require(user, "admin")
        ext = own_extension(db, user, number)
        audit(db, user, "extension.delete", number, shown(ext).model_dump(), None)
        db.delete(ext)
        db.commit()
        sip.directory.reload()  # its call records stay
        if sip.b2bua is not None and sip.loop is not None:
            # live calls end cleanly, on the SIP side's own loop
            sip.loop.call_soon_threadsafe(sip.b2bua.end_calls_of, number)
        return Response(status_code=204)

    def cdr_query(user: ApiUser, since: float | None, until: float | None,
                  disposition: str | None) -> Any:
        numbers = select(Extension.number).where(Extension.organisation_id == user.organisation_id)
        query = select(Cdr).where(
            (col(Cdr.caller).in_(numbers)) | (col(Cdr.callee).in_(numbers))
        )
        if user.role in ("agent", "user"):  # their own calls only
            query = query.where((Cdr.caller == user.extension) | (Cdr.callee == user.extension)
                                | (Cdr.answered_by == user.extension))
        if since is not None:
            query = query.where(Cdr.started_at >= since)
        if until is not None:
            query = query.where(Cdr.started_at < until)
        if disposition is not None:
            query = query.where(Cdr.disposition == disposition)
        return query

    @router.get("/cdrs", response_model=CdrPage, tags=["calls"], responses=ERRORS)
    def list_cdrs(
        user: User, db: Db,
        since: Annotated[float | None, Query(ge=0, le=1e11)] = None,
        until: Annotated[float | None, Query(ge=0, le=1e11)] = None,
        disposition: Annotated[str | None, Query(max_length=20)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100, offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    ) -> CdrPage:
        query = cdr_query(user, since, until, disposition)
        total = db.exec(select(func.count()).select_from(query.subquery())).one()
        rows = db.exec(query.order_by(col(Cdr.id).desc()).offset(offset).limit(limit)).all()
        items = [CdrOut(**{k: getattr(r, k) for k in CdrOut.model_fields}) for r in rows]
        return CdrPage(total=total, limit=limit, offset=offset, items=items)

    @router.get("/cdrs.csv", tags=["calls"], responses={**ERRORS, 200: {"content": {"text/csv": {}}}})
    def export_cdrs(user: User, db: Db,
                    since: Annotated[float | None, Query(ge=0, le=1e11)] = None,
                    until: Annotated[float | None, Query(ge=0, le=1e11)] = None,
                    disposition: Annotated[str | None, Query(max_length=20)] = None) -> Response:
        rows = db.exec(cdr_query(user, since, until, disposition).order_by(col(Cdr.id))).all()
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(list(CdrOut.model_fields))
        for row in rows:
            writer.writerow([getattr(row, name) for name in CdrOut.model_fields])
        return Response(out.getvalue(), media_type="text/csv")

    @router.get("/audit", response_model=list[AuditOut], tags=["audit"], responses=ERRORS)
    def audit_log(user: User, db: Db, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[AuditOut]:
        require(user, "admin")
        rows = db.exec(select(AuditEntry).where(AuditEntry.organisation_id == user.organisation_id)
                       .order_by(col(AuditEntry.id).desc()).limit(limit)).all()
        return [AuditOut(**{k: getattr(r, k) for k in AuditOut.model_fields}) for r in rows]

    return router
