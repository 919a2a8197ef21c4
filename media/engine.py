"""The media engine: one 20 ms tick mixes every conference channel at once.

A relay leg whose call is in a conference is not bridged to another leg:
its packets go to a :class:`MixPort` (the leg's ``peer``), which keeps them
in a small jitter buffer.  Every tick the engine takes one frame from every
port into a ``(channels, 160)`` array (G.711 decoded by table lookup, lost
frames concealed), mixes — who hears whom is the matrix ``M``: N−1 mixing
in a room, muted and listen-only members, gains — adds the tone players,
clips to int16, encodes and sends each row back out of its leg.  Recorders
write the room mix.  No per-sample Python anywhere.

``M`` is applied in the cheapest form that gives the same result: a
two-party room is a swap (``out[a] = in[b]``, ``out[b] = in[a]``), a larger
room without whispers is everyone's sum minus one's own, and only rooms
with a whispering supervisor are multiplied by a matrix.  That layout, the
index arrays and the ``(channels, 160)`` buffers are built when someone
joins, leaves or is muted, and reused by every tick until then.

Callers on hold (G.711) are not rows of the mix: they hear nobody and nobody
hears them.  Each music class's frame is encoded once a tick (µ-law and
A-law) and that payload goes to every one of its listeners, only the RTP
header being each leg's own (:class:`_Hold`); going on and off hold is a
dict operation, not a new layout.  Their packets are still taken every tick,
for the keys they press in the audio.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sparse
import soundfile

from media.audiofile import SUFFIXES, AudioFileError, read_audio
from media.codecs import ENGINE_RATE, WIDEBAND, WidebandChannel
from media.dtmf import DtmfDetector
from media.g711 import ALAW_DECODE, ALAW_ENCODE, ULAW_DECODE, ULAW_ENCODE
from media.relay import RelayLeg
from media.tones import JOIN_TONE, LEAVE_TONE

log = logging.getLogger("media.engine")

FRAME = 160  # samples per 20 ms at 8 kHz
TICK = 0.020
JITTER_DEPTH = 2  # frames buffered before a port starts playing
CONCEAL_FRAMES = 3  # lost frames repeated (fading) before silence
STALL_FRAMES = 50  # a second without packets: the port drops out of the mix
DTMF_EVENTS = "0123456789*#ABCD"
_HEADER = struct.Struct("!BBHII")
_SPARSE_ABOVE = 48  # channels: a dense matrix is cheaper below this
BIG_ROOM = 2  # members: above this a room is mixed as sum-minus-own; two are a swap
_ULAW_IN = ULAW_DECODE.astype(np.float32)  # decoded straight into the float mix
_ALAW_IN = ALAW_DECODE.astype(np.float32)
_SAMPLES = np.arange(FRAME)


@dataclass(eq=False)
class MixPort:
    """The engine side of one relay leg."""

    leg: RelayLeg
    on_dtmf: Callable[[MixPort, str], None] | None = None
    peer: object = None  # the relay's bridge slot (unused: the engine is our peer)
    buffer: dict[int, bytes] = field(default_factory=dict)
    next_seq: int | None = None
    idle: int = 0
    index: int = -1  # row in the engine's frame arrays (set when the tick is laid out)
    wide: WidebandChannel | None = None  # G.722 / Opus codec state, None for G.711
    _dtmf_ts: int = -1

    def __post_init__(self) -> None:
        self.follow_codec()

    def follow_codec(self) -> None:
        """Speak the codec the leg's phone agreed on last (a re-INVITE may change it);
        wideband codec state is kept while the codec stays the same."""
        codec = getattr(self.leg, "codec", "PCMU").upper()
        if self.wide is None or self.wide.name.upper() != codec:
            self.wide = _wideband(codec)

    def relay_from(
        self, src: RelayLeg, data: bytes, start: int, end: int, pt: int, seq: int, ts: int,
        ssrc: int, now: float,
    ) -> None:
        """Called by the relay leg for every accepted packet."""
        if pt == src.dtmf_pt:
            self._telephone_event(data[start:end], ts)
            return
        if len(self.buffer) < 32:
            self.buffer[seq] = data[start:end]

    def _telephone_event(self, payload: bytes, ts: int) -> None:
        """RFC 4733: report a digit once, on its first end packet."""
        if len(payload) < 4 or not payload[1] & 0x80 or ts == self._dtmf_ts:
            return
        self._dtmf_ts = ts
        if payload[0] < len(DTMF_EVENTS) and self.on_dtmf is not None:
            self.on_dtmf(self, DTMF_EVENTS[payload[0]])

    def follow(self, previous: MixPort) -> None:
        """Take over from the leg's previous port: its last DTMF event is not new here."""
        self._dtmf_ts = previous._dtmf_ts

    def take(self) -> bytes | None:
        """This tick's payload, or None (lost, not yet started, or stalled)."""
        seq = self.next_seq
        if seq is not None:  # the common case first: the expected packet is there
            payload = self.buffer.pop(seq, None)
            if payload is not None:
                self.next_seq = (seq + 1) & 0xFFFF
                self.idle = 0
                return payload
        return self._take_late()

    def _take_late(self) -> bytes | None:
        """Not started, a gap, a late packet, a restarted sequence, or a stall."""
        if self.next_seq is None:
            if len(self.buffer) < JITTER_DEPTH:
                return None
            self.next_seq = _earliest(self.buffer)
        payload = self.buffer.pop(self.next_seq, None)
        if payload is None:
            if not self.buffer:
                # underrun: the packet is late, not lost; wait for it (and conceal)
                self.idle += 1
                if self.idle > STALL_FRAMES:
                    self.next_seq = None  # re-buffer when packets come back
                return None
            # far behind (the phone restarted its sequence)? jump to what we have
            ahead = [(s - self.next_seq) & 0xFFFF for s in self.buffer]
            if min(ahead) > 8:
                self.next_seq = _earliest(self.buffer)
                payload = self.buffer.pop(self.next_seq)
        self.next_seq = (self.next_seq + 1) & 0xFFFF
        if payload is None:
            self.idle += 1
            if self.idle > STALL_FRAMES:
                self.next_seq = None  # re-buffer when packets come back
                self.buffer.clear()
        else:
            self.idle = 0
        return payload

    def send(self, payload: bytes, now: float) -> None:
        """One frame of the mix to the phone, continuing the leg's own stream.

        ``now`` is the tick's time, read once for all ports: it is when the
        frame was mixed, which is what RTCP relates the RTP timestamp to.
        """
        leg = self.leg
        to = leg.send_to
        if to is None or leg.held or leg.transport is None:
            return
        leg.out_seq = (leg.out_seq + 1) & 0xFFFF
        leg.out_ts = (leg.out_ts + (self.wide.clock_step if self.wide else FRAME)) & 0xFFFFFFFF
        leg.out_at = now
        leg.transport.sendto(
            _HEADER.pack(0x80, leg.payload_type, leg.out_seq, leg.out_ts, leg.ssrc) + payload, to
        )
        leg.packets_out += 1
        leg.bytes_out += len(payload)


