"""The concrete :class:`~pbx.calls.channel.Channel`: one leg of a call as a
service holds it.

While a service holds it the leg's port sits in a ``private`` engine room of
its own, where prompts play and the recorder listens; music on hold and
conferences are other rooms it moves to.  Keys arrive from the engine (RFC
4733 and in-band) and from SIP INFO through the port's DTMF listener, so a
service sees one stream.  Timers die with the channel.  What only call
control can do (answer, send back into the dial plan, hang up) goes to its
:class:`ChannelHost`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from media.engine import MediaEngine, Member, MixPort
from media.prompts import PromptLibrary

from pbx.calls.channel import Audio, Cancel, Clock, Party, RoomLocked
from pbx.calls.model import Leg, LegState

log = logging.getLogger("pbx.calls")

PRIVATE_ROOM = "private"
CONFERENCE_ROOM = "conference"
RATE = 8000


class ChannelHost(Protocol):
    """What a channel asks of call control."""

    def answer_channel(self, channel: LegChannel) -> bool: ...

    def redirect_channel(self, channel: LegChannel, number: str) -> None: ...

    def hang_up_channel(self, channel: LegChannel, status: int) -> None: ...


class _Timer:
    """A channel's timer: it does nothing once the channel is gone."""

    def __init__(self, channel: LegChannel, seconds: float, fn: Callable[[], None]) -> None:
        self.fn = fn
        self.channel = channel
        self.handle = channel.clock.call_later(seconds, self._fire)

    def _fire(self) -> None:
        self.channel._timers.discard(self)
        if self.channel.alive:
            self.fn()

    def cancel(self) -> None:
        self.handle.cancel()
        self.channel._timers.discard(self)


class EngineRoom:
    """A conference room of the engine, as its members' services see it."""

    def __init__(self, engine: MediaEngine, key: str, number: str) -> None:
        self.engine = engine
        self.key = key
        self.number = number

    def _state(self):  # type: ignore[no-untyped-def]
        return self.engine.rooms.get(self.key)

    @property
    def locked(self) -> bool:
        state = self._state()
        return bool(state and state.locked)

    def set_locked(self, locked: bool) -> None:
        state = self._state()
        if state is not None:
            state.locked = locked
            log.info("room %s: %s", self.key, "locked" if locked else "unlocked")

    def _others(self) -> list[Member]:
        state = self._state()
        return [m for m in state.members if not m.moderator] if state is not None else []

    def mute_others(self, member: LegMembership, muted: bool) -> None:
        for other in self._others():
            self.engine.set_muted(other.port, muted)
        log.info("room %s: moderator %s the participants", self.key,
                 "muted" if muted else "unmuted")

    def others_muted(self, member: LegMembership) -> bool:
        others = self._others()
        return bool(others) and all(m.muted for m in others)

    @property
    def recording(self) -> bool:
        state = self._state()
        return bool(state and state.recorder is not None)

    def record(self, path: Path, on_done: Callable[[], None] | None = None) -> None:
        state = self._state()
        if state is not None and state.recorder is None:
            self.engine.record(state, path, on_done=on_done)
            log.info("room %s: recording to %s", self.key, path)


class LegMembership:
    """A channel's place in a conference room."""

    def __init__(self, channel: LegChannel, room: EngineRoom, moderator: bool) -> None:
        self.channel = channel
        self.room = room
        self.moderator = moderator

    def leave(self) -> None:
        if self.channel._membership is self:
            self.channel._leave_rooms()


