"""The media engine: one 20 ms tick mixes every conference channel at once.

A relay leg whose call is in a conference is not bridged to another leg:
its packets go to a :class:`MixPort` (the leg's ``peer``), which keeps them
in a small jitter buffer.  Every tick the engine takes one frame from every
port into a ``(channels, 160)`` array (G.711 decoded by table lookup, lost
frames concealed), multiplies it by the mix matrix ``M`` — who hears whom:
N−1 mixing in a room, muted and listen-only members, gains — adds the tone
players, clips to int16, encodes and sends each row back out of its leg.
Recorders write the room mix.  No per-sample Python anywhere.
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

from media.codecs import WIDEBAND, WidebandChannel
from media.dtmf import DtmfDetector
from media.g711 import ALAW_DECODE, ALAW_ENCODE, ULAW_DECODE, ULAW_ENCODE
from media.relay import RelayLeg

log = logging.getLogger("media.engine")

FRAME = 160  # samples per 20 ms at 8 kHz
TICK = 0.020
JITTER_DEPTH = 2  # frames buffered before a port starts playing
CONCEAL_FRAMES = 3  # lost frames repeated (fading) before silence
STALL_FRAMES = 50  # a second without packets: the port drops out of the mix
DTMF_EVENTS = "0123456789*#ABCD"
_HEADER = struct.Struct("!BBHII")
_SPARSE_ABOVE = 48  # channels: a dense matrix is cheaper below this
BIG_ROOM = 16  # members: above this a room is mixed as sum-minus-own, not by matrix


@dataclass(eq=False)
class MixPort:
    """The engine side of one relay leg."""

    leg: RelayLeg
    on_dtmf: Callable[[MixPort, str], None] | None = None
    peer: object = None  # the relay's bridge slot (unused: the engine is our peer)
    buffer: dict[int, bytes] = field(default_factory=dict)
    next_seq: int | None = None
    last: np.ndarray | None = None
    missing: int = 0
    idle: int = 0
    index: int = -1  # row in the current tick's frame array
    wide: WidebandChannel | None = None  # G.722 / Opus codec state, None for G.711
    _dtmf_ts: int = -1

    def __post_init__(self) -> None:
        codec = getattr(self.leg, "codec", "PCMU")
        if codec in WIDEBAND:
            self.wide = WidebandChannel(codec)

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

    def send(self, payload: bytes) -> None:
        """One frame of the mix to the phone, continuing the leg's own stream."""
        leg = self.leg
        to = leg.send_to
        if to is None or leg.held or leg.transport is None:
            return
        leg.out_seq = (leg.out_seq + 1) & 0xFFFF
        leg.out_ts = (leg.out_ts + (self.wide.clock_step if self.wide else FRAME)) & 0xFFFFFFFF
        leg.out_at = time.monotonic()
        leg.transport.sendto(
            _HEADER.pack(0x80, leg.payload_type, leg.out_seq, leg.out_ts, leg.ssrc) + payload, to
        )
        leg.packets_out += 1
        leg.bytes_out += len(payload)


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
    stereo: tuple[MixPort, MixPort] | None = None  # a call recording: left, right
    tone: np.ndarray | None = None  # samples still to play to the whole room
    tone_at: int = 0

    def member(self, port: MixPort) -> Member | None:
        return next((m for m in self.members if m.port is port), None)


def beep(frequency: float = 880.0, seconds: float = 0.2, level: float = 6000.0) -> np.ndarray:
    """A short tone (join/leave signals), raised-cosine edges so it does not click."""
    n = int(8000 * seconds)
    t = np.arange(n) / 8000
    edge = np.minimum(1.0, np.minimum(np.arange(n), n - 1 - np.arange(n)) / 80)
    return (np.sin(2 * np.pi * frequency * t) * level * edge).astype(np.float32)


JOIN_TONE = np.concatenate([beep(660, 0.12), beep(990, 0.12)])
LEAVE_TONE = np.concatenate([beep(990, 0.12), beep(660, 0.12)])


class MediaFileError(ValueError):
    """An audio file we cannot play: corrupt, unsupported, or empty."""


