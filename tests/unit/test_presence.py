"""Presence (RFC 3856): the line and profile of an extension, the PIDF document
(RFC 3863 with RPID activities, RFC 4480), and a presence subscription that
follows registration and a profile switched by hand."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlmodel import Session, select

from pbx.calls.model import Call
from pbx.calls.views import DialogState
from pbx.directory import Tenant
from pbx.events import CallEnded, CallStarted, EventBus, Registered
from pbx.location import Binding, LocationService
from pbx.models import Extension, Profile
from pbx.presence import (
    DM_NS, PIDF_NS, RPID_NS, PresenceStatus, PresenceWatch, activities, line_of, pidf,
    statuses_of,
)
from pbx.profiles import Presence, zone
from pbx.sip.flow import Flow
from pbx.sip.message import make_response
from tests.unit.test_mwi import FakeServer, notifier_of, subscribe
from tests.unit.test_subscriptions import call_from_1001_to_1002
from tests.unit.voicemail_setup import Setup, eventually

STOCKHOLM = zone("Europe/Stockholm")
NS = {"p": PIDF_NS, "dm": DM_NS, "rpid": RPID_NS}


def dialog(direction: str, state: str) -> DialogState:
    return DialogState("c1-b", direction, state)


@pytest.mark.parametrize(("dialogs", "registered", "line"), [
    ((), True, "available"),
    ((), False, "offline"),
    ((dialog("recipient", "early"),), True, "ringing"),
    ((dialog("recipient", "confirmed"),), True, "on_call"),
    ((dialog("initiator", "trying"),), True, "on_call"),  # dialling out
    ((dialog("initiator", "early"),), True, "on_call"),  # hearing ringback
    ((dialog("recipient", "early"), dialog("initiator", "confirmed")), True, "on_call"),
    ((dialog("recipient", "terminated"),), True, "available"),
])
def test_line_of_an_extension(dialogs: tuple[DialogState, ...], registered: bool,
                              line: str) -> None:
    assert line_of(dialogs, registered) == line


def test_statuses_show_the_profile_name_and_end_but_not_its_settings() -> None:
    lunch = Profile(id=7, organisation_id=1, extension="1002", name="Lunch", accept="queue",
                    divert="1003", caller_id="+46812345")
    tenant = Tenant(1, "acme", "acme.test", extensions={
        "1001": Extension(organisation_id=1, number="1001", secret="x"),
        "1002": Extension(organisation_id=1, number="1002", secret="x", profile_id=7,
                          profile_until=2000.0),
    }, presence=Presence.of(STOCKHOLM, [lunch], [], []))
    found = statuses_of(tenant, {"1001": (dialog("recipient", "confirmed"),)},
                        lambda number: number == "1001", 1000.0)
    assert found == {"1001": PresenceStatus("1001", "on_call"),
                     "1002": PresenceStatus("1002", "offline", "Lunch", 2000.0)}
    later = statuses_of(tenant, {}, lambda number: True, 2000.0)  # lunch is over
    assert later["1002"] == PresenceStatus("1002", "available")


@pytest.mark.parametrize(("status", "expected"), [
    (PresenceStatus("1", "available"), ()),
    (PresenceStatus("1", "on_call"), ("on-the-phone",)),
    (PresenceStatus("1", "available", "Lunch", 1.0), ("meal",)),
    (PresenceStatus("1", "on_call", "Meeting"), ("on-the-phone", "meeting")),
    (PresenceStatus("1", "available", "Off"), ("away",)),
    (PresenceStatus("1", "available", "Summer vacation"), ("vacation",)),
    (PresenceStatus("1", "available", "Office hours"), ()),  # "office" is not "off"
    (PresenceStatus("1", "available", "Working"), ("working",)),
])
def test_rpid_activities(status: PresenceStatus, expected: tuple[str, ...]) -> None:
    assert activities(status) == expected


def test_pidf_of_a_colleague_at_lunch_on_the_phone() -> None:
    until = 1_780_000_200.0  # 2026-05-28 20:30:00 UTC, 22:30 in Stockholm
    body = pidf("sip:1002@pbx.test", PresenceStatus("1002", "on_call", "Lunch", until),
                STOCKHOLM)
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n')
    root = ET.fromstring(body)
    assert root.tag == f"{{{PIDF_NS}}}presence"
    assert root.get("entity") == "sip:1002@pbx.test"
    (line,) = root.findall("p:tuple", NS)
    assert line.findtext("p:status/p:basic", namespaces=NS) == "open"
    assert line.findtext("p:contact", namespaces=NS) == "sip:1002@pbx.test"
    assert line.findtext("p:note", namespaces=NS) == "On the phone"
    assert root.findtext("p:note", namespaces=NS) == "On the phone, Lunch until 22:30"
    person = root.find("dm:person", NS)
    assert person is not None
    acts = person.find("rpid:activities", NS)
    assert acts is not None and acts.get("until") == "2026-05-28T20:30:00Z"
    assert [child.tag for child in acts] == [f"{{{RPID_NS}}}on-the-phone", f"{{{RPID_NS}}}meal"]
    assert person.findtext("dm:note", namespaces=NS) == "Lunch until 22:30"
    # RFC 3863 §4.1: <tuple>s, then <note>s, then other namespaces' elements
    assert [child.tag.split("}")[1] for child in root] == ["tuple", "note", "person"]


def test_pidf_of_an_offline_colleague_without_a_profile() -> None:
    root = ET.fromstring(pidf("sip:1003@pbx.test", PresenceStatus("1003", "offline"), STOCKHOLM))
    assert root.findtext("p:tuple/p:status/p:basic", namespaces=NS) == "closed"
    assert root.findtext("p:note", namespaces=NS) == "Offline"
    assert root.find("dm:person", NS) is None


def notes(server: FakeServer, to: str) -> list[str]:
    """The top-level notes of the PIDF documents NOTIFYed to ``to``'s phone."""
    return [ET.fromstring(request.body).findtext("p:note", namespaces=NS) or ""
            for request, _ in server.sent if request.uri.user == to]


