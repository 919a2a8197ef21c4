"""The voicemail menu (Asterisk's VoiceMailMain): a phone dials the voicemail
number (``voicemail_number``, 133: what its message key dials) and listens to
its own mailbox.

The caller hears how many new and saved messages there are, then the new
ones oldest first, then the saved ones.  During and after each message:
``7`` deletes it, ``9`` saves it, ``5`` plays it again, ``#`` goes on, ``*``
goes back, ``0`` ends the call.  A message counts as heard once it plays.
With no messages the caller hears so and the PBX hangs up.

:class:`MailboxMenu` is the menu, pure: it takes the mailbox's messages,
keys and timeouts and returns actions (say, play a message, mark heard,
delete, hang up).  :class:`MenuCall` is the glue over the caller's channel
(:mod:`pbx.calls.channel`): it plays, hears keys, reads the WAVs and
changes the store (through :mod:`pbx.voicemail`, as the admin API does) in
worker threads, and tells the event bus so message-waiting lamps follow.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlmodel import Session

from media.audiofile import AudioFileError, read_audio
from media.codecs import ENGINE_RATE
from media.prompts import MOST_SAID
from pbx.calls.channel import Audio, Cancel, Channel
from pbx.directory import Directory
from pbx.events import EventBus, MailboxChanged
from pbx.models import Voicemail
from pbx.router import VOICEMAIL_MENU
from pbx.store import Store
from pbx.voicemail import discard_message, mailbox_messages, mark_heard, mailbox_of

log = logging.getLogger("ivr.mailbox_menu")

MAX_TIMEOUTS = 3  # keys asked for this many times without an answer: goodbye
KEY_WAIT = 10.0  # seconds of silence after the audio that count as a timeout
HANG_UP_AFTER = 1.0  # seconds between the last word and the BYE
PAUSE = np.zeros(ENGINE_RATE // 2, dtype=np.float32)  # around each message


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
class HangUp:
    """End the call once what is being said has been heard."""


Action = Say | PlayMessage | MarkHeard | Delete | HangUp


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


@dataclass
class MailboxMenu:
    """One caller's way through their mailbox: keys in, actions out."""

    messages: list[MessageRef] = field(default_factory=list)  # in the order they play
    at: int = 0  # the message playing, or last played
    timeouts: int = 0
    finished: bool = False

    def start(self, messages: Iterable[MessageRef]) -> list[Action]:
        """The mailbox as it is: the counts, then the first message."""
        ordered = sorted(messages, key=lambda m: (m.heard, m.created_at, m.id))
        self.messages = ordered
        new = sum(not m.heard for m in ordered)
        said = Say(announcement(new, len(ordered) - new))
        if not ordered:
            return self._end(said)
        return [said, *self._play()]

    def key(self, digit: str) -> list[Action]:
        """A key the caller pressed (during a message or after it)."""
        if self.finished:
            return []
        self.timeouts = 0
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
            return self._end(Say(("goodbye",)))
        return []

    def timeout(self) -> list[Action]:
        """Nothing pressed for a while after the audio ended: ask again, then give up."""
        if self.finished:
            return []
        self.timeouts += 1
        if self.timeouts >= MAX_TIMEOUTS:
            return self._end(Say(("goodbye",)))
        return [Say(("message_keys",))]

    def skipped(self, message_id: int) -> list[Action]:
        """The message cannot be played (its file is missing or broken): on to the next."""
        self.messages = [m for m in self.messages if m.id != message_id]
        return self._play_or_end()

    def _play_or_end(self) -> list[Action]:
        if self.at < len(self.messages):
            return self._play()
        return self._end(Say(("no_more_messages", "goodbye")))

    def _play(self) -> list[Action]:
        message = self.messages[self.at]
        actions: list[Action] = [PlayMessage(message.id), Say(("message_keys",))]
        if not message.heard:
            self.messages[self.at] = MessageRef(message.id, True, message.created_at)
            actions.append(MarkHeard(message.id))
        return actions

    def _end(self, said: Say) -> list[Action]:
        self.finished = True
        return [said, HangUp()]


# ------------------------------------------------------------------ the glue


