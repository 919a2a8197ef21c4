"""Presence (RFC 3856): what colleagues and desk phones see of an extension.

An extension's presence is its line — ``available``, ``ringing``, ``on_call``
or ``offline`` (no registered device) — and the presence profile in force
(Lunch, Meeting … with its end time, :mod:`pbx.profiles`).  Only the
profile's *status* (name, end time) is shown, never what it does to calls
(divert, caller ID).

Pure parts: :func:`line_of`, :func:`statuses_of` and the PIDF document
(RFC 3863, with RPID activities of RFC 4480) for the SIP ``presence`` event
package.  :class:`PresenceWatch` is the glue: it follows call and
registration events, directory reloads (a profile switched) and profile end
times, and tells whoever follows an organisation (the notifier's presence
subscriptions, softphone pages) which extensions changed.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from pbx.calls.model import Call
from pbx.calls.views import DialogState, extension_dialogs
from pbx.directory import Directory, Tenant
from pbx.events import (
    CallAnswered, CallEnded, CallRinging, CallStarted, Event, EventBus, Registered,
)
from pbx.location import LocationService

log = logging.getLogger("pbx.presence")

LINES = ("available", "ringing", "on_call", "offline")
PIDF_NS = "urn:ietf:params:xml:ns:pidf"
DM_NS = "urn:ietf:params:xml:ns:pidf:data-model"  # RFC 4479: <dm:person>
RPID_NS = "urn:ietf:params:xml:ns:pidf:rpid"  # RFC 4480
LINE_NOTES = {"available": "Available", "ringing": "Ringing", "on_call": "On the phone",
              "offline": "Offline"}
# Words of a profile's name → its RFC 4480 §3.2 activity (the default profiles and usual names)
ACTIVITY_WORDS = (
    ("lunch", "meal"), ("meal", "meal"), ("breakfast", "breakfast"), ("dinner", "dinner"),
    ("meeting", "meeting"), ("appointment", "appointment"), ("presentation", "presentation"),
    ("vacation", "vacation"), ("holiday", "holiday"), ("travel", "travel"),
    ("off", "away"), ("away", "away"), ("working", "working"), ("busy", "busy"),
)
MAX_SLEEP = 60.0  # a schedule or calendar event that starts is seen within this
LATE = 0.005  # wake just after a profile ends, not a hair before


@dataclass(frozen=True, slots=True)
class PresenceStatus:
    """An extension as colleagues see it."""

    extension: str
    line: str  # one of LINES
    profile: str = ""  # the name of the profile in force; "": none
    until: float | None = None  # when that profile stops being in force, if known


# ------------------------------------------------------------------ pure rules


def line_of(dialogs: Sequence[DialogState], registered: bool) -> str:
    """``on_call`` in any call but one that only rings it, ``ringing`` while a
    call rings it, else ``available`` with a registered device, ``offline``
    without one."""
    if any(d.state != "terminated" and not (d.direction == "recipient" and d.state == "early")
           for d in dialogs):
        return "on_call"
    if any(d.state == "early" for d in dialogs):
        return "ringing"
    return "available" if registered else "offline"


def statuses_of(tenant: Tenant, dialogs: dict[str, tuple[DialogState, ...]],
                registered: Callable[[str], bool], now: float,
                only: Iterable[str] | None = None) -> dict[str, PresenceStatus]:
    """Every extension of ``tenant`` (or those of ``only`` it has) at ``now``:
    its line from its ``dialogs`` (RFC 4235 view of the live calls) and
    devices, its profile from the tenant's presence rules."""
    found = {}
    numbers = tenant.extensions if only is None else [n for n in only if n in tenant.extensions]
    for number in numbers:
        ext = tenant.extensions[number]
        active = tenant.presence.active(ext, now)
        found[number] = PresenceStatus(
            number, line_of(dialogs.get(number, ()), registered(number)),
            active.profile.name if active.profile is not None else "",
            active.until if active.profile is not None else None)
    return found


def activities(status: PresenceStatus) -> tuple[str, ...]:
    """The RFC 4480 activities of ``status``: ``on-the-phone`` in a call, and
    the profile's (Lunch → ``meal``, Meeting → ``meeting``, Off → ``away`` …)
    when its name says one."""
    found = ["on-the-phone"] if status.line == "on_call" else []
    words = set(re.findall(r"[a-z]+", status.profile.lower()))
    found += [activity for word, activity in ACTIVITY_WORDS
              if word in words and activity not in found]
    return tuple(found)


def profile_note(status: PresenceStatus, tz: ZoneInfo) -> str:
    """``Lunch until 13:00`` (local time of the organisation); "" without a profile."""
    if not status.profile:
        return ""
    if status.until is None:
        return status.profile
    return f"{status.profile} until {datetime.fromtimestamp(status.until, tz):%H:%M}"


