"""Users: the people who log in, with a role and (usually) an extension."""

import logging
import os
import secrets
from pathlib import Path

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field
from sqlmodel import Session, select

from admin_api.deps import ERRORS, Db, User, audit, require
from admin_api.security import hash_password, weak_password_reason
from pbx.models import DEFAULT_ORGANISATION, ApiUser, Organisation
from pbx.server import SipServer

log = logging.getLogger("admin_api")
router = APIRouter(prefix="/api", tags=["users"])


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


@router.get("/me", response_model=UserOut, responses=ERRORS)
def me(user: User) -> UserOut:
    assert user.id is not None
    return UserOut(id=user.id, username=user.username, role=user.role, extension=user.extension)


@router.post("/users", response_model=UserOut, status_code=201,
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
