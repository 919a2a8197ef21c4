"""Organisations (tenants): each with its own SIP domain, plan and users.

The admins of the default organisation run the platform (the operator):
only they create organisations and change plans and SIP domains.  An
organisation's own admins see and rename theirs; nobody sees another's.
"""

import logging
from typing import Annotated
from zoneinfo import available_timezones

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field, field_validator
from sqlmodel import Session, col, func, select

from admin_api.deps import (
    ERRORS, NOT_FOUND, Db, Offset, Page, Sip, User, audit, fields_of, one_of, require,
)
from admin_api.security import hash_password, weak_password_reason
from media.languages import LANGUAGES
from media.prompts import build_prompts
from media.tones import COUNTRIES
from pbx.models import DEFAULT_ORGANISATION, PLANS, ApiUser, Organisation

router = APIRouter(prefix="/api", tags=["organisations"])
log = logging.getLogger("admin_api.organisations")

DOMAIN = r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,10}[A-Za-z]{2,63}$"
PLAN = "^(" + "|".join(PLANS) + ")$"
LANGUAGE = Field(default=None, pattern=one_of(LANGUAGES),
                 description="of the prompts its callers hear; default: [general] language")
TONE_COUNTRY = Field(default=None, pattern=one_of(COUNTRIES),
                     description="whose call-progress tones its callers hear; default: its "
                                 "language's country (English: [general] tone_country)")


def _known_zone(value: str | None) -> str | None:
    if value is not None and value not in available_timezones():
        raise ValueError("unknown time zone (use an IANA name such as Europe/Stockholm)")
    return value


class FirstAdmin(BaseModel):
    username: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,80}$")
    password: str = Field(min_length=1, max_length=200)


class OrganisationIn(BaseModel):
    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    name: str = Field(min_length=1, max_length=200)
    domain: str = Field(pattern=DOMAIN, max_length=253, description="the organisation's SIP domain")
    plan: str = Field(default="business", pattern=PLAN)
    timezone: str = "Europe/Stockholm"
    language: str | None = LANGUAGE
    tone_country: str | None = TONE_COUNTRY
    admin: FirstAdmin

    _zone = field_validator("timezone")(_known_zone)


class OrganisationPatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    domain: str | None = Field(default=None, pattern=DOMAIN, max_length=253)
    plan: str | None = Field(default=None, pattern=PLAN)
    timezone: str | None = None
    language: str | None = LANGUAGE
    tone_country: str | None = TONE_COUNTRY

    _zone = field_validator("timezone")(_known_zone)


class OrganisationOut(BaseModel):
    id: int
    slug: str
    name: str
    domain: str
    plan: str
    timezone: str
    language: str  # what its callers hear, its own or the node's
    tone_country: str


class OrganisationPage(Page):
    items: list[OrganisationOut]


def is_operator(db: Session, user: ApiUser) -> bool:
    """An admin of the default organisation runs the platform."""
    if user.role != "admin":
        return False
    org = db.get(Organisation, user.organisation_id)
    return org is not None and org.slug == DEFAULT_ORGANISATION


def _visible(db: Session, user: ApiUser, org_id: int) -> Organisation:
    org = db.get(Organisation, org_id)
    if org is None or (org.id != user.organisation_id and not is_operator(db, user)):
        raise HTTPException(404, f"no organisation {org_id}")
    return org


def _shown(sip: Sip, org: Organisation) -> dict[str, object]:
    """The organisation as the API shows it: the language and tones in force."""
    language, tones = sip.directory.locale(org)
    return fields_of(OrganisationOut, org, language=language, tone_country=tones)


def _speak(sip: Sip, org: Organisation) -> None:
    """Render the prompts of the organisation's language if they are not there yet
    (a language no organisation spoke before), before its first call needs them."""
    made = build_prompts(sip.prompts.directory, (sip.directory.locale(org)[0],))
    if made:
        log.info("rendered %d prompts for organisation %s", len(made), org.slug)


