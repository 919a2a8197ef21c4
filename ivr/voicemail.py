"""Voicemail, the caller's side: a caller who reaches a mailbox hears the
greeting and a tone, then speaks until they hang up (or :data:`MAX_SECONDS`).

A service on the application interface (:mod:`pbx.calls.channel`): it
answers the channel, plays, records, and stores a
:class:`~pbx.models.Voicemail` row once the recording is complete, then
tells the event bus (message-waiting lamps, voicemail-to-email).  It never
sees SIP or the media engine.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
from sqlmodel import Session

from media.tones import beep
from pbx.calls.channel import Channel
from pbx.directory import Directory
from pbx.events import EventBus, MailboxChanged, VoicemailLeft
from pbx.models import Voicemail
from pbx.profiles import VOICEMAIL
from pbx.store import Store
from pbx.tasks import Tasks
from pbx.voicemail import mailbox_of

log = logging.getLogger("ivr.voicemail")

MAX_SECONDS = 180.0
MIN_SECONDS = 1.0  # shorter: the caller hung up at the tone; nothing is kept
TONE = beep(1000.0, 0.4)
PAUSE = np.zeros(2400, dtype=np.float32)  # 0.3 s between the prompt and the tone
_UNSAFE = re.compile(r"[^0-9A-Za-z_.+-]")


@dataclass(eq=False)
class Message:
    """A message being left: whose, from whom, and where it is recorded."""

    call_id: str
    organisation_id: int
    mailbox: str
    caller: str
    path: Path


class VoicemailApp:
    """Takes messages for mailboxes (destination kind ``voicemail``, ident: the extension)."""

    kind = VOICEMAIL

    def __init__(self, directory: Directory, store: Store, data_dir: Path,
                 events: EventBus) -> None:
        self.directory = directory
        self.store = store
        self.data_dir = data_dir
        self.events = events
        self.tasks = Tasks(log, "storing a voicemail message")

    def start(self, channel: Channel, ident: str) -> None:
        """Greet the caller and record them after the tone."""
        tenant = self.directory.tenants.get(channel.party.organisation)
        ext = tenant.extensions.get(ident) if tenant is not None else None
        if ext is None:
            channel.hang_up(404)
            return
        if not channel.answer():
            return
        mailbox = mailbox_of(ext)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = (self.data_dir / "voicemail" / str(ext.organisation_id) / _UNSAFE.sub("_", mailbox)
                / f"{stamp}-{_UNSAFE.sub('_', channel.id)}.wav")
        message = Message(channel.id, ext.organisation_id, mailbox, channel.party.number, path)
        log.info("call %s: voicemail for %s from %s", channel.id, mailbox, message.caller)

        def record() -> None:
            channel.record(path, on_done=lambda: self._keep(message))
            channel.after(MAX_SECONDS, channel.hang_up)

        channel.play("leave_message", PAUSE, TONE, on_done=record, interrupt=False)

    def _keep(self, message: Message) -> None:
        """The recording is complete: store it off the loop, then tell the bus."""
        if message.path.exists():
            self.tasks.thread(self._store, message, then=lambda stored: self._stored(stored, message))

    def _stored(self, stored: tuple[int, float] | None, message: Message) -> None:
        """Tell the bus: the mailbox's lamps, its emails."""
        if stored is None:
            return
        row_id, duration = stored
        now = time.time()
        self.events.publish(MailboxChanged(message.organisation_id, message.mailbox, now))
        self.events.publish(VoicemailLeft(message.organisation_id, message.mailbox, row_id,
                                          message.caller, duration, now))

    def _store(self, message: Message) -> tuple[int, float] | None:
        """Keep the message (a row for the WAV): its id and length; None: too
        short, dropped."""
        duration = soundfile.info(str(message.path)).duration
        if duration < MIN_SECONDS:
            message.path.unlink()
            log.info("call %s: message for %s too short (%.1f s), dropped", message.call_id,
                     message.mailbox, duration)
            return None
        with Session(self.store.engine) as db:
            row = Voicemail(organisation_id=message.organisation_id, mailbox=message.mailbox,
                            caller=message.caller, call_id=message.call_id,
                            path=str(message.path), duration=round(duration, 2),
                            created_at=time.time())
            db.add(row)
            db.commit()
            db.refresh(row)
        log.info("call %s: %.1f s message for %s stored", message.call_id, duration,
                 message.mailbox)
        assert row.id is not None
        return row.id, round(duration, 2)
