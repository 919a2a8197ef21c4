"""The notifier: SUBSCRIBE and NOTIFY (RFC 6665), server side.

Phones subscribe to three event packages:

- ``dialog`` (RFC 4235): the calls of a colleague's extension, for the busy
  lamp field (BLF) keys provisioning puts on desk phones;
- ``presence`` (RFC 3856): a colleague's presence as a PIDF document
  (RFC 3863): open/closed, on the phone, and the presence profile (Lunch,
  Meeting … with its end time) as RPID activities (RFC 4480) and a note,
  kept by :class:`~pbx.presence.PresenceWatch`;
- ``message-summary`` (RFC 3842): the phone's own mailbox, for its
  message-waiting lamp, which counts the shared mailboxes its extension is
  member of too.

A subscription is a dialog (our To tag, the phone's Contact and route set)
that lives until it expires, is ended with ``Expires: 0``, or a NOTIFY is
refused with 481 or gets no answer.  State comes from the event bus: call
events make us compute the watched extensions' dialogs from the B2BUA's live
calls; the presence watch tells us of presence changes; voicemail events
make us count the mailbox's messages (off the loop).
Each subscription has at most one NOTIFY in flight; a change meanwhile is
sent, as the full state of that moment, once the phone has answered.

Desk phones that never subscribe get their message summary anyway when
their extension says ``mwi_unsolicited``: a NOTIFY outside any dialog
(RFC 3842 §3.3, as Asterisk's unsolicited MWI) to every registered contact,
whenever a mailbox the lamp counts changes and whenever the phone registers.

The rules and documents (which packages, how long, whose state, the XML and
the message summary) are pure functions below; :class:`Notifier` is the glue.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pbx.calls.model import Call
from pbx.calls.views import DialogState, extension_dialogs
from pbx.config import Config
from pbx.directory import Directory, Tenant
from pbx.events import (
    CallAnswered, CallEnded, CallRinging, CallStarted, Event, EventBus, MailboxChanged,
    Registered,
)
from pbx.location import Binding, LocationService, path_routes, reach
from pbx.sip.flow import Flow
from pbx.models import Extension
from pbx.presence import PresenceStatus, PresenceWatch, pidf
from pbx.profiles import zone
from pbx.sip.dialog import Dialog, DialogId, request_dialog_id
from pbx.sip.errors import SipError
from pbx.sip.message import (
    URI, Headers, Request, Response, make_response, new_branch, new_call_id, new_tag,
)
from pbx.store import Store
from pbx.tasks import Tasks
from pbx.voicemail import lamp_mailboxes, lamps_showing, mailbox_of


class NotifierHost(Protocol):
    """What the notifier needs of the SIP server."""

    directory: Directory
    config: Config
    store: Store
    events: EventBus
    location: LocationService

    def authenticate(self, request: Request, flow: Flow, tenant: Tenant,
                     now: float) -> tuple[Extension, str] | None: ...

    def respond(self, response: Response) -> None: ...

    def send_request(self, request: Request, flow: Flow, owner: Any = None) -> object: ...

    def sent_by(self, transport: str) -> str: ...

    def contact(self, flow: Flow) -> str: ...

log = logging.getLogger("pbx.subscriptions")

MIN_EXPIRES = 60  # shorter: 423 Interval Too Brief, as the registrar does
MAX_EXPIRES = 3600  # longer requests are granted this much
DIALOG_INFO_NS = "urn:ietf:params:xml:ns:dialog-info"
# RFC 5057 §5.1: NOTIFY answers that end the subscription's dialog usage (RFC 6665 §4.2.2)
FATAL_NOTIFY_ANSWERS = frozenset({404, 410, 416, 480, 481, 482, 483, 484, 485, 489, 501, 604})


@dataclass(frozen=True, slots=True)
class Package:
    """An event package we serve: its name, body type and default duration."""

    name: str
    content_type: str
    default_expires: int


# RFC 4235 §3.4 and RFC 3842 §3.4: one hour unless the subscriber asks otherwise
DIALOG = Package("dialog", "application/dialog-info+xml", 3600)
MESSAGE_SUMMARY = Package("message-summary", "application/simple-message-summary", 3600)
PRESENCE = Package("presence", "application/pidf+xml", 3600)  # RFC 3856 §6.4
PACKAGES = {package.name: package for package in (DIALOG, PRESENCE, MESSAGE_SUMMARY)}
ALLOW_EVENTS = ", ".join(PACKAGES)


# ------------------------------------------------------------------ pure rules


def parse_event(value: str | None) -> tuple[str, str | None]:
    """The ``Event`` header (RFC 6665 §8.2.1): package name and ``id``;
    ``dialog;id=7`` → ``("dialog", "7")``; no header → ``("", None)``."""
    if not value:
        return "", None
    name, *params = (part.strip() for part in value.split(";"))
    event_id = None
    for param in params:
        key, _, val = param.partition("=")
        if key.strip().lower() == "id":
            event_id = val.strip()
    return name.lower(), event_id


def accepts(accept: Sequence[str], content_type: str) -> bool:
    """Does an ``Accept`` header (all its values) allow ``content_type``?  No
    header means the package's default type (RFC 6665 §4.1.2)."""
    ranges = [item.split(";")[0].strip().lower() for value in accept for item in value.split(",")]
    ranges = [r for r in ranges if r]
    if not ranges:
        return True
    major = content_type.split("/")[0]
    return any(r in (content_type, "*/*", f"{major}/*") for r in ranges)


