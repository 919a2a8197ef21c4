"""The softphone gateway's media: one aiortc peer connection to the page
(ICE, DTLS-SRTP, Opus or G.711 as the browser offers) joined to one plain RTP
stream to the PBX (G.711, RFC 4733 keys), like a desk phone's.  The SIP
offer/answer for that stream is the user agent's (:mod:`softphone.ua`): the
bridge is told where to send as a :class:`~softphone.ua.MediaPlan`.

aiortc decodes what the page says; it is resampled to 8 kHz and sent to the
PBX as 20 ms G.711 packets.  What the PBX sends is decoded and handed to
aiortc as a paced 8 kHz track, which it encodes for the browser.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import secrets
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import cast

import av
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from pbx.calls.channel import KEYS
from softphone.ua import MediaPlan

log = logging.getLogger("softphone.media")

RATE = 8000
FRAME = 160  # 20 ms at 8 kHz
DTMF_PT = 101
ENCODE = {"PCMU": ulaw_encode, "PCMA": alaw_encode}
DECODE = {0: ulaw_decode, 8: alaw_decode}


class NoMediaPath(Exception):
    """The page offered no ICE candidate at all (e.g. relay only and its TURN
    server unreachable): no media path can be found, so the call is not taken."""


def all_candidates(sdp: str) -> str:
    """The page's offer holds all its ICE candidates (it waits for gathering to
    complete): mark every media section so (``a=end-of-candidates``, RFC 8840),
    else ICE with no working pair would wait for more rather than fail."""
    if "a=end-of-candidates" in sdp:
        return sdp
    out: list[str] = []
    for line in sdp.strip().splitlines():
        if line.startswith("m=") and any(seen.startswith("m=") for seen in out):
            out.append("a=end-of-candidates")
        out.append(line)
    if any(line.startswith("m=") for line in out):
        out.append("a=end-of-candidates")
    return "\r\n".join(out) + "\r\n"


class PbxTrack(MediaStreamTrack):
    """What the PBX sends, as an audio track for aiortc to encode: one 20 ms
    frame per ``recv``, in real time, silence while nothing arrived."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.frames: deque[np.ndarray] = deque(maxlen=10)  # ~200 ms: late frames are dropped
        self._start: float | None = None
        self._pts = 0

    def push(self, samples: np.ndarray) -> None:
        self.frames.append(samples.astype(np.int16))

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._pts += FRAME
            wait = self._start + self._pts / RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        samples = self.frames.popleft() if self.frames else np.zeros(FRAME, np.int16)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, RATE)
        return frame


class RtpLeg(asyncio.DatagramProtocol):
    """The plain RTP stream between the gateway and the PBX's relay."""

    def __init__(self, track: PbxTrack) -> None:
        self.track = track
        self.transport: asyncio.DatagramTransport | None = None
        self.remote: tuple[str, int] | None = None
        self.codec = "PCMU"
        self.payload_type = 0
        self.dtmf_type = DTMF_PT
        self.ssrc = secrets.randbits(32)
        self.seq = secrets.randbits(16)
        self.timestamp = secrets.randbits(32)
        self.keying = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # uvloop's is no subclass

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 12 or data[0] >> 6 != 2:
            return
        decode = DECODE.get(data[1] & 0x7F)
        if decode is None:
            return  # comfort noise, telephone-event…: nothing to play
        start = 12 + 4 * (data[0] & 0x0F)
        if data[0] & 0x10 and len(data) >= start + 4:  # header extension
            start += 4 + 4 * struct.unpack_from("!H", data, start + 2)[0]
        self.track.push(decode(data[start:]))

    def _packet(self, payload_type: int, payload: bytes, timestamp: int,
                marker: bool = False) -> bytes:
        self.seq = (self.seq + 1) & 0xFFFF
        return struct.pack("!BBHII", 0x80, payload_type | (0x80 if marker else 0), self.seq,
                           timestamp, self.ssrc) + payload

    def send_audio(self, samples: np.ndarray) -> None:
        """One 20 ms frame of 8 kHz int16 samples (held back while a key sounds)."""
        if self.transport is None or self.remote is None or self.keying:
            return
        payload = ENCODE[self.codec](samples).tobytes()
        self.transport.sendto(self._packet(self.payload_type, payload, self.timestamp), self.remote)
        self.timestamp = (self.timestamp + FRAME) & 0xFFFFFFFF

    async def send_key(self, key: str) -> None:
        """Press ``key`` for 100 ms as RFC 4733 events: every packet carries the
        event's start timestamp, the last one thrice with the end bit."""
        if self.transport is None or self.remote is None:
            return
        event, start, steps = KEYS.index(key), self.timestamp, 5
        self.keying = True
        try:
            for step in range(1, steps + 1):
                end = step == steps
                payload = struct.pack("!BBH", event, (0x80 if end else 0) | 10, step * FRAME)
                for _ in range(3 if end else 1):
                    self.transport.sendto(
                        self._packet(self.dtmf_type, payload, start, marker=step == 1), self.remote)
                await asyncio.sleep(FRAME / RATE)
        finally:
            self.keying = False
            self.timestamp = (start + steps * FRAME) & 0xFFFFFFFF


