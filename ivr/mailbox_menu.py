"""The voicemail menu (Asterisk's VoiceMailMain): a phone dials the voicemail
number (``voicemail_number``, 133: what its message key dials) and listens to
its own mailbox; any phone dials ``voicemail_main`` (``*98``) and keys in a
mailbox number and its PIN.

The caller hears how many new and saved messages there are, then the new
ones oldest first, then the saved ones.  During and after each message:
``7`` deletes it, ``9`` saves it, ``5`` plays it again, ``#`` goes on, ``*``
goes back, ``0`` opens the mailbox options.  A message counts as heard once
it plays.  After the last message (or in an empty mailbox) ``0`` opens the
options, and ``2`` the next shared mailbox the caller is member of ("press 2
for the shared mailbox <its recorded name>"); otherwise, goodbye.

The mailbox options (Asterisk's ``0``): ``1`` records the unavailable
greeting, ``2`` the busy greeting, ``3`` the name, ``4`` a temporary greeting
(after the number of days it plays), ``5`` changes the PIN (twice, to be
sure); ``*`` goes back to the messages.  A recording ends with ``#`` or after
:data:`GREETING_SECONDS`; silence around it is cut off.

A PIN is asked when the menu is reached from another phone (``*98``), and
from one's own phone when the mailbox says so (``pin_from_own_device``).
Three wrong PINs: goodbye.  Every wrong one is logged.

:class:`MailboxMenu` is the menu, pure: it takes keys, timeouts and what the
store answered (a PIN checked, a mailbox's messages, a greeting saved) and
returns actions (say, play a message, mark heard, delete, check a PIN,
record a greeting, hang up).  :class:`MenuCall` is the glue over the
caller's channel (:mod:`pbx.calls.channel`): it plays, hears keys, reads the
WAVs, records greetings and changes the store (through :mod:`pbx.voicemail`,
as the admin API does) in worker threads, and tells the event bus so
message-waiting lamps follow.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlmodel import Session

from media.audiofile import AudioFileError, read_audio
from media.codecs import ENGINE_RATE
from media.prompts import MOST_SAID
from media.say import say_digits
from media.tones import beep
from pbx.calls.channel import Audio, Cancel, Channel
from pbx.directory import Directory, Tenant
from pbx.events import EventBus, MailboxChanged
from pbx.models import Greeting, Voicemail
from pbx.router import VOICEMAIL_MENU
from pbx.store import Store
from pbx.voicemail import (
    discard_message, greeting_path, greetings_of, lamp_mailboxes, mailbox_messages,
    mailbox_of, mailbox_settings, mark_heard, pin_matches, safe_name, save_greeting, set_pin,
)

log = logging.getLogger("ivr.mailbox_menu")

MAX_TIMEOUTS = 3  # keys asked for this many times without an answer: goodbye
MAX_PIN_TRIES = 3  # wrong PINs before the PBX hangs up
KEY_WAIT = 10.0  # seconds of silence after the audio that count as a timeout
HANG_UP_AFTER = 1.0  # seconds between the last word and the BYE
PAUSE = np.zeros(ENGINE_RATE // 2, dtype=np.float32)  # around each message
TONE = beep(1000.0, 0.4)  # "speak after the tone"
GREETING_SECONDS = 60.0  # a greeting recording stops by itself after this long
MIN_GREETING = 0.5  # seconds of sound a greeting needs to be kept
MAX_DIGITS = 40  # keyed in at once (a mailbox number)
MAX_DAYS = 365  # a temporary greeting plays at most this long
PIN_LENGTHS = range(4, 13)
KEYS = ("message_options", "mailbox_options_key")  # said after each message
RECORDED_KINDS = {"1": "unavailable", "2": "busy", "3": "name"}


# ------------------------------------------------------------------ the menu (pure)


@dataclass(frozen=True, slots=True)
class MessageRef:
    """What the menu knows of a message: which it is, whether it was heard, its age."""

    id: int
    heard: bool
    created_at: float


@dataclass(frozen=True, slots=True)
class Say:
    """System prompts, one after the other."""

    prompts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SayName:
    """A mailbox's recorded name, or its number digit by digit."""

    mailbox: str