def _wideband(codec: str) -> WidebandChannel | None:
    """G.722 or Opus codec state, None for G.711 (RTP codec names ignore case, RFC 4855 §3)."""
    name = next((name for name in WIDEBAND if name.upper() == codec.upper()), None)
    return WidebandChannel(name) if name is not None else None


def _earliest(seqs: dict[int, bytes]) -> int:
    """The first of some 16-bit sequence numbers, across a wrap (65535 before 0)."""
    ref = next(iter(seqs))
    return min(seqs, key=lambda s: ((s - ref + 0x8000) & 0xFFFF) - 0x8000)


@dataclass(eq=False)
class Member:
    """One participant's place in the mix.

    A supervisor is a member too: ``listen_only`` to listen, ``whisper_to``
    the agent's port to be heard by the agent alone, neither to barge in.
    """

    port: MixPort
    muted: bool = False
    listen_only: bool = False
    gain: float = 1.0
    whisper_to: MixPort | None = None
    moderator: bool = False


@dataclass(eq=False)
class Room:
    """A conference: everyone hears everyone else, never themselves."""

    name: str
    members: list[Member] = field(default_factory=list)
    locked: bool = False
    recorder: soundfile.SoundFile | None = None
    recorded: Callable[[], None] | None = None  # called once the recording's file is closed
    stereo: tuple[MixPort, MixPort] | None = None  # a call recording: left, right
    tone: np.ndarray | None = None  # samples still to play to the whole room
    tone_at: int = 0
    kind: str = "conference"  # conference, call (two parties), private (a service's), hold

    def member(self, port: MixPort) -> Member | None:
        return next((m for m in self.members if m.port is port), None)


def default_music(seconds: float = 16.0) -> np.ndarray:
    """Gentle generated music for hold when no files are configured: slow arpeggios."""
    notes = [261.63, 329.63, 392.0, 523.25, 392.0, 329.63, 293.66, 349.23, 440.0, 349.23]
    per_note = int(8000 * seconds / len(notes))
    t = np.arange(per_note) / 8000
    envelope = np.exp(-3 * t) * np.minimum(1, t * 200)
    melody = [np.sin(2 * np.pi * f * t) * envelope for f in notes]
    return (np.concatenate(melody) * 5000).astype(np.int16)


