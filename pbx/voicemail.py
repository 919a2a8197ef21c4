"""Voicemail in the store: which mailbox an extension has, a mailbox's
messages, and the changes to a stored message (heard, deleted), once, for
everyone who makes them: the admin API and the phones' mailbox menu
(:mod:`ivr.mailbox_menu`).  The call side, taking messages, is the
voicemail service (:mod:`ivr.voicemail`)."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import Session, col, select

from pbx.models import Extension, Voicemail


def mailbox_of(ext: Extension) -> str:
    """The extension's mailbox: its own setting, or its number."""
    return ext.mailbox or ext.number


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