@dataclass(frozen=True, slots=True)
class PlayMessage:
    """The message's recording.  The actions after it in the same answer
    belong to it (the keys prompt, marking it heard): when the message cannot
    be played they are dropped and :meth:`MailboxMenu.skipped` says what next."""

    id: int


@dataclass(frozen=True, slots=True)
class MarkHeard:
    id: int


@dataclass(frozen=True, slots=True)
class Delete:
    id: int


@dataclass(frozen=True, slots=True)
class CheckPin:
    """Is ``pin`` the PIN of ``mailbox``?  The answer is :meth:`MailboxMenu.pin_checked`."""

    mailbox: str
    pin: str


@dataclass(frozen=True, slots=True)
class OpenMailbox:
    """Read ``mailbox``'s messages; they go to :meth:`MailboxMenu.start`."""

    mailbox: str


@dataclass(frozen=True, slots=True)
class RecordGreeting:
    """Say "speak after the tone", the tone, then record the current mailbox's
    greeting of ``kind`` (a temporary one for ``days``); the outcome goes to
    :meth:`MailboxMenu.recorded`."""

    kind: str
    days: int = 0


@dataclass(frozen=True, slots=True)
class StopRecording:
    """``#``: the greeting is complete."""


@dataclass(frozen=True, slots=True)
class SetPin:
    """Keep ``pin`` as the current mailbox's new PIN."""

    pin: str


@dataclass(frozen=True, slots=True)
class HangUp:
    """End the call once what is being said has been heard."""


Action = (Say | SayName | PlayMessage | MarkHeard | Delete | CheckPin | OpenMailbox
          | RecordGreeting | StopRecording | SetPin | HangUp)


def counted(n: int) -> tuple[str, ...]:
    """The prompts that say a count: ``number_1`` … ``number_20``, then "more than twenty"."""
    return (f"number_{n}",) if n <= MOST_SAID else ("more_than_twenty",)


def announcement(new: int, saved: int) -> tuple[str, ...]:
    """"You have two new messages and one saved message", as prompt names."""
    if not new and not saved:
        return ("no_messages",)
    said: list[str] = ["you_have"]
    if new:
        said += [*counted(new), "new_message" if new == 1 else "new_messages"]
    if new and saved:
        said.append("and")
    if saved:
        said += [*counted(saved), "saved_message" if saved == 1 else "saved_messages"]
    return tuple(said)


# what each way of keying digits in asks, and says again after a silence
_ASKED = {"mailbox": ("enter_mailbox",), "pin": ("enter_your_pin",),
          "days": ("temporary_greeting_days",), "new_pin": ("enter_new_pin",),
          "confirm_pin": ("confirm_new_pin",)}