@dataclass(eq=False)
class MusicClass:
    """Music on hold: one shared playback position, so every held caller of the
    class hears the same frame and it costs one slice per tick, not per caller."""

    name: str
    samples: np.ndarray  # int16 at 8 kHz
    files: dict[str, float] = field(default_factory=dict)  # what plays: file → seconds
    skipped: dict[str, str] = field(default_factory=dict)  # files that cannot play → why
    cursor: int = 0
    tick: int = -1
    current: np.ndarray = field(default_factory=lambda: np.zeros(FRAME, dtype=np.int16))

    def __post_init__(self) -> None:
        if len(self.samples) < FRAME:  # a blip of a file still fills whole frames
            self.samples = np.resize(self.samples, FRAME)

    @classmethod
    def from_folder(cls, name: str, folder: Path) -> MusicClass:
        """The audio files of ``folder`` in name order, or generated music when there
        are none; a file that cannot play is named in the log and in ``skipped``."""
        parts: list[np.ndarray] = []
        files: dict[str, float] = {}
        skipped: dict[str, str] = {}
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            if path.suffix.lower() not in SUFFIXES or not path.is_file():
                continue
            try:
                samples = read_audio(path, ENGINE_RATE)
            except AudioFileError as exc:
                log.error("music on hold %s: %s (skipped)", name, exc)
                skipped[path.name] = exc.reason
                continue
            parts.append(samples)
            files[path.name] = len(samples) / ENGINE_RATE
        samples = np.concatenate(parts) if parts else default_music()
        return cls(name, samples, files, skipped)

    def frame(self, tick: int) -> np.ndarray:
        if tick != self.tick:
            self.tick = tick
            end = self.cursor + FRAME
            chunk = self.samples[self.cursor : end]
            if len(chunk) < FRAME:
                chunk = np.concatenate([chunk, self.samples[: FRAME - len(chunk)]])
            self.cursor = end % len(self.samples)
            self.current = chunk
        return self.current


def mix_matrix(n: int, rooms: list[list[tuple[int, Member]]]) -> np.ndarray | sparse.csr_matrix:
    """``M[i, j]``: how much of input ``j`` output ``i`` hears (N−1 within each room)."""
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    for members in rooms:
        for i, listener in members:
            for j, speaker in members:
                if i == j or speaker.muted or speaker.listen_only:
                    continue
                if speaker.whisper_to is not None and speaker.whisper_to is not listener.port:
                    continue
                rows.append(i)
                cols.append(j)
                vals.append(speaker.gain)
    if n > _SPARSE_ABOVE:
        return sparse.csr_matrix((vals, (rows, cols)), shape=(n, n), dtype=np.float32)
    dense = np.zeros((n, n), dtype=np.float32)
    dense[rows, cols] = vals
    return dense


def _gains(rooms: list[Room]) -> np.ndarray | None:
    """Each member's voice as a column of factors (0 when muted or listening only),
    or None when everyone counts fully and there is nothing to multiply."""
    gains = [0.0 if m.muted or m.listen_only else m.gain for room in rooms for m in room.members]
    if all(g == 1.0 for g in gains):
        return None
    return np.array(gains, dtype=np.float32)[:, None]


@dataclass(eq=False)
class _Swap:
    """Two-party rooms, laid out side by side: row 2k hears row 2k+1 and back."""

    rows: slice
    gain: np.ndarray | None  # of the voice each row hears

    @classmethod
    def of(cls, start: int, rooms: list[Room]) -> _Swap | None:
        if not rooms:
            return None
        gains = _gains(rooms)
        heard = None if gains is None else gains.reshape(-1, 2, 1)[:, ::-1].reshape(-1, 1).copy()
        return cls(slice(start, start + 2 * len(rooms)), heard)

    def apply(self, frames: np.ndarray, mixed: np.ndarray) -> None:
        out = mixed[self.rows]
        np.copyto(out.reshape(-1, 2, FRAME), frames[self.rows].reshape(-1, 2, FRAME)[:, ::-1])
        if self.gain is not None:
            np.multiply(out, self.gain, out=out)


@dataclass(eq=False)
class _SumMinusOwn:
    """Rooms of three or more without whispers, laid out one after the other: a
    member hears the room's sum minus their own voice, N−1 mixing in O(N) per
    room where a matrix is O(N²).  The sums are one sparse product with the
    rooms' membership (gains as its entries)."""

    rows: slice
    membership: sparse.csr_matrix  # (rooms, members): the gain of member j in room r
    room_of_row: np.ndarray
    gain: np.ndarray | None
    own: np.ndarray | None  # scratch for one's own voice times its gain

    @classmethod
    def of(cls, start: int, rooms: list[Room]) -> _SumMinusOwn | None:
        if not rooms:
            return None
        sizes = [len(room.members) for room in rooms]
        room_of_row = np.repeat(np.arange(len(rooms)), sizes)
        gains = _gains(rooms)
        values = np.ones(len(room_of_row), dtype=np.float32) if gains is None else gains[:, 0]
        membership = sparse.csr_matrix(
            (values, (room_of_row, np.arange(len(room_of_row)))),
            shape=(len(rooms), len(room_of_row)), dtype=np.float32,
        )
        own = None if gains is None else np.empty((len(room_of_row), FRAME), dtype=np.float32)
        return cls(slice(start, start + len(room_of_row)), membership, room_of_row, gains, own)

    def apply(self, frames: np.ndarray, mixed: np.ndarray) -> None:
        spoken = frames[self.rows]
        sums = self.membership @ spoken  # (rooms, FRAME): small
        heard = mixed[self.rows]
        np.take(sums, self.room_of_row, axis=0, out=heard)
        if self.gain is not None:
            spoken = np.multiply(spoken, self.gain, out=self.own)
        np.subtract(heard, spoken, out=heard)


