"""SQLModel tables of the one store (ARCHITECTURE.md principle 3).

The SIP core, the admin API and later the switchboard services all read and
write these tables; SQLite (WAL) by default, PostgreSQL with a URL.
"""

from __future__ import annotations

from sqlalchemy import Text
from sqlmodel import Field, SQLModel, UniqueConstraint

DEFAULT_ORGANISATION = "default"

# Telavox plans: how many switchboard services (ring groups, conference rooms,
# IVRs, shared mailboxes, later queues) an organisation may have; None = unlimited.
PLANS: dict[str, int | None] = {"free": 1, "business": 3, "enterprise": 8, "unlimited": None}
LICENSE_KINDS = ("free", "fixed", "mobile")
LICENSE_STATES = ("active", "frozen", "terminated")
DEVICE_KINDS = ("desk", "dect", "softphone")
PROFILE_ACCEPTS = ("direct", "queue", "both", "none")


class Organisation(SQLModel, table=True):
    """A tenant with its own SIP domain, users, extensions and numbers."""

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(index=True, unique=True, max_length=64)
    name: str = Field(max_length=200)
    domain: str = Field(default="", index=True, max_length=253)
    plan: str = Field(default="unlimited", max_length=20)  # a key of PLANS
    timezone: str = Field(default="Europe/Stockholm", max_length=64)
    # what its callers hear; "" follows the node: [general] language, and the
    # tones of that language's country (media.tones.tone_country)
    language: str = Field(default="", max_length=8)
    tone_country: str = Field(default="", max_length=2)


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
    # calls it cannot take (no device, no answer, busy, DND) go to its mailbox unless a
    # forward says otherwise (FreePBX and Telavox do so by default)
    voicemail: bool = True
    caller_id_number: str = Field(default="", max_length=40)  # a Number shown outward
    # presence profiles (pbx.profiles): the one chosen by hand, until when
    profile_id: int | None = Field(default=None, foreign_key="profile.id")
    profile_until: float | None = None
    calendar_url: str = Field(default="", max_length=2000)  # ICS feed read periodically
    # desk phones that never SUBSCRIBE get message-summary NOTIFYs anyway (RFC 3842 §3.3)
    mwi_unsolicited: bool = False
    # voicemail to email (ivr.mailer): addresses "a@x, b@y", and whether a
    # message emailed is deleted (None: the [general] voicemail_delete)
    email: str = Field(default="", max_length=1000)
    voicemail_delete: bool | None = None
    # SRTP with SDES keys for its phones (off, optional, required); "": the node's
    # [general] media_encryption (Asterisk's media_encryption, 3CX's SRTP option)
    media_encryption: str = Field(default="", max_length=10)


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
    login: str = Field(default="", max_length=80)
    path: str = Field(default="", max_length=1000)  # RFC 3327 Path, comma-joined (an edge proxy)


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
    trunk: str = Field(default="", max_length=40)  # the trunk it came in or went out by
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
    display_name: str = Field(default="", max_length=200)
    email: str = Field(default="", max_length=254)
    totp_secret: str = Field(default="", max_length=64)  # set once confirmed
    totp_pending: str = Field(default="", max_length=64)  # enrolled, not yet confirmed


class ApiToken(SQLModel, table=True):
    """A bearer token, stored as its SHA-256 only: a login's (named "login",
    expiring) or a named API token for an integration (expiring or not)."""

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="apiuser.id", index=True)
    token_hash: str = Field(index=True, unique=True, max_length=64)
    created_at: float
    name: str = Field(default="login", max_length=80)
    expires_at: float | None = None


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


class Device(SQLModel, table=True):
    """A user's phone (desk phone, DECT handset, softphone) with its own SIP login.

    Every device of an extension rings together; a device registers with its
    own ``sip_username``/``secret`` (generated, never listed) into the
    extension's AOR.  ``mac`` lets the provisioning server give a desk phone or
    DECT base its configuration file, and only its own.
    """

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    extension: str = Field(index=True, max_length=40)
    kind: str = Field(default="desk", max_length=20)  # a DEVICE_KINDS value
    vendor: str = Field(default="", max_length=40)  # yealink, snom, grandstream, polycom
    model: str = Field(default="", max_length=40)
    mac: str | None = Field(default=None, unique=True, max_length=12)  # 12 lower-case hex digits
    label: str = Field(default="", max_length=200)
    sip_username: str = Field(index=True, unique=True, max_length=80)
    secret: str = Field(max_length=200)
    provisioning_token: str = Field(default="", index=True, max_length=64)  # its SHA-256
    created_at: float = 0.0
    base_id: int | None = Field(default=None, index=True)  # a DECT handset's base (a Device)
    firmware_url: str = Field(default="", max_length=2000)  # offered to the phone when set


