"""Users: the people who log in, with a role, (usually) an extension, and the
license that lets that extension register and call (admin_api.licenses)."""

import logging
import os
import secrets
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, Field
from sqlmodel import Session, col, func, select

from admin_api import licenses
from admin_api.deps import (
    ERRORS, NOT_FOUND, Db, Limit, Offset, Page, RowId, Sip, User, audit, fields_of, one_of,
    own_extension, require,
)
from admin_api.security import hash_password, weak_password_reason
from pbx.models import DEFAULT_ORGANISATION, ApiToken, ApiUser, License, Organisation
from pbx.server import SipServer

log = logging.getLogger("admin_api")
router = APIRouter(prefix="/api", tags=["users"])


ROLES = ("admin", "supervisor", "agent", "user")
EXTENSION = r"^([0-9A-Za-z_.+-]{1,40})?$"  # an extension of the organisation, or none
EMAIL = r"^([^@\s]{1,64}@[^@\s]{1,189})?$"
CHANGES = {**NOT_FOUND, 409: {"description": "extension held by another user, or the last admin"},
           422: {"description": "invalid fields, an unknown extension or a weak password"}}


class UserIn(BaseModel):
    username: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,80}$")
    password: str = Field(min_length=1, max_length=200)
    role: str = Field(pattern=one_of(ROLES))
    extension: str = Field(default="", pattern=EXTENSION)
    display_name: str = Field(default="", max_length=200)
    email: str = Field(default="", pattern=EMAIL)


class UserPatch(BaseModel):
    role: str | None = Field(default=None, pattern=one_of(ROLES))
    extension: str | None = Field(default=None, pattern=EXTENSION)
    display_name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, pattern=EMAIL)
    password: str | None = Field(default=None, min_length=1, max_length=200)


class HeldLicense(BaseModel):
    id: int
    kind: str
    state: str


class UserOut(BaseModel):
    id: int
    username: str
    role: str
    extension: str
    display_name: str
    email: str
    license: HeldLicense | None = Field(description="the live license the user holds, if any")


class UserPage(Page):
    items: list[UserOut]


def bootstrap_admin(sip: SipServer) -> None:
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


def shown(db: Session, person: ApiUser) -> UserOut:
    assert person.id is not None
    held = licenses.held_license(db, person.id)
    holding = HeldLicense(**fields_of(HeldLicense, held)) if held is not None else None
    return UserOut(**fields_of(UserOut, person, license=holding))


def _refuse_weak(password: str) -> None:
    reason = weak_password_reason(password)
    if reason:
        raise HTTPException(422, [{"loc": ["body", "password"], "msg": f"needs {reason}",
                                   "type": "value_error.weak_password"}])


def _check_extension(db: Session, user: ApiUser, extension: str, person_id: int | None) -> None:
    """An extension of the organisation that no other user has (one user per extension:
    its license decides whether it may register)."""
    if not extension:
        return
    try:
        own_extension(db, user, extension)
    except HTTPException:
        raise HTTPException(422, [{"loc": ["body", "extension"], "msg": f"no extension {extension}",
                                   "type": "value_error.unknown_extension"}]) from None
    other = db.exec(select(ApiUser).where(
        ApiUser.organisation_id == user.organisation_id, ApiUser.extension == extension,
        ApiUser.id != person_id)).first()
    if other is not None:
        raise HTTPException(409, f"extension {extension} belongs to user {other.username}")


def _own_user(db: Session, user: ApiUser, user_id: int) -> ApiUser:
    person = db.get(ApiUser, user_id)
    if person is None or person.organisation_id != user.organisation_id:
        raise HTTPException(404, f"no user {user_id}")
    return person


def _keep_an_admin(db: Session, person: ApiUser) -> None:
    """An organisation never loses its last admin: nobody could change anything then."""
    admins = db.exec(select(func.count()).select_from(ApiUser).where(
        ApiUser.organisation_id == person.organisation_id, ApiUser.role == "admin")).one()
    if person.role == "admin" and admins <= 1:
        raise HTTPException(409, f"{person.username} is the organisation's last admin")


def _facts(person: ApiUser) -> dict[str, str]:
    """What the audit log keeps of a user (never the password hash)."""
    return {"role": person.role, "extension": person.extension,
            "display_name": person.display_name, "email": person.email}


@router.get("/me", response_model=UserOut, responses=ERRORS)
def me(user: User, db: Db) -> UserOut:
    return shown(db, user)