async def test_a_presence_subscription_follows_registration_and_profile(tmp_path: Path) -> None:
    """1001 watches 1002: offline; 1002's phone registers (open, Available);
    1002 switches to Lunch by hand (the directory reloads in an API worker
    thread): Available, Lunch; the subscription ends and the watch stops."""
    setup = Setup(tmp_path)
    server = FakeServer(setup.directory, setup.store)
    notifier = notifier_of(server)

    def answer_last() -> None:
        request = server.sent[-1][0]
        notifier.on_response(request, make_response(request, 200))

    notifier.on_subscribe(subscribe("1001", "1002", "presence"), Flow("UDP", "127.0.0.1", 5080),
                          None)
    assert server.answers[-1].status == 200
    await eventually(lambda: notes(server, "1001") == ["Offline"])
    first = server.sent[-1][0]
    assert first.headers.get("Event") == "presence"
    assert first.content_type == "application/pidf+xml"
    answer_last()
    server.location.load([Binding(
        id="b2", aor="sip:1002@pbx.test", contact="sip:1002@127.0.0.1:5074", expires_at=4e9,
        call_id="reg", cseq=1, source_transport="UDP", source_host="127.0.0.1",
        source_port=5074)])
    server.events.publish(Registered(setup.org, "1002", 1, 1.0))
    await eventually(lambda: notes(server, "1001") == ["Offline", "Available"])
    answer_last()
    with Session(setup.store.engine) as db:
        ext = db.exec(select(Extension).where(Extension.number == "1002")).one()
        lunch = Profile(organisation_id=setup.org, extension="1002", name="Lunch")
        db.add(lunch)
        db.flush()
        ext.profile_id = lunch.id
        db.add(ext)
        db.commit()
    await asyncio.to_thread(setup.directory.reload)
    await eventually(lambda: notes(server, "1001") == ["Offline", "Available",
                                                      "Available, Lunch"])
    assert len(notifier.presence._followers) == 1
    request = server.sent[-1][0]
    notifier.on_response(request, make_response(request, 481))  # the phone forgot it
    assert len(notifier) == 0 and not notifier.presence._followers


class FakeDirectory:
    """What the watch reads of the directory: the tenants, and reload listeners."""

    def __init__(self, tenant: Tenant) -> None:
        self.tenants = {tenant.id: tenant}
        self.listeners: list[Callable[[], None]] = []

    def on_reload(self, listener: Callable[[], None]) -> None:
        self.listeners.append(listener)


async def test_the_watch_tells_followers_who_changed_on_calls_and_registrations() -> None:
    """1001 calls 1002: 1001 on a call, 1002 ringing (1003 untouched); the call
    ends: both offline again; 1003's phone registers: available; a follower
    that stopped hears nothing more."""
    exts = {n: Extension(organisation_id=1, number=n, secret="s")
            for n in ("1001", "1002", "1003")}
    acme = Tenant(1, "acme", "acme.example", extensions=exts)
    calls: list[Call] = []
    events, location = EventBus(), LocationService()
    watch = PresenceWatch(FakeDirectory(acme), location, events,  # type: ignore[arg-type]
                          lambda: calls)
    heard: list[dict[str, str]] = []
    stop = watch.follow(1, lambda changed: heard.append({s.extension: s.line for s in changed}))
    call = call_from_1001_to_1002(organisation=acme)
    calls.append(call)
    events.publish(CallStarted(1, "c1", "1001", "1002", 1.0))
    events.publish(CallStarted(2, "other", "1001", "1002", 1.0))  # another organisation's
    assert heard == [{"1001": "on_call", "1002": "ringing"}]
    call.ended = True
    events.publish(CallEnded(1, "c1", "1001", "1002", "", "cancelled", 487, 0.0, 2.0))
    assert heard[1] == {"1001": "offline", "1002": "offline"}
    location.load([Binding(id="b3", aor="sip:1003@acme.example", contact="sip:1003@h",
                           expires_at=4e9, call_id="r", cseq=1, source_transport="UDP",
                           source_host="127.0.0.1", source_port=5060)])
    events.publish(Registered(1, "1003", 1, 3.0))
    assert heard[2] == {"1003": "available"}
    stop()
    events.publish(Registered(1, "1003", 0, 4.0))
    assert len(heard) == 3 and not watch._followers
