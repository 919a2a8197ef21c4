"""Message-waiting lamps with shared mailboxes, and unsolicited MWI: which
mailboxes a lamp counts, the out-of-dialog NOTIFY of RFC 3842 §3.3, and the
notifier sending it (and counting shared messages for subscribers) when a
mailbox changes or a phone registers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import Session

from pbx.config import Config, General
from pbx.directory import Directory, Tenant
from pbx.events import EventBus, MailboxChanged, Registered
from pbx.location import Binding, LocationService
from pbx.models import Extension, Voicemail
from pbx.presence import PresenceWatch
from pbx.sip.flow import Flow
from pbx.sip.message import Request, Response, make_response
from pbx.sip.parser import parse_message
from pbx.store import Store
from pbx.subscriptions import Notifier, unsolicited_notify
from pbx.voicemail import lamp_mailboxes, lamps_showing, memberships
from tests.unit.voicemail_setup import Setup, eventually

DESK = Binding(id="b1", aor="sip:1003@pbx.test", contact="sip:1003@127.0.0.1:5072",
               expires_at=4e9, call_id="reg", cseq=1, source_transport="UDP",
               source_host="127.0.0.1", source_port=5072)


def test_a_lamp_counts_its_own_mailbox_and_the_shared_ones(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    tenant = setup.directory.default
    shared = tenant.mailboxes
    assert memberships(shared, "1002") == ("2000",) and memberships(shared, "1001") == ()
    bob = tenant.extensions["1002"]
    assert lamp_mailboxes(shared, bob) == ("1002", "2000")
    showing = lamps_showing(tenant.extensions.values(), shared, "2000")
    assert sorted(e.number for e in showing) == ["1002", "1003"]
    assert [e.number for e in lamps_showing(tenant.extensions.values(), shared, "1001")] == [
        "1001"]
    other = Extension(organisation_id=1, number="1004", secret="s", mailbox="9")
    assert [e.number for e in lamps_showing([other], {}, "9")] == ["1004"]


def test_an_unsolicited_notify_is_out_of_dialog_to_the_contact() -> None:
    notify, flow = unsolicited_notify(DESK, b"Messages-Waiting: yes\r\n",
                                      lambda transport: "127.0.0.1:5060",
                                      lambda flow: "<sip:pbx@127.0.0.1:5060>")
    parsed = parse_message(bytes(notify))
    assert isinstance(parsed, Request) and parsed.method == "NOTIFY"
    assert str(parsed.uri) == "sip:1003@127.0.0.1:5072"
    assert flow == Flow("UDP", "127.0.0.1", 5072)
    assert parsed.to_addr.tag is None and parsed.from_addr.tag  # no dialog: To has no tag
    assert str(parsed.to_addr.uri) == "sip:1003@pbx.test"
    assert str(parsed.from_addr.uri) == "sip:pbx@pbx.test"
    assert parsed.cseq.number == 1 and parsed.cseq.method == "NOTIFY"
    assert parsed.headers.get("Event") == "message-summary"
    assert parsed.headers.get("Subscription-State") == "terminated"
    assert parsed.content_type == "application/simple-message-summary"
    assert parsed.body == b"Messages-Waiting: yes\r\n"
    again, _ = unsolicited_notify(DESK, b"", lambda t: "h:1", lambda f: "<sip:pbx@h:1>")
    assert again.call_id != parsed.call_id  # each one its own Call-ID


@dataclass
class FakeServer:
    """What the notifier needs of the SIP server; requests sent are kept."""

    directory: Directory
    store: Store
    config: Config = field(default_factory=lambda: Config(general=General()))
    events: EventBus = field(default_factory=EventBus)
    location: LocationService = field(default_factory=LocationService)
    sent: list[tuple[Request, Flow]] = field(default_factory=list)
    answers: list[Response] = field(default_factory=list)
    owners: list[object] = field(default_factory=list)  # who hears each request's answer

    def authenticate(self, request: Request, flow: Flow, tenant: Tenant,
                     now: float) -> tuple[Extension, str] | None:
        number = request.from_addr.uri.user or ""
        return tenant.extensions[number], number

    def respond(self, response: Response) -> None:
        self.answers.append(response)

    def send_request(self, request: Request, flow: Flow, owner: object = None) -> object:
        self.sent.append((request, flow))
        self.owners.append(owner)
        return request

    def sent_by(self, transport: str) -> str:
        return "127.0.0.1:5060"

    def contact(self, flow: Flow) -> str:
        return "<sip:pbx@127.0.0.1:5060>"


def notifier_of(server: FakeServer) -> Notifier:
    """A notifier on ``server``, with its presence watch (no live calls)."""
    watch = PresenceWatch(server.directory, server.location, server.events, lambda: [])
    return Notifier(server, lambda: [], watch)  # type: ignore[arg-type]


def subscribe(user: str, target: str, event: str = "message-summary") -> Request:
    text = (f"SUBSCRIBE sip:{target}@pbx.test SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-{user}\r\nMax-Forwards: 70\r\n"
            f"From: <sip:{user}@pbx.test>;tag=t{user}\r\nTo: <sip:{target}@pbx.test>\r\n"
            f"Call-ID: sub-{user}\r\nCSeq: 1 SUBSCRIBE\r\nContact: <sip:{user}@127.0.0.1:5080>\r\n"
            f"Event: {event}\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n")
    request = parse_message(text.encode())
    assert isinstance(request, Request)
    return request


def summaries(server: FakeServer, to: str) -> list[str]:
    """The Voice-Message lines of the NOTIFYs sent to ``to``'s phone, answered 200."""
    found = []
    for request, _ in server.sent:
        if request.uri.user == to:
            found.append(request.body.decode().split("Voice-Message: ")[1].split()[0])
    return found


