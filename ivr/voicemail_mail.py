"""Voicemail to email: who gets a message, the outbox rows that carry it, and
the email itself (Asterisk's voicemail.conf ``email`` and ``attach``).

:func:`queue_voicemail_email` runs in the transaction that stores the
message, so a message is never kept without its emails nor an email queued
for a message that was not kept; :mod:`ivr.mailer` sends them.  The rest is
pure: the facts of a message in, an :class:`~email.message.EmailMessage` out.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path

import soundfile
from sqlmodel import Session, col, select

from ivr.transcribe import has_model
from pbx.models import ApiUser, Extension, OutboxEmail, SharedMailbox, Voicemail
from pbx.voicemail import mailbox_of

# voicemail_attach: the format → (libsndfile format, subtype, MIME subtype, suffix)
FORMATS = {
    "mp3": ("MP3", "MPEG_LAYER_III", "mpeg", "mp3"),
    "ogg": ("OGG", "VORBIS", "ogg", "ogg"),
    "flac": ("FLAC", "PCM_16", "flac", "flac"),
}
LANGUAGE_NAMES = {"en": "English", "sv": "Swedish", "da": "Danish", "nb": "Norwegian",
                  "fi": "Finnish", "de": "German"}


def mailbox_owners(db: Session, organisation: int, mailbox: str) -> list[Extension]:
    """The organisation's extensions whose mailbox ``mailbox`` is."""
    return [ext for ext in db.exec(select(Extension).where(
        col(Extension.organisation_id) == organisation).order_by(col(Extension.number)))
        if mailbox_of(ext) == mailbox]


def recipients(db: Session, organisation: int, mailbox: str) -> list[str]:
    """Who gets an email of a message left in ``mailbox``: a shared mailbox's
    own ``email`` addresses; an extension's mailbox: the ``email`` addresses of
    the extensions it belongs to, then the own addresses of the users on those
    extensions.  Each address once (its case ignored)."""
    shared = db.exec(select(SharedMailbox).where(
        col(SharedMailbox.organisation_id) == organisation,
        col(SharedMailbox.number) == mailbox)).first()
    if shared is not None:
        addresses = _listed(shared.email)
    else:
        owners = mailbox_owners(db, organisation, mailbox)
        addresses = [a for ext in owners for a in _listed(ext.email)]
        if owners:
            addresses += db.exec(select(ApiUser.email).where(
                col(ApiUser.organisation_id) == organisation,
                col(ApiUser.extension).in_([ext.number for ext in owners]),
                col(ApiUser.email) != "",
            ).order_by(col(ApiUser.id))).all()
    unique: dict[str, str] = {}
    for address in addresses:
        unique.setdefault(address.lower(), address)
    return list(unique.values())


def _listed(text: str) -> list[str]:
    """The addresses of a stored ``a@x, b@y``."""
    return [address.strip() for address in text.split(",") if address.strip()]


def queue_voicemail_email(db: Session, message: Voicemail) -> None:
    """Add one outbox row per recipient of ``message`` to ``db``'s transaction;
    the caller commits them with the message.  The message gets its id here
    (a flush) if it has none yet."""
    assert message.organisation_id is not None
    if message.id is None:
        db.flush()
    for address in recipients(db, message.organisation_id, message.mailbox):
        assert message.id is not None
        db.add(OutboxEmail(organisation_id=message.organisation_id, voicemail_id=message.id,
                           recipient=address, created_at=message.created_at,
                           due_at=message.created_at))


@dataclass(frozen=True, slots=True)
class Attachment:
    """The recording as attached: its bytes, MIME subtype (audio/…) and file name."""

    data: bytes
    subtype: str
    filename: str


def recording(path: Path, attach: str, name: str) -> Attachment | None:
    """The message's WAV as ``attach`` says (``wav`` as stored, ``mp3``, ``ogg``,
    ``flac`` converted; ``none``: nothing).  Blocking: run it in a thread.
    Raises OSError / soundfile's error when the file is gone or damaged."""
    if attach == "none":
        return None
    if attach == "wav":
        return Attachment(path.read_bytes(), "wav", f"{name}.wav")
    kind, subtype, mime, suffix = FORMATS[attach]
    samples, rate = soundfile.read(str(path), dtype="float32")
    out = io.BytesIO()
    soundfile.write(out, samples, rate, format=kind, subtype=subtype)
    return Attachment(out.getvalue(), mime, f"{name}.{suffix}")


@dataclass(frozen=True, slots=True)
class Notice:
    """What an email of a voicemail message tells."""

    message_id: int
    mailbox: str
    caller: str  # the number
    caller_name: str
    received: datetime  # in the organisation's time zone
    duration: float  # seconds
    transcript: str | None  # None: not made (failed, or no model for the language)
    language: str
    callback_number: str = ""  # a call-back request: the number the caller keyed in


def caller_id(name: str, number: str) -> str:
    """``Alice Andersson <1001>``, or the number alone, as a phone shows a caller ID."""
    number = number or "unknown caller"
    return f"{name} <{number}>" if name and name != number else number


def display_name(callerid: str) -> str:
    """The name of a configured caller ID: ``"Alice" <1001>`` → ``Alice``; a bare
    name stays as it is."""
    name, _ = parseaddr(callerid)
    return name or ("" if "<" in callerid else callerid.strip())


def transcript_line(notice: Notice) -> str:
    if not has_model(notice.language):
        language = LANGUAGE_NAMES.get(notice.language, notice.language)
        return f"Transcript: not available in {language}"
    if notice.transcript is None:
        return "Transcript: could not be made"
    return f"Transcript: {notice.transcript or '(no words recognised)'}"


def compose(notice: Notice, *, sender: str, recipient: str, msgid: str,
            attachment: Attachment | None,
            missing_recording: bool = False) -> EmailMessage:
    """The email for one recipient: caller, mailbox, time, length and the
    transcript in a plain-text body, the recording attached.  Marked
    ``Auto-Submitted: auto-generated`` (RFC 3834) so out-of-office replies
    stay away."""
    who = caller_id(notice.caller_name, notice.caller)
    minutes, seconds = divmod(round(notice.duration), 60)
    lines = [
        f"You have a new voicemail message in mailbox {notice.mailbox}.",
        "",
        f"From:     {who}",
        *([f"Call back on: {notice.callback_number}"] if notice.callback_number else []),
        f"Mailbox:  {notice.mailbox}",
        f"Received: {notice.received:%A %d %B %Y at %H:%M:%S %Z}",
        f"Duration: {minutes}:{seconds:02d}",
        "",
        transcript_line(notice),
        "",
    ]
    if attachment is not None:
        lines.append(f"The recording is attached ({attachment.filename}).")
    elif missing_recording:
        lines.append("The recording could not be attached: its file is missing or damaged.")
    email = EmailMessage()
    email["From"] = sender
    email["To"] = recipient
    email["Subject"] = f"New voicemail from {who}"
    email["Date"] = format_datetime(notice.received)
    email["Message-ID"] = msgid
    email["Auto-Submitted"] = "auto-generated"
    email.set_content("\n".join(lines) + "\n")
    if attachment is not None:
        email.add_attachment(attachment.data, maintype="audio", subtype=attachment.subtype,
                             filename=attachment.filename)
    return email
