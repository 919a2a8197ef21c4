"""The directory the SIP core consults on every request: one :class:`Tenant`
per organisation.

A read-mostly copy of the store's organisations, extensions, devices, ring
groups, numbers, conference rooms, switchboard schedules, time conditions,
IVRs, trunks, shared mailboxes, licenses, call policies and outbound routes
kept in memory: digest auth needs a password lookup per REGISTER and the
router a lookup per INVITE, and a database round trip each would cap the
rates.  Whoever changes them in the store (the admin API) calls
:meth:`Directory.reload`, which builds new tenants and swaps them in whole,
so a change takes effect at once and a reader never sees half of one.
Whoever must follow the changes (the
switchboard watcher) registers with :meth:`Directory.on_reload`.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from pydantic import ValidationError

from ivr.schedule import Schedule
from ivr.tree import IvrTree
from media.languages import FALLBACK, LANGUAGES
from media.tones import tone_country as country_for
from pbx import rights
from pbx.config import CallPolicyConfig
from pbx.models import (
    DEFAULT_ORGANISATION, ApiUser, CalendarEvent, CallPolicy, ConferenceRoom, Device, Extension,
    Ivr, License, Number, Organisation, OutboundRoute, Profile, ProfileSchedule, RingGroup,
    Queue, SharedMailbox, SwitchboardSchedule, TimeCondition, Trunk,
)
from pbx.numbering import COUNTRIES, ExternalNumber, NumberingPlan
from pbx.outbound import PatternError, Route
from pbx.profiles import Presence, caller_id, zone
from pbx.queue_settings import QueueConfig
from pbx.refusal import Refusal
from pbx.store import Store
from pbx.trunks.settings import TrunkSettings

log = logging.getLogger("pbx.directory")


@dataclass(frozen=True)
class Tenant:
    """One organisation as the SIP side sees it: its SIP domain and dial plan data."""

    id: int
    slug: str
    domain: str
    plan: str = "unlimited"
    timezone: str = "Europe/Stockholm"
    language: str = "en"  # of its prompts (media.languages)
    tone_country: str = "gb"  # whose call-progress tones its callers hear (media.tones)
    extensions: dict[str, Extension] = field(default_factory=dict)
    devices: dict[str, Device] = field(default_factory=dict)  # by SIP user name
    ring_groups: dict[str, RingGroup] = field(default_factory=dict)
    numbers: dict[str, Number] = field(default_factory=dict)
    rooms: dict[str, ConferenceRoom] = field(default_factory=dict)
    # opening hours by name, and the numbers that route by them
    schedules: dict[str, Schedule] = field(default_factory=dict)
    time_conditions: dict[str, TimeCondition] = field(default_factory=dict)
    ivrs: dict[str, IvrTree] = field(default_factory=dict)  # by number
    # its trunks and the operator's shared ones, by name
    trunks: dict[str, TrunkSettings] = field(default_factory=dict)
    mailboxes: dict[str, SharedMailbox] = field(default_factory=dict)  # shared ones, by number
    queues: dict[str, QueueConfig] = field(default_factory=dict)  # ACD queues, by number
    # extensions of users who hold no active license: no registering, no calls
    unlicensed: frozenset[str] = frozenset()
    # extensions of admins and supervisors: they may listen in on calls (ChanSpy)
    supervisors: frozenset[str] = frozenset()
    # the kind of active license each extension's user holds (pbx.rights); none: no user's
    licenses: dict[str, str] = field(default_factory=dict)
    # numbering plan, toll-fraud limits, longest call: its own or the node's [general]
    policy: CallPolicyConfig = field(default_factory=CallPolicyConfig)
    routes: tuple[Route, ...] = ()  # outbound routes, tried in order
    # presence profiles, their schedules and calendars: what calls each extension takes
    presence: Presence = field(default_factory=lambda: Presence(zone("")))
    default: bool = False

    def login(self, username: str) -> tuple[Extension, str] | None:
        """The extension a SIP user name logs in to and its password: the
        extension's own credentials, or one of its devices'."""
        ext = self.extensions.get(username)
        if ext is not None:
            return ext, ext.secret
        device = self.devices.get(username)
        if device is not None and device.extension in self.extensions:
            return self.extensions[device.extension], device.secret
        return None

    def password_for(self, username: str) -> str | None:
        found = self.login(username)
        return found[1] if found is not None else None

    def aor(self, number: str) -> str:
        """The address-of-record of extension ``number`` (RFC 3261 §10)."""
        return f"sip:{number}@{self.domain}"

    def room_key(self, number: str) -> str:
        """The media engine's name for room ``number``: unique across tenants."""
        return number if self.default else f"{number}@{self.domain}"

    @property
    def dialling(self) -> NumberingPlan:
        """How its users dial the public network (country, outside-line prefix)."""
        return NumberingPlan(COUNTRIES[self.policy.country], self.policy.outside_prefix)

    def may_call_out(self, extension: str, number: ExternalNumber) -> Refusal | None:
        """Does ``extension``'s license allow a call to ``number``?  None: yes
        (emergency numbers always)."""
        return rights.may_call_out(self.licenses.get(extension), number)

    def may_receive_external(self, extension: str) -> Refusal | None:
        """Does ``extension``'s license let a call from the public network ring it?"""
        return rights.may_receive_external(self.licenses.get(extension))

    def may_forward_external(self, extension: str) -> Refusal | None:
        """Does ``extension``'s license let it forward or divert to an external number?"""
        return rights.may_forward_external(self.licenses.get(extension))

    def outward_number(self, ext: Extension, now: float) -> str:
        """The number ``ext`` shows on calls to the public network: its active
        profile's caller ID, else its own ``caller_id_number``; "" for none."""
        return caller_id(self.presence.active(ext, now), ext.caller_id_number)


