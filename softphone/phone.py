"""The command-line softphone on the wire: its line to the PBX
(:class:`~softphone.line.Line`) and one RTP socket for its calls.

:class:`Phone` is a line whose events go to a queue the session reads, with
the call's media started and stopped as they pass.  :class:`MediaLeg` is
the call's RTP: every 20 ms it sends the
next frame of what is played (silence when nothing is) through
:class:`~media.rtp.RtpSender` and keeps the frames that arrive, which
become the recording.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile

from media.rtp import FRAME, KeyListener, RtpPacket, RtpSender, decode, frames, silence
from softphone.line import Line
from softphone.ua import Account, CallAnswered, CallEnded, Event, MediaPlan, Unregistered

RATE = 8000
TICK = FRAME / RATE


class MediaLeg(asyncio.DatagramProtocol):
    """One call's RTP: what we play out, what we hear."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.plan: MediaPlan | None = None
        self.sender: RtpSender | None = None
        self.playing: deque[bytes] = deque()  # frames still to send
        self.heard: list[np.ndarray] = []  # decoded as they come: a re-INVITE may change codec
        self.listener = KeyListener()
        self.on_key: Callable[[str], None] = lambda key: None  # the far end pressed a key
        self._timer: asyncio.TimerHandle | None = None
        self._next = 0.0

    @classmethod
    async def open(cls, host: str) -> MediaLeg:
        loop = asyncio.get_running_loop()
        _, leg = await loop.create_datagram_endpoint(cls, local_addr=(host, 0))
        return leg

    @property
    def address(self) -> tuple[str, int]:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return host, port

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        packet = RtpPacket.parse(data)
        plan = self.plan
        if packet is None or plan is None:
            return
        if packet.payload_type == plan.payload_type:
            self.heard.append(decode([packet.payload], plan.codec))
        elif packet.payload_type == plan.event_type:
            key = self.listener.feed(packet)
            if key is not None:
                self.on_key(key)

    def start(self, plan: MediaPlan) -> None:
        """Send to where the offer/answer says (again, when a re-INVITE moves it)."""
        old = self.plan
        if self._timer is None or old is None or (old.payload_type, old.event_type) != (
                plan.payload_type, plan.event_type):
            self.sender = RtpSender(plan.payload_type, plan.event_type)
        self.plan = plan
        if self._timer is None:
            self._next = time.monotonic()
            self._tick()

    def play(self, samples: np.ndarray) -> None:
        assert self.plan is not None
        self.playing = deque(frames(samples, self.plan.codec))

    @property
    def busy(self) -> bool:
        """Still playing a file or sending keys."""
        return bool(self.playing) or (self.sender is not None and self.sender.pressing)

    def _tick(self) -> None:
        assert self.plan is not None and self.sender is not None and self.transport is not None
        payload = self.playing.popleft() if self.playing else silence(self.plan.codec)
        for packet in self.sender.tick(payload):
            self.transport.sendto(packet, (self.plan.host, self.plan.port))
        self._next += TICK  # on a fixed grid: a late tick does not delay the next
        loop = asyncio.get_running_loop()
        self._timer = loop.call_at(loop.time() + max(0.0, self._next - time.monotonic()),
                                   self._tick)

    def save(self, path: Path) -> float:
        """Write what was heard as 8 kHz 16-bit WAV; its length in seconds."""
        audio = np.concatenate(self.heard) if self.heard else np.zeros(0, np.int16)
        soundfile.write(path, audio, RATE, subtype="PCM_16")
        return len(audio) / RATE

    def stop(self) -> None:
        """The call ended: stop sending (the socket stays for the next call)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.playing.clear()

    def close(self) -> None:
        self.stop()
        if self.transport is not None:
            self.transport.close()


class Phone(Line):
    """The softphone on the wire: the agent, its connection and its calls' media."""

    def __init__(self, account: Account) -> None:
        self.events: asyncio.Queue[Event | str] = asyncio.Queue()  # a str: the connection is gone
        super().__init__(account, self._event)
        self.leg: MediaLeg | None = None  # one RTP port for the phone's life: one call at a time

    async def connect(self, verify_tls: bool = True, rtp: tuple[str, int] = ("", 0)) -> None:
        """Open the connection to the PBX and the RTP socket beside it."""
        await super().connect(verify_tls)
        self.leg = await MediaLeg.open(self.local_host)
        self.agent.rtp = self.leg.address

    def _event(self, event: Event | str) -> None:
        if isinstance(event, CallAnswered):
            assert self.leg is not None
            self.leg.start(event.media)
        elif isinstance(event, CallEnded):
            assert self.leg is not None
            self.leg.stop()
        self.events.put_nowait(event)

    async def next_event(self, timeout: float | None = None) -> Event | str:
        return await asyncio.wait_for(self.events.get(), timeout)

    async def close(self) -> None:
        """Hang up what is up, unregister (briefly waiting for the answer), close."""
        for call in list(self.ua.calls.values()) if self.ua is not None else []:
            self.hangup(call)
        if self.ua is not None and self.ua.registered:
            self.unregister()
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                try:
                    event = await self.next_event(deadline - time.monotonic())
                except asyncio.TimeoutError:
                    break
                if isinstance(event, (Unregistered, str)):
                    break
        if self.leg is not None:
            self.leg.close()
        self.disconnect()