@dataclass(eq=False)
class _MatrixMix:
    """Rooms where a supervisor whispers to one member: ``M @ frames`` over their rows."""

    rows: slice
    matrix: np.ndarray | sparse.csr_matrix

    @classmethod
    def of(cls, start: int, rooms: list[Room]) -> _MatrixMix | None:
        if not rooms:
            return None
        local: list[list[tuple[int, Member]]] = []
        row = 0
        for room in rooms:
            local.append([(row + k, m) for k, m in enumerate(room.members)])
            row += len(room.members)
        return cls(slice(start, start + row), mix_matrix(row, local))

    def apply(self, frames: np.ndarray, mixed: np.ndarray) -> None:
        mixed[self.rows] = self.matrix @ frames[self.rows]


class _Hold:
    """G.711 callers hearing music on hold, outside the mix: one encoded frame
    per class and law each tick, handed to all of them.  Listeners are kept in
    rows (``ports``; a port's ``index`` is its row after the mix's rows) with
    each row's table entry in ``keys`` (2 × class + 1 for A-law): joining
    appends, leaving moves the last row into the gap."""

    def __init__(self) -> None:
        self.ports: list[MixPort] = []
        self.row: dict[MixPort, int] = {}
        self.keys = np.zeros(64, dtype=np.intp)
        self.classes: list[str] = []  # the music classes by number

    def add(self, port: MixPort, music: str, first_row: int) -> None:
        if music not in self.classes:
            self.classes.append(music)
        key = 2 * self.classes.index(music) + (port.leg.codec == "PCMA")
        n = len(self.ports)
        if n == len(self.keys):
            self.keys = np.concatenate([self.keys, np.zeros(n, dtype=np.intp)])
        self.keys[n] = key
        self.row[port] = n
        self.ports.append(port)
        port.index = first_row + n

    def remove(self, port: MixPort, first_row: int) -> bool:
        """Take ``port`` out (False: it was not on hold here)."""
        row = self.row.pop(port, None)
        if row is None:
            return False
        last = self.ports.pop()
        if last is not port:
            self.ports[row] = last
            self.row[last] = row
            self.keys[row] = self.keys[len(self.ports)]
            last.index = first_row + row
        port.index = -1
        return True

    def renumber(self, first_row: int) -> None:
        """The mix was laid out again: the rows after it moved."""
        for row, port in enumerate(self.ports):
            port.index = first_row + row

    def encoded(self, music: dict[str, MusicClass], tick: int) -> np.ndarray:
        """``(listeners, 160)``: what each listener is sent this tick, encoded
        once per class and law (a gather of the table, no per-caller encoding)."""
        frames = np.stack([music[name].frame(tick) for name in self.classes])
        index = np.clip(frames, -32768, 32767).astype(np.int32)  # music is int16 (files)
        index += 32768
        table = np.empty((2 * len(self.classes), FRAME), dtype=np.uint8)
        np.take(ULAW_ENCODE, index, out=table[0::2])
        np.take(ALAW_ENCODE, index, out=table[1::2])
        return np.take(table, self.keys[: len(self.ports)], axis=0)

    def frames(self, payloads: list[bytes]) -> tuple[np.ndarray, list[MixPort]]:
        """The listeners' frames that arrived this tick, decoded (for in-band
        DTMF; what they say is heard by nobody), and whose they are."""
        lengths = np.fromiter(map(len, payloads), dtype=np.intp, count=len(payloads))
        rows = np.flatnonzero(lengths == FRAME)
        if not len(rows):
            return np.zeros((0, FRAME), dtype=np.float32), []
        data = np.frombuffer(b"".join(payloads), dtype=np.uint8)
        codes = data[(np.cumsum(lengths)[rows] - FRAME)[:, None] + _SAMPLES]
        frames = _ULAW_IN[codes]
        alaw = np.flatnonzero(self.keys[rows] & 1)
        frames[alaw] = _ALAW_IN[codes[alaw]]
        return frames, [self.ports[row] for row in rows.tolist()]


