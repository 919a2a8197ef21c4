"""Typed configuration loaded from an Asterisk-style INI file (``sip.conf``).

The file has a ``[general]`` section for the server and one section per
extension (``[1001]``), ring group, conference room, number, schedule
(opening hours), time condition, shared mailbox, IVR, trunk and outbound route
(``type = …``).  Everything is validated
at load time; an error names the file, the section and the key so an
operator can fix it without reading code (STYLE.md habit 7).  Extensions and
the rest of the file only *seed* the store: the store is the source of truth
once the PBX runs.
"""

from __future__ import annotations

import configparser
import ipaddress
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo,
    field_validator, model_validator,
)

from ivr.check import Targets, parse, problems
from ivr.schedule import DAYS, Definition
from ivr.tree import IvrTree, YamlError, read_yaml
from media.languages import LANGUAGES
from media.tones import COUNTRIES
from pbx.fields import Listed, check_networks, split_commas
from pbx.models import CallPolicy
from pbx.numbering import COUNTRIES as NUMBERING_COUNTRIES
from pbx.numbering import E164_PREFIX
from pbx.outbound import MAX_STRIP, NAME, PREPEND, check_caller_id, parse_pattern
from pbx.pike import SCANNERS
from pbx.queue_settings import QueueConfig
from pbx.trunks.settings import TRUNK_NAME, TrunkSettings
from pbx.addresses import EmailAddresses, check_sender

DEFAULT_CODECS = ("PCMU", "PCMA", "G722", "telephone-event")
VOICEMAIL_NUMBER = "133"  # the voicemail menu: what the phones' message key dials
VOICEMAIL_MAIN = "*98"  # any mailbox's menu, with its number and PIN (FreePBX "dial voicemail")
WILDCARDS = ("0.0.0.0", "::")  # a bind on every address: which one phones use is not said
_EXTENSION_RE = re.compile(r"^[0-9A-Za-z_.+-]{1,40}$")
# where a call can be sent: a number of the organisation, or a mailbox (voicemail:1001)
DIAL_TARGET = r"^(voicemail:)?[0-9A-Za-z_.+*-]{1,40}$"
SCHEDULE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$"
_OPERATOR = r"^[0-9A-Za-z_.+*#-]{0,40}$"  # a number of the dial plan, or empty
_CLOSED = ("", "closed", "none")
NAMED_KINDS = ("schedule", "trunk", "route")
MEDIA_ENCRYPTION = "^(|off|optional|required)$"  # SRTP with SDES keys (pbx.sdp.SRTP_MODES)  # sections with a name, not a number of the dial plan


PIN_PATTERN = r"^[0-9]{4,12}$"  # a mailbox PIN


def _pin(value: str) -> str:
    if value and not re.match(PIN_PATTERN, value):
        raise ValueError("a PIN is 4-12 digits")
    return value


Pin = Annotated[str, AfterValidator(_pin)]  # a mailbox PIN (empty: none), stored hashed
MAX_PARKING_SLOTS = 1000


class ConfigError(ValueError):
    """A configuration problem, located by file, section and key."""

    def __init__(self, path: str, section: str | None, key: str | None, message: str) -> None:
        where = path
        if section is not None:
            where += f" [{section}]"
        if key is not None:
            where += f" {key}"
        super().__init__(f"{where}: {message}")
        self.path, self.section, self.key = path, section, key