@dataclass
class MailboxMenu:
    """One caller's way through their mailboxes: keys in, actions out.

    ``mode`` is where the caller is: keying in a ``mailbox`` number or a
    ``pin`` (then ``checking`` it), in the ``messages``, at the ``end`` of a
    mailbox, in the ``options``, keying in the ``days`` of a temporary
    greeting, ``recording`` one, keying a ``new_pin`` and ``confirm_pin``."""

    mailboxes: tuple[str, ...] = ()  # the caller's own (or logged-in) mailbox, then shared ones
    box: int = 0  # the one open
    messages: list[MessageRef] = field(default_factory=list)  # in the order they play
    at: int = 0  # the message playing, or last played
    mode: str = "messages"
    digits: list[str] = field(default_factory=list)
    login: str = ""  # the mailbox whose PIN is asked
    remote: bool = False  # reached from another phone: the mailbox number is asked too
    tries: int = 0  # wrong PINs so far
    new_pin: str = ""
    timeouts: int = 0
    finished: bool = False

    # ------------------------------------------------------------ getting in

    def ask_mailbox(self) -> list[Action]:
        """From another phone: which mailbox?"""
        self.remote = True
        return self._ask("mailbox")

    def ask_pin(self, mailbox: str) -> list[Action]:
        """From one's own phone, when the mailbox wants its PIN there too."""
        self.login = mailbox
        return self._ask("pin")

    def pin_checked(self, right: bool, mailboxes: Sequence[str] = ()) -> list[Action]:
        """The store's verdict on a PIN; ``mailboxes`` are what it opens (the
        mailbox, then the shared ones its extension is member of)."""
        if right:
            return self.open(mailboxes)
        self.tries += 1
        if self.tries >= MAX_PIN_TRIES:
            return self._end(Say(("wrong_pin", "goodbye")))
        return [Say(("wrong_pin",)), *self._ask("mailbox" if self.remote else "pin")]

    def open(self, mailboxes: Sequence[str]) -> list[Action]:
        """In: the first mailbox's messages are read."""
        self.mailboxes, self.box = tuple(mailboxes), 0
        return [OpenMailbox(self.mailboxes[0])]

    def start(self, messages: Iterable[MessageRef]) -> list[Action]:
        """The open mailbox as it is: the counts, then the first message."""
        ordered = sorted(messages, key=lambda m: (m.heard, m.created_at, m.id))
        self.messages, self.at, self.mode = ordered, 0, "messages"
        new = sum(not m.heard for m in ordered)
        said = announcement(new, len(ordered) - new)
        if not ordered:
            return self._end_of_mailbox(said)
        return [Say(said), *self._play()]

    @property
    def mailbox(self) -> str:
        """The mailbox open (or being logged in to)."""
        return self.mailboxes[self.box] if self.mailboxes else self.login

    # ------------------------------------------------------------ keys and silence

    def key(self, digit: str) -> list[Action]:
        """A key the caller pressed (during what plays, or after it)."""
        if self.finished or self.mode == "checking":
            return []
        self.timeouts = 0
        if self.mode in _ASKED:
            return self._digit(digit)
        if self.mode == "recording":
            return [StopRecording()] if digit == "#" else []
        if self.mode == "options":
            return self._option(digit)
        if self.mode == "end":
            return self._at_end(digit)
        return self._message_key(digit)

    def timeout(self) -> list[Action]:
        """Nothing pressed for a while after the audio ended: what was keyed in
        counts; else ask again, then give up (at the end of a mailbox at once)."""
        if self.finished or self.mode in ("checking", "recording"):
            return []
        if self.mode in _ASKED and self.digits:
            return self._digit("#")
        self.timeouts += 1
        if self.timeouts >= MAX_TIMEOUTS or self.mode == "end":
            return self._end(Say(("goodbye",)))
        if self.mode in _ASKED:
            return [Say(_ASKED[self.mode])]
        return [Say(("greeting_menu",) if self.mode == "options" else KEYS)]

    def skipped(self, message_id: int) -> list[Action]:
        """The message cannot be played (its file is missing or broken): on to the next."""
        self.messages = [m for m in self.messages if m.id != message_id]
        return self._play_or_end()

    def recorded(self, saved: bool) -> list[Action]:
        """The greeting is stored (or was nothing but silence): back to the options."""
        self.mode = "options"
        return [Say(("greeting_saved", "greeting_menu") if saved else ("greeting_menu",))]

    # ------------------------------------------------------------ the parts

    def _message_key(self, digit: str) -> list[Action]:
        if digit == "7":
            gone = self.messages.pop(self.at)
            return [Delete(gone.id), Say(("message_deleted",)), *self._play_or_end()]
        if digit == "9":
            self.at += 1
            return [Say(("message_saved",)), *self._play_or_end()]
        if digit == "#":
            self.at += 1
            return self._play_or_end()
        if digit == "5":
            return self._play()
        if digit == "*":
            self.at = max(0, self.at - 1)
            return self._play()
        if digit == "0":
            return self._options()
        return []

    def _at_end(self, digit: str) -> list[Action]:
        if digit == "0":
            return self._options()
        if digit == "2" and self.box + 1 < len(self.mailboxes):
            self.box += 1
            return [OpenMailbox(self.mailbox)]
        if digit == "*" and self.messages:
            self.at, self.mode = len(self.messages) - 1, "messages"
            return self._play()
        return []

    def _options(self) -> list[Action]:
        self.mode = "options"
        return [Say(("greeting_menu",))]

    def _option(self, digit: str) -> list[Action]:
        if digit in RECORDED_KINDS:
            self.mode = "recording"
            return [RecordGreeting(RECORDED_KINDS[digit])]
        if digit == "4":
            return self._ask("days")
        if digit == "5":
            return self._ask("new_pin")
        if digit == "*":
            self.mode = "messages"
            return self._play_or_end()
        return []

    def _ask(self, mode: str) -> list[Action]:
        self.mode, self.digits = mode, []
        return [Say(_ASKED[mode])]

    def _digit(self, digit: str) -> list[Action]:
        """Digits keyed in, ``#`` ends them (``*`` in the options' entries: back)."""
        if digit == "*" and self.mode in ("days", "new_pin", "confirm_pin"):
            return self._options()
        if digit != "#":
            if digit.isdigit() and len(self.digits) < MAX_DIGITS:
                self.digits.append(digit)
            return []
        entered, self.digits = "".join(self.digits), []
        if self.mode == "mailbox":
            if not entered:
                return self._ask("mailbox")
            self.login = entered
            return self._ask("pin")
        if self.mode == "pin":
            self.mode = "checking"
            return [CheckPin(self.login, entered)]
        if self.mode == "days":
            if not entered or not 1 <= int(entered) <= MAX_DAYS:
                return [Say(("invalid_option",)), *self._ask("days")]
            self.mode = "recording"
            return [RecordGreeting("temporary", int(entered))]
        if self.mode == "new_pin":
            if len(entered) not in PIN_LENGTHS:
                return [Say(("pin_rules",)), *self._ask("new_pin")]
            self.new_pin = entered
            return self._ask("confirm_pin")
        if entered != self.new_pin:
            return [Say(("wrong_pin",)), *self._ask("new_pin")]
        self.mode = "options"
        return [SetPin(entered), Say(("pin_changed", "greeting_menu"))]

    def _play_or_end(self) -> list[Action]:
        if self.at < len(self.messages):
            return self._play()
        return self._end_of_mailbox(("no_more_messages",))

    def _end_of_mailbox(self, said: tuple[str, ...]) -> list[Action]:
        """No (more) messages: the options key, and the next shared mailbox, if any."""
        self.mode = "end"
        actions: list[Action] = [Say((*said, "mailbox_options_key"))]
        if self.box + 1 < len(self.mailboxes):
            actions += [Say(("shared_mailbox_key",)), SayName(self.mailboxes[self.box + 1])]
        return actions

    def _play(self) -> list[Action]:
        self.mode = "messages"
        message = self.messages[self.at]
        actions: list[Action] = [PlayMessage(message.id), Say(KEYS)]
        if not message.heard:
            self.messages[self.at] = MessageRef(message.id, True, message.created_at)
            actions.append(MarkHeard(message.id))
        return actions

    def _end(self, said: Say) -> list[Action]:
        self.finished = True
        return [said, HangUp()]