class MediaEngine:
    """The clock, the rooms and their recorders."""

    def __init__(self) -> None:
        self.rooms: dict[str, Room] = {}
        self.ports: list[MixPort] = []
        self.music: dict[str, MusicClass] = {}
        self.detector = DtmfDetector()
        self.listening: dict[MixPort, MusicClass] = {}
        self._hold = _Hold()  # G.711 listeners of music, outside the mix
        self._rooms_of: dict[int, list[Room]] = {}  # the rooms a leg (by id) is in, for leave
        self._stale = True  # rooms changed: lay the tick out again before the next one
        self._pairs: _Swap | None = None
        self._big: _SumMinusOwn | None = None
        self._whispered: _MatrixMix | None = None
        self._order: list[MixPort] = []  # the ports by row
        self._alone = slice(0, 0)  # the rows that hear nobody (alone, on hold), last
        self._music: list[tuple[MusicClass, np.ndarray]] = []
        self._room_rows: dict[Room, np.ndarray] = {}  # of rooms playing a tone (a cache)
        self._recorded: list[tuple[Room, np.ndarray]] = []
        self._playing: set[Room] = set()
        self._wide: list[tuple[int, MixPort]] = []
        self._narrow = np.zeros(0, dtype=bool)
        self._listeners: tuple[np.ndarray, list[MixPort]] = (np.zeros(0, dtype=np.intp), [])
        self._alaw = np.zeros(0, dtype=np.intp)  # rows in A-law; the others are µ-law
        # buffers reused by every tick; this tick's frames and the last tick's swap
        # places, so concealment needs no copy
        self._frames = np.zeros((0, FRAME), dtype=np.float32)
        self._last = np.zeros((0, FRAME), dtype=np.float32)
        self._missing = np.zeros(0, dtype=np.int8)  # frames lost in a row, per port
        self._mixed = np.zeros((0, FRAME), dtype=np.float32)
        self._index = np.zeros((0, FRAME), dtype=np.int32)
        self._timer: asyncio.TimerHandle | None = None
        self._next_at = 0.0
        self.tick_ms = 0.0  # telemetry: the last tick's cost, all of it
        self.mix_ms = 0.0  # ... and its compute part (decode, mix, encode)
        self.ticks = 0

    # ------------------------------------------------------------ rooms

    def room(self, name: str, kind: str = "conference") -> Room:
        return self.rooms.setdefault(name, Room(name, kind=kind))

    def join(self, name: str, leg: RelayLeg, *, listen_only: bool = False, tone: bool = True,
             on_dtmf: Callable[[MixPort, str], None] | None = None,
             kind: str = "conference") -> MixPort:
        """Put a call leg into room ``name`` (made as a ``kind`` room when new);
        the others hear a join tone."""
        port = self._enter(name, leg, kind, on_dtmf, listen_only=listen_only)
        self._changed()
        if tone:
            self.play(self.rooms[name], JOIN_TONE)
        return port

    def _enter(self, name: str, leg: RelayLeg, kind: str,
               on_dtmf: Callable[[MixPort, str], None] | None,
               listen_only: bool = False) -> MixPort:
        """A port for ``leg`` in room ``name``; the caller says whether the mix changed."""
        room = self.room(name, kind)
        port = MixPort(leg, on_dtmf=on_dtmf)
        leg.relay.unbridge(leg)
        leg.peer = port  # the relay hands us its packets
        room.members.append(Member(port, listen_only=listen_only))
        self.ports.append(port)
        rooms = self._rooms_of.setdefault(id(leg), [])
        if room not in rooms:
            rooms.append(room)
        self._ensure_running()
        log.info("room %s: %s joined (%d members)", name, leg.label, len(room.members))
        return port

    def leave(self, leg: RelayLeg) -> None:
        """The leg leaves every room it is in (found by the leg, not by a search)."""
        mixed = False
        for room in self._rooms_of.pop(id(leg), ()):
            for member in [m for m in room.members if m.port.leg is leg]:
                mixed |= self._forget(member.port)
                room.members.remove(member)
                log.info("room %s: %s left (%d members)", room.name, leg.label,
                         len(room.members))
                party = room.stereo is not None and member.port in room.stereo
                if room.members and not party:  # a listener leaving closes nothing
                    if room.kind == "conference":
                        self.play(room, LEAVE_TONE)
                elif self.rooms.get(room.name) is room:
                    self.stop_recording(room)
                    self._playing.discard(room)
                    del self.rooms[room.name]
                    for rest in room.members:  # a listener still in: out with the room
                        mixed |= self._forget(rest.port)
                        self._rooms_of.get(id(rest.port.leg), [room]).remove(room)
        if mixed:
            self._changed()

    def _forget(self, port: MixPort) -> bool:
        """The port is out of the engine; True if it was a row of the mix
        (a listener of music on hold is not: no new layout for it)."""
        self.listening.pop(port, None)
        self.detector.forget(port)
        if port in self.ports:
            self.ports.remove(port)
        if port.leg.peer is port:
            port.leg.peer = None
        return not self._hold.remove(port, len(self._order))

    def supervise(self, name: str, leg: RelayLeg, agent: MixPort, mode: str,
                  on_dtmf: Callable[[MixPort, str], None] | None = None) -> MixPort:
        """A supervisor joins room ``name``: ``listen``, ``whisper`` (to ``agent``) or
        ``barge``; nobody hears a join tone (the agent must not notice a listener)."""
        port = self.join(name, leg, tone=False, on_dtmf=on_dtmf, kind=self.rooms[name].kind
                         if name in self.rooms else "call")
        self.set_supervision(name, port, agent, mode)
        return port

    def set_supervision(self, name: str, port: MixPort, agent: MixPort, mode: str) -> None:
        """Switch a supervisor's mode during the call (ChanSpy's keys)."""
        if mode not in ("listen", "whisper", "barge"):
            raise ValueError(f"unknown supervision mode {mode!r}")
        member = self.rooms[name].member(port)
        assert member is not None
        member.listen_only = mode == "listen"
        member.whisper_to = agent if mode == "whisper" else None
        self._changed()

    def hold_music(self, leg: RelayLeg, music_class: str = "default",
                   on_dtmf: Callable[[MixPort, str], None] | None = None) -> MixPort:
        """The leg hears music on hold until :meth:`stop_music` (its keys still
        reach ``on_dtmf``: a caller waiting in a queue may press one)."""
        music = self.music.get(music_class) or self.music.setdefault(
            music_class, MusicClass(music_class, default_music())
        )
        port = self._enter(f"moh-{id(leg)}", leg, "hold", on_dtmf)
        self.listening[port] = music
        if port.wide is None:  # G.711: the class's payload, sent as it is
            self._hold.add(port, music.name, len(self._order))
        else:  # G.722 / Opus: encoded for this leg alone, as a row of the mix
            self._changed()
        return port

    def set_music(self, music: MusicClass) -> None:
        """Add or replace a music class; whoever is on hold with it hears the new
        music from the next tick (an upload needs no restart)."""
        old = self.music.get(music.name)
        self.music[music.name] = music
        for port, playing in self.listening.items():
            if playing is old:
                self.listening[port] = music
        self._changed()

    def stop_music(self, leg: RelayLeg) -> None:
        """Music off: the leg leaves its hold room (and any other)."""
        self.leave(leg)

    def renegotiated(self, leg: RelayLeg) -> None:
        """The leg's phone agreed on its codec again (a re-INVITE): from the next
        tick its frames are decoded and encoded in what it agreed on."""
        for port in self.ports:
            if port.leg is leg:
                port.follow_codec()
                music = self.listening.get(port)
                if music is not None and self._hold.remove(port, len(self._order)) \
                        and port.wide is None:  # its law may have changed: its entry too
                    self._hold.add(port, music.name, len(self._order))
        self._changed()

    def set_muted(self, port: MixPort, muted: bool) -> None:
        for room in self.rooms.values():
            member = room.member(port)
            if member is not None:
                member.muted = muted
        self._changed()

    def play(self, room: Room, samples: np.ndarray) -> None:
        """A tone heard by every member of the room."""
        room.tone, room.tone_at = samples, 0
        self._playing.add(room)

    def silence(self, room: Room) -> None:
        """Stop what :meth:`play` plays in the room (a key cut a prompt short)."""
        room.tone = None
        self._playing.discard(room)

    def record(
        self, room: Room, path: Path, *, stereo: tuple[MixPort, MixPort] | None = None,
        on_done: Callable[[], None] | None = None,
    ) -> None:
        """Record a room to WAV or FLAC (by suffix): everyone mixed in mono, or for
        a two-party call ``stereo`` = (left, right): caller left, callee right.
        ``on_done`` runs when the file is complete (stopped, or the room closed)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        room.stereo = stereo
        room.recorder = soundfile.SoundFile(
            path, "w", samplerate=8000, channels=2 if stereo else 1, subtype="PCM_16"
        )
        room.recorded = on_done
        self._changed()

    def stop_recording(self, room: Room) -> None:
        if room.recorder is not None:
            room.recorder.close()
            room.recorder = None
            done, room.recorded = room.recorded, None
            self._changed()
            if done is not None:
                done()

    def participants(self, name: str) -> list[str]:
        room = self.rooms.get(name)
        return [m.port.leg.label for m in room.members] if room else []

    def _changed(self) -> None:
        self._stale = True

    # ------------------------------------------------------------ the clock

    def _ensure_running(self) -> None:
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._next_at = loop.time() + TICK
            self._timer = loop.call_at(self._next_at, self._on_tick)

    def _on_tick(self) -> None:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            self.tick()
        except Exception:
            log.exception("media tick failed")
        self.tick_ms = (time.perf_counter() - started) * 1000
        self.ticks += 1
        if not self.ports:
            self._timer = None
            return
        self._next_at += TICK
        now = loop.time()
        if self._next_at < now - TICK:  # we fell behind (a stalled loop): skip, do not burst
            self._next_at = now + TICK
        self._timer = loop.call_at(self._next_at, self._on_tick)

    def tick(self) -> None:
        """Gather one frame per port, mix, play tones, encode, send, record."""
        started = time.perf_counter()
        encoded = self.mix()
        self.mix_ms = (time.perf_counter() - started) * 1000
        if encoded is None:
            return
        data = encoded.tobytes()
        now = time.monotonic()
        mixed = self._mixed
        for row, port in enumerate(self._order):
            if port.wide is not None:
                port.send(port.wide.encode(mixed[row]), now)
            else:
                port.send(data[row * FRAME : (row + 1) * FRAME], now)
        for row, port in enumerate(self._hold.ports, len(self._order)):  # music on hold
            port.send(data[row * FRAME : (row + 1) * FRAME], now)

    def mix(self) -> np.ndarray | None:
        """The compute part of a tick: ``(ports, 160)`` encoded bytes; row ``port.index``
        is what ``port`` sends (the mix's rows, then the listeners of music on hold)."""
        ports = self.ports
        if not ports:
            return None
        hold = self._hold
        if self._stale or len(self._order) + len(hold.ports) != len(ports):
            self._lay_out()
        if hold.ports:  # their keys, pressed in the audio
            # most send nothing (a silent phone): no jitter buffer to look into then
            held, whose = hold.frames([port.take() or b"" if port.buffer else b""
                                       for port in hold.ports])
            if whose:
                for port, digit in self.detector.feed(held, whose):
                    port.on_dtmf(port, digit)  # type: ignore[attr-defined]
        self._last, self._frames = self._frames, self._last
        frames, mixed = self._frames, self._mixed
        self._conceal(self._decode([port.take() or b"" for port in self._order]))
        rows, listeners = self._listeners
        if listeners:  # in-band DTMF from phones that do not send RFC 4733 events
            for port, digit in self.detector.feed(frames[rows], listeners):
                port.on_dtmf(port, digit)  # type: ignore[attr-defined]
        for group in (self._pairs, self._big, self._whispered):
            if group is not None:
                group.apply(frames, mixed)
        mixed[self._alone] = 0
        for music, rows in self._music:
            mixed[rows] = music.frame(self.ticks)
        self._play_tones(mixed)
        self._record(frames)
        index = self._index  # the sample + 32768: the encoding tables' index
        np.clip(mixed, -32768, 32767, out=index, casting="unsafe")  # rounds toward zero
        np.add(index, 32768, out=index)
        rows = len(self._order)
        encoded = np.empty((rows + len(hold.ports), FRAME), dtype=np.uint8)  # to the sender
        np.take(ULAW_ENCODE, index, out=encoded[:rows])
        if len(self._alaw):
            encoded[self._alaw] = np.take(ALAW_ENCODE, index[self._alaw])
        if hold.ports:
            encoded[rows:] = hold.encoded(self.music, self.ticks)
        return encoded

    def _lay_out(self) -> None:
        """Rows, index arrays and buffers for the ticks to come, built only when rooms
        change.  Rows go room by room, grouped by how they are mixed, so each mixing
        method works on one contiguous block: views, not gathers."""
        pairs: list[Room] = []
        big: list[Room] = []
        whispered: list[Room] = []
        others: list[Room] = []  # alone (on hold, waiting in a lobby) or empty
        held = self._hold.row
        for room in self.rooms.values():
            if len(room.members) == 1 and room.members[0].port in held:
                continue  # hears the music, outside the mix
            if any(m.whisper_to is not None for m in room.members):
                whispered.append(room)
            elif len(room.members) > BIG_ROOM:
                big.append(room)
            else:
                (pairs if len(room.members) == 2 else others).append(room)
        order = [m.port for rooms in (pairs, big, whispered, others)
                 for room in rooms for m in room.members]
        placed = set(order)
        order += [port for port in self.ports if port not in placed and port not in held]
        n = len(order)
        previous = np.array([port.index for port in order], dtype=np.intp)
        for row, port in enumerate(order):
            port.index = row
        self._order = order
        start = 0
        self._pairs = _Swap.of(start, pairs)
        start += 2 * len(pairs)
        self._big = _SumMinusOwn.of(start, big)
        start += sum(len(room.members) for room in big)
        self._whispered = _MatrixMix.of(start, whispered)
        start += sum(len(room.members) for room in whispered)
        self._alone = slice(start, n)

        kept = np.flatnonzero((previous >= 0) & (previous < len(self._frames)))
        frames = np.zeros((n, FRAME), dtype=np.float32)  # the last tick's, for concealment
        missing = np.zeros(n, dtype=np.int8)
        frames[kept] = self._frames[previous[kept]]
        missing[kept] = self._missing[previous[kept]]
        self._frames, self._missing = frames, missing
        self._last = np.zeros((n, FRAME), dtype=np.float32)
        self._mixed = np.zeros((n, FRAME), dtype=np.float32)
        self._index = np.zeros((n, FRAME), dtype=np.int32)
        self._alaw = np.flatnonzero([port.leg.codec == "PCMA" for port in order])
        self._narrow = np.array([port.wide is None for port in order], dtype=bool)
        self._wide = [(row, port) for row, port in enumerate(order) if port.wide is not None]
        listening = [port for port in order if port.on_dtmf is not None]
        self._listeners = (np.array([port.index for port in listening], dtype=np.intp), listening)
        self._room_rows = {}
        self._recorded = [(room, self._recorded_rows(room))
                          for room in self.rooms.values() if room.recorder is not None]
        by_class: dict[MusicClass, list[int]] = {}
        for port, music in self.listening.items():
            if port not in held:  # G.722 / Opus listeners: rows of the mix
                by_class.setdefault(music, []).append(port.index)
        self._music = [(music, np.array(rows, dtype=np.intp)) for music, rows in by_class.items()]
        self._hold.renumber(n)
        self._stale = False

    def _recorded_rows(self, room: Room) -> np.ndarray:
        """The rows a room's recorder writes: (left, right) of a call (−1 when that
        party is gone), or every member who is not muted for a conference."""
        if room.stereo is not None:
            return np.array([p.index if self._in_layout(p) else -1 for p in room.stereo])
        return np.array([m.port.index for m in room.members if not m.muted], dtype=np.intp)

    def _in_layout(self, port: MixPort) -> bool:
        return 0 <= port.index < len(self._order) and self._order[port.index] is port

    def _decode(self, payloads: list[bytes]) -> np.ndarray:
        """Payloads (b"" when none) into ``self._frames``; True where a frame arrived."""
        frames = self._frames
        lengths = np.fromiter(map(len, payloads), dtype=np.intp, count=len(payloads))
        fresh = (lengths == FRAME) & self._narrow
        data = np.frombuffer(b"".join(payloads), dtype=np.uint8)
        if fresh.all():  # the common tick: one G.711 frame from every port, no copying
            codes = data.reshape(-1, FRAME)
            np.take(_ULAW_IN, codes, out=frames)
        elif fresh.any():
            codes = np.zeros((len(payloads), FRAME), dtype=np.uint8)
            rows = np.flatnonzero(fresh)
            codes[rows] = data[(np.cumsum(lengths)[rows] - FRAME)[:, None] + _SAMPLES]
            frames[rows] = _ULAW_IN[codes[rows]]
        else:
            codes = None
        if codes is not None and len(self._alaw):
            alaw = self._alaw[fresh[self._alaw]]
            frames[alaw] = _ALAW_IN[codes[alaw]]
        for i, port in self._wide:  # G.722 / Opus: stateful, one channel at a time
            if payloads[i]:
                frames[i] = port.wide.decode(payloads[i])  # type: ignore[union-attr]
                fresh[i] = True
        return fresh

    def _conceal(self, fresh: np.ndarray) -> None:
        """A lost frame repeats the last one at half the level (so the last good
        one fades: ½, ¼, ⅛) for a few frames; then silence."""
        self._missing[fresh] = 0
        if fresh.all():
            return
        lost = np.flatnonzero(~fresh)
        missing = self._missing[lost]
        fade = np.where(missing < CONCEAL_FRAMES, 0.5, 0.0).astype(np.float32)[:, None]
        self._frames[lost] = self._last[lost] * fade
        self._missing[lost] = np.minimum(missing + 1, CONCEAL_FRAMES)

    def _play_tones(self, mixed: np.ndarray) -> None:
        """Join/leave signals and prompts: added to what every member of the room hears.

        This tick's frame of every playing room is stacked into one block and
        added to the members' rows in one indexed add: IVR callers each hear
        their greeting in a room of their own, so hundreds of rooms play at
        once, and an indexed add per room cost twice the rest of the mix."""
        if not self._playing:
            return
        chunks: list[np.ndarray] = []
        rows: list[np.ndarray] = []
        for room in list(self._playing):
            members = self._rows_of(room)
            tone = room.tone
            if tone is None or members is None:
                self._playing.discard(room)
                continue
            chunk = tone[room.tone_at : room.tone_at + FRAME]
            if len(chunk) < FRAME:  # the tone's last frame
                chunk = np.pad(chunk, (0, FRAME - len(chunk)))
            chunks.append(chunk)
            rows.append(members)
            room.tone_at += FRAME
            if room.tone_at >= len(tone):
                room.tone = None
                self._playing.discard(room)
        if not chunks:
            return
        block = np.concatenate(chunks).reshape(-1, FRAME)
        sizes = np.fromiter(map(len, rows), dtype=np.intp, count=len(rows))
        if not (sizes == 1).all():  # a room of several hears its tone on every row
            block = block[np.repeat(np.arange(len(chunks)), sizes)]
        mixed[np.concatenate(rows)] += block  # a port is in one room: no row twice

    def _rows_of(self, room: Room) -> np.ndarray | None:
        """The mix's rows of a room's members (None: not laid out, or on hold),
        found when the room first plays something after a new layout."""
        rows = self._room_rows.get(room)
        if rows is None and room.members and all(self._in_layout(m.port) for m in room.members):
            rows = self._room_rows[room] = np.array([m.port.index for m in room.members],
                                                    dtype=np.intp)
        return rows

    def _record(self, frames: np.ndarray) -> None:
        """What the recorders hear: the two parties in stereo, or the room in mono."""
        for room, rows in self._recorded:
            if room.recorder is None:
                continue
            if room.stereo is not None:
                block = np.zeros((FRAME, 2), dtype=np.int16)
                for channel, row in enumerate(rows):
                    if row >= 0:
                        block[:, channel] = frames[row]
                room.recorder.write(block)
            else:
                total = frames[rows].sum(axis=0)
                room.recorder.write(np.clip(total, -32768, 32767).astype(np.int16))