def granted_expires(requested: int | None, package: Package) -> int | None:
    """How long a subscription runs (RFC 6665 §4.2.1.1): the package default
    without ``Expires``, at most :data:`MAX_EXPIRES`; 0 ends it (or fetches
    the state once).  None: shorter than :data:`MIN_EXPIRES`, refuse with 423."""
    if requested is None:
        return package.default_expires
    if requested == 0:
        return 0
    if requested < MIN_EXPIRES:
        return None
    return min(requested, MAX_EXPIRES)


def remaining(expires_at: float, now: float) -> int:
    """Seconds left, for ``Subscription-State: active;expires=N`` (never negative)."""
    return max(0, int(expires_at - now + 0.5))


def resource_for(package: Package, tenant: Tenant, subscriber: Extension, target: str,
                 voicemail_number: str) -> str:
    """Whose state a new subscription of ``subscriber`` to Request-URI user
    ``target`` watches.  ``dialog`` and ``presence``: any extension of the
    subscriber's organisation (else 404).  ``message-summary``: only the subscriber's own
    mailbox, named by the extension, the mailbox or the voicemail number the
    provisioned phones subscribe to (else 403)."""
    if package in (DIALOG, PRESENCE):
        if target not in tenant.extensions:
            raise SipError(404, "Not Found - No such extension")
        return target
    mailbox = mailbox_of(subscriber)
    if target not in (subscriber.number, mailbox, voicemail_number):
        raise SipError(403, "Forbidden - Not your mailbox")
    return mailbox


def with_ended(
    shown: Sequence[DialogState], current: Sequence[DialogState],
) -> tuple[DialogState, ...]:
    """The dialogs for the next document: the current ones, and once more as
    ``terminated`` those the last document showed that are gone (RFC 4235
    §3.7: a full-state document may report dialogs that have just ended)."""
    ids = {d.id for d in current}
    ended = tuple(dataclasses.replace(d, state="terminated") for d in shown
                  if d.id not in ids and d.state != "terminated")
    return tuple(current) + ended


def dialog_info(entity: str, version: int, dialogs: Sequence[DialogState]) -> bytes:
    """An ``application/dialog-info+xml`` full-state document (RFC 4235 §4);
    no ``<dialog>`` at all means the extension is idle."""
    root = ET.Element("dialog-info", {
        "xmlns": DIALOG_INFO_NS, "version": str(version), "state": "full", "entity": entity,
    })
    for dialog in dialogs:
        attributes = {"id": dialog.id}
        for name, value in (("call-id", dialog.call_id), ("local-tag", dialog.local_tag),
                            ("remote-tag", dialog.remote_tag), ("direction", dialog.direction)):
            if value:
                attributes[name] = value
        element = ET.SubElement(root, "dialog", attributes)
        ET.SubElement(element, "state").text = dialog.state
        if dialog.remote:
            remote = ET.SubElement(element, "remote")
            identity = ET.SubElement(remote, "identity")
            identity.text = dialog.remote
            if dialog.remote_name:
                identity.set("display", dialog.remote_name)
            ET.SubElement(remote, "target", {"uri": dialog.remote})
    ET.indent(root)
    # empty elements written open and closed: some phones' parsers want that
    body = ET.tostring(root, encoding="utf-8", xml_declaration=False, short_empty_elements=False)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body + b"\n"