class CallPolicyConfig(BaseModel):
    """How an organisation's calls reach the public network: its numbering plan
    (``pbx.numbering``), toll-fraud limits (``pbx.limits``) and the longest
    call.  The ``[general]`` keys are every organisation's defaults; one
    overrides them in the store (``pbx.models.CallPolicy``, the admin API)."""

    model_config = ConfigDict(extra="forbid")

    country: str = "SE"  # whose numbering plan users dial in (national numbers, emergency)
    outside_prefix: str = Field("", pattern=r"^[0-9]{0,2}$")  # "0" or "9" before external numbers
    max_outbound_calls: int = Field(0, ge=0, le=100_000)  # at once, the organisation; 0 = no limit
    max_outbound_per_extension: int = Field(3, ge=0, le=1000)  # at once, one extension
    max_calls_per_hour: int = Field(60, ge=0, le=100_000)  # placed in any hour, one extension
    max_org_calls_per_hour: int = Field(0, ge=0, le=10_000_000)  # the organisation
    international: bool = True  # calls outside the country at all
    international_prefixes: Listed = ()  # abroad only to these (+45, +4915); () = all
    max_call_duration: int = Field(0, ge=0, le=7 * 86400)  # seconds any call may last; 0 = no limit

    @field_validator("country")
    @classmethod
    def _country(cls, value: str) -> str:
        if value.upper() not in NUMBERING_COUNTRIES:
            raise ValueError(f"no numbering plan for country {value!r}; use one of "
                             f"{', '.join(NUMBERING_COUNTRIES)}")
        return value.upper()

    @field_validator("international_prefixes")
    @classmethod
    def _prefixes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for prefix in value:
            if not re.match(E164_PREFIX, prefix):
                raise ValueError(f"{prefix!r} is not an E.164 prefix such as +45 or +4915")
        return value

    def of(self, row: CallPolicy | None) -> CallPolicyConfig:
        """An organisation's policy: its own values from the store, these for the rest."""
        own = {} if row is None else {key: getattr(row, key) for key in POLICY_KEYS
                                      if getattr(row, key) is not None}
        return CallPolicyConfig.model_validate(
            {**self.model_dump(include=set(POLICY_KEYS)), **own})


POLICY_KEYS = tuple(CallPolicyConfig.model_fields)


def slot_range(text: str) -> tuple[str, ...]:
    """``701-720`` → the parking slots, in order (ValueError says what is wrong)."""
    match = re.fullmatch(r"\s*([0-9]{1,8})\s*-\s*([0-9]{1,8})\s*", text)
    if match is None:
        raise ValueError("must be a range of numbers like 701-720")
    low, high = int(match[1]), int(match[2])
    if low > high or high - low >= MAX_PARKING_SLOTS:
        raise ValueError(f"must run from low to high, at most {MAX_PARKING_SLOTS} slots")
    return tuple(str(n) for n in range(low, high + 1))


