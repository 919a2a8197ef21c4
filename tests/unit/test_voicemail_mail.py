"""Voicemail to email, the pure side and the store side: who gets a message
(of an extension's mailbox, of a shared one), the outbox rows queued in the
message's own transaction, the email itself (subject, headers, body in the
organisation's time zone, the transcript line, a call-back number, the
recording attached as WAV, MP3, OGG or FLAC)."""

from __future__ import annotations

import io
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import soundfile
from sqlmodel import Session, col, select

from ivr.voicemail_mail import (
    Notice, compose, display_name, queue_voicemail_email, recipients, recording,
)
from pbx.models import ApiUser, Extension, Organisation, OutboxEmail, SharedMailbox, Voicemail
from pbx.store import Store
from tests.integration.audio import level, tone_wav

STOCKHOLM = ZoneInfo("Europe/Stockholm")


@pytest.fixture
def store() -> Store:
    """Two organisations; in the first, 1002's mailbox is shared by 1003."""
    store = Store("sqlite://")
    with Session(store.engine) as db:
        ours, theirs = Organisation(slug="ours", name="Ours"), Organisation(slug="theirs", name="T")
        db.add_all([ours, theirs])
        db.flush()
        assert ours.id is not None and theirs.id is not None
        db.add_all([
            Extension(organisation_id=ours.id, number="1001", secret="s",
                      display_name='"Alice Andersson" <1001>', email="alice@example.com"),
            Extension(organisation_id=ours.id, number="1002", secret="s",
                      email="bertil@example.com, Desk-1002@Example.com"),
            Extension(organisation_id=ours.id, number="1003", secret="s", mailbox="1002",
                      email="cecilia@example.com"),
            Extension(organisation_id=theirs.id, number="1002", secret="s",
                      email="someone@else.example"),
            ApiUser(organisation_id=ours.id, username="bertil", password_hash="x",
                    extension="1002", email="desk-1002@example.com"),  # already there
            ApiUser(organisation_id=ours.id, username="cecilia", password_hash="x",
                    extension="1003", email="cecilia.c@example.com"),
            ApiUser(organisation_id=ours.id, username="nomail", password_hash="x",
                    extension="1002"),
            ApiUser(organisation_id=ours.id, username="alice", password_hash="x",
                    extension="1001", email="alice.a@example.com"),
            SharedMailbox(organisation_id=ours.id, number="2000", members="1001,1002",
                          email="reception@example.com, Reception@Example.com"),
        ])
        db.commit()
    return store


def test_recipients_are_the_mailboxs_extensions_then_their_users_each_once(store: Store) -> None:
    with Session(store.engine) as db:
        assert recipients(db, 1, "1002") == [
            "bertil@example.com", "Desk-1002@Example.com", "cecilia@example.com",
            "cecilia.c@example.com",
        ]
        assert recipients(db, 1, "1001") == ["alice@example.com", "alice.a@example.com"]
        assert recipients(db, 2, "1002") == ["someone@else.example"]  # the other organisation
        assert recipients(db, 1, "1003") == []  # 1003's calls go to the mailbox 1002
        assert recipients(db, 1, "2000") == ["reception@example.com"]  # a shared one's own
        assert recipients(db, 2, "2000") == []


def test_queued_emails_belong_to_the_message_transaction(store: Store) -> None:
    """One row per recipient, due at once; a rollback takes them with the message."""
    with Session(store.engine) as db:
        message = Voicemail(organisation_id=1, mailbox="1001", caller="1002", path="/x.wav",
                            created_at=1_800_000_000.0)
        db.add(message)
        queue_voicemail_email(db, message)
        db.rollback()
    with Session(store.engine) as db:
        assert db.exec(select(OutboxEmail)).all() == []
        message = Voicemail(organisation_id=1, mailbox="1001", caller="1002", path="/x.wav",
                            created_at=1_800_000_000.0)
        db.add(message)
        queue_voicemail_email(db, message)
        db.commit()
        rows = db.exec(select(OutboxEmail).order_by(col(OutboxEmail.id))).all()
        assert [(r.recipient, r.voicemail_id, r.state, r.due_at, r.attempts) for r in rows] == [
            ("alice@example.com", message.id, "pending", 1_800_000_000.0, 0),
            ("alice.a@example.com", message.id, "pending", 1_800_000_000.0, 0),
        ]


def notice(**changes: object) -> Notice:
    facts: dict[str, object] = {
        "message_id": 17, "mailbox": "1002", "caller": "1001", "caller_name": "Alice Andersson",
        # 2027-01-15 09:00 UTC: 10:00 in Stockholm, winter time
        "received": datetime.fromtimestamp(1_800_003_600.0, STOCKHOLM),
        "duration": 65.4, "transcript": "please call me back tomorrow", "language": "en",
    }
    facts.update(changes)
    return Notice(**facts)  # type: ignore[arg-type]


