"""SQLModel tables of the one store (ARCHITECTURE.md principle 3).

The SIP core, the admin API and later the switchboard services all read and
write these tables; SQLite (WAL) by default, PostgreSQL with a URL.
"""

from __future__ import annotations

from sqlmodel import Field, SQLModel, UniqueConstraint

DEFAULT_ORGANISATION = "default"


class Organisation(SQLModel, table=True):
    """A tenant with its own SIP domain, users, extensions and numbers."""

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(index=True, unique=True, max_length=64)
    name: str = Field(max_length=200)
    domain: str = Field(default="", index=True, max_length=253)


class Extension(SQLModel, table=True):
    """A dialable extension with the SIP credentials its devices register with."""

    __table_args__ = (UniqueConstraint("organisation_id", "number"),)

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    number: str = Field(index=True, max_length=40)
    secret: str = Field(max_length=200)
    display_name: str = Field(default="", max_length=200)
    mailbox: str = Field(default="", max_length=40)
    context: str = Field(default="default", max_length=80)
    # call features the router applies (Asterisk/3CX names)
    dnd: bool = False
    forward_always: str = Field(default="", max_length=80)
    forward_busy: str = Field(default="", max_length=80)
    forward_noanswer: str = Field(default="", max_length=80)
    ring_timeout: int = Field(default=30, ge=5, le=600)
    record: bool = False  # record this extension's calls, both directions
    record_on_demand: bool = False  # *1 during a call starts/stops recording


class Binding(SQLModel, table=True):
    """One registered contact of an address-of-record (RFC 3261 §10.3).

    ``key`` identifies the binding within its AOR: the ``+sip.instance`` of the
    device (RFC 5626) when it sends one, else the contact URI.  ``source_*`` is
    where the REGISTER came from, so requests reach phones behind NAT.
    """

    id: str = Field(primary_key=True, max_length=600)
    aor: str = Field(index=True, max_length=300)
    contact: str = Field(max_length=1000)
    expires_at: float = Field(index=True)
    call_id: str = Field(max_length=300)
    cseq: int
    q: float = 1.0
    instance: str = Field(default="", max_length=300)
    source_transport: str = Field(max_length=8)
    source_host: str = Field(max_length=64)
    source_port: int
    user_agent: str = Field(default="", max_length=300)


class Number(SQLModel, table=True):
    """A phone number (DID) and what it reaches: an extension, a ring group or a service."""

    __table_args__ = (UniqueConstraint("organisation_id", "number"),)

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    number: str = Field(index=True, max_length=40)
    target: str = Field(max_length=40)
    caller_id: bool = False  # shown as the outgoing caller ID of the target extension


class RingGroup(SQLModel, table=True):
    """A number that rings several extensions with a ring strategy."""

    __table_args__ = (UniqueConstraint("organisation_id", "number"),)

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    number: str = Field(index=True, max_length=40)
    name: str = Field(default="", max_length=200)
    strategy: str = Field(default="ringall", max_length=20)
    members: str = Field(default="", max_length=2000)  # comma-separated extensions, in order
    member_timeout: int = Field(default=15, ge=1, le=600)
    timeout: int = Field(default=60, ge=1, le=3600)
    fallback: str = Field(default="", max_length=80)


class Cdr(SQLModel, table=True):
    """One call attempt: who called whom, what happened, and how it sounded."""

    id: int | None = Field(default=None, primary_key=True)
    call_id: str = Field(index=True, max_length=300)
    organisation_id: int | None = Field(default=None, index=True)
    caller: str = Field(index=True, max_length=80)
    callee: str = Field(index=True, max_length=80)
    answered_by: str = Field(default="", max_length=300)
    path: str = Field(default="", max_length=4000)  # forks, forwards, transfers: JSON list
    started_at: float = Field(index=True)
    answered_at: float | None = None
    ended_at: float | None = None
    disposition: str = Field(default="", max_length=20)  # answered, busy, noanswer, cancelled, failed
    status: int = 0
    duration: float = 0.0
    billsec: float = 0.0
    hangup_by: str = Field(default="", max_length=20)
    quality: str = Field(default="", max_length=2000)  # per-leg RTP figures: JSON


class Recording(SQLModel, table=True):
    """A recorded call or conference: the file under the data directory and its facts."""

    id: int | None = Field(default=None, primary_key=True)
    call_id: str = Field(index=True, max_length=300)
    organisation_id: int | None = Field(default=None, index=True)
    kind: str = Field(default="call", max_length=20)  # call, conference
    parties: str = Field(default="", max_length=500)  # "1001,1002": left and right channel
    path: str = Field(max_length=1000)
    started_at: float = Field(index=True)
    duration: float = 0.0
    size: int = 0
    retain_until: float = Field(index=True)


class ApiUser(SQLModel, table=True):
    """Someone who uses the admin API or web pages, with a role in one organisation."""

    __table_args__ = (UniqueConstraint("username"),)

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    username: str = Field(max_length=80)
    password_hash: str = Field(max_length=300)
    role: str = Field(default="user", max_length=20)  # admin, supervisor, agent, user
    extension: str = Field(default="", max_length=40)


class ApiToken(SQLModel, table=True):
    """A bearer token, stored as its SHA-256 only."""

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="apiuser.id", index=True)
    token_hash: str = Field(index=True, unique=True, max_length=64)
    created_at: float


class AuditEntry(SQLModel, table=True):
    """Who changed what, when, from what to what."""

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(index=True)
    actor: str = Field(max_length=80)
    action: str = Field(max_length=40)
    target: str = Field(max_length=200)
    before: str = Field(default="", max_length=4000)
    after: str = Field(default="", max_length=4000)
    at: float = Field(index=True)
