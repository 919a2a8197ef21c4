"""The application interface: what a switchboard service sees of a call.

In the spirit of an Asterisk channel (ARI ``/channels``) and FreeSWITCH's
session API, a service (voicemail, the mailbox menu, conferences, IVRs,
queues, the softphone) is handed a :class:`Channel`, one party of a call,
and does everything through it: answer, play, listen for keys, record, put
on music, join a room, send the caller back into the dial plan, hang up.
It never sees SIP, sockets or the media engine's rooms, so it is ordinary
code, unit-tested with a fake channel and a fake clock.

Services register as destination kinds (:class:`Application`); call control
looks the kind up in a mapping it is given and never imports a service.
This module holds only types: services import it, call control implements it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

Audio = str | np.ndarray
"""What a channel plays: a system prompt's name (said in the channel's
language) or 8 kHz mono float samples (a tone, a recording)."""

KEYS = "0123456789*#ABCD"


class RoomLocked(Exception):
    """A locked conference room refused someone who is not its moderator."""


class Cancel(Protocol):
    """A handle on something pending (a timer, a dial) that can be called off."""

    def cancel(self) -> None: ...


class Dialling(Protocol):
    """A call a service placed: its id (logs, records) and a way to call it off."""

    id: str

    def cancel(self) -> None: ...


class Clock(Protocol):
    """Time for pure code and services: wall-clock ``now`` and timers.  Tests
    pass a fake one and advance it by hand."""

    def now(self) -> float: ...

    def call_later(self, seconds: float, fn: Callable[[], None]) -> Cancel: ...


@dataclass(frozen=True, slots=True)
class Party:
    """Who is on a channel, as a service needs to know it."""

    organisation: int
    number: str  # the number shown (caller ID)
    name: str = ""
    extension: str | None = None  # their own extension, when the call is internal
    dialled: str = ""  # what they dialled to get here
    diverted_from: str = ""  # the extension whose call was diverted here, if any
    diversion_reason: str = ""  # RFC 5806: user-busy, no-answer, unconditional, unavailable
    service: str = ""  # the switchboard service a call a service places comes from (a queue)
    service_name: str = ""  # its name, shown to whoever is rung ("Support")
    language: str = "en"  # of the prompts they hear


class Room(Protocol):
    """A conference room as its members' services see it."""

    number: str

    @property
    def locked(self) -> bool: ...

    def set_locked(self, locked: bool) -> None: ...

    def mute_others(self, member: Membership, muted: bool) -> None:
        """(Un)mute every member but the moderators."""

    def others_muted(self, member: Membership) -> bool: ...

    @property
    def recording(self) -> bool: ...

    def record(self, path: Path, on_done: Callable[[], None] | None = None) -> None:
        """Record the room (mono mix) until it closes."""


class Membership(Protocol):
    """A channel's place in a room."""

    room: Room
    moderator: bool

    def leave(self) -> None: ...


class Channel(Protocol):
    """One party of a call, as a service sees it."""

    id: str  # the call's id (CDR, logs)
    party: Party

    @property
    def alive(self) -> bool:
        """False once the party has hung up or been hung up on."""

    @property
    def answered(self) -> bool: ...

    def answer(self) -> bool:
        """Answer the call (200 OK to a phone) if not yet answered; False when
        it cannot be (the call ended, no common codec): the channel is gone."""

    def play(self, *audio: Audio, on_done: Callable[[], None] | None = None,
             interrupt: bool = True) -> float:
        """Play prompts and samples one after the other, replacing what plays;
        returns the seconds it lasts.  A key cuts it short when ``interrupt``;
        ``on_done`` runs when it has been heard to the end (not when cut)."""

    def stop_playing(self) -> None: ...

    def on_key(self, handler: Callable[[str], None] | None) -> None:
        """Keys the party presses (RFC 4733, SIP INFO and in-band, one stream)
        go to ``handler``; None stops listening."""

    def record(self, path: Path, on_done: Callable[[], None] | None = None) -> None:
        """Record what the party says (8 kHz mono WAV) until :meth:`stop_recording`
        or the hang-up; ``on_done`` runs once the file is complete."""

    def stop_recording(self) -> None: ...

    def music_on_hold(self, music_class: str = "default") -> None:
        """The party hears music until something else is played or joined."""

    def join(self, room: str, *, moderator: bool = False,
             listen_only: bool = False) -> Membership:
        """Put the party into conference room ``room`` (its number in the
        party's organisation); the channel's own audio stops.  Raises
        :class:`RoomLocked` when the room is locked and ``moderator`` is not set."""

    def redirect(self, number: str) -> None:
        """Send the party back into the dial plan as if they had dialled
        ``number`` (an extension, a group, another service); this service is done."""

    def hang_up(self, status: int = 200) -> None:
        """End the call: BYE when answered, else a final ``status`` answer."""

    def on_hangup(self, handler: Callable[[], None]) -> None:
        """Run ``handler`` when the call ends, whoever ends it (many may listen)."""

    def after(self, seconds: float, fn: Callable[[], None]) -> Cancel:
        """A timer that dies with the channel."""


class Monitor(Protocol):
    """A supervisor listening in on a call (Asterisk ChanSpy): ``listen`` (nobody
    hears the supervisor), ``whisper`` (only the agent does) or ``barge`` (both)."""

    mode: str

    def set_mode(self, mode: str) -> None: ...


class CallControl(Protocol):
    """What services may ask of call control beyond their own channel."""

    def dial(self, organisation: int, number: str, *, caller: Party,
             on_answer: Callable[[Channel], None], on_fail: Callable[[int], None],
             timeout: float | None = None, devices_only: bool = False) -> Dialling:
        """Ring ``number`` through the full dial plan (presence, DND, forwards);
        ``on_answer`` gets the answered party's channel, ``on_fail`` the final
        status (after ``timeout`` seconds without an answer: 480).  Cancelling
        stops the ringing.  ``devices_only``: an extension's registered phones
        and nothing else — no forwards, diversions or voicemail; DND or a
        presence profile that takes no queue calls refuses with 486 (how a
        queue offers a call to an agent)."""

    def monitor(self, supervisor: Channel, extension: str, mode: str) -> Monitor | None:
        """Put ``supervisor`` into the answered call ``extension`` (an agent) is on,
        in ``mode``; the agent notices nothing when listened to.  The supervisor
        is hung up when that call ends.  None: the extension is on no call."""

    def connect(self, a: Channel, b: Channel,
                after: Callable[[Channel], None] | None = None) -> None:
        """Make ``a`` and ``b`` one call with one record: they hear each other,
        and either hanging up ends both — unless ``after`` is given: then ``b``
        hanging up hands ``a`` (a fresh channel) to ``after`` (a survey)."""


class Application(Protocol):
    """A switchboard service: the destination kind it serves and how it starts."""

    kind: str

    def start(self, channel: Channel, ident: str) -> None:
        """``channel`` reached this service's destination ``ident`` (a mailbox,
        a room, an IVR …); the service answers it or not, and owns it from now."""