class LegChannel:
    """A leg held by a service (voicemail, an IVR, a queue …)."""

    def __init__(self, host: ChannelHost, leg: Leg, party: Party, engine: MediaEngine,
                 prompts: PromptLibrary, clock: Clock, room_key: Callable[[str], str]) -> None:
        self.host = host
        self.leg = leg
        self.id = leg.call.id
        self.party = party
        self.engine = engine
        self.prompts = prompts
        self.clock = clock
        self.room_key = room_key  # a room number → the engine's name for it
        self.service = ""  # the kind:ident that holds it, for the call's record
        self.gone = False
        self._port: MixPort | None = None
        self._private: str | None = None
        self._membership: LegMembership | None = None
        self._key: Callable[[str], None] | None = None
        self._play_timer: _Timer | None = None
        self._interrupt = True
        self._timers: set[_Timer] = set()
        self._hangup: list[Callable[[], None]] = []
        leg.channel = self

    # ------------------------------------------------------------ state

    @property
    def alive(self) -> bool:
        return not self.gone and not self.leg.call.ended

    @property
    def answered(self) -> bool:
        return self.leg.state is LegState.ANSWERED

    def answer(self) -> bool:
        if not self.alive:
            return False
        return self.answered or self.host.answer_channel(self)

    # ------------------------------------------------------------ audio

    def _room(self):  # type: ignore[no-untyped-def]
        """The channel's private room, joined when first needed."""
        media = self.leg.media
        assert media is not None
        if self._private is None or self._port is None or media.peer is not self._port:
            self._leave_rooms()
            self._private = f"{PRIVATE_ROOM}-{self.id}-{id(self)}"
            previous = self._port
            self._port = self.engine.join(self._private, media, tone=False, kind=PRIVATE_ROOM,
                                          on_dtmf=self._dtmf)
            if previous is not None:
                self._port.follow(previous)
        return self.engine.rooms[self._private]

    def _leave_rooms(self) -> None:
        media = self.leg.media
        self._cancel_play()
        if media is not None and isinstance(media.peer, MixPort):
            self.engine.stop_music(media)  # leaves every room, music included
        self._private = None
        self._membership = None

    def play(self, *audio: Audio, on_done: Callable[[], None] | None = None,
             interrupt: bool = True) -> float:
        self.stop_playing()
        parts = [self._samples(a) for a in audio]
        samples = np.concatenate([p for p in parts if p is not None] or [np.zeros(0, np.float32)])
        room = self._room()
        if len(samples):
            self.engine.play(room, samples.astype(np.float32, copy=False))
        seconds = len(samples) / RATE
        self._interrupt = interrupt

        def finished() -> None:
            self._play_timer = None
            if on_done is not None:
                on_done()

        self._play_timer = self.after(seconds, finished)
        return seconds

    def _samples(self, audio: Audio) -> np.ndarray | None:
        if not isinstance(audio, str):
            return audio
        samples = self.prompts.get(audio, self.party.language)
        if samples is None:
            samples = self.prompts.get(audio)  # the node's language: better than silence
        return samples

    def _cancel_play(self) -> None:
        if self._play_timer is not None:
            self._play_timer.cancel()
            self._play_timer = None

    def stop_playing(self) -> None:
        self._cancel_play()
        if self._private is not None and self._private in self.engine.rooms:
            self.engine.silence(self.engine.rooms[self._private])

    def on_key(self, handler: Callable[[str], None] | None) -> None:
        self._key = handler
        if handler is not None and self._port is None:
            self._room()  # keys need the port in the engine

    def key(self, digit: str) -> None:
        """A key the party pressed (the engine's listener, or SIP INFO)."""
        if not self.alive:
            return
        if self._play_timer is not None and self._interrupt:
            self.stop_playing()
        if self._key is not None:
            self._key(digit)

    def _dtmf(self, port: MixPort, digit: str) -> None:
        self.key(digit)

    def record(self, path: Path, on_done: Callable[[], None] | None = None) -> None:
        self.engine.record(self._room(), path, on_done=on_done)

    def stop_recording(self) -> None:
        if self._private is not None and self._private in self.engine.rooms:
            self.engine.stop_recording(self.engine.rooms[self._private])

    def adopt(self, port: MixPort) -> None:
        """Call control put the leg into a room of its own making (a supervisor
        listening in): the channel's own rooms are left, its keys still arrive."""
        self._port = port

    def leave_rooms(self) -> None:
        self._leave_rooms()

    def dtmf_listener(self) -> Callable[[MixPort, str], None]:
        return self._dtmf

    def music_on_hold(self, music_class: str = "default") -> None:
        media = self.leg.media
        assert media is not None
        self._leave_rooms()
        previous = self._port
        self._port = self.engine.hold_music(media, music_class, on_dtmf=self._dtmf)
        if previous is not None:
            self._port.follow(previous)

    def join(self, room: str, *, moderator: bool = False,
             listen_only: bool = False) -> LegMembership:
        media = self.leg.media
        assert media is not None
        key = self.room_key(room)
        state = self.engine.rooms.get(key)
        if state is not None and state.locked and not moderator:
            raise RoomLocked(room)
        self._leave_rooms()
        previous = self._port
        self._port = self.engine.join(key, media, listen_only=listen_only, on_dtmf=self._dtmf,
                                      kind=CONFERENCE_ROOM)
        if previous is not None:
            self._port.follow(previous)  # the key that got them in is not news here
        member = self.engine.rooms[key].member(self._port)
        assert member is not None
        member.moderator = moderator
        self._membership = LegMembership(self, EngineRoom(self.engine, key, room), moderator)
        return self._membership

    # ------------------------------------------------------------ the call

    def redirect(self, number: str) -> None:
        if not self.alive:
            return
        self.release()
        self.host.redirect_channel(self, number)

    def hang_up(self, status: int = 200) -> None:
        if self.alive:
            self.host.hang_up_channel(self, status)

    def on_hangup(self, handler: Callable[[], None]) -> None:
        self._hangup.append(handler)

    def after(self, seconds: float, fn: Callable[[], None]) -> Cancel:
        timer = _Timer(self, seconds, fn)
        self._timers.add(timer)
        return timer

    def release(self) -> None:
        """The service lets go (the call goes elsewhere): its timers, keys and
        listeners go; the port leaves the service's rooms when it is bridged."""
        self.gone = True
        self._cancel_play()
        for timer in list(self._timers):
            timer.cancel()
        self._key = None
        self._hangup.clear()
        if self.leg.channel is self:
            self.leg.channel = None

    def ended(self) -> None:
        """The call is over: the service hears it, then lets go."""
        if self.gone:
            return
        self.gone = True
        self.stop_recording()  # the file is complete before anyone reads it
        handlers = list(self._hangup)
        self.release()
        for handler in handlers:
            try:
                handler()
            except Exception:
                log.exception("call %s: hang-up listener failed", self.id)