class Directory:
    """Organisation → :class:`Tenant`, and SIP host → organisation."""

    def __init__(self, store: Store, realm: str, domains: tuple[str, ...] = (), *,
                 language: str = "en", tone_country: str = "gb",
                 policy: CallPolicyConfig | None = None) -> None:
        self.store = store
        self.realm = realm.lower()
        self.language = language  # [general] language: organisations that set none speak it
        self.tone_country = tone_country  # [general] tone_country: for English
        self.policy = policy or CallPolicyConfig()  # [general]: what organisations do not set
        self.local_names = {self.realm, *(d.lower() for d in domains), "localhost"}
        self.tenants: dict[int, Tenant] = {}
        self.trunks: list[tuple[int, TrunkSettings]] = []  # every trunk, with its organisation
        self.by_domain: dict[str, Tenant] = {}
        self.default = Tenant(0, DEFAULT_ORGANISATION, self.realm, language=language,
                              tone_country=country_for(language, tone_country),
                              policy=self.policy.of(None), default=True)
        self._listeners: list[Callable[[], None]] = []
        self.reload()

    def on_reload(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every reload, in the reloading thread."""
        self._listeners.append(listener)

    def reload(self) -> None:
        """Rebuild every tenant from the store (after any admin change)."""
        rows = self.store.rows(Organisation, Extension, Device, RingGroup, Number,
                               ConferenceRoom, ApiUser, License, SwitchboardSchedule,
                               TimeCondition, Ivr, Trunk, SharedMailbox, Profile,
                               ProfileSchedule, CalendarEvent, CallPolicy, OutboundRoute, Queue)
        orgs, exts, devices, groups, numbers, rooms, users, licenses, *rest = rows
        (switchboards, conditions, ivrs, trunk_rows, mailboxes, profiles, schedules, events,
         policies, routes, queues) = rest
        trunks = [(t.organisation_id, TrunkSettings.model_validate_json(t.settings))
                  for t in trunk_rows]
        shared = {s.name: s for org_id, s in trunks
                  if s.shared and any(o.id == org_id and o.slug == DEFAULT_ORGANISATION
                                      for o in orgs)}
        kinds = {lic.user_id: lic.kind for lic in licenses
                 if lic.state == "active" and lic.user_id}
        own_policy = {p.organisation_id: p for p in policies}
        tenants: dict[int, Tenant] = {}
        for org in orgs:
            assert org.id is not None
            default = org.slug == DEFAULT_ORGANISATION
            mine = [e for e in exts if e.organisation_id == org.id]
            language, tones = self.locale(org)
            tenants[org.id] = Tenant(
                id=org.id, slug=org.slug, domain=self.realm if default else org.domain.lower(),
                plan=org.plan, timezone=org.timezone, language=language, tone_country=tones,
                default=default,
                extensions={e.number: e for e in mine},
                devices={d.sip_username: d for d in devices if d.organisation_id == org.id},
                ring_groups={g.number: g for g in groups if g.organisation_id == org.id},
                numbers={n.number: n for n in numbers if n.organisation_id == org.id},
                rooms={r.number: r for r in rooms if r.organisation_id == org.id},
                schedules=_schedules(r for r in switchboards if r.organisation_id == org.id),
                time_conditions={c.number: c for c in conditions if c.organisation_id == org.id},
                ivrs=_trees(i for i in ivrs if i.organisation_id == org.id),
                trunks={**shared, **{s.name: s for org_id, s in trunks if org_id == org.id}},
                mailboxes={m.number: m for m in mailboxes if m.organisation_id == org.id},
                queues=_queues(q for q in queues if q.organisation_id == org.id),
                unlicensed=frozenset(
                    u.extension for u in users
                    if u.organisation_id == org.id and u.extension and u.id not in kinds
                ),
                supervisors=frozenset(
                    u.extension for u in users if u.organisation_id == org.id and u.extension
                    and u.role in ("admin", "supervisor")),
                licenses={u.extension: kinds[u.id] for u in users
                          if u.organisation_id == org.id and u.extension and u.id in kinds},
                policy=self.policy.of(own_policy.get(org.id)),
                routes=_routes(r for r in routes if r.organisation_id == org.id),
                presence=Presence.of(
                    zone(org.timezone), *([r for r in table if r.organisation_id == org.id]
                                          for table in (profiles, schedules, events)),
                ),
            )
        by_domain = {t.domain: t for t in tenants.values() if t.domain and not t.default}
        self.default = next((t for t in tenants.values() if t.default), self.default)
        self.tenants, self.by_domain = tenants, by_domain
        self.trunks = trunks
        for listener in self._listeners:
            listener()

    def locale(self, org: Organisation) -> tuple[str, str]:
        """The language an organisation's callers hear and the country of its
        tones: its own, else the node's language and that language's country
        (English: the node's ``tone_country``)."""
        language = org.language or self.language
        return language, org.tone_country or country_for(language, self.tone_country)

    @property
    def languages(self) -> tuple[str, ...]:
        """Every language an organisation speaks, and English (the fallback):
        the prompts the node renders."""
        spoken = {FALLBACK, self.language, *(t.language for t in self.tenants.values())}
        return tuple(language for language in LANGUAGES if language in spoken)

    def tenant_for(self, host: str) -> Tenant | None:
        """The organisation a SIP host (Request-URI, From or To domain) belongs to:
        its own domain, or the default organisation for our own names and IP
        literals (phones set up with the bare address).  None: not ours."""
        host = host.lower()
        tenant = self.by_domain.get(host)
        if tenant is not None:
            return tenant
        if host in self.local_names:
            return self.default
        try:
            ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return None
        return self.default

    def origin(self, from_host: str, target_host: str) -> Tenant:
        """The organisation a request is made in: its sender's (From) domain,
        else the one it addresses (Request-URI), else the default one."""
        return self.tenant_for(from_host) or self.tenant_for(target_host) or self.default

    def serves(self, host: str) -> bool:
        return self.tenant_for(host) is not None


def _schedules(rows: Iterable[SwitchboardSchedule]) -> dict[str, Schedule]:
    """An organisation's schedules by name; one that no longer validates (a time
    zone gone from the system) is left out and logged: its time conditions
    take their closed branch."""
    found: dict[str, Schedule] = {}
    for row in rows:
        try:
            found[row.name] = Schedule.load(row.definition, row.overrides)
        except ValueError as exc:
            log.error("schedule %s of organisation %d is invalid, left out: %s", row.name,
                      row.organisation_id, exc)
    return found


def _routes(rows: Iterable[OutboundRoute]) -> tuple[Route, ...]:
    """The outbound routes in their order; one this version cannot read is left
    out, with a log line (calls it would take find the next route)."""
    found: list[Route] = []
    for row in sorted(rows, key=lambda r: (r.position, r.id or 0)):
        try:
            found.append(Route.of(row))
        except PatternError as exc:
            log.error("outbound route %s of organisation %d is invalid, left out: %s",
                      row.name, row.organisation_id, exc)
    return tuple(found)


def _trees(rows: Iterable[Ivr]) -> dict[str, IvrTree]:
    """The IVRs' trees by number; one the store holds but this version cannot
    read (written by a newer one) is left out, with a log line."""
    trees: dict[str, IvrTree] = {}
    for row in rows:
        try:
            trees[row.number] = IvrTree.model_validate_json(row.tree)
        except ValidationError as exc:
            log.error("IVR %s (%s) of organisation %d cannot be read: %s", row.name,
                      row.number, row.organisation_id, exc)
    return trees


def _queues(rows: Iterable[Queue]) -> dict[str, QueueConfig]:
    """The queues' settings by number; one this version cannot read is left out,
    with a log line."""
    found: dict[str, QueueConfig] = {}
    for row in rows:
        try:
            found[row.number] = QueueConfig.model_validate_json(row.settings)
        except ValidationError as exc:
            log.error("queue %s of organisation %d cannot be read: %s", row.number,
                      row.organisation_id, exc)
    return found