def trim_silence(samples: np.ndarray, level: float = 300.0) -> np.ndarray:
    """A recording without the silence before and after the voice (the wait for
    the first word, the pause before ``#`` or the time limit): whole 20 ms
    frames whose RMS stays under ``level`` (of int16) go."""
    frames = len(samples) // 160
    if not frames:
        return samples[:0]
    blocks = samples[: frames * 160].astype(np.float64).reshape(frames, 160)
    voiced = np.flatnonzero(np.sqrt((blocks**2).mean(axis=1)) >= level)
    if not len(voiced):
        return samples[:0]
    return samples[voiced[0] * 160: (voiced[-1] + 1) * 160]


# ------------------------------------------------------------------ the glue


class MailboxMenuApp:
    """The service behind the voicemail numbers (kind ``voicemail-menu``): with
    an ident (``voicemail_number``), the caller's own mailbox, found from the
    extension they call from; without (``voicemail_main``), the mailbox and
    PIN they key in."""

    kind = VOICEMAIL_MENU

    def __init__(self, directory: Directory, store: Store, events: EventBus,
                 data_dir: Path) -> None:
        self.directory = directory
        self.store = store
        self.events = events
        self.data_dir = data_dir

    def start(self, channel: Channel, ident: str) -> None:
        tenant = self.directory.tenants.get(channel.party.organisation)
        own = channel.party.extension
        ext = tenant.extensions.get(own) if tenant is not None and own else None
        if tenant is None or (ident and ext is None):
            channel.hang_up(404)
            return
        if channel.answer():
            MenuCall(self, channel, mailbox_of(ext) if ext is not None and ident else None)