def _domain_free(db: Session, domain: str, sip: Sip, but: int | None = None) -> None:
    taken = db.exec(select(Organisation).where(func.lower(Organisation.domain) == domain.lower(),
                                               Organisation.id != but)).first()
    if taken is not None or sip.directory.tenant_for(domain) is sip.directory.default:
        raise HTTPException(409, f"SIP domain {domain} is in use")


@router.get("/organisations", response_model=OrganisationPage, responses=ERRORS)
def list_organisations(user: User, db: Db, sip: Sip,
                       limit: Annotated[int, Query(ge=1, le=500)] = 100,
                       offset: Offset = 0) -> OrganisationPage:
    query = select(Organisation)
    if not is_operator(db, user):
        query = query.where(Organisation.id == user.organisation_id)
    total = db.exec(select(func.count()).select_from(query.subquery())).one()
    rows = db.exec(query.order_by(col(Organisation.id)).offset(offset).limit(limit)).all()
    return OrganisationPage(total=total, limit=limit, offset=offset,
                            items=[OrganisationOut(**_shown(sip, r)) for r in rows])


@router.post("/organisations", response_model=OrganisationOut, status_code=201,
             responses={**ERRORS, 409: {"description": "slug, domain or admin name taken"}})
def create_organisation(body: OrganisationIn, user: User, db: Db, sip: Sip) -> OrganisationOut:
    """A new tenant and its first admin (operator only)."""
    if not is_operator(db, user):
        raise HTTPException(403, "only the platform operator creates organisations")
    reason = weak_password_reason(body.admin.password)
    if reason:
        raise HTTPException(422, [{"loc": ["body", "admin", "password"], "msg": f"needs {reason}",
                                   "type": "value_error.weak_password"}])
    if db.exec(select(Organisation).where(Organisation.slug == body.slug)).first():
        raise HTTPException(409, f"organisation {body.slug} exists")
    _domain_free(db, body.domain, sip)
    if db.exec(select(ApiUser).where(ApiUser.username == body.admin.username)).first():
        raise HTTPException(409, f"username {body.admin.username} is taken")
    org = Organisation(slug=body.slug, name=body.name, domain=body.domain.lower(),
                       plan=body.plan, timezone=body.timezone, language=body.language or "",
                       tone_country=body.tone_country or "")
    _speak(sip, org)
    db.add(org)
    db.flush()
    assert org.id is not None
    db.add(ApiUser(organisation_id=org.id, username=body.admin.username,
                   password_hash=hash_password(body.admin.password), role="admin"))
    shown = OrganisationOut(**_shown(sip, org))
    audit(db, user, "organisation.create", body.slug, None, shown.model_dump())
    db.commit()
    sip.directory.reload()  # its domain is served from now on
    return shown


@router.get("/organisations/{org_id}", response_model=OrganisationOut, responses=NOT_FOUND)
def get_organisation(org_id: int, user: User, db: Db, sip: Sip) -> OrganisationOut:
    return OrganisationOut(**_shown(sip, _visible(db, user, org_id)))


@router.patch("/organisations/{org_id}", response_model=OrganisationOut,
              responses={**NOT_FOUND, 409: {"description": "SIP domain in use"}})
def update_organisation(org_id: int, body: OrganisationPatch, user: User, db: Db,
                        sip: Sip) -> OrganisationOut:
    """Admins rename their organisation and set its time zone, language and
    tones; the operator also changes plans and SIP domains."""
    require(user, "admin")
    org = _visible(db, user, org_id)
    changes = body.model_dump(exclude_none=True)
    if ({"plan", "domain"} & changes.keys()) and not is_operator(db, user):
        raise HTTPException(403, "only the platform operator changes plans and SIP domains")
    if "domain" in changes:
        if org.slug == DEFAULT_ORGANISATION:
            raise HTTPException(409, "the default organisation's domain is the configured realm")
        _domain_free(db, changes["domain"], sip, but=org.id)
        changes["domain"] = changes["domain"].lower()
    before = _shown(sip, org)
    for name, value in changes.items():
        setattr(org, name, value)
    _speak(sip, org)
    db.add(org)
    shown = _shown(sip, org)
    audit(db, user, "organisation.update", org.slug, before, shown)
    db.commit()
    sip.directory.reload()
    return OrganisationOut(**shown)