class License(SQLModel, table=True):
    """A Telavox-style license: owned by the organisation, assigned to a user,
    movable between users; a user needs an active one to register and call."""

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    kind: str = Field(default="fixed", max_length=20)  # a LICENSE_KINDS value
    state: str = Field(default="active", max_length=20)  # a LICENSE_STATES value
    user_id: int | None = Field(default=None, foreign_key="apiuser.id", index=True)
    created_at: float = 0.0
    changed_at: float = 0.0


class Profile(SQLModel, table=True):
    """A presence profile of an extension (Working, Lunch, Meeting, Off …).

    ``accept`` says which calls come through (direct calls, queue/group calls,
    both, none); the others go to ``divert``: ``voicemail``, a number, or
    nothing (busy).  ``caller_id`` is the number shown on outgoing calls.
    ``calendar_match`` lists words of calendar event titles that switch to it
    (``*`` = any event).
    """

    __table_args__ = (UniqueConstraint("organisation_id", "extension", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    extension: str = Field(index=True, max_length=40)
    name: str = Field(max_length=40)
    accept: str = Field(default="both", max_length=10)  # a PROFILE_ACCEPTS value
    divert: str = Field(default="", max_length=80)
    caller_id: str = Field(default="", max_length=40)
    calendar_match: str = Field(default="", max_length=400)


class ProfileSchedule(SQLModel, table=True):
    """A weekly rule: on these days between start and end, this profile is active."""

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    extension: str = Field(index=True, max_length=40)
    profile_id: int = Field(foreign_key="profile.id", index=True)
    days: str = Field(default="mon,tue,wed,thu,fri", max_length=40)
    start: str = Field(max_length=5)  # HH:MM, organisation time zone
    end: str = Field(max_length=5)


class CalendarEvent(SQLModel, table=True):
    """An event of an extension's calendar (from its ICS URL or an upload)."""

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    extension: str = Field(index=True, max_length=40)
    uid: str = Field(default="", max_length=300)
    summary: str = Field(default="", max_length=400)
    starts_at: float = Field(index=True)
    ends_at: float = Field(index=True)


class Voicemail(SQLModel, table=True):
    """A message left in a mailbox: the WAV under the data directory and its facts."""

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int | None = Field(default=None, index=True)
    mailbox: str = Field(index=True, max_length=40)
    caller: str = Field(default="", max_length=80)
    call_id: str = Field(default="", max_length=300)
    path: str = Field(max_length=1000)
    duration: float = 0.0
    created_at: float = Field(index=True)
    heard: bool = False
    callback_number: str = Field(default="", max_length=40)  # a caller's "call me back on"
    transcript: str | None = None  # speech to text (ivr.transcribe); None: not (yet) made


GREETING_KINDS = ("unavailable", "busy", "temporary", "name")


class Greeting(SQLModel, table=True):
    """A mailbox's recorded greeting (Asterisk's unavail/busy/temp/greet): a WAV
    under the data directory.  A temporary one plays instead of the others
    until ``expires_at`` (None: until it is deleted)."""

    __table_args__ = (UniqueConstraint("organisation_id", "mailbox", "kind"),)

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    mailbox: str = Field(index=True, max_length=40)
    kind: str = Field(max_length=20)  # a GREETING_KINDS value
    path: str = Field(max_length=1000)
    seconds: float = 0.0
    expires_at: float | None = None
    created_at: float = 0.0


class MailboxSettings(SQLModel, table=True):
    """How a mailbox (an extension's or a shared one) behaves beyond its greetings:
    its PIN (scrypt, :mod:`pbx.passwords`), whether its own phone must key it too,
    and where ``0`` at its greeting leads (empty: the organisation's operator)."""

    __table_args__ = (UniqueConstraint("organisation_id", "mailbox"),)

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    mailbox: str = Field(index=True, max_length=40)
    pin_hash: str = Field(default="", max_length=200)
    pin_from_own_device: bool = False
    operator: str = Field(default="", max_length=40)


class SharedMailbox(SQLModel, table=True):
    """A mailbox of its own number that several extensions share (Telavox
    "gemensam röstbrevlåda"): a switchboard service counted by the plan.  Its
    members list and hear its messages and their lamps count them."""

    __table_args__ = (UniqueConstraint("organisation_id", "number"),)

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    number: str = Field(index=True, max_length=40)
    name: str = Field(default="", max_length=200)
    members: str = Field(default="", max_length=2000)  # comma-separated extensions
    email: str = Field(default="", max_length=1000)  # voicemail-to-email recipients


OUTBOX_STATES = ("pending", "sent", "failed", "dropped")


class OutboxEmail(SQLModel, table=True):
    """One email of a voicemail message to one recipient, kept until it is sent
    (ivr.mailer), so neither a restart nor an SMTP outage loses it.

    ``state``: ``pending`` (tried again at ``due_at``), ``sent``, ``failed``
    (refused for good, or out of time) or ``dropped`` (the message was
    deleted before it went).  ``message_id`` is the email's Message-ID, kept
    across retries so a receiver can tell a repeat (RFC 5322 §3.6.4).
    """

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int | None = Field(default=None, index=True)
    voicemail_id: int = Field(index=True)  # no foreign key: the message may go first
    recipient: str = Field(max_length=254)
    state: str = Field(default="pending", index=True, max_length=10)  # an OUTBOX_STATES value
    created_at: float
    due_at: float = Field(index=True)
    attempts: int = 0
    last_error: str = Field(default="", max_length=1000)
    sent_at: float | None = None
    message_id: str = Field(default="", max_length=300)


class ConferenceRoom(SQLModel, table=True):
    """A dial-in conference room (a switchboard service counted by the plan)."""

    __table_args__ = (UniqueConstraint("organisation_id", "number"),)

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    number: str = Field(index=True, max_length=40)
    name: str = Field(default="", max_length=200)
    pin: str = Field(default="", max_length=12)
    moderator_pin: str = Field(default="", max_length=12)
    record: bool = False
    owner: str = Field(default="", max_length=40)  # a personal room: its extension moderates


class SwitchboardSchedule(SQLModel, table=True):
    """Opening hours of an organisation's switchboard (Telavox "växel öppen/stängd",
    FreePBX time group): ``definition`` is an :class:`ivr.schedule.Definition` as
    JSON, ``overrides`` the manual and planned overrides as a JSON list."""

    __table_args__ = (UniqueConstraint("organisation_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    name: str = Field(index=True, max_length=40)
    definition: str = Field(default="{}", max_length=40000)
    overrides: str = Field(default="[]", max_length=20000)
    changed_at: float = 0.0


class TimeCondition(SQLModel, table=True):
    """A number of the dial plan that leads to ``open_target`` while its schedule is
    open and to ``closed_target`` while it is closed (FreePBX time condition).
    Targets are numbers of the organisation or ``voicemail:<mailbox>``."""

    __table_args__ = (UniqueConstraint("organisation_id", "number"),)

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    number: str = Field(index=True, max_length=40)
    name: str = Field(default="", max_length=200)
    schedule: str = Field(max_length=40)  # a SwitchboardSchedule's name
    open_target: str = Field(max_length=80)
    closed_target: str = Field(max_length=80)


class Ivr(SQLModel, table=True):
    """An IVR (Telavox "knappval"), a switchboard service the plan counts: its
    number in the dial plan and its tree (``ivr.tree.IvrTree``) as JSON, checked
    before it is stored."""

    __table_args__ = (UniqueConstraint("organisation_id", "number"),
                      UniqueConstraint("organisation_id", "name"))

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    number: str = Field(index=True, max_length=40)
    name: str = Field(max_length=40)
    tree: str = Field(sa_type=Text)


class Trunk(SQLModel, table=True):
    """A SIP trunk to a carrier: ``settings`` is a :class:`pbx.trunks.settings.TrunkSettings`
    as JSON (one model validates the config file and the API).  A trunk of the
    default organisation with ``shared`` set is the operator's, for everyone."""

    __table_args__ = (UniqueConstraint("organisation_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    name: str = Field(index=True, max_length=40)
    settings: str = Field(max_length=20000)


class CallPolicy(SQLModel, table=True):
    """An organisation's own numbering plan, toll-fraud limits and longest call
    (``pbx.config.CallPolicyConfig`` has the meanings); None: the node's
    ``[general]`` value."""

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", unique=True, index=True)
    country: str | None = Field(default=None, max_length=2)
    outside_prefix: str | None = Field(default=None, max_length=2)
    max_outbound_calls: int | None = None
    max_outbound_per_extension: int | None = None
    max_calls_per_hour: int | None = None
    max_org_calls_per_hour: int | None = None
    international: bool | None = None
    international_prefixes: str | None = Field(default=None, max_length=2000)  # comma-separated
    max_call_duration: int | None = None


class OutboundRoute(SQLModel, table=True):
    """An outbound route (FreePBX/3CX): numbers matching one of its dial
    ``patterns`` (``pbx.outbound``) leave over its ``trunks`` in order (the
    next one when a trunk fails), rewritten by ``strip``/``prepend`` and shown
    with ``caller_id``.  Routes are tried by ``position``; trunks are named."""

    __table_args__ = (UniqueConstraint("organisation_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    name: str = Field(max_length=40)
    position: int = 0
    patterns: str = Field(max_length=4000)  # comma-separated
    trunks: str = Field(max_length=2000)  # comma-separated trunk names, failover order
    strip: int = 0
    prepend: str = Field(default="", max_length=20)
    caller_id: str = Field(default="user", max_length=40)  # user, trunk, anonymous or +E.164
class Webhook(SQLModel, table=True):
    """An organisation's HTTPS endpoint that receives its events as JSON POSTs
    signed with ``secret`` (HMAC-SHA256, see :mod:`pbx.webhooks`); ``events``
    is a comma-separated list of event types, empty for all of them."""

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    url: str = Field(max_length=2000)
    secret: str = Field(max_length=100)  # needed to sign: kept, shown once
    events: str = Field(default="", max_length=500)
    description: str = Field(default="", max_length=200)
    active: bool = True
    created_at: float = 0.0


class WebhookDelivery(SQLModel, table=True):
    """One event for one webhook: a row of the outbox, ``pending`` until
    delivered or, after the last retry, ``failed``."""

    id: int | None = Field(default=None, primary_key=True)
    webhook_id: int = Field(foreign_key="webhook.id", index=True)
    organisation_id: int = Field(index=True)
    event_id: str = Field(max_length=64)  # the same for every webhook that gets the event
    event_type: str = Field(max_length=40)
    payload: str = Field(sa_type=Text)  # the JSON body, signed again at every attempt
    created_at: float = Field(index=True)
    state: str = Field(default="pending", max_length=20, index=True)  # delivered, failed
    attempts: int = 0
    next_attempt_at: float = Field(index=True)
    delivered_at: float | None = None
    last_status: int = 0  # the receiver's HTTP status; 0: no answer
    last_error: str = Field(default="", max_length=500)


class WebhookAttempt(SQLModel, table=True):
    """One try at delivering: when, what the receiver answered, how long it took."""

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(foreign_key="webhookdelivery.id", index=True)
    at: float
    status: int = 0  # HTTP status; 0: no answer (refused, timed out, a private address)
    error: str = Field(default="", max_length=500)
    duration: float = 0.0


class QueueEventRow(SQLModel, table=True):
    """One queue event as published (pbx/events.py), kept for history, CSV and
    raw exports: the queue statistics of any period are computed from these."""

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(index=True)
    type: str = Field(max_length=30)  # queue.joined … agent.state (pbx.events.event_type)
    queue: str = Field(default="", index=True, max_length=40)  # "" for agent states
    agent: str = Field(default="", index=True, max_length=40)
    call_id: str = Field(default="", max_length=300)
    at: float = Field(index=True)
    data: str = Field(default="", max_length=2000)  # the whole event: JSON


class Queue(SQLModel, table=True):
    """An ACD queue, a switchboard service the plan counts: its number and its
    settings (a :class:`pbx.queue_settings.QueueConfig` as JSON)."""

    __table_args__ = (UniqueConstraint("organisation_id", "number"),)

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    number: str = Field(index=True, max_length=40)
    name: str = Field(default="", max_length=200)
    settings: str = Field(sa_type=Text)


class QueueCallbackRequest(SQLModel, table=True):
    """A caller waiting on hook for a queue's callback (kept across restarts):
    their place is ``joined_at`` (and ``priority``) as when they called."""

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    queue: str = Field(max_length=40)
    call_id: str = Field(max_length=200, unique=True)
    number: str = Field(max_length=80)
    joined_at: float
    priority: int = 0
    attempts: int = 0


class QueueAgent(SQLModel, table=True):
    """A queue agent's own choice, kept across restarts: logged out, or paused
    with a reason (an agent with no row is logged in and available)."""

    __table_args__ = (UniqueConstraint("organisation_id", "extension"),)

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    extension: str = Field(max_length=40)
    logged_in: bool = True
    pause_reason: str | None = Field(default=None, max_length=80)
