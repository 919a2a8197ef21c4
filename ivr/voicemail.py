"""Voicemail, the caller's side: a caller who reaches a mailbox hears its
greeting and their options (:mod:`ivr.voicemail_greeting`), then the tone,
and speaks until they hang up (or :data:`MAX_SECONDS`).  On the way they may press
``#`` (straight to the tone), ``0`` (the operator), ``1`` on a busy greeting
(wait until the extension is free, then it rings again) or ``2`` (leave a
number to be called back on, kept as a message that says it).

A service on the application interface (:mod:`pbx.calls.channel`): it
answers the channel, plays, records, and stores a
:class:`~pbx.models.Voicemail` row once the recording is complete, then
tells the event bus (message-waiting lamps, voicemail-to-email).  Greetings
and settings are read in a worker thread; it never sees SIP or the media
engine.  Whether an extension is in a call (camp-on) is asked of
``line_busy``, which the node wires to call control's live calls.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
from sqlmodel import Session

from ivr.voicemail_greeting import (
    BUSY, Action, AskCallback, CallerOptions, CampOn, Greet, KeepCallback, LeaveMessage,
    Redirect, choose_greeting, default_greeting,
)
from ivr.voicemail_mail import queue_voicemail_email
from media.audiofile import AudioFileError, read_audio
from media.prompts import PromptLibrary
from media.say import say_digits
from media.tones import beep
from pbx.calls.channel import Cancel, Channel
from pbx.directory import Directory
from pbx.events import CallEnded, Event, EventBus, MailboxChanged, VoicemailLeft
from pbx.models import Voicemail
from pbx.profiles import VOICEMAIL
from pbx.store import Store
from pbx.tasks import Tasks
from pbx.voicemail import RATE, greetings_of, mailbox_of, mailbox_settings, safe_name

log = logging.getLogger("ivr.voicemail")

MAX_SECONDS = 180.0
MIN_SECONDS = 1.0  # shorter: the caller hung up at the tone; nothing is kept
KEY_WAIT = 10.0  # seconds without a key while a call-back number is keyed in
TONE = beep(1000.0, 0.4)
PAUSE = np.zeros(2400, dtype=np.float32)  # 0.3 s between the prompt and the tone

LineBusy = Callable[[int, str], bool]  # (organisation, extension) → in a call now?


@dataclass(eq=False)
class Message:
    """A message being left: whose, from whom, and where it is recorded."""

    call_id: str
    organisation_id: int
    mailbox: str
    caller: str
    path: Path
    callback_number: str = ""  # a call-back request: the number, said in the WAV


@dataclass(frozen=True, slots=True)
class Box:
    """What a caller hears of a mailbox, read off the loop: the recorded greeting
    chosen (None: the spoken default), the recorded name, where ``0`` leads."""

    greeting: np.ndarray | None
    name: np.ndarray | None
    operator: str


class VoicemailApp:
    """Takes messages for mailboxes (destination kind ``voicemail``, ident: the
    extension, or a shared mailbox's number)."""

    kind = VOICEMAIL

    def __init__(self, directory: Directory, store: Store, data_dir: Path, events: EventBus,
                 prompts: Callable[[], PromptLibrary], *, operator: str = "",
                 camp_on_timeout: float = 300.0, line_busy: LineBusy | None = None) -> None:
        self.directory = directory
        self.store = store
        self.data_dir = data_dir
        self.events = events
        self.prompts = prompts
        self.operator = operator  # [general] operator: where 0 leads unless the mailbox says
        self.camp_on_timeout = camp_on_timeout  # 0: camp-on is not offered
        self.line_busy = line_busy
        self.tasks = Tasks(log, "voicemail work")
        self.waiting: dict[int, set[Caller]] = {}  # organisation → callers camped on
        events.subscribe(self._on_event)

    def start(self, channel: Channel, ident: str) -> None:
        """Answer, then greet the caller (once the mailbox is read)."""
        tenant = self.directory.tenants.get(channel.party.organisation)
        ext = tenant.extensions.get(ident) if tenant is not None else None
        if tenant is None or (ext is None and ident not in tenant.mailboxes):
            channel.hang_up(404)
            return
        if channel.answer():
            Caller(self, channel, tenant.id, mailbox_of(ext) if ext else ident,
                   ext.number if ext else None)

    def can_camp_on(self, organisation: int, extension: str | None, reason: str) -> bool:
        """Camp-on is offered on a busy greeting while the extension is in a call
        (not for DND, which no hang-up ends)."""
        return (reason == BUSY and extension is not None and self.camp_on_timeout > 0
                and self.line_busy is not None and self.line_busy(organisation, extension))

    def _on_event(self, event: Event) -> None:
        """A call ended: the callers camped on an extension it freed ring it again."""
        if not isinstance(event, CallEnded) or not self.waiting.get(event.organisation):
            return
        assert self.line_busy is not None
        for caller in list(self.waiting[event.organisation]):
            options = caller.options
            if options is not None and not self.line_busy(event.organisation, options.camp_on):
                caller.run(options.free())

    def message_path(self, organisation: int, mailbox: str, call_id: str,
                     suffix: str = "") -> Path:
        """Where a new message goes: ``voicemail/<organisation>/<mailbox>/<time>-<call>.wav``."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return (self.data_dir / "voicemail" / str(organisation) / safe_name(mailbox)
                / f"{stamp}-{safe_name(call_id)}{suffix}.wav")

    # ------------------------------------------------------------ storing (worker threads)

    def keep(self, message: Message) -> None:
        """The recording is complete: store it off the loop, then tell the bus."""
        if message.path.exists():
            self.tasks.thread(self._store, message, then=lambda stored: self._stored(stored,
                                                                                     message))

    def keep_callback(self, message: Message, language: str) -> None:
        """A call-back request: a short WAV saying the number, and the row."""
        self.tasks.thread(self._store_callback, message, language,
                          then=lambda stored: self._stored(stored, message))

    def _stored(self, stored: tuple[int, float] | None, message: Message) -> None:
        """Tell the bus: the mailbox's lamps, its emails."""
        if stored is None:
            return
        row_id, duration = stored
        now = time.time()
        self.events.publish(MailboxChanged(message.organisation_id, message.mailbox, now))
        self.events.publish(VoicemailLeft(message.organisation_id, message.mailbox, row_id,
                                          message.caller, duration, now))

    def _store_callback(self, message: Message, language: str) -> tuple[int, float] | None:
        """"Please call back on" and the digits, from the prompts (the menu plays it,
        an email attaches it)."""
        said = self.prompts().sequence("call_back_on", *say_digits(message.callback_number),
                                       language=language)
        if said is None:  # no prompts rendered: the number is in the row all the same
            log.warning("call %s: no prompts to say the call-back number", message.call_id)
            said = np.zeros(RATE // 2, dtype=np.float32)
        message.path.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(message.path, np.clip(said, -32768, 32767).astype(np.int16), RATE,
                        subtype="PCM_16")
        return self._store(message)

    def _store(self, message: Message) -> tuple[int, float] | None:
        """Keep the message (a row for the WAV): its id and length; None: too
        short, dropped (a call-back request never is)."""
        duration = soundfile.info(str(message.path)).duration
        if duration < MIN_SECONDS and not message.callback_number:
            message.path.unlink()
            log.info("call %s: message for %s too short (%.1f s), dropped", message.call_id,
                     message.mailbox, duration)
            return None
        with Session(self.store.engine) as db:
            row = Voicemail(organisation_id=message.organisation_id, mailbox=message.mailbox,
                            caller=message.caller, call_id=message.call_id,
                            path=str(message.path), duration=round(duration, 2),
                            created_at=time.time(), callback_number=message.callback_number)
            db.add(row)
            queue_voicemail_email(db, row)  # in this transaction: no message without its emails
            db.commit()
            db.refresh(row)
        log.info("call %s: %.1f s %s for %s stored", message.call_id, duration,
                 "call-back request" if message.callback_number else "message", message.mailbox)
        assert row.id is not None
        return row.id, round(duration, 2)

    def read_box(self, organisation: int, mailbox: str, reason: str, now: float) -> Box:
        """The greeting to play at ``now`` for a call diverted for ``reason``, the
        name, the operator (a file that cannot be read: the default, logged)."""
        with Session(self.store.engine) as db:
            recorded = {g.kind: g for g in greetings_of(db, organisation, mailbox)}
            operator = mailbox_settings(db, organisation, mailbox).operator
        kind = choose_greeting({k: g.expires_at for k, g in recorded.items()}, reason, now)
        name = recorded.get("name")
        return Box(_audio(recorded[kind].path) if kind else None,
                   _audio(name.path) if name else None, operator)


def _audio(path: str) -> np.ndarray | None:
    try:
        return read_audio(Path(path), RATE).astype(np.float32)
    except AudioFileError as exc:
        log.error("greeting %s cannot be played, the default is said: %s", path, exc)
        return None


class Caller:
    """A caller at a mailbox: their options, and what the channel does for them."""

    def __init__(self, app: VoicemailApp, channel: Channel, organisation: int, mailbox: str,
                 extension: str | None) -> None:
        self.app = app
        self.channel = channel
        self.organisation = organisation
        self.mailbox = mailbox
        self.extension = extension  # the mailbox's extension (None: a shared mailbox)
        self.options: CallerOptions | None = None  # once the mailbox is read
        self.timer: Cancel | None = None
        reason = channel.party.diversion_reason
        log.info("call %s: voicemail for %s from %s (%s)", channel.id, mailbox,
                 channel.party.number, reason or "dialled")
        channel.on_key(self._key)
        channel.on_hangup(self._gone)
        app.tasks.thread(app.read_box, organisation, mailbox, reason, time.time(),
                         then=self._greet)

    def _greet(self, box: Box) -> None:
        if not self.channel.alive:
            return
        reason = self.channel.party.diversion_reason
        waits_for = self.extension if self.app.can_camp_on(self.organisation, self.extension,
                                                             reason) else None
        self.options = options = CallerOptions(operator=box.operator or self.app.operator,
                                               camp_on=waits_for or "")
        greeting = ((box.greeting,) if box.greeting is not None
                    else default_greeting(reason, self.extension, box.name))
        self.run(options.start(greeting))

    def _key(self, digit: str) -> None:
        options = self.options
        if options is None:  # the greeting is still being read
            return
        actions = options.key(digit)
        if options.stage == "callback":
            self._wait_for_keys()
        self.run(actions)

    def run(self, actions: list[Action]) -> None:
        """Carry out what the options machine decided."""
        channel, options = self.channel, self.options
        assert options is not None
        for action in actions:
            if isinstance(action, Greet):
                channel.play(*action.audio, on_done=lambda: self.run(options.greeted()))
            elif isinstance(action, LeaveMessage):
                self._stop_waiting()
                channel.play(*action.said, PAUSE, TONE, on_done=self._record, interrupt=False)
            elif isinstance(action, Redirect):
                self._stop_waiting()
                log.info("call %s: leaves voicemail of %s for %s", channel.id, self.mailbox,
                         action.number)
                channel.redirect(action.number)
            elif isinstance(action, CampOn):
                self._camp_on(action.extension)
            elif isinstance(action, AskCallback):
                channel.play("enter_callback_number", on_done=self._wait_for_keys)
            elif isinstance(action, KeepCallback):
                self._keep_callback(action.number)

    def _camp_on(self, extension: str) -> None:
        """Music until the extension is free (a call of it ends) or the wait is over."""
        log.info("call %s: waits for %s (camp-on)", self.channel.id, extension)
        self.channel.music_on_hold()
        self.app.waiting.setdefault(self.organisation, set()).add(self)
        options = self.options
        assert options is not None and self.app.line_busy is not None
        self.timer = self.channel.after(self.app.camp_on_timeout,
                                        lambda: self.run(options.gave_up()))
        if not self.app.line_busy(self.organisation, extension):
            self.run(options.free())  # it hung up before the key

    def _stop_waiting(self) -> None:
        waiting = self.app.waiting.get(self.organisation)
        if waiting is not None:
            waiting.discard(self)
            if not waiting:
                del self.app.waiting[self.organisation]
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _wait_for_keys(self) -> None:
        """(Re)start the wait for the next key of the call-back number."""
        if self.timer is not None:
            self.timer.cancel()
        options = self.options
        assert options is not None
        self.timer = self.channel.after(KEY_WAIT, lambda: self.run(options.timeout()))

    def _message(self, suffix: str = "", callback_number: str = "") -> Message:
        path = self.app.message_path(self.organisation, self.mailbox, self.channel.id, suffix)
        return Message(self.channel.id, self.organisation, self.mailbox,
                       self.channel.party.number, path, callback_number)

    def _record(self) -> None:
        message = self._message()
        self.channel.record(message.path, on_done=lambda: self.app.keep(message))
        self.channel.after(MAX_SECONDS, self.channel.hang_up)

    def _keep_callback(self, number: str) -> None:
        self._stop_waiting()
        log.info("call %s: %s asks %s to call back on %s", self.channel.id,
                 self.channel.party.number, self.mailbox, number)
        self.app.keep_callback(self._message("-callback", number), self.channel.party.language)
        self.channel.play("callback_number_saved", on_done=self.channel.hang_up,
                          interrupt=False)

    def _gone(self) -> None:
        self._stop_waiting()