def sent_form(email: EmailMessage) -> EmailMessage:
    """The email as a receiver parses it from the wire."""
    parsed = message_from_bytes(email.as_bytes(), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_the_email_tells_who_when_how_long_and_what_was_said(tmp_path: Path) -> None:
    wav = tone_wav(tmp_path / "m.wav", 1000.0, 2.0)
    attachment = recording(wav, "wav", "voicemail-17")
    email = sent_form(compose(notice(), sender="PBX Voicemail <vm@pbx.test>",
                              recipient="bertil@example.com", msgid="<abc@pbx.test>",
                              attachment=attachment))
    assert email["Subject"] == "New voicemail from Alice Andersson <1001>"
    assert (email["From"], email["To"]) == ("PBX Voicemail <vm@pbx.test>", "bertil@example.com")
    assert email["Message-ID"] == "<abc@pbx.test>"
    assert email["Auto-Submitted"] == "auto-generated"
    assert email["Date"].datetime == notice().received
    body = email.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    for line in ("From:     Alice Andersson <1001>", "Mailbox:  1002",
                 "Received: Friday 15 January 2027 at 10:00:00 CET", "Duration: 1:05",
                 "Transcript: please call me back tomorrow",
                 "The recording is attached (voicemail-17.wav)."):
        assert line in text, text
    (part,) = list(email.iter_attachments())
    assert (part.get_content_type(), part.get_filename()) == ("audio/wav", "voicemail-17.wav")
    assert part.get_content() == wav.read_bytes()  # as stored


@pytest.mark.parametrize(("changes", "line"), [
    ({"language": "sv"}, "Transcript: not available in Swedish"),
    ({"language": "de", "transcript": None}, "Transcript: not available in German"),
    ({"transcript": None}, "Transcript: could not be made"),
    ({"transcript": ""}, "Transcript: (no words recognised)"),
])
def test_the_transcript_line_says_why_there_is_none(changes: dict[str, object], line: str) -> None:
    email = compose(notice(**changes), sender="vm@pbx.test", recipient="b@example.com",
                    msgid="<a@b>", attachment=None)
    body = email.get_body(("plain",))
    assert body is not None and line in body.get_content()


def test_a_call_back_request_says_the_number() -> None:
    email = compose(notice(callback_number="0701234567"), sender="vm@pbx.test",
                    recipient="b@example.com", msgid="<a@b>", attachment=None)
    body = email.get_body(("plain",))
    assert body is not None and "Call back on: 0701234567" in body.get_content().splitlines()


def test_an_unknown_caller_and_a_missing_recording() -> None:
    email = compose(notice(caller="", caller_name=""), sender="vm@pbx.test",
                    recipient="b@example.com", msgid="<a@b>", attachment=None,
                    missing_recording=True)
    assert email["Subject"] == "New voicemail from unknown caller"
    body = email.get_body(("plain",))
    assert body is not None and "could not be attached" in body.get_content()
    assert not list(email.iter_attachments())


@pytest.mark.parametrize(("attach", "mime", "suffix"), [
    ("mp3", "audio/mpeg", "mp3"), ("ogg", "audio/ogg", "ogg"), ("flac", "audio/flac", "flac"),
])
def test_the_recording_converted_keeps_its_tone(tmp_path: Path, attach: str, mime: str,
                                               suffix: str) -> None:
    wav = tone_wav(tmp_path / "m.wav", 1000.0, 3.0)
    attachment = recording(wav, attach, "voicemail-3")
    assert attachment is not None
    email = sent_form(compose(notice(), sender="vm@pbx.test", recipient="b@example.com",
                              msgid="<a@b>", attachment=attachment))
    (part,) = list(email.iter_attachments())
    assert (part.get_content_type(), part.get_filename()) == (mime, f"voicemail-3.{suffix}")
    audio, rate = soundfile.read(io.BytesIO(part.get_content()), dtype="float64")
    assert rate == 8000 and abs(len(audio) / rate - 3.0) < 0.1
    assert level(audio, 1000.0) > 20 * max(level(audio, 700.0), 1e-3)
    assert len(part.get_content()) < wav.stat().st_size  # smaller than the WAV


def test_no_attachment_when_asked_for_none(tmp_path: Path) -> None:
    assert recording(tone_wav(tmp_path / "m.wav", 1000.0, 1.0), "none", "x") is None


@pytest.mark.parametrize(("callerid", "name"), [
    ('"Alice Andersson" <1001>', "Alice Andersson"), ("Bertil Berg", "Bertil Berg"),
    ("<1003>", ""), ("", ""),
])
def test_the_callers_name_from_a_configured_caller_id(callerid: str, name: str) -> None:
    assert display_name(callerid) == name