class General(CallPolicyConfig):
    """The ``[general]`` section: where the server listens and how it behaves."""

    model_config = ConfigDict(extra="forbid")

    bind: str = "127.0.0.1"
    udp_port: int = Field(5060, ge=0, le=65535)
    tcp_port: int = Field(5060, ge=0, le=65535)
    tls_port: int = Field(5061, ge=0, le=65535)
    ws_port: int = Field(5066, ge=0, le=65535)  # SIP over WebSocket (RFC 7118), transport ws
    wss_port: int = Field(7443, ge=0, le=65535)  # the same over TLS (the TLS certificate), wss
    http_port: int = Field(8080, ge=0, le=65535)
    https_port: int = Field(8443, ge=0, le=65535)  # the same over TLS (0: off)
    transports: tuple[str, ...] = ("udp", "tcp", "tls")
    realm: str = "pbx.local"
    domains: tuple[str, ...] = ()
    tls_cert: str = "auto"
    tls_key: str = ""
    rtp_port_min: int = Field(10000, ge=1024, le=65535)
    rtp_port_max: int = Field(20000, ge=1024, le=65535)
    codecs: tuple[str, ...] = DEFAULT_CODECS
    # SRTP (SDES, RFC 4568) of extensions that set none: off, optional (when a phone
    # offers it), required (plain RTP refused with 488); keys travel in the SDP, so
    # srtp_require_tls keeps them off signalling that is not TLS
    media_encryption: str = Field("optional", pattern="^(off|optional|required)$")
    srtp_require_tls: bool = False
    database_url: str = ""
    data_dir: str = "data"
    # Server / User-Agent header; empty (default): none, so a scanner learns
    # no software name or version from our answers
    user_agent: str = ""
    min_expires: int = Field(60, ge=1)
    max_expires: int = Field(3600, ge=1)
    default_expires: int = Field(3600, ge=1)
    max_contacts: int = Field(10, ge=1)
    nonce_ttl: int = Field(300, ge=10)
    # digest challenges offered, preferred first (RFC 8760).  MD5 alone by
    # default: sipp reads only the first challenge and baresip/libre fails on
    # any it cannot do, as do many desk phones.  "SHA-256, MD5" for modern fleets.
    auth_algorithms: tuple[str, ...] = ("MD5",)
    auth_max_failures: int = Field(10, ge=1)
    auth_failure_window: int = Field(60, ge=1)
    auth_block_time: int = Field(600, ge=0)
    # flood control (Kamailio pike's defaults): more than flood_max_requests requests
    # from one IP within flood_window s ban it for flood_ban_time s; 0 turns it off.
    # The PBX's own addresses, trunks' hosts and flood_trusted (IPs or networks: a
    # proxy in front) are never banned.
    flood_max_requests: int = Field(16, ge=0)
    flood_window: float = Field(2.0, gt=0)
    flood_ban_time: float = Field(300.0, gt=0)
    flood_trusted: tuple[str, ...] = ()
    scanner_user_agents: tuple[str, ...] = SCANNERS  # requests from these dropped unanswered
    location_flush_ms: int = Field(200, ge=10)
    tcp_idle_timeout: int = Field(3900, ge=10)
    drain_time: int = Field(15, ge=0)  # s a stopping node waits for live calls to end
    # overload control (pbx/overload.py): shed new INVITE/REGISTER/SUBSCRIBE with
    # 503 + Retry-After when one of these limits is reached
    overload_control: bool = True
    overload_loop_lag_ms: float = Field(100.0, gt=0)
    overload_udp_wait_ms: float = Field(200.0, gt=0)
    overload_transactions: int = Field(2000, ge=1)
    overload_media_tick_ms: float = Field(15.0, gt=0)
    overload_retry_after: int = Field(10, ge=0)
    overload_busy_cpu: float = Field(0.6, ge=0, le=1)
    external_address: str = ""  # address put in SDP/Contact when bind is 0.0.0.0 or behind NAT
    session_expires: int = Field(1800, ge=90)  # RFC 4028 session timer we ask for
    language: str = "en"  # system prompts and phones, of organisations that set none
    tone_country: str = "gb"  # call-progress tones of English-speaking organisations
    personal_room_prefix: str = Field("8", pattern=r"^[0-9*#]{0,4}$")  # 8 + 1001: 1001's room
    voicemail_number: str = Field(VOICEMAIL_NUMBER, pattern=r"^[0-9*#]{1,10}$")  # one's own mailbox
    operator: str = Field("", pattern=_OPERATOR)  # where 0 leads callers
    voicemail_main: str = Field(VOICEMAIL_MAIN, pattern=r"^[0-9*#]{0,10}$")  # any mailbox, PIN
    camp_on_timeout: int = Field(300, ge=0, le=3600)  # 1 at a busy greeting waits this long
    recording_format: str = Field("wav", pattern="^(wav|flac)$")
    recording_mix: str = Field("stereo", pattern="^(stereo|mono)$")  # stereo: caller left
    record_announce: bool = False  # say "this call is recorded" to both parties
    recording_retention_days: int = Field(730, ge=1)  # 24 months
    # voicemail to email (ivr.mailer): the SMTP server, how to reach it, what to attach
    smtp_host: str = ""  # empty: emails wait in the outbox until one is set
    smtp_port: int = Field(0, ge=0, le=65535)  # 0: the port of smtp_security (587, 465, 25)
    smtp_security: str = Field("starttls", pattern="^(starttls|tls|none)$")  # tls: implicit
    smtp_verify: bool = True  # check the server's certificate
    smtp_user: str = ""  # AUTH when set
    smtp_password: str = ""
    smtp_from: str = ""  # empty: voicemail@<realm>
    voicemail_attach: str = Field("wav", pattern="^(wav|mp3|ogg|flac|none)$")
    voicemail_delete: bool = False  # Asterisk's delete: the message goes once emailed
    mqtt_url: str = ""
    calendar_private_hosts: bool = False  # calendar feeds from private addresses (on premises)
    # the store-wide jobs (voicemail email, webhook deliveries, calendar sync, recording
    # retention): in a cluster on one PostgreSQL exactly one node runs them
    jobs: bool = True
    workers: int = Field(0, ge=0)  # processes sharing the SIP ports; 0: one per core
    park_slots: str = "701-720"  # the parking lot of every organisation (Asterisk's parkpos)
    park_timeout: int = Field(300, ge=10, le=86400)  # s parked before it comes back
    webhooks_allow_http: bool = False  # http:// and private addresses (tests, on premises)
    webhooks_max_attempts: int = Field(12, ge=1, le=50)  # then a delivery is given up
    webhooks_first_retry: int = Field(10, ge=1, le=3600)  # s; doubled each time, at most 1 h
    log_level: str = "INFO"
    # STUN/TURN servers the browser softphone uses to reach the PBX through
    # NAT (stun:host:3478, turn:host:3478?transport=udp …) and the TURN login
    webrtc_ice_servers: tuple[str, ...] = ()
    webrtc_turn_username: str = ""
    webrtc_turn_password: str = ""
    # "relay": the page sends media only through the TURN server (its address
    # stays hidden; networks that block direct UDP), "all": any path ICE finds
    webrtc_ice_transport_policy: str = Field("all", pattern="^(all|relay)$")
    # s a browser softphone's calls wait for its page to reconnect after its
    # WebSocket dropped (the media goes on meanwhile); then they are hung up
    webrtc_reconnect_grace: float = Field(30.0, ge=0, le=600)

    _split_list = field_validator("transports", "domains", "codecs", "auth_algorithms",
                                  "webrtc_ice_servers", "flood_trusted", "scanner_user_agents",
                                  mode="before")(split_commas)

    _networks = field_validator("flood_trusted")(check_networks)

    @field_validator("webrtc_ice_servers")
    @classmethod
    def _ice_servers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for url in value:
            if not re.fullmatch(r"(stuns?|turns?):[^\s:?]+(:\d{1,5})?(\?transport=(udp|tcp))?",
                                url):
                raise ValueError(f"{url!r} is no STUN/TURN URL (stun:host:3478, "
                                 "turn:host:3478?transport=udp)")
        return value

    @field_validator("webrtc_ice_transport_policy")
    @classmethod
    def _relay_needs_turn(cls, value: str, info: ValidationInfo) -> str:
        if value == "relay" and not any(url.startswith("turn")
                                        for url in info.data.get("webrtc_ice_servers", ())):
            raise ValueError("relay needs a turn: server in webrtc_ice_servers")
        return value

    @field_validator("transports")
    @classmethod
    def _known_transports(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        lowered = tuple(t.lower() for t in value)
        unknown = set(lowered) - {"udp", "tcp", "tls", "ws", "wss"}
        if unknown:
            raise ValueError(f"unknown transport(s) {sorted(unknown)}; use udp, tcp, tls, ws, wss")
        return lowered

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_url(cls, value: str) -> str:
        if value and not re.fullmatch(r"mqtt://([^@/]+@)?[^:/@]+(:\d{1,5})?/?", value):
            raise ValueError("must look like mqtt://host:1883 (or mqtt://user:password@host)")
        return value

    @field_validator("language")
    @classmethod
    def _language(cls, value: str) -> str:
        if value not in LANGUAGES:
            raise ValueError(f"unknown language {value!r}; use one of {', '.join(LANGUAGES)}")
        return value

    @field_validator("tone_country")
    @classmethod
    def _tone_country(cls, value: str) -> str:
        if value.lower() not in COUNTRIES:
            raise ValueError(f"no tones for country {value!r}; use one of {', '.join(COUNTRIES)}")
        return value.lower()

    @field_validator("voicemail_main")
    @classmethod
    def _not_the_own_menu(cls, value: str, info: ValidationInfo) -> str:
        if value and value == info.data.get("voicemail_number"):
            raise ValueError("must differ from voicemail_number")
        return value

    @field_validator("smtp_from")
    @classmethod
    def _sender(cls, value: str) -> str:
        return check_sender(value) if value.strip() else ""
    @field_validator("park_slots")
    @classmethod
    def _park_slots(cls, value: str) -> str:
        slot_range(value)
        return value

    @property
    def parking_slots(self) -> tuple[str, ...]:
        return slot_range(self.park_slots)

    @field_validator("bind")
    @classmethod
    def _ip_address(cls, value: str) -> str:
        ipaddress.ip_address(value)
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        upper = value.upper()
        if upper not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return upper

    @model_validator(mode="after")
    def _consistent(self) -> General:
        if self.rtp_port_min >= self.rtp_port_max:
            raise ValueError("rtp_port_min must be below rtp_port_max")
        if not self.min_expires <= self.default_expires <= self.max_expires:
            raise ValueError("need min_expires <= default_expires <= max_expires")
        return self


class ExtensionConfig(BaseModel):
    """One ``[NNNN]`` section: an extension and its SIP credentials."""

    model_config = ConfigDict(extra="forbid")

    number: str
    secret: str = Field(min_length=1)
    callerid: str = ""
    mailbox: str = ""
    voicemail_pin: Pin = ""  # the mailbox's PIN
    pin_from_own_device: bool = False  # the PIN is asked on 133 too
    voicemail_operator: str = Field("", pattern=_OPERATOR)  # 0 at its greeting; "": [general]
    mwi_unsolicited: bool = False  # message-waiting NOTIFYs without a SUBSCRIBE
    email: EmailAddresses = ""  # its voicemail is emailed: a@x, b@y
    voicemail_delete: bool | None = None  # deleted once emailed; None: as [general]
    context: str = "default"
    dnd: bool = False
    forward_always: str = ""
    forward_busy: str = ""
    forward_noanswer: str = ""
    ring_timeout: int = Field(30, ge=5, le=600)
    record: bool = False
    record_on_demand: bool = False
    voicemail: bool = True  # calls it cannot take (unregistered, no answer, busy) leave a message
    media_encryption: str = Field("", pattern=MEDIA_ENCRYPTION)  # SRTP; "": as [general]

    @field_validator("number")
    @classmethod
    def _number(cls, value: str) -> str:
        if not _EXTENSION_RE.match(value):
            raise ValueError("extension must be 1-40 characters of digits, letters, _ . + -")
        return value


RING_STRATEGIES = ("ringall", "linear", "roundrobin", "leastrecent", "fewestcalls", "random")


class ConferenceConfig(BaseModel):
    """A ``[NNN]`` section with ``type = conference``: a dial-in conference room."""

    model_config = ConfigDict(extra="forbid")

    number: str
    type: str = "conference"
    name: str = ""
    pin: str = Field("", pattern=r"^[0-9]{0,12}$")
    moderator_pin: str = Field("", pattern=r"^[0-9]{0,12}$")
    record: bool = False
    owner: str = ""  # a personal room: its extension joins as moderator


class NumberConfig(BaseModel):
    """A ``[+4681234567]`` section with ``type = number``: a DID and where it goes."""

    model_config = ConfigDict(extra="forbid")

    number: str = Field(pattern=r"^\+?[0-9]{3,20}$")
    type: str = "number"
    target: str = Field(min_length=1, max_length=40)


class RingGroupConfig(BaseModel):
    """A ``[NNN]`` section with ``type = ringgroup``: several extensions behind one number."""

    model_config = ConfigDict(extra="forbid")

    number: str
    type: str = "ringgroup"
    name: str = ""
    strategy: str = "ringall"
    members: Listed = ()
    member_timeout: int = Field(15, ge=1, le=600)
    timeout: int = Field(60, ge=1, le=3600)
    fallback: str = ""

    @field_validator("strategy")
    @classmethod
    def _strategy(cls, value: str) -> str:
        if value not in RING_STRATEGIES:
            raise ValueError(f"unknown strategy; use one of {', '.join(RING_STRATEGIES)}")
        return value


class MailboxConfig(BaseModel):
    """A ``[NNNN]`` section with ``type = mailbox``: a shared mailbox (Telavox
    "gemensam röstbrevlåda") with its own number, for its ``members``."""

    model_config = ConfigDict(extra="forbid")

    number: str = Field(pattern=_EXTENSION_RE.pattern)
    type: str = "mailbox"
    name: str = Field("", max_length=200)
    members: Listed = ()
    email: EmailAddresses = ""  # voicemail-to-email recipients
    pin: Pin = ""
    pin_from_own_device: bool = False
    operator: str = Field("", pattern=_OPERATOR)

    @field_validator("members")
    @classmethod
    def _once(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("an extension is listed twice")
        return value


class IvrConfig(BaseModel):
    """A ``[500]`` section with ``type = ivr``: an IVR on that number, its tree a
    YAML file (``tree = ivr-demo.yaml``, relative to the config file)."""

    model_config = ConfigDict(extra="forbid")

    number: str
    type: str = "ivr"
    tree: str = Field(min_length=1)


class RouteConfig(BaseModel):
    """A ``[name]`` section with ``type = route``: an outbound route (``pbx.outbound``);
    routes are tried in the file's order."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME)
    type: str = "route"
    patterns: Listed = Field(min_length=1)
    trunks: Listed = Field(min_length=1)
    prepend: str = Field("", pattern=PREPEND)
    strip: int = Field(0, ge=0, le=MAX_STRIP)
    callerid: str = "user"

    @field_validator("patterns")
    @classmethod
    def _patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for text in value:
            try:
                parse_pattern(text)
            except ValueError as exc:
                raise ValueError(f"{text}: {exc}") from None
        return value

    @field_validator("trunks")
    @classmethod
    def _trunks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not re.match(TRUNK_NAME, name):
                raise ValueError(f"{name!r} is not a trunk name (a letter, then up to 39 "
                                 "letters, digits, _ . -)")
        return value

    _callerid = field_validator("callerid")(check_caller_id)


@dataclass(frozen=True)
class ScheduleConfig:
    """A ``[name]`` section with ``type = schedule``: opening hours.

    ``mon`` … ``sun`` and ``holiday_hours`` take intervals (``08:00-12:00,
    13:00-17:00``) or ``closed``; ``holidays`` a country code (``SE``) or
    ``none``; ``exceptions`` dated entries separated by ``;``
    (``2026-12-24 closed; 2026-12-31 09:00-12:00``); ``timezone`` an IANA name.
    """

    name: str
    definition: Definition


class TimeConditionConfig(BaseModel):
    """A ``[NNN]`` section with ``type = timecondition``: a number that leads to
    ``open`` while ``schedule`` is open and to ``closed`` otherwise."""

    model_config = ConfigDict(extra="forbid")

    number: str = Field(pattern=_EXTENSION_RE.pattern)
    type: str = "timecondition"
    name: str = Field("", max_length=200)
    schedule: str = Field(pattern=SCHEDULE_NAME)
    open: str = Field(pattern=DIAL_TARGET)
    closed: str = Field(pattern=DIAL_TARGET)


def _hours(text: str) -> list[str]:
    return [] if text.strip().lower() in _CLOSED else [p.strip() for p in text.split(",")]


def _schedule(path: str, section: str, values: dict[str, str]) -> ScheduleConfig:
    """Read a schedule section into a validated :class:`Definition`."""
    if not re.match(SCHEDULE_NAME, section):
        raise ConfigError(path, section, None, "a schedule's name is 1-40 letters, digits, _ . -")
    fields: dict[str, object] = {}
    entries: list[str] = []
    for key, text in values.items():
        if key in (*DAYS, "holiday_hours"):
            fields[key] = _hours(text)
        elif key == "holidays":
            fields[key] = "" if text.strip().lower() in _CLOSED else text.strip()
        elif key == "exceptions":
            entries = [entry.strip() for entry in text.split(";") if entry.strip()]
            fields[key] = [{"date": day, "hours": _hours(rest)}
                           for day, _, rest in (entry.partition(" ") for entry in entries)]
        elif key != "type":
            fields[key] = text
    try:
        return ScheduleConfig(section, Definition.model_validate(fields))
    except ValidationError as exc:
        first = exc.errors()[0]
        message = first["msg"]
        if first["loc"][0] == "exceptions" and len(first["loc"]) > 1:
            message += f" (entry {entries[int(first['loc'][1])]!r})"
        raise ConfigError(path, section, str(first["loc"][0]), message) from None


@dataclass(frozen=True)
class Config:
    """The whole validated configuration."""

    general: General
    extensions: tuple[ExtensionConfig, ...] = ()
    ring_groups: tuple[RingGroupConfig, ...] = ()
    conferences: tuple[ConferenceConfig, ...] = ()
    numbers: tuple[NumberConfig, ...] = ()
    schedules: tuple[ScheduleConfig, ...] = ()
    time_conditions: tuple[TimeConditionConfig, ...] = ()
    ivrs: tuple[IvrTree, ...] = ()
    trunks: tuple[TrunkSettings, ...] = ()
    mailboxes: tuple[MailboxConfig, ...] = ()
    routes: tuple[RouteConfig, ...] = ()
    queues: tuple[QueueConfig, ...] = ()
    path: str = "<defaults>"

    @property
    def data_path(self) -> Path:
        return Path(self.general.data_dir)

    @property
    def database_url(self) -> str:
        """The store's URL: the configured one, else SQLite in the data directory."""
        if self.general.database_url:
            return self.general.database_url
        return f"sqlite:///{(self.data_path / 'pbx.sqlite3').resolve()}"

    def with_overrides(self, **overrides: Any) -> Config:
        """Return a copy with command-line overrides applied to ``[general]`` (None = keep)."""
        values = {k: v for k, v in overrides.items() if v is not None}
        if not values:
            return self
        try:
            general = General.model_validate({**self.general.model_dump(), **values})
        except ValidationError as exc:
            raise _config_error(self.path, "command line", exc) from None
        return replace(self, general=general)


def _config_error(path: str, section: str, exc: ValidationError) -> ConfigError:
    first = exc.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or None
    return ConfigError(path, section, key, first["msg"])


def load_config(path: str | Path | None) -> Config:
    """Read and validate a sip.conf-style file; ``None`` gives the built-in defaults."""
    if path is None:
        return Config(general=General())
    path_str = str(path)
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except OSError as exc:
        raise ConfigError(path_str, None, None, f"cannot read: {exc.strerror}") from None
    except configparser.Error as exc:
        raise ConfigError(path_str, None, None, f"syntax error: {exc.message}") from None

    general_raw = dict(parser.items("general")) if parser.has_section("general") else {}
    try:
        general = General.model_validate(general_raw)
    except ValidationError as exc:
        raise _config_error(path_str, "general", exc) from None

    extensions: list[ExtensionConfig] = []
    ring_groups: list[RingGroupConfig] = []
    conferences: list[ConferenceConfig] = []
    numbers: list[NumberConfig] = []
    schedules: list[ScheduleConfig] = []
    conditions: list[TimeConditionConfig] = []
    ivr_sections: list[IvrConfig] = []
    trunks: list[TrunkSettings] = []
    mailboxes: list[MailboxConfig] = []
    routes: list[RouteConfig] = []
    queues: list[QueueConfig] = []
    for section in parser.sections():
        if section == "general":
            continue
        values = {"number": section, **parser[section]}
        kind = values.get("type", "extension")
        if section in NUMBERING_COUNTRIES[general.country].emergency and kind not in NAMED_KINDS:
            raise ConfigError(path_str, section, None, f"{section} is an emergency number in "
                              f"{general.country}: nothing of the dial plan may take it")
        try:
            if kind == "schedule":
                schedules.append(_schedule(path_str, section, dict(parser[section])))
            elif kind == "timecondition":
                conditions.append(TimeConditionConfig.model_validate(values))
            elif kind == "ringgroup":
                ring_groups.append(RingGroupConfig.model_validate(values))
            elif kind == "conference":
                conferences.append(ConferenceConfig.model_validate(values))
            elif kind == "number":
                numbers.append(NumberConfig.model_validate(values))
            elif kind == "queue":
                queues.append(QueueConfig.model_validate(values))
            elif kind == "ivr":
                ivr_sections.append(IvrConfig.model_validate(values))
            elif kind == "trunk":
                trunks.append(TrunkSettings.model_validate(
                    {"name": section, **{k: v for k, v in parser[section].items() if k != "type"}}))
            elif kind == "mailbox":
                mailboxes.append(MailboxConfig.model_validate(values))
            elif kind == "route":
                routes.append(RouteConfig.model_validate({"name": section,
                                                          **parser[section]}))
            elif kind == "extension":
                values.pop("type", None)
                extensions.append(ExtensionConfig.model_validate(values))
            else:
                raise ConfigError(
                    path_str, section, "type", "must be extension, ringgroup, conference, "
                    "number, schedule, timecondition, ivr, queue, trunk, route or mailbox"
                )
        except ValidationError as exc:
            raise _config_error(path_str, section, exc) from None
    trunk_names = {trunk.name for trunk in trunks}
    for route in routes:
        missing = [name for name in route.trunks if name not in trunk_names]
        if missing:
            raise ConfigError(path_str, route.name, "trunks",
                              f"no [{missing[0]}] section with type = trunk")
    named = {schedule.name for schedule in schedules}
    for condition in conditions:
        if condition.schedule not in named:
            raise ConfigError(path_str, condition.number, "schedule",
                              f"no [{condition.schedule}] section with type = schedule")
    known = {ext.number for ext in extensions}
    for mailbox in mailboxes:
        unknown = [m for m in mailbox.members if m not in known]
        if unknown:
            raise ConfigError(path_str, mailbox.number, "members",
                              f"no extension section for {', '.join(unknown)}")
    targets = Targets(
        extensions=frozenset(known),
        ring_groups=frozenset(g.number for g in ring_groups),
        rooms=frozenset(r.number for r in conferences), schedules=frozenset(named),
        mailboxes=frozenset(m.number for m in mailboxes),
        queues=frozenset(q.number for q in queues),
    )
    for queue in queues:
        unknown = [m for m in queue.penalties if m not in known]
        if unknown:
            raise ConfigError(path_str, queue.number, "members",
                              f"no extension section for {', '.join(unknown)}")
        if queue.schedule and queue.schedule not in named:
            raise ConfigError(path_str, queue.number, "schedule",
                              f"no [{queue.schedule}] section with type = schedule")
    return Config(
        general=general, extensions=tuple(extensions), ring_groups=tuple(ring_groups),
        conferences=tuple(conferences), numbers=tuple(numbers), schedules=tuple(schedules),
        time_conditions=tuple(conditions), trunks=tuple(trunks),
        ivrs=tuple(_ivr_tree(Path(path_str), section, targets) for section in ivr_sections),
        mailboxes=tuple(mailboxes), routes=tuple(routes), queues=tuple(queues), path=path_str,
    )


def _ivr_tree(config: Path, section: IvrConfig, targets: Targets) -> IvrTree:
    """The section's YAML tree, read and checked against the file's own dial plan."""
    path = config.parent / section.tree

    def error(message: str) -> ConfigError:
        return ConfigError(str(config), section.number, "tree", f"{path}: {message}")

    try:
        tree, found = parse(read_yaml(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise error(f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise error("not UTF-8 text") from None
    except YamlError as exc:
        raise error(str(exc)) from None
    if tree is not None:
        if tree.number != section.number:
            raise error(f"the tree's number {tree.number} is not the section's")
        found = problems(tree, targets)
    if found:
        raise error("; ".join(map(str, found)))
    assert tree is not None
    return tree


@dataclass
class PortRange:
    """An inclusive UDP port range such as ``10000-20000`` from ``--rtp-ports``."""

    low: int
    high: int = field(default=0)

    @classmethod
    def parse(cls, text: str) -> PortRange:
        match = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", text)
        if not match:
            raise ValueError(f"expected a port range like 10000-20000, got {text!r}")
        low, high = int(match[1]), int(match[2])
        if not 1024 <= low < high <= 65535:
            raise ValueError(f"port range {text!r} must satisfy 1024 <= A < B <= 65535")
        return cls(low, high)
