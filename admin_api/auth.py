"""Login: bearer tokens for the API and the web pages, with a rate limit."""

import logging
import time

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field
from sqlmodel import select

from admin_api.deps import Db
from admin_api.security import LoginLimiter, check_password, new_token
from pbx.models import ApiToken, ApiUser

log = logging.getLogger("admin_api")
router = APIRouter(prefix="/api", tags=["auth"])
limiter = LoginLimiter()


class Login(BaseModel):
    username: str = Field(min_length=1, max_length=80)
    password: str = Field(min_length=1, max_length=200)


class TokenOut(BaseModel):
    token: str
    role: str


@router.post("/login", response_model=TokenOut,
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