def load_audio(path: Path) -> np.ndarray:
    """A prompt or music file as float32 mono at 8 kHz (soundfile; resampled properly)."""
    try:
        audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as exc:
        raise MediaFileError(f"{path}: cannot read audio ({exc})") from None
    if audio.size == 0:
        raise MediaFileError(f"{path}: no audio in file")
    mono = audio.mean(axis=1)
    if rate != 8000:
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(int(rate), 8000)
        mono = resample_poly(mono, 8000 // g, int(rate) // g).astype(np.float32)
    return mono * 32767


def default_music(seconds: float = 16.0) -> np.ndarray:
    """Gentle generated music for hold when no files are configured: slow arpeggios."""
    notes = [261.63, 329.63, 392.0, 523.25, 392.0, 329.63, 293.66, 349.23, 440.0, 349.23]
    per_note = int(8000 * seconds / len(notes))
    t = np.arange(per_note) / 8000
    envelope = np.exp(-3 * t) * np.minimum(1, t * 200)
    melody = [np.sin(2 * np.pi * f * t) * envelope for f in notes]
    return (np.concatenate(melody) * 5000).astype(np.float32)


@dataclass(eq=False)
class MusicClass:
    """Music on hold: one shared playback position, so every held caller of the
    class hears the same frame and it costs one slice per tick, not per caller."""

    name: str
    samples: np.ndarray
    cursor: int = 0
    tick: int = -1
    current: np.ndarray = field(default_factory=lambda: np.zeros(FRAME, dtype=np.float32))

    @classmethod
    def from_folder(cls, name: str, folder: Path) -> MusicClass:
        """All playable files of ``folder`` in name order; bad files are named and skipped."""
        parts = []
        for path in sorted(folder.glob("*")) if folder.is_dir() else []:
            if path.suffix.lower() in (".wav", ".flac", ".ogg", ".mp3"):
                try:
                    parts.append(load_audio(path))
                except MediaFileError as exc:
                    log.error("music on hold %s: %s (skipped)", name, exc)
        return cls(name, np.concatenate(parts) if parts else default_music())

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


class MediaEngine:
    """The clock, the rooms and their recorders."""

    def __init__(self) -> None:
        self.rooms: dict[str, Room] = {}
        self.ports: list[MixPort] = []
        self.music: dict[str, MusicClass] = {}
        self.detector = DtmfDetector()
        self.listening: dict[MixPort, MusicClass] = {}
        self._matrix: np.ndarray | sparse.csr_matrix | None = None
        self._big: list[list[tuple[int, Member]]] = []
        self._big_rows: list[tuple[np.ndarray, np.ndarray]] = []
        self._mixed = np.zeros((0, FRAME), dtype=np.float32)
        self._timer: asyncio.TimerHandle | None = None
        self._next_at = 0.0
        self.tick_ms = 0.0  # telemetry: the last tick's cost, all of it
        self.mix_ms = 0.0  # ... and its compute part (decode, mix, encode)
        self.ticks = 0

    # ------------------------------------------------------------ rooms

    def room(self, name: str) -> Room:
        return self.rooms.setdefault(name, Room(name))

    def join(self, name: str, leg: RelayLeg, *, listen_only: bool = False, tone: bool = True,
             on_dtmf: Callable[[MixPort, str], None] | None = None) -> MixPort:
        """Put a call leg into room ``name``; the others hear a join tone."""
        room = self.room(name)
        port = MixPort(leg, on_dtmf=on_dtmf)
        leg.relay.unbridge(leg)
        leg.peer = port  # the relay hands us its packets
        room.members.append(Member(port, listen_only=listen_only))
        self.ports.append(port)
        self._changed()
        if tone:
            self.play(room, JOIN_TONE)
        self._ensure_running()
        log.info("room %s: %s joined (%d members)", name, leg.label, len(room.members))
        return port

    def leave(self, leg: RelayLeg) -> None:
        for room in list(self.rooms.values()):
            for member in list(room.members):
                if member.port.leg is leg:
                    self.listening.pop(member.port, None)
                    self.detector.forget(member.port)
                    room.members.remove(member)
                    self.ports.remove(member.port)
                    if leg.peer is member.port:
                        leg.peer = None
                    log.info("room %s: %s left (%d members)", room.name, leg.label,
                             len(room.members))
                    if room.members and room.stereo is None:
                        self.play(room, LEAVE_TONE)
                    else:
                        self.stop_recording(room)
                        del self.rooms[room.name]
        self._changed()

    def supervise(self, name: str, leg: RelayLeg, agent: MixPort, mode: str) -> MixPort:
        """A supervisor joins room ``name``: ``listen``, ``whisper`` (to ``agent``) or ``barge``."""
        if mode not in ("listen", "whisper", "barge"):
            raise ValueError(f"unknown supervision mode {mode!r}")
        port = self.join(name, leg, tone=False, listen_only=mode == "listen")
        member = self.rooms[name].member(port)
        assert member is not None
        member.whisper_to = agent if mode == "whisper" else None
        self._changed()
        return port

    def hold_music(self, leg: RelayLeg, music_class: str = "default") -> None:
        """The leg hears music on hold until :meth:`stop_music`."""
        music = self.music.get(music_class) or self.music.setdefault(
            music_class, MusicClass(music_class, default_music())
        )
        port = self.join(f"moh-{id(leg)}", leg, tone=False)
        self.listening[port] = music

    def stop_music(self, leg: RelayLeg) -> None:
        for port in [p for p in self.listening if p.leg is leg]:
            del self.listening[port]
        self.leave(leg)

    def set_muted(self, port: MixPort, muted: bool) -> None:
        for room in self.rooms.values():
            member = room.member(port)
            if member is not None:
                member.muted = muted
        self._changed()

    def play(self, room: Room, samples: np.ndarray) -> None:
        """A tone heard by every member of the room."""
        room.tone, room.tone_at = samples, 0

    def record(
        self, room: Room, path: Path, *, stereo: tuple[MixPort, MixPort] | None = None
    ) -> None:
        """Record a room to WAV or FLAC (by suffix): everyone mixed in mono, or for
        a two-party call ``stereo`` = (left, right): caller left, callee right."""
        path.parent.mkdir(parents=True, exist_ok=True)
        room.stereo = stereo
        room.recorder = soundfile.SoundFile(
            path, "w", samplerate=8000, channels=2 if stereo else 1, subtype="PCM_16"
        )

    def stop_recording(self, room: Room) -> None:
        if room.recorder is not None:
            room.recorder.close()
            room.recorder = None

    def participants(self, name: str) -> list[str]:
        room = self.rooms.get(name)
        return [m.port.leg.label for m in room.members] if room else []

    def _changed(self) -> None:
        self._matrix = None

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
        if encoded is not None:
            mixed = self._mixed
            for i, port in enumerate(self.ports):
                if port.wide is not None:
                    port.send(port.wide.encode(mixed[i]))
                else:
                    port.send(encoded[i].tobytes())

    def mix(self) -> np.ndarray | None:
        """The compute part of a tick: ``(ports, 160)`` encoded bytes, one row per port."""
        ports = self.ports
        n = len(ports)
        if n == 0:
            return None
        frames = np.zeros((n, FRAME), dtype=np.float32)
        ulaw_rows: list[int] = []
        ulaw_data: list[bytes] = []
        alaw_rows: list[int] = []
        alaw_data: list[bytes] = []
        for i, port in enumerate(ports):
            port.index = i
            payload = port.take()
            if payload is not None and port.wide is not None:
                frames[i] = port.wide.decode(payload)  # G.722 / Opus: per channel
                port.last = frames[i]
                port.missing = 0
            elif payload is not None and len(payload) == FRAME:
                if port.leg.codec == "PCMA":
                    alaw_rows.append(i)
                    alaw_data.append(payload)
                else:
                    ulaw_rows.append(i)
                    ulaw_data.append(payload)
                port.missing = 0
            elif port.last is not None and port.missing < CONCEAL_FRAMES:
                port.missing += 1
                frames[i] = port.last * (0.5 ** port.missing)  # repeat, fading
        if ulaw_rows:
            raw = np.frombuffer(b"".join(ulaw_data), dtype=np.uint8).reshape(-1, FRAME)
            frames[ulaw_rows] = ULAW_DECODE[raw]
        if alaw_rows:
            raw = np.frombuffer(b"".join(alaw_data), dtype=np.uint8).reshape(-1, FRAME)
            frames[alaw_rows] = ALAW_DECODE[raw]
        for i in ulaw_rows + alaw_rows:
            ports[i].last = frames[i]  # a view: each tick has a new frame array
        listeners = [i for i, port in enumerate(ports) if port.on_dtmf is not None]
        if listeners:  # in-band DTMF from phones that do not send RFC 4733 events
            for port, digit in self.detector.feed(frames[listeners], [ports[i] for i in listeners]):
                port.on_dtmf(port, digit)  # type: ignore[attr-defined]
        if self._matrix is None or self._matrix.shape[0] != n:
            small, self._big = [], []
            for room in self.rooms.values():
                members = [(m.port.index, m) for m in room.members]
                plain = all(m.whisper_to is None for _, m in members)
                (self._big if plain and len(members) > BIG_ROOM else small).append(members)
            self._matrix = mix_matrix(n, small)
            self._big_rows = [
                (np.array([i for i, _ in members]),
                 np.array([0.0 if m.muted or m.listen_only else m.gain for _, m in members],
                          dtype=np.float32)[:, None])
                for members in self._big
            ]
        mixed = self._matrix @ frames
        for rows, gains in self._big_rows:
            # a big room is N−1 by subtraction: everyone's sum minus one's own, O(N)
            spoken = frames[rows] * gains
            mixed[rows] = spoken.sum(axis=0) - spoken
        for port, music in self.listening.items():
            mixed[port.index] = music.frame(self.ticks)
        for room in self.rooms.values():
            rows = [m.port.index for m in room.members]
            if room.tone is not None:
                chunk = room.tone[room.tone_at : room.tone_at + FRAME]
                mixed[rows, : len(chunk)] += chunk
                room.tone_at += FRAME
                if room.tone_at >= len(room.tone):
                    room.tone = None
            if room.recorder is not None:
                if room.stereo is not None:
                    left, right = (p.index if p in ports else -1 for p in room.stereo)
                    block = np.zeros((FRAME, 2), dtype=np.float32)
                    if left >= 0:
                        block[:, 0] = frames[left]
                    if right >= 0:
                        block[:, 1] = frames[right]
                    room.recorder.write(block.astype(np.int16))
                else:
                    speakers = [m.port.index for m in room.members if not m.muted]
                    total = frames[speakers].sum(axis=0) if speakers else np.zeros(FRAME)
                    room.recorder.write(np.clip(total, -32768, 32767).astype(np.int16))
        self._mixed = mixed  # the wideband channels encode from it
        out = np.clip(mixed, -32768, 32767).astype(np.int32) + 32768
        encoded = ULAW_ENCODE[out]
        alaw = [i for i, port in enumerate(ports) if port.leg.codec == "PCMA"]
        if alaw:
            encoded[alaw] = ALAW_ENCODE[out[alaw]]
        return encoded
