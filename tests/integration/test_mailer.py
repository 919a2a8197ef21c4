"""The mailer against a real SMTP server (aiosmtpd on loopback), over a real
store, with the outbox's clock moved by hand: an outage ridden out, a 550
that ends it, voicemail_delete and the lamps, a message deleted first,
STARTTLS and implicit TLS with a self-signed certificate (and a refusal to
trust it when asked to verify), AUTH, and the transcript in the email."""

from __future__ import annotations

import asyncio
import io
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import soundfile
from sqlmodel import Session, col, select

from ivr.mailer import Mailer
from ivr.voicemail_mail import queue_voicemail_email
from pbx.config import Config, General
from pbx.events import Event, EventBus, MailboxChanged, VoicemailLeft
from pbx.models import Extension, Organisation, OutboxEmail, Voicemail
from pbx.store import Store
from tests.integration.audio import level, spoken_wav, tone_wav
from tests.integration.peers import free_ports
from tests.integration.smtp import smtp_server

pytestmark = pytest.mark.integration
T0 = 1_800_000_000.0


class Clock:
    """The outbox's wall clock, moved by the test."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A store in a file: the mailer's threads and the test read and write it at
    once, each with a connection of its own (in-memory SQLite has just one)."""
    store = Store(f"sqlite:///{tmp_path / 'pbx.sqlite3'}")
    with Session(store.engine) as db:
        db.add(Organisation(slug="default", name="Default", language="sv"))  # no transcripts
        db.flush()
        db.add_all([
            Extension(organisation_id=1, number="1001", secret="s",
                      display_name='"Alice Andersson" <1001>'),
            Extension(organisation_id=1, number="1002", secret="s",
                      email="bertil@example.com, desk@example.com"),
        ])
        db.commit()
    yield store
    store.close()


def leave(store: Store, path: Path, bus: EventBus | None = None) -> int:
    """A message for 1002 from 1001, stored with its emails as the voicemail
    service does, and announced on ``bus``."""
    with Session(store.engine) as db:
        message = Voicemail(organisation_id=1, mailbox="1002", caller="1001", path=str(path),
                            duration=soundfile.info(str(path)).duration, created_at=T0)
        db.add(message)
        queue_voicemail_email(db, message)
        db.commit()
        assert message.id is not None
        if bus is not None:
            bus.publish(VoicemailLeft(1, "1002", message.id, "1001", message.duration, T0))
        return message.id


def rows(store: Store) -> list[OutboxEmail]:
    with Session(store.engine) as db:
        return list(db.exec(select(OutboxEmail).order_by(col(OutboxEmail.id))).all())


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def config(port: int, **general: object) -> Config:
    settings: dict[str, object] = {"realm": "pbx.test", "smtp_host": "127.0.0.1",
                                   "smtp_port": port, "smtp_security": "none", **general}
    return Config(general=General.model_validate(settings))


async def test_an_smtp_outage_is_ridden_out(store: Store, tmp_path: Path) -> None:
    port, clock, bus = free_ports(1), Clock(), EventBus()
    leave(store, tone_wav(tmp_path / "m.wav", 1000.0, 3.0), bus)
    mailer = Mailer(store, bus, config(port), clock=clock)
    mailer.start()
    try:
        await until(lambda: all(r.attempts == 1 for r in rows(store)))
        for row in rows(store):
            assert (row.state, row.due_at) == ("pending", T0 + 30)
            assert "Connect" in row.last_error or "refused" in row.last_error, row.last_error
        with smtp_server(port) as inbox:
            clock.now = T0 + 29
            mailer.wake()
            await asyncio.sleep(0.5)
            assert inbox.received == []  # not due yet
            clock.now = T0 + 30
            mailer.wake()
            await until(lambda: all(r.state == "sent" for r in rows(store)))
        assert [(r.attempts, r.sent_at, r.last_error) for r in rows(store)] == [
            (2, T0 + 30, "")] * 2
        assert sorted(r.recipients[0] for r in inbox.received) == [
            "bertil@example.com", "desk@example.com"]
        email = inbox.received[0].email
        assert email["Subject"] == "New voicemail from Alice Andersson <1001>"
        assert inbox.received[0].sender == "voicemail@pbx.test"
        assert email["Message-ID"] != inbox.received[1].email["Message-ID"]
        (part,) = list(email.iter_attachments())
        audio, rate = soundfile.read(io.BytesIO(part.get_content()))
        assert rate == 8000 and level(audio, 1000.0) > 20 * max(level(audio, 700.0), 1e-3)
    finally:
        await mailer.stop()


async def test_a_550_ends_the_email_and_the_other_recipient_still_gets_it(
        store: Store, tmp_path: Path) -> None:
    port, bus = free_ports(1), EventBus()
    with smtp_server(port, refuse={"desk@example.com": "550 5.1.1 No such user"}) as inbox:
        leave(store, tone_wav(tmp_path / "m.wav", 1000.0, 2.0), bus)
        mailer = Mailer(store, bus, config(port), clock=Clock())
        mailer.start()
        try:
            await until(lambda: all(r.state != "pending" for r in rows(store)))
        finally:
            await mailer.stop()
    bertil, desk = rows(store)
    assert (bertil.state, bertil.attempts) == ("sent", 1)
    assert (desk.state, desk.attempts) == ("failed", 1)
    assert "550" in desk.last_error and "No such user" in desk.last_error
    assert [r.recipients for r in inbox.received] == [["bertil@example.com"]]


