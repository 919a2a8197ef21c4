"""Voicemail in the store: which mailboxes an extension has (its own and the
shared ones it is member of), a mailbox's messages, greetings and settings,
and the changes to them, once, for everyone who makes them: the admin API,
the phones' mailbox menu (:mod:`ivr.mailbox_menu`) and the voicemail
service (:mod:`ivr.voicemail`), which takes the messages."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import soundfile
from sqlmodel import Session, col, select

from pbx.models import Extension, Greeting, MailboxSettings, SharedMailbox, Voicemail
from pbx.passwords import check_password, hash_password

RATE = 8000  # greetings and messages: 8 kHz mono, as the engine plays and records
_UNSAFE = re.compile(r"[^0-9A-Za-z_.+-]")


def safe_name(text: str) -> str:
    """``text`` as one file or folder name: nothing but ``0-9A-Za-z_.+-``."""
    return _UNSAFE.sub("_", text)


def mailbox_of(ext: Extension) -> str:
    """The extension's mailbox: its own setting, or its number."""
    return ext.mailbox or ext.number


def members(box: SharedMailbox) -> list[str]:
    """A shared mailbox's member extensions, in order."""
    return [m for m in box.members.split(",") if m]


def memberships(shared: Mapping[str, SharedMailbox], extension: str) -> tuple[str, ...]:
    """The numbers of the shared mailboxes ``extension`` is member of, in order."""
    return tuple(sorted(n for n, box in shared.items() if extension in members(box)))


def lamp_mailboxes(shared: Mapping[str, SharedMailbox], ext: Extension) -> tuple[str, ...]:
    """What an extension's message-waiting lamp counts: its own mailbox, then
    the shared ones it is member of."""
    return (mailbox_of(ext), *memberships(shared, ext.number))


def lamps_showing(extensions: Iterable[Extension], shared: Mapping[str, SharedMailbox],
                  mailbox: str) -> list[Extension]:
    """The extensions whose lamps count ``mailbox`` (its owner, or a shared one's members)."""
    box = shared.get(mailbox)
    inside = set(members(box)) if box is not None else set()
    return [ext for ext in extensions if mailbox_of(ext) == mailbox or ext.number in inside]


# ------------------------------------------------------------------ messages


def mailbox_messages(db: Session, organisation: int, mailbox: str) -> list[Voicemail]:
    """Every message of one mailbox, oldest first."""
    return list(db.exec(select(Voicemail).where(
        col(Voicemail.organisation_id) == organisation, col(Voicemail.mailbox) == mailbox,
    ).order_by(col(Voicemail.created_at), col(Voicemail.id))).all())


def mark_heard(db: Session, message: Voicemail, heard: bool = True) -> None:
    """Mark a message heard (saved) or new again, committing whatever else ``db``
    holds with it (an audit entry).  Its mailbox's lamps count the new ones:
    the caller tells the event bus."""
    message.heard = heard
    db.add(message)
    db.commit()


def discard_message(db: Session, message: Voicemail) -> None:
    """Delete a message: its row (with whatever else ``db`` holds), then, once
    that is committed, its WAV; the caller tells the event bus."""
    db.delete(message)
    db.commit()
    Path(message.path).unlink(missing_ok=True)


# ------------------------------------------------------------------ greetings


def greeting_path(data_dir: Path, organisation: int, mailbox: str, kind: str) -> Path:
    """Where a mailbox's greeting of ``kind`` is kept (apart from its messages)."""
    return data_dir / "greetings" / str(organisation) / safe_name(mailbox) / f"{kind}.wav"


def greetings_of(db: Session, organisation: int, mailbox: str) -> list[Greeting]:
    """A mailbox's recorded greetings, expired temporary ones included."""
    return list(db.exec(select(Greeting).where(
        col(Greeting.organisation_id) == organisation, col(Greeting.mailbox) == mailbox,
    ).order_by(col(Greeting.kind))).all())


def save_greeting(db: Session, path: Path, samples: np.ndarray, greeting: Greeting) -> None:
    """Write the greeting's 8 kHz WAV (whole, then renamed over the old one: a
    caller hears the old greeting or the new, never half of one) and keep its row
    (one per mailbox and kind) with whatever else ``db`` holds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial.wav")
    soundfile.write(partial, np.asarray(samples, dtype=np.int16), RATE, subtype="PCM_16")
    partial.replace(path)
    row = db.exec(select(Greeting).where(
        col(Greeting.organisation_id) == greeting.organisation_id,
        col(Greeting.mailbox) == greeting.mailbox, col(Greeting.kind) == greeting.kind)).first()
    if row is None:
        row = greeting
    else:
        for name in ("path", "seconds", "expires_at", "created_at"):
            setattr(row, name, getattr(greeting, name))
    row.path = str(path)
    db.add(row)
    db.commit()


def delete_greeting(db: Session, greeting: Greeting) -> None:
    """Back to the default: the row goes (with whatever else ``db`` holds), then its WAV."""
    db.delete(greeting)
    db.commit()
    Path(greeting.path).unlink(missing_ok=True)


# ------------------------------------------------------------------ settings and PIN


def mailbox_settings(db: Session, organisation: int, mailbox: str) -> MailboxSettings:
    """The mailbox's settings row, or the defaults (not stored) when it has none."""
    row = db.exec(select(MailboxSettings).where(
        col(MailboxSettings.organisation_id) == organisation,
        col(MailboxSettings.mailbox) == mailbox)).first()
    return row or MailboxSettings(organisation_id=organisation, mailbox=mailbox)


def set_pin(db: Session, settings: MailboxSettings, pin: str) -> None:
    """Keep a new PIN (hashed; empty: none) with whatever else ``db`` holds."""
    settings.pin_hash = hash_password(pin) if pin else ""
    db.add(settings)
    db.commit()


def pin_matches(settings: MailboxSettings, pin: str) -> bool:
    """Is ``pin`` the mailbox's PIN?  Never for a mailbox without one: it cannot
    be reached from another phone."""
    return bool(settings.pin_hash) and check_password(pin, settings.pin_hash)