@router.get("/users", response_model=UserPage, responses=ERRORS)
def list_users(
    user: User, db: Db, role: Annotated[str | None, Query(pattern=one_of(ROLES))] = None,
    limit: Limit = 100, offset: Offset = 0,
) -> UserPage:
    """The organisation's users with the license each holds (admins and supervisors)."""
    require(user, "admin", "supervisor")
    query = select(ApiUser).where(ApiUser.organisation_id == user.organisation_id)
    if role is not None:
        query = query.where(ApiUser.role == role)
    total = db.exec(select(func.count()).select_from(query.subquery())).one()
    rows = db.exec(query.order_by(col(ApiUser.username)).offset(offset).limit(limit)).all()
    return UserPage(total=total, limit=limit, offset=offset, items=[shown(db, r) for r in rows])


@router.get("/users/{user_id}", response_model=UserOut, responses=NOT_FOUND)
def get_user(user_id: RowId, user: User, db: Db) -> UserOut:
    require(user, "admin", "supervisor")
    return shown(db, _own_user(db, user, user_id))


@router.post("/users", response_model=UserOut, status_code=201,
             responses={**ERRORS, 409: {"description": "username or extension taken"},
                        422: {"description": "invalid fields, an unknown extension or a weak "
                                            "password"}})
def create_user(body: UserIn, user: User, db: Db) -> UserOut:
    require(user, "admin")
    _refuse_weak(body.password)
    _check_extension(db, user, body.extension, None)
    if db.exec(select(ApiUser).where(ApiUser.username == body.username)).first():
        raise HTTPException(409, f"username {body.username} is taken")
    created = ApiUser(organisation_id=user.organisation_id, username=body.username,
                      password_hash=hash_password(body.password), role=body.role,
                      extension=body.extension, display_name=body.display_name,
                      email=body.email)
    db.add(created)
    audit(db, user, "user.create", body.username, None, _facts(created))
    db.commit()
    db.refresh(created)
    return shown(db, created)


@router.patch("/users/{user_id}", response_model=UserOut, responses=CHANGES)
def update_user(user_id: RowId, body: UserPatch, user: User, db: Db, sip: Sip) -> UserOut:
    """Change a user; a new password set for someone else ends their logins."""
    require(user, "admin")
    person = _own_user(db, user, user_id)
    changes = body.model_dump(exclude_none=True)
    if "password" in changes:
        _refuse_weak(changes["password"])
    if "extension" in changes:
        _check_extension(db, user, changes["extension"], person.id)
    if changes.get("role", "admin") != "admin":
        _keep_an_admin(db, person)
    before = _facts(person)
    password = changes.pop("password", None)
    if password is not None:
        person.password_hash = hash_password(password)
        if person.id != user.id:  # their logins end; integrations' API tokens stay
            for token in db.exec(select(ApiToken).where(ApiToken.user_id == person.id,
                                                        ApiToken.name == "login")).all():
                db.delete(token)
    for name, value in changes.items():
        setattr(person, name, value)
    db.add(person)
    after = _facts(person) | ({"password": "changed"} if password is not None else {})
    audit(db, user, "user.update", person.username, before, after)
    db.commit()
    sip.directory.reload()  # the extension it holds decides who is licensed
    return shown(db, person)


@router.delete("/users/{user_id}", status_code=204, responses=CHANGES)
def delete_user(user_id: RowId, user: User, db: Db, sip: Sip) -> Response:
    """Remove a user and all their tokens; their license stays with the organisation,
    unassigned; call records and voicemail stay; live calls of their extension end."""
    require(user, "admin")
    person = _own_user(db, user, user_id)
    _keep_an_admin(db, person)
    for token in db.exec(select(ApiToken).where(ApiToken.user_id == person.id)).all():
        db.delete(token)
    for lic in db.exec(select(License).where(License.user_id == person.id)).all():
        before = licenses.shown(lic).model_dump()
        lic.user_id = None
        db.add(lic)
        audit(db, user, "license.unassign", str(lic.id), before, licenses.shown(lic).model_dump())
    extension = person.extension
    audit(db, user, "user.delete", person.username, _facts(person), None)
    db.delete(person)
    db.commit()
    sip.directory.reload()
    if extension:
        sip.end_calls_of(user.organisation_id, extension)
    return Response(status_code=204)