def pidf(entity: str, status: PresenceStatus, tz: ZoneInfo) -> bytes:
    """An ``application/pidf+xml`` document (RFC 3863) for ``entity``: one tuple
    whose basic status is ``open`` while a device is registered (``closed``
    offline) with the line as its note; an RFC 4479 person with the RPID
    activities (RFC 4480 §3.2, ``until`` the profile's end) and the profile
    as a note; and a top-level note with both, for phones that show only that."""
    root = ET.Element("presence", {"xmlns": PIDF_NS, "xmlns:dm": DM_NS, "xmlns:rpid": RPID_NS,
                                   "entity": entity})
    line = ET.SubElement(root, "tuple", {"id": f"line-{status.extension}"})
    basic = ET.SubElement(ET.SubElement(line, "status"), "basic")
    basic.text = "closed" if status.line == "offline" else "open"
    ET.SubElement(line, "contact").text = entity
    ET.SubElement(line, "note").text = LINE_NOTES[status.line]
    note = profile_note(status, tz)
    ET.SubElement(root, "note").text = ", ".join(filter(None, (LINE_NOTES[status.line], note)))
    doing = activities(status)
    if doing or note:
        person = ET.SubElement(root, "dm:person", {"id": f"p-{status.extension}"})
        if doing:
            attributes = {}
            if status.until is not None and status.profile:
                until = datetime.fromtimestamp(status.until, timezone.utc)
                attributes["until"] = until.strftime("%Y-%m-%dT%H:%M:%SZ")
            element = ET.SubElement(person, "rpid:activities", attributes)
            for activity in doing:
                ET.SubElement(element, f"rpid:{activity}")
        if note:
            ET.SubElement(person, "dm:note").text = note
    ET.indent(root)
    body = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body + b"\n"


# ------------------------------------------------------------------ the glue

Listener = Callable[[list[PresenceStatus]], None]


class PresenceWatch:
    """Each followed organisation's presence, kept current; followers hear of
    the extensions that changed.  Runs on the SIP loop; organisations nobody
    follows cost nothing."""

    def __init__(self, directory: Directory, location: LocationService, events: EventBus,
                 live_calls: Callable[[], Iterable[Call]],
                 now: Callable[[], float] = time.time) -> None:
        self.directory = directory
        self.location = location
        self.live_calls = live_calls
        self.now = now
        self._followers: dict[int, list[Listener]] = {}
        self._seen: dict[int, dict[str, PresenceStatus]] = {}
        self._in_calls: dict[int, set[str]] = {}  # extensions with dialogs at the last look
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        events.subscribe(self.on_event)
        directory.on_reload(self._reloaded)

    def statuses(self, organisation: int) -> dict[str, PresenceStatus]:
        """Every extension of ``organisation`` now ({} for an unknown one)."""
        return self._look(organisation, None, calls=False)[0]

    def _look(self, organisation: int, only: set[str] | None, *,
              calls: bool) -> tuple[dict[str, PresenceStatus], set[str]]:
        """The statuses of ``only`` (None: all; with ``calls`` also every
        extension in a call now or at the last look) and who is in a call."""
        tenant = self.directory.tenants.get(organisation)
        if tenant is None:
            return {}, set()
        now = self.now()
        dialogs = extension_dialogs(self.live_calls(), organisation)
        if calls:
            only = {*(only or ()), *dialogs, *self._in_calls.get(organisation, ())}
        found = statuses_of(tenant, dialogs,
                            lambda number: bool(self.location.lookup(tenant.aor(number), now)),
                            now, only)
        return found, set(dialogs)

    def follow(self, organisation: int, listener: Listener) -> Callable[[], None]:
        """Tell ``listener`` (on the loop) of every change in ``organisation``;
        returns what stops it.  Call on the loop."""
        self._loop = asyncio.get_running_loop()
        if organisation not in self._followers:
            self._seen[organisation], self._in_calls[organisation] = self._look(
                organisation, None, calls=False)
        self._followers.setdefault(organisation, []).append(listener)
        self._arm()

        def unfollow() -> None:
            listeners = self._followers.get(organisation, [])
            if listener in listeners:
                listeners.remove(listener)
            if not listeners:
                self._followers.pop(organisation, None)
                self._seen.pop(organisation, None)
                self._in_calls.pop(organisation, None)

        return unfollow

    def on_event(self, event: Event) -> None:
        """A call changes the lines of those in calls (before or now), a
        registration one extension's: only they are looked at again."""
        if event.organisation not in self._followers:
            return
        if isinstance(event, CallStarted | CallRinging | CallAnswered | CallEnded):
            self._check(event.organisation, calls=True)
        elif isinstance(event, Registered):
            self._check(event.organisation, {event.extension})

    def _reloaded(self) -> None:
        """A profile (or an extension) changed: look again.  Any thread."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._check_all)

    def _check_all(self) -> None:
        for organisation in list(self._followers):
            self._check(organisation)
        self._arm()

    def _check(self, organisation: int, only: set[str] | None = None, *,
               calls: bool = False) -> None:
        """Look again at ``only`` (None: every extension) and tell the followers
        of those that changed."""
        current, self._in_calls[organisation] = self._look(organisation, only, calls=calls)
        seen = self._seen.setdefault(organisation, {})
        changed = [status for number, status in current.items() if seen.get(number) != status]
        if only is None and not calls:
            seen.clear()  # a full look: deleted extensions go
        seen.update(current)
        if not changed:
            return
        for listener in list(self._followers.get(organisation, ())):
            try:
                listener(changed)
            except Exception:
                log.exception("presence follower %r failed", listener)

    def _arm(self) -> None:
        """Wake when the next profile ends (else within :data:`MAX_SLEEP`)."""
        if self._loop is None or not self._followers:
            return
        now = self.now()
        ends = [s.until for seen in self._seen.values() for s in seen.values()
                if s.until is not None and s.until > now]
        delay = min([MAX_SLEEP, *(end - now + LATE for end in ends)])
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(delay, self._check_all)