async def test_shared_messages_light_every_members_lamp_subscribed_or_not(
        tmp_path: Path) -> None:
    """1002 subscribes; 1003 never does but has mwi_unsolicited: a message in the
    shared mailbox 2000 reaches both, and 1003 hears its lamp when it registers."""
    setup = Setup(tmp_path)
    with Session(setup.store.engine) as db:
        desk = db.get(Extension, setup.directory.default.extensions["1003"].id)
        assert desk is not None
        desk.mwi_unsolicited = True
        db.add(desk)
        db.commit()
    setup.directory.reload()
    server = FakeServer(setup.directory, setup.store)
    notifier = notifier_of(server)
    notifier.on_subscribe(subscribe("1002", "1002"), Flow("UDP", "127.0.0.1", 5080), None)
    await eventually(lambda: summaries(server, "1002") == ["0/0"])
    first = server.sent[-1][0]
    notifier.on_response(first, make_response(first, 200))
    server.location.load([DESK])
    with Session(setup.store.engine) as db:
        db.add(Voicemail(organisation_id=setup.org, mailbox="2000", path="x", created_at=1.0))
        db.commit()
    server.events.publish(MailboxChanged(setup.org, "2000", 1.0))
    await eventually(lambda: summaries(server, "1002") == ["0/0", "1/0"])
    await eventually(lambda: summaries(server, "1003") == ["1/0"])
    unsolicited = next(r for r, _ in server.sent if r.uri.user == "1003")
    assert unsolicited.to_addr.tag is None
    assert server.owners[[r for r, _ in server.sent].index(unsolicited)] is notifier
    notifier.on_response(unsolicited, make_response(unsolicited, 200))
    assert not notifier.unsolicited
    server.events.publish(MailboxChanged(setup.org, "1001", 2.0))  # not theirs
    server.events.publish(Registered(setup.org, "1003", 1, 3.0))  # the desk phone registers
    await eventually(lambda: summaries(server, "1003") == ["1/0", "1/0"])
    await asyncio.sleep(0.05)
    assert summaries(server, "1002") == ["0/0", "1/0"]


async def test_no_unsolicited_notify_without_the_setting(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    server = FakeServer(setup.directory, setup.store)
    notifier_of(server)
    server.location.load([DESK])
    server.events.publish(Registered(setup.org, "1003", 1, 1.0))
    server.events.publish(MailboxChanged(setup.org, "2000", 1.0))
    await asyncio.sleep(0.1)
    assert server.sent == []
