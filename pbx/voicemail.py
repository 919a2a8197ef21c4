"""Voicemail, the call side: a caller the PBX answered for a mailbox hears the
greeting and a tone, then speaks until they hang up (or :data:`MAX_SECONDS`).

The B2BUA answers the call and hands over the caller's media port; this app
owns an engine room for it: it plays the prompt, records the caller (the
engine's recorder, mono, 8 kHz WAV) under
``data_dir/voicemail/<organisation>/<mailbox>/`` and stores a
:class:`~pbx.models.Voicemail` row when the call is over.  It never touches SIP.

The changes to a stored message (heard, deleted) are here too, once, for
both who make them: the admin API and the mailbox menu of the phones
(:mod:`pbx.voicemail_menu`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile
from sqlmodel import Session, col, select

from media.tones import beep
from media.relay import RelayLeg
from pbx.events import MailboxChanged
from pbx.models import Extension, Voicemail

if TYPE_CHECKING:
    from pbx.server import SipServer

log = logging.getLogger("pbx.voicemail")

MAX_SECONDS = 180.0
MIN_SECONDS = 1.0  # shorter: the caller hung up at the tone; nothing is kept
TONE = beep(1000.0, 0.4)
PAUSE = np.zeros(2400, dtype=np.float32)  # 0.3 s between the prompt and the tone
_UNSAFE = re.compile(r"[^0-9A-Za-z_.+-]")


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


@dataclass(eq=False)
class Message:
    """A message being left: where it is recorded and the timers running for it."""

    call_id: str
    room: str
    organisation_id: int
    mailbox: str
    caller: str
    path: Path
    timers: tuple[asyncio.TimerHandle, ...] = ()


class VoicemailApp:
    """Takes messages for mailboxes; one engine room per caller."""

    def __init__(self, server: SipServer) -> None:
        self.server = server
        self._tasks: set[asyncio.Task[bool]] = set()

    def take(self, call_id: str, media: RelayLeg, ext: Extension, caller: str,
             hang_up: Callable[[], None]) -> Message:
        """Greet the caller on ``media`` and record them after the tone; ``hang_up``
        ends the call when the message reaches :data:`MAX_SECONDS`."""
        engine = self.server.engine
        mailbox = mailbox_of(ext)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = (self.server.config.data_path / "voicemail" / str(ext.organisation_id)
                / _UNSAFE.sub("_", mailbox) / f"{stamp}-{_UNSAFE.sub('_', call_id)}.wav")
        message = Message(call_id, f"voicemail-{call_id}", ext.organisation_id, mailbox, caller,
                          path)
        engine.join(message.room, media, tone=False)
        prompt = self.server.prompts.get("leave_message")
        greeting = np.concatenate([prompt, PAUSE, TONE]) if prompt is not None else TONE
        engine.play(engine.rooms[message.room], greeting)
        loop = asyncio.get_running_loop()
        after_tone = len(greeting) / 8000
        message.timers = (
            loop.call_later(after_tone, self._record, message),
            loop.call_later(after_tone + MAX_SECONDS, hang_up),
        )
        log.info("call %s: voicemail for %s from %s", call_id, mailbox, caller)
        return message

    def _record(self, message: Message) -> None:
        room = self.server.engine.rooms.get(message.room)
        if room is not None:  # the caller may have gone during the greeting
            self.server.engine.record(room, message.path)

    def finish(self, message: Message) -> None:
        """The call is over and the engine has closed the file: keep the message."""
        for timer in message.timers:
            timer.cancel()
        if message.path.exists():
            task = asyncio.get_running_loop().create_task(asyncio.to_thread(self._store, message))
            self._tasks.add(task)
            task.add_done_callback(lambda done: self._stored(done, message))

    def _stored(self, task: asyncio.Task[bool], message: Message) -> None:
        """Tell the event bus (the mailbox's message-waiting lamps) a message is in."""
        self._tasks.discard(task)
        if task.cancelled():
            return
        if task.exception() is not None:
            log.error("cannot store a voicemail message: %s", task.exception())
        elif task.result():
            self.server.events.publish(
                MailboxChanged(message.organisation_id, message.mailbox, time.time()))

    def _store(self, message: Message) -> bool:
        """Keep the message (a row for the WAV); False: too short, dropped."""
        duration = soundfile.info(str(message.path)).duration
        if duration < MIN_SECONDS:
            message.path.unlink()
            log.info("call %s: message for %s too short (%.1f s), dropped", message.call_id,
                     message.mailbox, duration)
            return False
        with Session(self.server.store.engine) as db:
            db.add(Voicemail(organisation_id=message.organisation_id, mailbox=message.mailbox,
                             caller=message.caller, call_id=message.call_id,
                             path=str(message.path), duration=round(duration, 2),
                             created_at=time.time()))
            db.commit()
        log.info("call %s: %.1f s message for %s stored", message.call_id, duration,
                 message.mailbox)
        return True
