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
delete, hang up).  :class:`MenuCall` is the glue: it owns the caller's
engine room, hears keys through the engine's DTMF listener, reads the WAVs
and changes the store (through :mod:`pbx.voicemail`, as the admin API
does) in worker threads, and tells the event bus so message-waiting lamps
follow.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sqlmodel import Session

from media.audiofile import AudioFileError, read_audio
from media.codecs import ENGINE_RATE
from media.prompts import MOST_SAID
from media.relay import RelayLeg
from pbx.models import Voicemail
from pbx.voicemail import discard_message, mailbox_messages, mark_heard

if TYPE_CHECKING:
    from pbx.server import SipServer

log = logging.getLogger("pbx.voicemail_menu")

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


class MenuCall:
    """A caller in the menu: their engine room, the menu, and one task that
    runs the menu's answers one after the other (keys wait their turn)."""

    def __init__(self, server: SipServer, call_id: str, media: RelayLeg, organisation: int,
                 mailbox: str, hang_up: Callable[[], None]) -> None:
        self.server = server
        self.call_id = call_id
        self.organisation = organisation
        self.mailbox = mailbox
        self.hang_up = hang_up
        self.room = f"voicemail-menu-{call_id}"
        self.menu = MailboxMenu()
        self.paths: dict[int, Path] = {}
        # keys, and the number of the play whose wait for a key ran out; None: the call ended
        self.events: asyncio.Queue[str | int | None] = asyncio.Queue()
        self.plays = 0
        self.timer: asyncio.TimerHandle | None = None
        self.closed = False
        loop = asyncio.get_running_loop()
        server.engine.join(self.room, media, tone=False, on_dtmf=self._on_digit)
        self.task = loop.create_task(self._serve())
        self.task.add_done_callback(self._served)
        log.info("call %s: voicemail menu of mailbox %s", call_id, mailbox)

    def close(self) -> None:
        """The call is over (the engine room is gone with the caller's port)."""
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
        self.events.put_nowait(None)

    def _on_digit(self, port: object, digit: str) -> None:
        self.events.put_nowait(digit)

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
            log.error("call %s: voicemail menu failed: %r", self.call_id, task.exception())
            if not self.closed:
                self.hang_up()

    def _messages(self) -> list[tuple[MessageRef, Path]]:
        with Session(self.server.store.engine) as db:
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
        audio: list[np.ndarray] = []
        ends_call = False
        pending = deque(actions)
        while pending and not self.closed:
            action = pending.popleft()
            if isinstance(action, Say):
                said = self.server.prompts.sequence(*action.prompts)
                if said is not None:
                    audio.append(said)
            elif isinstance(action, PlayMessage):
                samples = await asyncio.to_thread(self._read, action.id)
                if samples is None:
                    pending = deque(self.menu.skipped(action.id))
                    continue
                audio += [PAUSE, samples, PAUSE]
            elif isinstance(action, MarkHeard):
                await asyncio.to_thread(self._change, mark_heard, action.id)
            elif isinstance(action, Delete):
                await asyncio.to_thread(self._change, discard_message, action.id)
            else:
                ends_call = True
        if not self.closed:
            self._play(audio, ends_call)

    def _play(self, audio: list[np.ndarray], ends_call: bool) -> None:
        room = self.server.engine.rooms.get(self.room)
        samples = np.concatenate(audio).astype(np.float32) if audio else PAUSE[:0]
        if room is not None and len(samples):
            self.server.engine.play(room, samples)
        seconds = len(samples) / ENGINE_RATE
        if self.timer is not None:
            self.timer.cancel()
        loop = asyncio.get_running_loop()
        self.plays += 1
        if ends_call:
            self.timer = loop.call_later(seconds + HANG_UP_AFTER, self.hang_up)
        else:
            self.timer = loop.call_later(seconds + KEY_WAIT, self.events.put_nowait, self.plays)

    def _read(self, message_id: int) -> np.ndarray | None:
        """The message's audio at 8 kHz, or None (logged) when it cannot be played."""
        path = self.paths.get(message_id)
        if path is None:
            return None
        try:
            return read_audio(path, ENGINE_RATE)
        except (AudioFileError, OSError) as exc:
            log.error("call %s: voicemail %d of mailbox %s skipped: %s", self.call_id,
                      message_id, self.mailbox, exc)
            return None

    def _change(self, change: Callable[[Session, Voicemail], None], message_id: int) -> None:
        """Mark or delete one of this mailbox's messages (as the admin API does),
        then tell the event bus: the mailbox's lamps follow."""
        with Session(self.server.store.engine) as db:
            message = db.get(Voicemail, message_id)
            if (message is None or message.organisation_id != self.organisation
                    or message.mailbox != self.mailbox):
                return  # deleted meanwhile (through the API, from another phone)
            change(db, message)
        log.info("call %s: %s voicemail %d of mailbox %s", self.call_id, change.__name__,
                 message_id, self.mailbox)
        self.server.mailbox_changed(self.organisation, self.mailbox)