@dataclass(eq=False)
class Recorded:
    """A greeting recording is complete (the queue's event for it)."""

    path: Path
    kind: str
    days: int


class MenuCall:
    """A caller in the menu: the menu, and one task that runs its answers one
    after the other (keys wait their turn).  ``own`` is the mailbox of the
    phone's own extension (None: reached from elsewhere, the caller says which)."""

    def __init__(self, app: MailboxMenuApp, channel: Channel, own: str | None) -> None:
        self.app = app
        self.channel = channel
        self.organisation = channel.party.organisation
        self.own = own
        self.menu = MailboxMenu()
        self.paths: dict[int, Path] = {}
        # keys, the number of the play whose wait for a key ran out, a finished
        # greeting recording; None: the call ended
        self.events: asyncio.Queue[str | int | Recorded | None] = asyncio.Queue()
        self.plays = 0
        self.timer: Cancel | None = None
        channel.on_key(self.events.put_nowait)
        channel.on_hangup(lambda: self.events.put_nowait(None))
        self.task = asyncio.get_running_loop().create_task(self._serve())
        self.task.add_done_callback(self._served)
        log.info("call %s: voicemail menu %s", channel.id,
                 f"of mailbox {own}" if own else "(mailbox and PIN asked)")

    @property
    def tenant(self) -> Tenant | None:
        return self.app.directory.tenants.get(self.organisation)

    async def _serve(self) -> None:
        if self.own is None:
            first = self.menu.ask_mailbox()
        elif await asyncio.to_thread(self._pin_wanted, self.own):
            first = self.menu.ask_pin(self.own)
        else:
            first = self.menu.open(self._mailboxes(self.own))
        await self._run(first)
        while (event := await self.events.get()) is not None:
            if isinstance(event, str):
                await self._run(self.menu.key(event))
            elif isinstance(event, Recorded):
                saved = await asyncio.to_thread(self._save_greeting, event)
                await self._run(self.menu.recorded(saved))
            elif event == self.plays:  # else a key came first and something new plays
                await self._run(self.menu.timeout())

    def _served(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("call %s: voicemail menu failed: %r", self.channel.id, task.exception())
            self.channel.hang_up()

    async def _run(self, actions: list[Action]) -> None:
        """Carry out one answer of the menu: store changes as they come, all the
        audio as one play (a key pressed meanwhile cuts it short).  No answer (a
        key that means nothing, or the call is ending): what plays and the
        timers stay as they are."""
        if not actions:
            return
        audio: list[Audio] = []
        ends_call = False
        pending = deque(actions)
        while pending and self.channel.alive:
            action = pending.popleft()
            if isinstance(action, Say):
                audio += action.prompts
            elif isinstance(action, SayName):
                name = await asyncio.to_thread(self._name, action.mailbox)
                audio += [name] if name is not None else say_digits(action.mailbox)
            elif isinstance(action, PlayMessage):
                samples = await asyncio.to_thread(self._read, action.id)
                if samples is None:
                    pending = deque(self.menu.skipped(action.id))
                    continue
                audio += [PAUSE, samples, PAUSE]
            elif isinstance(action, MarkHeard | Delete):
                change = mark_heard if isinstance(action, MarkHeard) else discard_message
                mailbox = self.menu.mailbox
                if await asyncio.to_thread(self._change, change, mailbox, action.id):
                    self.app.events.publish(MailboxChanged(self.organisation, mailbox,
                                                           time.time()))
            elif isinstance(action, CheckPin):
                right, mailboxes = await asyncio.to_thread(self._check_pin, action)
                pending = deque(self.menu.pin_checked(right, mailboxes))
            elif isinstance(action, OpenMailbox):
                found = await asyncio.to_thread(self._messages, action.mailbox)
                self.paths = {ref.id: path for ref, path in found}
                pending = deque(self.menu.start(ref for ref, _ in found))
            elif isinstance(action, RecordGreeting):
                self._record(audio, action)
                return
            elif isinstance(action, StopRecording):
                self.channel.stop_recording()
                return
            elif isinstance(action, SetPin):
                await asyncio.to_thread(self._set_pin, action.pin)
            else:
                ends_call = True
        if self.channel.alive:
            self._play(audio, ends_call)

    def _play(self, audio: list[Audio], ends_call: bool) -> None:
        seconds = self.channel.play(*audio)
        if self.timer is not None:
            self.timer.cancel()
        self.plays += 1
        if ends_call:
            self.timer = self.channel.after(seconds + HANG_UP_AFTER, self.channel.hang_up)
        else:
            plays = self.plays
            self.timer = self.channel.after(seconds + KEY_WAIT,
                                            lambda: self.events.put_nowait(plays))

    def _record(self, audio: list[Audio], action: RecordGreeting) -> None:
        """"Speak after the tone", the tone, then record until ``#`` (the menu's
        :class:`StopRecording`) or :data:`GREETING_SECONDS`."""
        if self.timer is not None:
            self.timer.cancel()
        self.plays += 1  # a wait for a key that runs out now means nothing
        mailbox = self.menu.mailbox
        path = greeting_path(self.app.data_dir, self.organisation, mailbox, action.kind)
        recording = path.with_name(f".recording-{safe_name(self.channel.id)}.wav")
        done = Recorded(recording, action.kind, action.days)

        def record() -> None:
            self.channel.record(recording, on_done=lambda: self.events.put_nowait(done))
            self.timer = self.channel.after(GREETING_SECONDS, self.channel.stop_recording)

        self.channel.play(*audio, "record_after_tone", PAUSE, TONE, on_done=record,
                          interrupt=False)

    # ------------------------------------------------------------ the store (worker threads)

    def _pin_wanted(self, mailbox: str) -> bool:
        """Does the mailbox want its PIN from its own phone too (and has it one)?"""
        with Session(self.app.store.engine) as db:
            settings = mailbox_settings(db, self.organisation, mailbox)
        return settings.pin_from_own_device and bool(settings.pin_hash)

    def _mailboxes(self, mailbox: str) -> tuple[str, ...]:
        """What logging in to ``mailbox`` opens: it, then the shared mailboxes its
        extension is member of (a shared mailbox: itself)."""
        tenant = self.tenant
        if tenant is None:
            return (mailbox,)
        owner = next((e for e in tenant.extensions.values() if mailbox_of(e) == mailbox), None)
        return lamp_mailboxes(tenant.mailboxes, owner) if owner is not None else (mailbox,)

    def _check_pin(self, check: CheckPin) -> tuple[bool, tuple[str, ...]]:
        """Is the PIN right for a mailbox of the organisation?  Every wrong one is
        logged; an unknown mailbox (or one without a PIN) is wrong the same way."""
        tenant = self.tenant
        known = tenant is not None and (check.mailbox in tenant.mailboxes or any(
            mailbox_of(e) == check.mailbox for e in tenant.extensions.values()))
        with Session(self.app.store.engine) as db:
            right = known and pin_matches(mailbox_settings(db, self.organisation,
                                                           check.mailbox), check.pin)
        if not right:
            log.warning("call %s: wrong PIN for mailbox %s from %s (%d of %d)",
                        self.channel.id, check.mailbox, self.channel.party.number,
                        self.menu.tries + 1, MAX_PIN_TRIES)
            return False, ()
        log.info("call %s: PIN of mailbox %s accepted", self.channel.id, check.mailbox)
        return True, self._mailboxes(check.mailbox)

    def _messages(self, mailbox: str) -> list[tuple[MessageRef, Path]]:
        with Session(self.app.store.engine) as db:
            rows = mailbox_messages(db, self.organisation, mailbox)
            return [(MessageRef(m.id, m.heard, m.created_at), Path(m.path))
                    for m in rows if m.id is not None]

    def _name(self, mailbox: str) -> np.ndarray | None:
        """The mailbox's recorded name, if it has one that plays."""
        with Session(self.app.store.engine) as db:
            name = next((g for g in greetings_of(db, self.organisation, mailbox)
                         if g.kind == "name"), None)
        if name is None:
            return None
        try:
            return read_audio(Path(name.path), ENGINE_RATE).astype(np.float32)
        except AudioFileError as exc:
            log.error("name of mailbox %s cannot be played: %s", mailbox, exc)
            return None

    def _read(self, message_id: int) -> np.ndarray | None:
        """The message's audio at 8 kHz, or None (logged) when it cannot be played."""
        path = self.paths.get(message_id)
        if path is None:
            return None
        try:
            return read_audio(path, ENGINE_RATE)
        except (AudioFileError, OSError) as exc:
            log.error("call %s: voicemail %d of mailbox %s skipped: %s", self.channel.id,
                      message_id, self.menu.mailbox, exc)
            return None

    def _change(self, change: Callable[[Session, Voicemail], None], mailbox: str,
                message_id: int) -> bool:
        """Mark or delete one of this mailbox's messages (as the admin API does);
        False when it is gone meanwhile (the API, another phone).  The caller
        tells the event bus: the mailbox's lamps follow."""
        with Session(self.app.store.engine) as db:
            message = db.get(Voicemail, message_id)
            if (message is None or message.organisation_id != self.organisation
                    or message.mailbox != mailbox):
                return False
            change(db, message)
        log.info("call %s: %s voicemail %d of mailbox %s", self.channel.id, change.__name__,
                 message_id, mailbox)
        return True

    def _save_greeting(self, done: Recorded) -> bool:
        """Keep a recorded greeting without the silence around it; False (and
        nothing kept) when nothing was said."""
        try:
            samples = trim_silence(read_audio(done.path, ENGINE_RATE))
        except AudioFileError as exc:
            log.info("call %s: greeting recording unusable: %s", self.channel.id, exc)
            samples = np.zeros(0, dtype=np.int16)
        finally:
            done.path.unlink(missing_ok=True)
        mailbox = self.menu.mailbox
        if len(samples) < MIN_GREETING * ENGINE_RATE:
            log.info("call %s: %s greeting of %s not kept: nothing said", self.channel.id,
                     done.kind, mailbox)
            return False
        now = time.time()
        seconds = round(len(samples) / ENGINE_RATE, 2)
        greeting = Greeting(organisation_id=self.organisation, mailbox=mailbox, kind=done.kind,
                            path="", seconds=seconds, created_at=now,
                            expires_at=now + done.days * 86400 if done.days else None)
        path = greeting_path(self.app.data_dir, self.organisation, mailbox, done.kind)
        with Session(self.app.store.engine) as db:
            save_greeting(db, path, samples, greeting)
        log.info("call %s: %s greeting of %s recorded (%.1f s)", self.channel.id, done.kind,
                 mailbox, seconds)
        return True

    def _set_pin(self, pin: str) -> None:
        mailbox = self.menu.mailbox
        with Session(self.app.store.engine) as db:
            set_pin(db, mailbox_settings(db, self.organisation, mailbox), pin)
        log.info("call %s: PIN of mailbox %s changed by phone", self.channel.id, mailbox)
