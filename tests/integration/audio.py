"""What integration tests send and measure of audio: tone files for baresip,
a scripted RTP endpoint that keys RFC 4733 digits and listens, and the FFT
checks that say a tone arrived."""

from __future__ import annotations

import socket
import struct
import subprocess
import time
from pathlib import Path

import numpy as np
import soundfile

from media.codecs import Resampler
from media.g711 import ulaw_decode, ulaw_encode

RATE = 8000
EVENTS = "0123456789*#"


def tone_wav(path: Path, frequency: float, seconds: float, amplitude: float = 8000) -> Path:
    """An 8 kHz S16LE WAV of one sine (baresip's microphone); several phones mixed
    in one room want a lower ``amplitude``."""
    t = np.arange(int(RATE * seconds)) / RATE
    soundfile.write(path, (np.sin(2 * np.pi * frequency * t) * amplitude).astype(np.int16), RATE,
                    subtype="PCM_16")
    return path


def spoken_wav(path: Path, text: str, voice: str = "en-us+m1", speed: int = 130) -> Path:
    """``text`` said by espeak-ng, as a phone message: resampled to 8 kHz, through
    G.711 µ-law, a second of silence either side."""
    wide = path.with_suffix(".wide.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(wide), text],
                   check=True)
    audio, rate = soundfile.read(wide, dtype="float64")
    silence = np.zeros(RATE)
    narrow = np.concatenate([silence, Resampler(rate, RATE).process(audio), silence])
    pcm = np.clip(narrow * 0.5 * 32767, -32768, 32767).astype(np.int16)
    soundfile.write(path, ulaw_decode(ulaw_encode(pcm)), RATE, subtype="PCM_16")
    return path


def tone_share(frame: np.ndarray, frequency: float) -> float:
    """How much of a 20 ms frame's energy lies at ``frequency`` (50 Hz bins)."""
    power = np.abs(np.fft.rfft(frame)) ** 2
    k = int(round(frequency / 50))
    return float(power[k - 1 : k + 2].sum() / max(power.sum(), 1e-9))


def level(audio: np.ndarray, frequency: float) -> float:
    """The spectrum's peak within 8 Hz of ``frequency``."""
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    freqs = np.fft.rfftfreq(len(audio), 1 / RATE)
    return float(spectrum[(freqs > frequency - 8) & (freqs < frequency + 8)].max())


def voiced_frames(audio: np.ndarray) -> int:
    """20 ms frames with speech in them (not silence)."""
    frames = audio[: len(audio) // 160 * 160].astype(np.float64).reshape(-1, 160)
    return int((np.sqrt((frames**2).mean(axis=1)) > 300).sum())


def key_event(key: str, seq: int, timestamp: int, ssrc: int) -> bytes:
    """One RFC 4733 end packet of ``key`` (payload type 101, 100 ms long)."""
    header = struct.pack("!BBHII", 0x80, 101, seq, timestamp, ssrc)
    return header + struct.pack("!BBH", EVENTS.index(key), 0x80 | 10, 800)


def key_in(sock: socket.socket, port: int, keys: str, ts_base: int, *, ssrc: int = 77,
           pause: float = 0.05) -> None:
    """Press keys as RFC 4733 events (three end packets each) from a phone's RTP socket
    to the PBX's ``port``, ``pause`` seconds apart."""
    for n, key in enumerate(keys):
        packet = key_event(key, ts_base + n, 1000 * (ts_base + n), ssrc)
        for _ in range(3):
            sock.sendto(packet, ("127.0.0.1", port))
        time.sleep(pause)


def tone_frames(sock: socket.socket, frequency: float, timeout: float = 30.0,
                frames: int = 5) -> int:
    """Read a phone's RTP socket until a tone of ``frequency`` has played (at least
    ``frames`` × 20 ms) and stopped; how many frames it lasted."""
    toned = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            packet = sock.recv(2048)
        except TimeoutError:
            continue
        frame = ulaw_decode(packet[12:]).astype(np.float64)
        if len(frame) == 160 and tone_share(frame, frequency) > 0.8:
            toned += 1
        elif toned >= frames:
            return toned
    raise AssertionError(f"no {frequency:.0f} Hz tone within {timeout:.0f} s ({toned} frames)")


def heard(path: Path) -> np.ndarray:
    """A baresip ``dump-*-dec.wav``: what the phone heard, mono, 8 kHz."""
    audio, rate = soundfile.read(path, dtype="float64")
    assert rate == RATE
    return audio[:, 0] if audio.ndim > 1 else audio


class RtpPhone:
    """The media side of a scripted phone: one UDP socket that sends PCMU and
    RFC 4733 events to the PBX's port and reads what the PBX sends."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.remote: tuple[str, int] | None = None
        self._seq = 0
        self._event_ts = 1000

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RtpPhone:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def answered(self, sdp: bytes, host: str = "127.0.0.1") -> None:
        """Where to send: the audio port of the PBX's SDP."""
        self.remote = (host, int(sdp.decode().split("m=audio ")[1].split()[0]))

    def keys(self, digits: str) -> None:
        """Press keys: each an RFC 4733 event, three end packets (payload type 101)."""
        assert self.remote is not None
        for digit in digits:
            self._event_ts += 8000
            for _ in range(3):
                self._seq += 1
                self.sock.sendto(key_event(digit, self._seq, self._event_ts, 0x7070), self.remote)
            time.sleep(0.15)

    def send_tone(self, frequency: float, seconds: float) -> None:
        """Talk: a sine as PCMU, in real time."""
        assert self.remote is not None
        t = np.arange(int(RATE * seconds)) / RATE
        payload = ulaw_encode((np.sin(2 * np.pi * frequency * t) * 8000).astype(np.int16))
        for start in range(0, len(payload), 160):
            self._seq += 1
            header = struct.pack("!BBHII", 0x80, 0, self._seq, 160 * self._seq, 0x7070)
            self.sock.sendto(header + payload[start : start + 160].tobytes(), self.remote)
            time.sleep(0.02)

    def listen(self, seconds: float) -> np.ndarray:
        """What arrives during ``seconds`` (silence where nothing came)."""
        frames: list[np.ndarray] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                packet = self.sock.recv(2048)
            except socket.timeout:
                continue
            if packet[1] & 0x7F == 0:  # PCMU
                frames.append(ulaw_decode(packet[12:]).astype(np.float64))
        return np.concatenate(frames) if frames else np.zeros(0)

    def wait_for_tone(self, frequency: float, timeout: float = 30.0, frames: int = 5) -> float:
        """Read until a tone of ``frequency`` has played (``frames`` × 20 ms) and
        stopped; returns how long that took."""
        started = time.monotonic()
        tone_frames(self.sock, frequency, timeout, frames)
        return time.monotonic() - started