class MailboxMenuApp:
    """The service behind the voicemail number (kind ``voicemail-menu``): the
    caller's own mailbox, found from the extension they call from."""

    kind = VOICEMAIL_MENU

    def __init__(self, directory: Directory, store: Store, events: EventBus) -> None:
        self.directory = directory
        self.store = store
        self.events = events

    def start(self, channel: Channel, ident: str) -> None:
        tenant = self.directory.tenants.get(channel.party.organisation)
        own = channel.party.extension
        ext = tenant.extensions.get(own) if tenant is not None and own else None
        if ext is None:
            channel.hang_up(404)
            return
        if channel.answer():
            MenuCall(self, channel, mailbox_of(ext))


class MenuCall:
    """A caller in the menu: the menu, and one task that runs its answers one
    after the other (keys wait their turn)."""

    def __init__(self, app: MailboxMenuApp, channel: Channel, mailbox: str) -> None:
        self.app = app
        self.channel = channel
        self.organisation = channel.party.organisation
        self.mailbox = mailbox
        self.menu = MailboxMenu()
        self.paths: dict[int, Path] = {}
        # keys, and the number of the play whose wait for a key ran out; None: the call ended
        self.events: asyncio.Queue[str | int | None] = asyncio.Queue()
        self.plays = 0
        self.timer: Cancel | None = None
        channel.on_key(self.events.put_nowait)
        channel.on_hangup(lambda: self.events.put_nowait(None))
        self.task = asyncio.get_running_loop().create_task(self._serve())
        self.task.add_done_callback(self._served)
        log.info("call %s: voicemail menu of mailbox %s", channel.id, mailbox)

    async def _serve(self) -> None:
        found = await asyncio.to_thread(self._messages)
        self.paths = {ref.id: path for ref, path in found}
        await self._run(self.menu.start(ref for ref, _ in found))
        while (event := await self.events.get()) is not None:
            if isinstance(event, str):
                await self._run(self.menu.key(event))
            elif event == self.plays:  # else a key came first and something new plays
                await self._run(self.menu.timeout())

    def _served(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("call %s: voicemail menu failed: %r", self.channel.id, task.exception())
            self.channel.hang_up()

    def _messages(self) -> list[tuple[MessageRef, Path]]:
        with Session(self.app.store.engine) as db:
            rows = mailbox_messages(db, self.organisation, self.mailbox)
            return [(MessageRef(m.id, m.heard, m.created_at), Path(m.path))
                    for m in rows if m.id is not None]

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
            elif isinstance(action, PlayMessage):
                samples = await asyncio.to_thread(self._read, action.id)
                if samples is None:
                    pending = deque(self.menu.skipped(action.id))
                    continue
                audio += [PAUSE, samples, PAUSE]
            elif isinstance(action, MarkHeard | Delete):
                change = mark_heard if isinstance(action, MarkHeard) else discard_message
                if await asyncio.to_thread(self._change, change, action.id):
                    self.app.events.publish(MailboxChanged(self.organisation, self.mailbox,
                                                           time.time()))
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

    def _read(self, message_id: int) -> np.ndarray | None:
        """The message's audio at 8 kHz, or None (logged) when it cannot be played."""
        path = self.paths.get(message_id)
        if path is None:
            return None
        try:
            return read_audio(path, ENGINE_RATE)
        except (AudioFileError, OSError) as exc:
            log.error("call %s: voicemail %d of mailbox %s skipped: %s", self.channel.id,
                      message_id, self.mailbox, exc)
            return None

    def _change(self, change: Callable[[Session, Voicemail], None], message_id: int) -> bool:
        """Mark or delete one of this mailbox's messages (as the admin API does);
        False when it is gone meanwhile (the API, another phone).  The caller
        tells the event bus: the mailbox's lamps follow."""
        with Session(self.app.store.engine) as db:
            message = db.get(Voicemail, message_id)
            if (message is None or message.organisation_id != self.organisation
                    or message.mailbox != self.mailbox):
                return False
            change(db, message)
        log.info("call %s: %s voicemail %d of mailbox %s", self.channel.id, change.__name__,
                 message_id, self.mailbox)
        return True