def unsolicited_notify(binding: Binding, body: bytes, sent_by: Callable[[str], str],
                       contact: Callable[[Flow], str]) -> tuple[Request, Flow]:
    """A message summary outside any dialog (RFC 3842 §3.3) for one registered
    contact, and where it goes (the binding's flow, as forks are sent): its own
    Call-ID, From the PBX, To the address-of-record; ``Subscription-State:
    terminated``, as Asterisk sends it, for there is no subscription."""
    target = URI.parse(binding.contact)
    flow = reach(binding, target.host, target.port)
    headers = Headers()
    headers.add("Via", f"SIP/2.0/{flow.transport} {sent_by(flow.transport)};"
                       f"branch={new_branch()};rport")
    headers.add("Max-Forwards", "70")
    for route in path_routes(binding):
        headers.add("Route", route)
    headers.add("From", f"<sip:pbx@{URI.parse(binding.aor).host}>;tag={new_tag()}")
    headers.add("To", f"<{binding.aor}>")
    headers.add("Call-ID", new_call_id())
    headers.add("CSeq", "1 NOTIFY")
    headers.add("Contact", contact(flow))
    headers.add("Event", MESSAGE_SUMMARY.name)
    headers.add("Subscription-State", "terminated")
    headers.add("Allow-Events", ALLOW_EVENTS)
    headers.add("Content-Type", MESSAGE_SUMMARY.content_type)
    return Request("NOTIFY", target, headers, body), flow


def message_summary(account: str, new: int, old: int) -> bytes:
    """An ``application/simple-message-summary`` body (RFC 3842 §5.2): voice
    messages as new/old with the (urgent) counts, which we do not keep."""
    return (f"Messages-Waiting: {'yes' if new else 'no'}\r\n"
            f"Message-Account: {account}\r\n"
            f"Voice-Message: {new}/{old} (0/0)\r\n").encode()


# ------------------------------------------------------------------ the glue


# dialog: tuple[DialogState, ...]; presence: (PresenceStatus,); message-summary: (new, old)
State = tuple[Any, ...]


@dataclass(eq=False)
class Subscription:
    """One phone's subscription to one resource: the dialog it lives in and
    what its NOTIFYs have said."""

    package: Package
    event_id: str | None
    organisation: int
    domain: str
    resource: str  # the watched extension, or the mailbox
    subscriber: str
    dialog: Dialog
    expires_at: float = 0.0  # on the loop's clock
    state: State | None = None  # the newest state we know
    shown: State | None = None  # what the last NOTIFY said
    version: int = 0  # the next dialog-info document's version (RFC 4235 §4.1)
    owed: bool = False  # a NOTIFY is due even if the state is unchanged (a (re)subscribe)
    in_flight: bool = False
    ended: bool = False
    timer: asyncio.TimerHandle | None = None
    unfollow: Callable[[], None] | None = None  # presence: stops the watch telling us
    timezone: str = ""  # presence: the organisation's, for the profile's end time

    @property
    def key(self) -> tuple[int, str]:
        return (self.organisation, self.package.name)

    def event_header(self) -> str:
        return self.package.name + (f";id={self.event_id}" if self.event_id else "")

    def body(self) -> bytes:
        uri = f"sip:{self.resource}@{self.domain}"
        if self.package is DIALOG:
            assert self.state is not None
            return dialog_info(uri, self.version, with_ended(self.shown or (), self.state))
        if self.package is PRESENCE:
            assert self.state is not None
            return pidf(uri, self.state[0], zone(self.timezone))
        new, old = self.state or (0, 0)
        return message_summary(uri, new, old)


