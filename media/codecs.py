"""Wideband codecs for the engine (G.722, Opus) and the resampler they need.

The engine mixes narrowband 20 ms frames at 8 kHz; G.711 is decoded by table
lookup in one operation for all channels (``media.g711``).  G.722 (16 kHz)
and Opus (48 kHz) come from aiortc (PyAV's ffmpeg underneath) with one
encoder and one decoder per channel, since both are stateful, and a
polyphase low-pass resampler that keeps its filter state between frames so
20 ms pieces join without clicks.  The same resampler brings music and
prompt files to the engine's rate (``media.audiofile``).
"""

from __future__ import annotations

import fractions
from math import gcd

import av
import numpy as np
from aiortc.codecs import get_decoder, get_encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from scipy.signal import firwin, upfirdn

ENGINE_RATE = 8000
FRAME_MS = 20

# name → (aiortc MIME type, RTP clock rate, channels, the codec's audio rate)
WIDEBAND = {
    "G722": ("audio/G722", 8000, 1, 16000),  # RFC 3551: the RTP clock says 8000
    "opus": ("audio/opus", 48000, 2, 48000),
}


class Resampler:
    """Rate conversion by a rational factor with a windowed-sinc low-pass.

    Zero-stuff by ``up``, filter, keep every ``down``-th sample: the textbook
    converter, computed the polyphase way (scipy's ``upfirdn`` works out only
    the samples that are kept, so 44.1 → 8 kHz, up 80 and down 441, costs
    what 48 → 8 kHz costs).  The stream is continuous across calls: the last
    inputs the filter still needs are kept, and where the next output falls
    on the stuffed grid.
    """

    def __init__(self, source: int, target: int, taps_per_phase: int = 16) -> None:
        g = gcd(source, target)
        self.up, self.down = target // g, source // g
        factor = max(self.up, self.down)
        self.taps = firwin(taps_per_phase * factor + 1, 0.9 / factor) * self.up
        self.history = np.zeros(-(-(len(self.taps) - 1) // self.up))  # inputs the filter spans
        self.offset = 0  # stuffed samples so far, modulo ``down``

    def process(self, samples: np.ndarray) -> np.ndarray:
        up, down, kept = self.up, self.down, len(self.history)
        x = np.concatenate([self.history, np.asarray(samples, dtype=np.float64)])
        # upfirdn keeps stuffed samples 0, down, 2·down … of ``x``; delaying the filter
        # by ``shift`` puts that grid on the stream's own (multiples of ``down``)
        shift = (self.offset - kept * up) % down
        taps = np.concatenate([np.zeros(shift), self.taps]) if shift else self.taps
        filtered = upfirdn(taps, x, up, down)
        first = -(-(kept * up + shift) // down)  # the first output past the history
        end = -(-(len(x) * up + shift) // down)
        self.history = x[len(x) - kept :]
        self.offset = (self.offset + len(samples) * up) % down
        return filtered[first:end]


class WidebandChannel:
    """One channel's G.722 or Opus encoder/decoder, speaking 8 kHz frames to the engine."""

    def __init__(self, name: str) -> None:
        mime, clock, channels, rate = WIDEBAND[name]
        parameters = RTCRtpCodecParameters(
            mimeType=mime, clockRate=clock, channels=channels, payloadType=0
        )
        self.name = name
        self.rate = rate
        self.clock_step = clock * FRAME_MS // 1000  # RTP timestamp units per frame
        self.encoder = get_encoder(parameters)
        self.decoder = get_decoder(parameters)
        self.down = Resampler(rate, ENGINE_RATE)
        self.up = Resampler(ENGINE_RATE, rate)
        self._pts = 0
        self._ts = 0

    def decode(self, payload: bytes) -> np.ndarray:
        """One RTP payload → 160 samples at 8 kHz (float)."""
        self._ts += self.clock_step
        frames = self.decoder.decode(JitterFrame(data=payload, timestamp=self._ts))
        if not frames:
            return np.zeros(ENGINE_RATE * FRAME_MS // 1000)
        pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.float64)
        if frames[0].layout.name == "stereo":
            pcm = pcm.reshape(-1, 2).mean(axis=1)
        out = self.down.process(pcm)
        size = ENGINE_RATE * FRAME_MS // 1000
        return np.pad(out, (0, max(0, size - len(out))))[:size]

    def encode(self, samples: np.ndarray) -> bytes:
        """160 samples at 8 kHz → one RTP payload."""
        wide = np.clip(self.up.process(samples), -32768, 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(wide.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.rate
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, self.rate)
        self._pts += len(wide)
        payloads, _ = self.encoder.encode(frame)
        return payloads[0] if payloads else b""
