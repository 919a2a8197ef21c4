"""In-memory stand-ins for tests of services and call control: a clock moved
by hand and a channel that records what a service did to it.  They implement
the protocols of :mod:`pbx.calls.channel`, so a service under test cannot
tell them from the real thing, and no test sleeps or opens a socket."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pbx.calls.channel import Audio, Party

PROMPT_SECONDS = 1.0  # how long a fake channel says any named prompt


class FakeTimer:
    """A pending callback of :class:`FakeClock`."""

    def __init__(self, at: float, fn: Callable[[], None]) -> None:
        self.at = at
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """Wall-clock time that moves only when a test calls :meth:`advance`."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self._now = now
        self._heap: list[tuple[float, int, FakeTimer]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    def call_later(self, seconds: float, fn: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(self._now + max(0.0, seconds), fn)
        heapq.heappush(self._heap, (timer.at, next(self._order), timer))
        return timer

    def advance(self, seconds: float) -> None:
        """Move time on, running every timer that falls due, in order."""
        until = self._now + seconds
        while self._heap and self._heap[0][0] <= until:
            at, _, timer = heapq.heappop(self._heap)
            self._now = max(self._now, at)
            if not timer.cancelled:
                timer.fn()
        self._now = until

    def jump(self, at: float) -> None:
        """Set the time to ``at`` (a day under test), running timers due by then."""
        self.advance(max(0.0, at - self._now))
        self._now = at

    def pending(self) -> int:
        """Timers still to run (cancelled ones do not count)."""
        return sum(not t.cancelled for _, _, t in self._heap)


@dataclass
class FakeRoom:
    """A conference room of fake channels."""

    number: str
    members: list[FakeMembership] = field(default_factory=list)
    locked_: bool = False
    recorded_to: Path | None = None

    @property
    def locked(self) -> bool:
        return self.locked_

    def set_locked(self, locked: bool) -> None:
        self.locked_ = locked

    def mute_others(self, member: FakeMembership, muted: bool) -> None:
        for other in self.members:
            if not other.moderator:
                other.muted = muted

    def others_muted(self, member: FakeMembership) -> bool:
        others = [m for m in self.members if not m.moderator]
        return bool(others) and all(m.muted for m in others)

    @property
    def recording(self) -> bool:
        return self.recorded_to is not None

    def record(self, path: Path, on_done: Callable[[], None] | None = None) -> None:
        self.recorded_to = path


@dataclass(eq=False)
class FakeMembership:
    room: FakeRoom
    moderator: bool
    listen_only: bool = False
    muted: bool = False

    def leave(self) -> None:
        if self in self.room.members:
            self.room.members.remove(self)


class FakeChannel:
    """A caller as a service sees it; the test plays the caller's part with
    :meth:`press` and :meth:`caller_hangs_up` and reads what happened."""

    def __init__(self, clock: FakeClock, party: Party | None = None, call_id: str = "c1",
                 rooms: dict[str, FakeRoom] | None = None) -> None:
        self.id = call_id
        self.party = party or Party(organisation=1, number="1001", extension="1001")
        self.clock = clock
        self.rooms = rooms if rooms is not None else {}
        self.answered_ = False
        self.ended: int | None = None  # the status it ended with (200 = hung up normally)
        self.played: list[tuple[Audio, ...]] = []  # every play, in order
        self.playing: tuple[Audio, ...] | None = None
        self.recording: Path | None = None
        self.recordings: list[Path] = []
        self.music: str | None = None
        self.membership: FakeMembership | None = None
        self.redirected: str | None = None
        self._key: Callable[[str], None] | None = None
        self._play_timer: FakeTimer | None = None
        self._interrupt = True
        self._record_done: Callable[[], None] | None = None
        self._hangup: list[Callable[[], None]] = []
        self._timers: list[FakeTimer] = []

    # ------------------------------------------------------------ the Channel protocol

    @property
    def alive(self) -> bool:
        return self.ended is None and self.redirected is None

    @property
    def answered(self) -> bool:
        return self.answered_

    def answer(self) -> bool:
        if self.ended is not None:
            return False
        self.answered_ = True
        return True

    def play(self, *audio: Audio, on_done: Callable[[], None] | None = None,
             interrupt: bool = True) -> float:
        self.stop_playing()
        self.music = None
        seconds = sum(PROMPT_SECONDS if isinstance(a, str) else len(a) / 8000 for a in audio)
        self.played.append(audio)
        self.playing = audio
        self._interrupt = interrupt

        def done() -> None:
            self.playing = None
            self._play_timer = None
            if on_done is not None:
                on_done()

        self._play_timer = self.after(seconds, done)
        return seconds

    def stop_playing(self) -> None:
        if self._play_timer is not None:
            self._play_timer.cancel()
            self._play_timer = None
        self.playing = None

    def on_key(self, handler: Callable[[str], None] | None) -> None:
        self._key = handler

    def record(self, path: Path, on_done: Callable[[], None] | None = None) -> None:
        self.recording = path
        self.recordings.append(path)
        self._record_done = on_done

    def stop_recording(self) -> None:
        if self.recording is not None:
            self.recording = None
            done, self._record_done = self._record_done, None
            if done is not None:
                done()

    def music_on_hold(self, music_class: str = "default") -> None:
        self.stop_playing()
        self.music = music_class

    def join(self, room: str, *, moderator: bool = False,
             listen_only: bool = False) -> FakeMembership:
        self.stop_playing()
        target = self.rooms.setdefault(room, FakeRoom(room))
        self.membership = FakeMembership(target, moderator, listen_only)
        target.members.append(self.membership)
        return self.membership

    def redirect(self, number: str) -> None:
        self._finish()
        self.redirected = number

    def hang_up(self, status: int = 200) -> None:
        if self.ended is None and self.redirected is None:
            self.ended = status
            self._finish()
            for handler in list(self._hangup):
                handler()

    def on_hangup(self, handler: Callable[[], None]) -> None:
        self._hangup.append(handler)

    def after(self, seconds: float, fn: Callable[[], None]) -> FakeTimer:
        def run() -> None:
            if self.alive:
                fn()

        timer = self.clock.call_later(seconds, run)
        self._timers.append(timer)
        return timer

    # ------------------------------------------------------------ the test's side

    def press(self, *keys: str) -> None:
        """The caller presses keys (a key cuts an interruptible play short)."""
        for key in keys:
            if not self.alive:
                return
            if self.playing is not None and self._interrupt:
                self.stop_playing()
            if self._key is not None:
                self._key(key)

    def caller_hangs_up(self) -> None:
        self.hang_up(200)

    def said(self) -> list[str]:
        """Every prompt name played so far, flattened (samples show as ``<audio>``)."""
        return [a if isinstance(a, str) else "<audio>" for play in self.played for a in play]

    def _finish(self) -> None:
        self.stop_playing()
        if self.recording is not None:
            self.stop_recording()
        if self.membership is not None:
            self.membership.leave()
        for timer in self._timers:
            timer.cancel()
        self._key = None


def tone(seconds: float) -> np.ndarray:
    """Samples of a given length (what a service plays that is not a prompt)."""
    return np.zeros(int(seconds * 8000), dtype=np.float32)