class Notifier:
    """Every subscription of the node, and the NOTIFYs that keep them current."""

    def __init__(self, server: NotifierHost, live_calls: Callable[[], Iterable[Call]],
                 presence: PresenceWatch) -> None:
        self.server = server
        self.live_calls = live_calls
        self.presence = presence
        self.subscriptions: dict[DialogId, Subscription] = {}
        # (organisation, package) → resource → its subscriptions
        self.watchers: dict[tuple[int, str], dict[str, set[Subscription]]] = {}
        self.pending: dict[int, Subscription] = {}  # id of a NOTIFY transaction → its subscription
        self.unsolicited: dict[int, str] = {}  # id of an unsolicited NOTIFY's transaction → to whom
        self.tasks = Tasks(log, "a subscription state update")
        server.events.subscribe(self.on_event)

    def __len__(self) -> int:
        return len(self.subscriptions)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    # ------------------------------------------------------------ SUBSCRIBE

    def on_subscribe(self, request: Request, flow: Flow, tx: object) -> None:
        if request.to_addr.tag is not None:
            self._refresh(request)
            return
        name, event_id = parse_event(request.headers.get("Event"))
        package = PACKAGES.get(name)
        if package is None:
            log.info("SUBSCRIBE for event %r from %s: 489", name, flow.host)
            self._respond(request, 489, headers=[("Allow-Events", ALLOW_EVENTS)],
                          to_tag=new_tag())
            return
        if not accepts(request.headers.get_all("Accept"), package.content_type):
            self._respond(request, 406, headers=[("Accept", package.content_type)],
                          to_tag=new_tag())
            return
        tenant = self.server.directory.origin(request.from_addr.uri.host, request.uri.host)
        found = self.server.authenticate(request, flow, tenant, time.time())
        if found is None:
            return
        subscriber = found[0]
        resource = resource_for(package, tenant, subscriber, request.uri.user or "",
                                self.server.config.general.voicemail_number)
        expires = granted_expires(request.expires, package)
        if expires is None:
            self._too_brief(request)
            return
        tag = new_tag()
        probe = make_response(request, 200, to_tag=tag)
        sub = Subscription(package, event_id, tenant.id, tenant.domain, resource,
                           subscriber.number, Dialog.as_uas(request, probe, flow),
                           timezone=tenant.timezone)
        if package is PRESENCE:
            sub.unfollow = self.presence.follow(
                tenant.id, lambda changed: self._presence_changed(sub, changed))
        self.subscriptions[sub.dialog.id] = sub
        self.watchers.setdefault(sub.key, {}).setdefault(resource, set()).add(sub)
        log.info("%s subscribes to %s of %s for %d s", subscriber.number, package.name, resource,
                 expires)
        self._granted(request, sub, expires, tag)

    def _refresh(self, request: Request) -> None:
        """An in-dialog SUBSCRIBE: extend the subscription, or end it with ``Expires: 0``."""
        sub = self.subscriptions.get(request_dialog_id(request))
        name, event_id = parse_event(request.headers.get("Event"))
        if sub is None or sub.ended or (name, event_id) != (sub.package.name, sub.event_id):
            raise SipError(481, "Subscription Does Not Exist")
        sub.dialog.receive_request(request)
        expires = granted_expires(request.expires, sub.package)
        if expires is None:
            self._too_brief(request)
            return
        self._granted(request, sub, expires, sub.dialog.local_tag)

    def _granted(self, request: Request, sub: Subscription, expires: int, tag: str) -> None:
        """200 with the granted ``Expires``, then the NOTIFY RFC 6665 §4.2.1.2
        asks for at once: the current state, or the final one for ``Expires: 0``."""
        headers = [("Expires", str(expires)), ("Contact", self.server.contact(sub.dialog.dest)),
                   *(("Record-Route", route) for route in request.headers.get_all("Record-Route"))]
        self._respond(request, 200, headers=headers, to_tag=tag)
        if expires == 0:
            self._with_state(sub, self._timed_out)
            return
        if sub.timer is not None:
            sub.timer.cancel()
        sub.expires_at = self.loop.time() + expires
        sub.timer = self.loop.call_at(sub.expires_at, self._expired, sub)
        sub.owed = True
        self._with_state(sub, self._notify)

    def _too_brief(self, request: Request) -> None:
        self._respond(request, 423, headers=[("Min-Expires", str(MIN_EXPIRES))],
                      to_tag=new_tag())

    def _respond(self, request: Request, status: int, *, headers: Iterable[tuple[str, str]],
                 to_tag: str) -> None:
        response = make_response(request, status, to_tag=to_tag)
        for name, value in headers:
            response.headers.add(name, value)
        self.server.respond(response)

    # ------------------------------------------------------------ state

    def on_event(self, event: Event) -> None:
        """The event bus: calls change the dialog state, voicemail the mailboxes,
        a registration is told its lamp (unsolicited)."""
        if isinstance(event, MailboxChanged):
            self._mailbox_changed(event.organisation, event.mailbox)
        elif isinstance(event, Registered) and event.contacts:
            tenant = self.server.directory.tenants.get(event.organisation)
            ext = tenant.extensions.get(event.extension) if tenant is not None else None
            if tenant is not None and ext is not None and ext.mwi_unsolicited:
                self._spawn(self._unsolicited(tenant, ext))
        elif isinstance(event, CallStarted | CallRinging | CallAnswered | CallEnded):
            self._calls_changed(event.organisation)

    def _mailbox_changed(self, organisation: int, mailbox: str) -> None:
        """Every lamp that counts ``mailbox`` (its owner's, a shared one's members')."""
        tenant = self.server.directory.tenants.get(organisation)
        if tenant is None:
            return
        lamps = lamps_showing(tenant.extensions.values(), tenant.mailboxes, mailbox)
        watched = self.watchers.get((organisation, MESSAGE_SUMMARY.name), {})
        subs = [sub for resource in {mailbox_of(ext) for ext in lamps}
                for sub in watched.get(resource, ())]
        if subs:
            self._spawn(self._count(subs, self._notify))
        for ext in lamps:
            if ext.mwi_unsolicited:
                self._spawn(self._unsolicited(tenant, ext))

    def _calls_changed(self, organisation: int) -> None:
        watched = self.watchers.get((organisation, DIALOG.name))
        if not watched:
            return
        dialogs = self._dialogs(organisation)
        for resource, subs in watched.items():
            for sub in list(subs):
                sub.state = dialogs.get(resource, ())
                self._notify(sub)

    def _presence_changed(self, sub: Subscription, changed: list[PresenceStatus]) -> None:
        for status in changed:
            if status.extension == sub.resource:
                sub.state = (status,)
                self._notify(sub)

    def _dialogs(self, organisation: int) -> dict[str, tuple[DialogState, ...]]:
        return extension_dialogs(self.live_calls(), organisation)

    def _with_state(self, sub: Subscription, then: Callable[[Subscription], None]) -> None:
        """Bring ``sub.state`` up to date, then hand it to ``then``: at once for
        dialogs and presence, after counting the mailbox in a thread for message
        summaries."""
        if sub.package is DIALOG:
            sub.state = self._dialogs(sub.organisation).get(sub.resource, ())
            then(sub)
        elif sub.package is PRESENCE:
            status = self.presence.statuses(sub.organisation).get(sub.resource)
            sub.state = (status or PresenceStatus(sub.resource, "offline"),)
            then(sub)
        else:
            self._spawn(self._count([sub], then))

    async def _count(self, subs: list[Subscription], then: Callable[[Subscription], None]) -> None:
        """Count the new and old messages (off the loop) each lamp shows: its
        own mailbox and the shared ones its extension is member of."""
        counted = {sub: self._lamp(sub) for sub in subs}
        counts = await asyncio.to_thread(self._counts, subs[0].organisation,
                                         set(counted.values()))
        for sub in subs:
            sub.state = counts[counted[sub]]
            then(sub)

    def _lamp(self, sub: Subscription) -> tuple[str, ...]:
        """The mailboxes a message-summary subscription counts."""
        tenant = self.server.directory.tenants.get(sub.organisation)
        ext = tenant.extensions.get(sub.subscriber) if tenant is not None else None
        if tenant is None or ext is None or mailbox_of(ext) != sub.resource:
            return (sub.resource,)
        return lamp_mailboxes(tenant.mailboxes, ext)

    def _counts(self, organisation: int,
                lamps: set[tuple[str, ...]]) -> dict[tuple[str, ...], tuple[int, int]]:
        return {boxes: self.server.store.mailbox_counts(organisation, *boxes) for boxes in lamps}

    async def _unsolicited(self, tenant: Tenant, ext: Extension) -> None:
        """The lamp's summary to every registered contact of ``ext``, unasked."""
        boxes = lamp_mailboxes(tenant.mailboxes, ext)
        new, old = await asyncio.to_thread(self.server.store.mailbox_counts, tenant.id, *boxes)
        body = message_summary(f"sip:{boxes[0]}@{tenant.domain}", new, old)
        server = self.server
        for binding in server.location.lookup(tenant.aor(ext.number), time.time()):
            notify, flow = unsolicited_notify(binding, body, server.sent_by, server.contact)
            tx = server.send_request(notify, flow, owner=self)
            self.unsolicited[id(tx)] = binding.contact
            log.info("unsolicited message summary %d/%d to %s (%s)", new, old, ext.number,
                     binding.contact)

    def _spawn(self, work: Any) -> None:
        self.tasks.spawn(work)

    # ------------------------------------------------------------ NOTIFY

    def _notify(self, sub: Subscription) -> None:
        """Send the current state if it changed (or is owed) and no NOTIFY is in flight."""
        if sub.ended or sub.in_flight or sub.state is None:
            return
        if not sub.owed and sub.state == sub.shown:
            return
        sub.owed = False
        self._send(sub, f"active;expires={remaining(sub.expires_at, self.loop.time())}")

    def _send(self, sub: Subscription, subscription_state: str) -> None:
        dialog = sub.dialog
        notify = dialog.create_request(
            "NOTIFY", self.server.sent_by(dialog.dest.transport), body=sub.body(),
            content_type=sub.package.content_type,
            headers=[("Event", sub.event_header()), ("Subscription-State", subscription_state),
                     ("Contact", self.server.contact(dialog.dest))],
        )
        sub.version += 1
        sub.shown = sub.state
        sub.in_flight = True
        tx = self.server.send_request(notify, dialog.dest, owner=self)
        self.pending[id(tx)] = sub

    def on_response(self, tx: object, response: Response) -> None:
        """The phone answered a NOTIFY: send what changed meanwhile, or end
        the subscription on an answer that says it is gone (481 …)."""
        if response.status < 200:
            return
        contact = self.unsolicited.pop(id(tx), None)
        if contact is not None:
            if response.status >= 300:
                log.info("unsolicited message summary to %s answered %d", contact,
                         response.status)
            return
        sub = self.pending.pop(id(tx), None)
        if sub is None:
            return
        sub.in_flight = False
        if response.status in FATAL_NOTIFY_ANSWERS:
            log.info("NOTIFY %s of %s to %s answered %d: subscription ended", sub.package.name,
                     sub.resource, sub.subscriber, response.status)
            self._forget(sub)
        elif response.status >= 300:
            log.info("NOTIFY %s of %s to %s answered %d", sub.package.name, sub.resource,
                     sub.subscriber, response.status)
        else:
            self._notify(sub)

    def on_timeout(self, tx: object) -> None:
        """No answer to a NOTIFY (Timer F): the phone is gone (RFC 6665 §4.2.2)."""
        contact = self.unsolicited.pop(id(tx), None)
        if contact is not None:
            log.info("unsolicited message summary to %s not answered", contact)
        sub = self.pending.pop(id(tx), None)
        if sub is not None:
            log.info("NOTIFY %s of %s to %s timed out: subscription ended", sub.package.name,
                     sub.resource, sub.subscriber)
            sub.in_flight = False
            self._forget(sub)

    # ------------------------------------------------------------ the end

    def _expired(self, sub: Subscription) -> None:
        sub.timer = None
        log.info("subscription of %s to %s of %s expired", sub.subscriber, sub.package.name,
                 sub.resource)
        self._timed_out(sub)

    def _timed_out(self, sub: Subscription) -> None:
        """Expired, or ended with ``Expires: 0`` (RFC 6665 §4.2.1.2 calls both timeout)."""
        self._terminate(sub, "timeout")

    def _terminate(self, sub: Subscription, reason: str) -> None:
        """The final NOTIFY (``Subscription-State: terminated``) and forget it."""
        if sub.ended:
            return
        self._forget(sub)
        self._send(sub, f"terminated;reason={reason}")

    def _forget(self, sub: Subscription) -> None:
        sub.ended = True
        if sub.unfollow is not None:
            sub.unfollow()
            sub.unfollow = None
        if sub.timer is not None:
            sub.timer.cancel()
            sub.timer = None
        self.subscriptions.pop(sub.dialog.id, None)
        watched = self.watchers.get(sub.key, {})
        subs = watched.get(sub.resource)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del watched[sub.resource]
