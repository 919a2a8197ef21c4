"""Login and tokens: bearer tokens for the web pages (expiring) and named API
tokens for integrations, a rate limit, and an optional second factor (TOTP,
RFC 6238) that each user turns on for themselves."""

import logging
import time

import pyotp
from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, Field
from sqlmodel import select

from admin_api.deps import ERRORS, NOT_FOUND, Db, Token, User, audit, fields_of
from admin_api.security import LoginLimiter, check_password, new_token
from pbx.models import ApiToken, ApiUser

log = logging.getLogger("admin_api")
router = APIRouter(prefix="/api", tags=["auth"])
limiter = LoginLimiter()
OTP = r"^[0-9]{6}$"
LOGIN_TTL = 12 * 3600.0  # a working day; API tokens for integrations are separate


class Login(BaseModel):
    username: str = Field(min_length=1, max_length=80)
    password: str = Field(min_length=1, max_length=200)
    otp: str | None = Field(default=None, pattern=OTP, description="the 6-digit code, with 2FA on")


class TotpEnrolment(BaseModel):
    secret: str
    uri: str = Field(description="otpauth:// URI for an authenticator app (as a QR code)")


class TotpCode(BaseModel):
    otp: str = Field(pattern=OTP)


class TotpState(BaseModel):
    enabled: bool