class MediaBridge:
    """One call's media: the page's peer connection and the RTP leg to the PBX.

    The peer connection may be replaced (:meth:`renew`) while the RTP leg, and
    so the SIP call's media, stays.  ``on_state`` is told when the current
    peer connection's state changes (never a replaced one's)."""

    def __init__(self, host: str,
                 on_state: Callable[[MediaBridge], Awaitable[None]] | None = None) -> None:
        self.host = host
        self.on_state = on_state
        self.from_pbx = PbxTrack()
        self.rtp = RtpLeg(self.from_pbx)
        self._pump: asyncio.Task[None] | None = None
        self.codec = ""  # the page's (what the browser and aiortc agreed)
        self.pc = self._peer_connection()

    def _peer_connection(self) -> RTCPeerConnection:
        """A new peer connection fed by (and feeding) the RTP leg."""
        pc = RTCPeerConnection()
        self.from_pbx = self.rtp.track = PbxTrack()
        pc.addTrack(self.from_pbx)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio" and pc is self.pc:
                if self._pump is not None:
                    self._pump.cancel()
                self._pump = asyncio.ensure_future(self._to_pbx(track))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc is self.pc and self.on_state is not None:
                await self.on_state(self)

        return pc

    async def renew(self, offer: str) -> str:
        """The page's new peer connection for this call (its network changed,
        its ICE failed): answered like the first, the old one closed; the RTP
        leg to the PBX is kept, so the SIP call does not notice.  When the
        offer is refused the old peer connection stays."""
        old_pc, old_track = self.pc, self.from_pbx
        self.pc = self._peer_connection()
        try:
            answer = await self.answer_page(offer)
        except BaseException:
            new_pc, new_track, self.pc = self.pc, self.from_pbx, old_pc
            self.from_pbx = self.rtp.track = old_track
            new_track.stop()
            await new_pc.close()
            raise
        old_track.stop()
        await old_pc.close()
        return answer

    async def answer_page(self, offer: str) -> str:
        """Take the page's offer; the answer (all candidates in it, no trickle)."""
        if "a=candidate:" not in offer and "m=" in offer:
            raise NoMediaPath("the browser offered no ICE candidate")
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=all_candidates(offer),
                                                                 type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        description = self.pc.localDescription
        self.codec = next((line.split()[1].split("/")[0] for line in description.sdp.splitlines()
                           if line.startswith("a=rtpmap:")), "")
        return description.sdp

    async def open_rtp(self) -> tuple[str, int]:
        """Our RTP socket toward the PBX: its address, for the SIP offer or answer."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self.rtp,
                                                           local_addr=(self.host, 0))
        return transport.get_extra_info("sockname")[:2]

    def connect_pbx(self, plan: MediaPlan) -> None:
        """Send to where the offer/answer says, in the codec agreed (again when a
        re-INVITE moves it)."""
        rtp = self.rtp
        rtp.remote = (plan.host, plan.port)
        rtp.codec, rtp.payload_type = plan.codec, plan.payload_type
        rtp.dtmf_type = plan.event_type if plan.event_type is not None else DTMF_PT

    async def _to_pbx(self, track: MediaStreamTrack) -> None:
        """The page's audio, resampled to 8 kHz mono, out in 20 ms packets."""
        resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        pending = np.zeros(0, np.int16)
        try:
            while True:
                frame = await track.recv()
                for out in resampler.resample(frame):
                    pending = np.concatenate([pending, out.to_ndarray().reshape(-1)])
                while len(pending) >= FRAME:
                    self.rtp.send_audio(pending[:FRAME])
                    pending = pending[FRAME:]
        except MediaStreamError:
            return

    async def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
        self.from_pbx.stop()
        await self.pc.close()
        if self.rtp.transport is not None:
            self.rtp.transport.close()