@pytest.mark.parametrize(("general", "override", "deleted"), [
    (True, None, True), (True, False, False), (False, True, True), (False, None, False)])
async def test_voicemail_delete_once_every_email_went(
        store: Store, tmp_path: Path, general: bool, override: bool | None, deleted: bool) -> None:
    """The node's voicemail_delete, or the extension's own; the lamps follow."""
    with Session(store.engine) as db:
        ext = db.exec(select(Extension).where(Extension.number == "1002")).one()
        ext.voicemail_delete = override
        db.add(ext)
        db.commit()
    port, bus = free_ports(1), EventBus()
    changed: list[Event] = []

    def lamps(event: Event) -> None:
        if isinstance(event, MailboxChanged):
            changed.append(event)

    bus.subscribe(lamps)
    wav = tone_wav(tmp_path / "m.wav", 1000.0, 2.0)
    with smtp_server(port) as inbox:
        message_id = leave(store, wav, bus)
        mailer = Mailer(store, bus, config(port, voicemail_delete=general), clock=Clock())
        mailer.start()
        try:
            await until(lambda: all(r.state == "sent" for r in rows(store)))
            await asyncio.sleep(0.3)  # the deletion follows the last send
        finally:
            await mailer.stop()
    assert len(inbox.received) == 2
    with Session(store.engine) as db:
        assert (db.get(Voicemail, message_id) is None) is deleted
    assert wav.exists() is not deleted
    assert changed == ([MailboxChanged(1, "1002", T0)] if deleted else [])


async def test_a_message_deleted_before_its_email_went_drops_it(store: Store,
                                                               tmp_path: Path) -> None:
    port, bus = free_ports(1), EventBus()
    message_id = leave(store, tone_wav(tmp_path / "m.wav", 1000.0, 2.0))
    with Session(store.engine) as db:
        db.delete(db.get(Voicemail, message_id))
        db.commit()
    with smtp_server(port) as inbox:
        mailer = Mailer(store, bus, config(port), clock=Clock())
        mailer.start()
        try:
            await until(lambda: all(r.state == "dropped" for r in rows(store)))
        finally:
            await mailer.stop()
    assert inbox.received == []
    assert {(r.attempts, r.last_error) for r in rows(store)} == {
        (0, "the message was deleted first")}


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_tls_with_a_self_signed_certificate_and_auth(store: Store, tmp_path: Path,
                                                          security: str) -> None:
    port, bus = free_ports(1), EventBus()
    with smtp_server(port, security=security, certs=tmp_path / "certs",
                     users={"pbx": "s3cret-Pw"}) as inbox:
        leave(store, tone_wav(tmp_path / "m.wav", 1000.0, 2.0), bus)
        trusting = Mailer(store, bus, config(
            port, smtp_security=security, smtp_verify=False, smtp_user="pbx",
            smtp_password="s3cret-Pw", smtp_from="PBX <vm@pbx.test>"), clock=Clock())
        trusting.start()
        try:
            await until(lambda: len(inbox.received) == 2)
            first = inbox.received[0]
        finally:
            await trusting.stop()
    assert (first.tls, first.login, first.sender) == (True, "pbx", "vm@pbx.test")
    assert first.email["From"] == "PBX <vm@pbx.test>"


async def test_a_certificate_that_cannot_be_verified_is_not_trusted(store: Store,
                                                                   tmp_path: Path) -> None:
    port, bus = free_ports(1), EventBus()
    with smtp_server(port, security="starttls", certs=tmp_path / "certs") as inbox:
        leave(store, tone_wav(tmp_path / "m.wav", 1000.0, 2.0), bus)
        verifying = Mailer(store, bus, config(port, smtp_security="starttls"), clock=Clock())
        verifying.start()
        try:
            await until(lambda: all(r.attempts == 1 for r in rows(store)))
        finally:
            await verifying.stop()
    assert inbox.received == []
    assert all(r.state == "pending" and "CERTIFICATE_VERIFY_FAILED" in r.last_error
               for r in rows(store)), [r.last_error for r in rows(store)]


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng says the message")
async def test_the_email_waits_for_the_transcript(store: Store, tmp_path: Path) -> None:
    with Session(store.engine) as db:
        org = db.get(Organisation, 1)
        assert org is not None
        org.language = "en"
        db.add(org)
        db.commit()
    port, bus = free_ports(1), EventBus()
    with smtp_server(port) as inbox:
        wav = spoken_wav(tmp_path / "m.wav", "please call me back tomorrow")
        message_id = leave(store, wav, bus)
        mailer = Mailer(store, bus, config(port), clock=Clock())
        mailer.start()
        try:
            await until(lambda: len(inbox.received) == 2, 120)
            received = inbox.received
        finally:
            await mailer.stop()
    with Session(store.engine) as db:
        message = db.get(Voicemail, message_id)
        assert message is not None and message.transcript is not None
        words = message.transcript.split()
    assert "call" in words and "back" in words, message.transcript
    body = received[0].email.get_body(("plain",))
    assert body is not None
    assert f"Transcript: {message.transcript}" in body.get_content().splitlines()
