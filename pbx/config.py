"""Typed configuration loaded from an Asterisk-style INI file (``sip.conf``).

The file has a ``[general]`` section for the server and one section per
extension (``[1001]``), ring group, conference room, number, schedule
(opening hours) and time condition (``type = …``).  Everything is validated
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
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ivr.check import Targets, parse, problems
from ivr.schedule import DAYS, Definition
from ivr.tree import IvrTree, YamlError, read_yaml
from media.languages import LANGUAGES
from media.tones import COUNTRIES

DEFAULT_CODECS = ("PCMU", "PCMA", "G722", "telephone-event")
VOICEMAIL_NUMBER = "133"  # the voicemail menu: what the phones' message key dials
WILDCARDS = ("0.0.0.0", "::")  # a bind on every address: which one phones use is not said
_EXTENSION_RE = re.compile(r"^[0-9A-Za-z_.+-]{1,40}$")
# where a call can be sent: a number of the organisation, or a mailbox (voicemail:1001)
DIAL_TARGET = r"^(voicemail:)?[0-9A-Za-z_.+*-]{1,40}$"
SCHEDULE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$"
_CLOSED = ("", "closed", "none")
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


def slot_range(text: str) -> tuple[str, ...]:
    """``701-720`` → the parking slots, in order (ValueError says what is wrong)."""
    match = re.fullmatch(r"\s*([0-9]{1,8})\s*-\s*([0-9]{1,8})\s*", text)
    if match is None:
        raise ValueError("must be a range of numbers like 701-720")
    low, high = int(match[1]), int(match[2])
    if low > high or high - low >= MAX_PARKING_SLOTS:
        raise ValueError(f"must run from low to high, at most {MAX_PARKING_SLOTS} slots")
    return tuple(str(n) for n in range(low, high + 1))


class General(BaseModel):
    """The ``[general]`` section: where the server listens and how it behaves."""

    model_config = ConfigDict(extra="forbid")

    bind: str = "127.0.0.1"
    udp_port: int = Field(5060, ge=0, le=65535)
    tcp_port: int = Field(5060, ge=0, le=65535)
    tls_port: int = Field(5061, ge=0, le=65535)
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
    database_url: str = ""
    data_dir: str = "data"
    user_agent: str = "pbx/0.1"
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
    location_flush_ms: int = Field(200, ge=10)
    tcp_idle_timeout: int = Field(3900, ge=10)
    external_address: str = ""  # address put in SDP/Contact when bind is 0.0.0.0 or behind NAT
    session_expires: int = Field(1800, ge=90)  # RFC 4028 session timer we ask for
    language: str = "en"  # system prompts and phones, of organisations that set none
    tone_country: str = "gb"  # call-progress tones of English-speaking organisations
    personal_room_prefix: str = Field("8", pattern=r"^[0-9*#]{0,4}$")  # 8 + 1001: 1001's room
    voicemail_number: str = Field(VOICEMAIL_NUMBER, pattern=r"^[0-9*#]{1,10}$")  # one's own mailbox
    operator: str = Field("", pattern=r"^[0-9A-Za-z_.+*#-]{0,40}$")  # where 0 leads callers
    recording_format: str = Field("wav", pattern="^(wav|flac)$")
    recording_mix: str = Field("stereo", pattern="^(stereo|mono)$")  # stereo: caller left
    record_announce: bool = False  # say "this call is recorded" to both parties
    recording_retention_days: int = Field(730, ge=1)  # 24 months
    max_call_duration: int = Field(0, ge=0)  # 0 = unlimited
    smtp_host: str = ""
    smtp_port: int = Field(25, ge=0, le=65535)
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_from: str = ""
    mqtt_url: str = ""
    calendar_private_hosts: bool = False  # calendar feeds from private addresses (on premises)
    park_slots: str = "701-720"  # the parking lot of every organisation (Asterisk's parkpos)
    park_timeout: int = Field(300, ge=10, le=86400)  # s parked before it comes back
    webhooks_allow_http: bool = False  # http:// and private addresses (tests, on premises)
    webhooks_max_attempts: int = Field(12, ge=1, le=50)  # then a delivery is given up
    webhooks_first_retry: int = Field(10, ge=1, le=3600)  # s; doubled each time, at most 1 h
    log_level: str = "INFO"

    @field_validator("transports", "domains", "codecs", "auth_algorithms", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(item.strip() for item in value.split(",") if item.strip())
        return value

    @field_validator("transports")
    @classmethod
    def _known_transports(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        lowered = tuple(t.lower() for t in value)
        unknown = set(lowered) - {"udp", "tcp", "tls"}
        if unknown:
            raise ValueError(f"unknown transport(s) {sorted(unknown)}; use udp, tcp, tls")
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
    context: str = "default"
    dnd: bool = False
    forward_always: str = ""
    forward_busy: str = ""
    forward_noanswer: str = ""
    ring_timeout: int = Field(30, ge=5, le=600)
    record: bool = False
    record_on_demand: bool = False
    voicemail: bool = True  # calls it cannot take (unregistered, no answer, busy) leave a message

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
    members: tuple[str, ...] = ()
    member_timeout: int = Field(15, ge=1, le=600)
    timeout: int = Field(60, ge=1, le=3600)
    fallback: str = ""

    @field_validator("members", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(item.strip() for item in value.split(",") if item.strip())
        return value

    @field_validator("strategy")
    @classmethod
    def _strategy(cls, value: str) -> str:
        if value not in RING_STRATEGIES:
            raise ValueError(f"unknown strategy; use one of {', '.join(RING_STRATEGIES)}")
        return value


class IvrConfig(BaseModel):
    """A ``[500]`` section with ``type = ivr``: an IVR on that number, its tree a
    YAML file (``tree = ivr-demo.yaml``, relative to the config file)."""

    model_config = ConfigDict(extra="forbid")

    number: str
    type: str = "ivr"
    tree: str = Field(min_length=1)


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
    for section in parser.sections():
        if section == "general":
            continue
        values = {"number": section, **parser[section]}
        kind = values.get("type", "extension")
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
            elif kind == "ivr":
                ivr_sections.append(IvrConfig.model_validate(values))
            elif kind == "extension":
                values.pop("type", None)
                extensions.append(ExtensionConfig.model_validate(values))
            else:
                raise ConfigError(
                    path_str, section, "type", "must be extension, ringgroup, conference, "
                    "number, schedule, timecondition or ivr"
                )
        except ValidationError as exc:
            raise _config_error(path_str, section, exc) from None
    named = {schedule.name for schedule in schedules}
    for condition in conditions:
        if condition.schedule not in named:
            raise ConfigError(path_str, condition.number, "schedule",
                              f"no [{condition.schedule}] section with type = schedule")
    targets = Targets(
        extensions=frozenset(e.number for e in extensions),
        ring_groups=frozenset(g.number for g in ring_groups),
        rooms=frozenset(r.number for r in conferences), schedules=frozenset(named),
    )
    return Config(
        general=general, extensions=tuple(extensions), ring_groups=tuple(ring_groups),
        conferences=tuple(conferences), numbers=tuple(numbers), schedules=tuple(schedules),
        time_conditions=tuple(conditions),
        ivrs=tuple(_ivr_tree(Path(path_str), section, targets) for section in ivr_sections),
        path=path_str,
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