class OneTimeCodes:
    """Checks TOTP codes, each accepted once (RFC 6238 §5.2: no replay within its window)."""

    def __init__(self) -> None:
        self._last: dict[int, int] = {}  # user id → time step of the last accepted code

    def accept(self, user_id: int, secret: str, code: str, now: float | None = None) -> bool:
        totp = pyotp.TOTP(secret)
        now = time.time() if now is None else now
        for drift in (0, -1, 1):  # one step of clock drift either way
            step = int(now // totp.interval) + drift
            if totp.at(step * totp.interval) == code and step > self._last.get(user_id, -1):
                self._last[user_id] = step
                return True
        return False


codes = OneTimeCodes()


class TokenOut(BaseModel):
    token: str
    role: str
    expires_at: float


class ApiTokenIn(BaseModel):
    name: str = Field(pattern=r"^[A-Za-z0-9 _.-]{1,80}$")
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class ApiTokenOut(BaseModel):
    id: int
    name: str
    created_at: float
    expires_at: float | None


class ApiTokenCreated(ApiTokenOut):
    token: str = Field(description="the bearer token; shown this once only")


@router.post("/login", response_model=TokenOut,
             responses={401: {"description": "wrong username or password"},
                        429: {"description": "too many attempts from this address"}},
             description="With two-factor authentication on, `otp` carries the current code.")
def login(body: Login, request: Request, db: Db) -> TokenOut:
    source = request.client.host if request.client else "?"
    if not limiter.allow(source):
        log.warning("login rate limit hit by %s", source)
        raise HTTPException(429, "too many login attempts; wait a minute")
    user = db.exec(select(ApiUser).where(ApiUser.username == body.username)).first()
    if user is None or not check_password(body.password, user.password_hash):
        log.info("failed login for %r from %s", body.username, source)
        limiter.failed(source)
        raise HTTPException(401, "wrong username or password")
    assert user.id is not None
    if user.totp_secret:
        if body.otp is None:
            raise HTTPException(401, "one-time code required (otp)")
        if not codes.accept(user.id, user.totp_secret, body.otp):
            log.info("wrong one-time code for %r from %s", body.username, source)
            limiter.failed(source)
            raise HTTPException(401, "wrong or used one-time code")
    token, hashed = new_token()
    now = time.time()
    db.add(ApiToken(user_id=user.id, token_hash=hashed, created_at=now,
                    expires_at=now + LOGIN_TTL))
    db.commit()
    return TokenOut(token=token, role=user.role, expires_at=now + LOGIN_TTL)


@router.post("/logout", status_code=204, responses=ERRORS)
def logout(token: Token, db: Db, request: Request) -> Response:
    """End this login (or revoke this API token): it stops working at once,
    and what holds it open (a softphone page's WebSocket) is told."""
    db.delete(token)
    db.commit()
    for revoked in request.app.state.on_logout:  # called from a worker thread
        revoked(token.token_hash)
    return Response(status_code=204)


@router.get("/tokens", response_model=list[ApiTokenOut], responses=ERRORS)
def list_tokens(user: User, db: Db) -> list[ApiTokenOut]:
    """The caller's named API tokens (never the tokens themselves)."""
    rows = db.exec(select(ApiToken).where(ApiToken.user_id == user.id,
                                          ApiToken.name != "login")).all()
    return [ApiTokenOut(**fields_of(ApiTokenOut, row)) for row in rows]


@router.post("/tokens", response_model=ApiTokenCreated, status_code=201, responses=ERRORS)
def create_token(body: ApiTokenIn, user: User, db: Db) -> ApiTokenCreated:
    """A named token for an integration (a CRM, a wallboard), acting as the
    caller with the caller's role; shown once, stored hashed."""
    assert user.id is not None
    token, hashed = new_token()
    now = time.time()
    expires = now + body.expires_in_days * 86400 if body.expires_in_days else None
    row = ApiToken(user_id=user.id, token_hash=hashed, created_at=now, name=body.name,
                   expires_at=expires)
    db.add(row)
    audit(db, user, "token.create", body.name, None, {"expires_at": expires})
    db.commit()
    db.refresh(row)
    return ApiTokenCreated(**fields_of(ApiTokenOut, row), token=token)


@router.delete("/tokens/{token_id}", status_code=204, responses=NOT_FOUND)
def revoke_token(token_id: int, user: User, db: Db) -> Response:
    row = db.get(ApiToken, token_id)
    if row is None or row.user_id != user.id or row.name == "login":
        raise HTTPException(404, f"no API token {token_id}")
    audit(db, user, "token.revoke", row.name, {"id": token_id}, None)
    db.delete(row)
    db.commit()
    return Response(status_code=204)


@router.get("/me/totp", response_model=TotpState, responses=ERRORS)
def totp_state(user: User) -> TotpState:
    return TotpState(enabled=bool(user.totp_secret))


@router.post("/me/totp", response_model=TotpEnrolment, responses=ERRORS)
def totp_enrol(user: User, db: Db) -> TotpEnrolment:
    """Start turning on two-factor login: a new secret, active once confirmed."""
    user.totp_pending = pyotp.random_base32()
    db.add(user)
    db.commit()
    uri = pyotp.TOTP(user.totp_pending).provisioning_uri(name=user.username, issuer_name="PBX")
    return TotpEnrolment(secret=user.totp_pending, uri=uri)


@router.post("/me/totp/confirm", response_model=TotpState,
             responses={**ERRORS, 409: {"description": "nothing to confirm"},
                        422: {"description": "wrong code"}})
def totp_confirm(body: TotpCode, user: User, db: Db) -> TotpState:
    """A code from the authenticator app proves it holds the secret: 2FA is on."""
    if not user.totp_pending:
        raise HTTPException(409, "no enrolment to confirm; POST /api/me/totp first")
    assert user.id is not None
    if not codes.accept(user.id, user.totp_pending, body.otp):
        raise HTTPException(422, [{"loc": ["body", "otp"], "msg": "wrong code",
                                   "type": "value_error.otp"}])
    user.totp_secret, user.totp_pending = user.totp_pending, ""
    db.add(user)
    db.commit()
    log.info("two-factor login turned on for %s", user.username)
    return TotpState(enabled=True)


@router.post("/me/totp/disable", response_model=TotpState,
             responses={**ERRORS, 422: {"description": "wrong code"}})
def totp_disable(body: TotpCode, user: User, db: Db) -> TotpState:
    """Turning 2FA off needs a current code too, so a stolen token cannot."""
    assert user.id is not None
    if user.totp_secret and not codes.accept(user.id, user.totp_secret, body.otp):
        raise HTTPException(422, [{"loc": ["body", "otp"], "msg": "wrong code",
                                   "type": "value_error.otp"}])
    user.totp_secret = ""
    db.add(user)
    db.commit()
    return TotpState(enabled=False)
