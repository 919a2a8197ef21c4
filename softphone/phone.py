"""The softphone's asyncio glue: the SIP socket, the RTP socket and the clocks.

:class:`Phone` owns one connection to the PBX (a connected UDP socket, or a
TCP/TLS stream cut into messages by the stack's ``StreamFramer``) and feeds
the pure :class:`~softphone.ua.UserAgent`; one timer follows the agent's
``get_timer``.  :class:`MediaLeg` is the call's RTP: every 20 ms it sends the
next frame of what is played (silence when nothing is) through
:class:`~media.rtp.RtpSender` and keeps the frames that arrive, which
become the recording.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile

from media.rtp import FRAME, KeyListener, RtpPacket, RtpSender, decode, frames, silence
from pbx.sip.errors import ParseError
from pbx.sip.parser import StreamFramer
from softphone.ua import (Account, Call, CallAnswered, CallEnded, Event, MediaPlan, Unregistered,
                         UserAgent)

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


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, phone: Phone) -> None:
        self.phone = phone

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        if data.strip(b"\r\n\x00 "):
            self.phone.received(data)

    def error_received(self, exc: Exception) -> None:
        self.phone.lost(f"the PBX is not reachable: {exc}")


class _Stream(asyncio.Protocol):
    def __init__(self, phone: Phone) -> None:
        self.phone = phone
        self.framer = StreamFramer()

    def data_received(self, data: bytes) -> None:
        try:
            messages = self.framer.feed(data)
        except ParseError as exc:
            self.phone.lost(f"the PBX broke the stream: {exc.reason}")
            return
        for message in messages:
            self.phone.received(message)

    def connection_lost(self, exc: Exception | None) -> None:
        self.phone.lost("the PBX closed the connection")


class Phone:
    """The softphone on the wire: the agent, its connection and its calls' media."""

    def __init__(self, account: Account) -> None:
        self.account = account
        self.events: asyncio.Queue[Event | str] = asyncio.Queue()  # a str: the connection is gone
        self.ua: UserAgent | None = None
        self.leg: MediaLeg | None = None  # one RTP port for the phone's life: one call at a time
        self._transport: asyncio.BaseTransport | None = None
        self._send: Callable[[bytes], None] = lambda data: None
        self._timer: asyncio.TimerHandle | None = None
        self._local_host = ""

    async def connect(self, verify_tls: bool = True) -> None:
        """Open the connection to the PBX (OSError when it cannot be opened)."""
        loop = asyncio.get_running_loop()
        server = self.account.server
        if server.transport == "UDP":
            self._transport, _ = await loop.create_datagram_endpoint(
                lambda: _Datagrams(self), remote_addr=(server.host, server.port))
        else:
            context = None
            if server.transport == "TLS":
                context = ssl.create_default_context()
                if not verify_tls:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
            self._transport, _ = await asyncio.wait_for(loop.create_connection(
                lambda: _Stream(self), server.host, server.port, ssl=context), 10)
        transport = self._transport
        self._send = transport.sendto if server.transport == "UDP" else transport.write  # type: ignore[attr-defined]
        host, port = transport.get_extra_info("sockname")[:2]
        self._local_host = host
        self.leg = await MediaLeg.open(host)
        sent_by = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.ua = UserAgent(self.account, sent_by, self.leg.address)

    @property
    def agent(self) -> UserAgent:
        assert self.ua is not None, "connect() first"
        return self.ua

    # ------------------------------------------------------------ SIP in and out

    def received(self, data: bytes) -> None:
        self.agent.receive(data, time.monotonic())
        self.flush()

    def lost(self, why: str) -> None:
        self.events.put_nowait(why)

    def flush(self) -> None:
        """Send what the agent has to say, act on its events, re-arm its timer."""
        agent = self.agent
        for data in agent.messages_to_send():
            self._send(data)
        while (event := agent.next_event()) is not None:
            self._media_for(event)
            self.events.put_nowait(event)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        when = agent.get_timer()
        if when is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_at(loop.time() + max(0.0, when - time.monotonic()),
                                       self._fire)

    def _fire(self) -> None:
        self._timer = None
        self.agent.handle_timer(time.monotonic())
        self.flush()

    def _media_for(self, event: Event) -> None:
        assert self.leg is not None
        if isinstance(event, CallAnswered):
            self.leg.start(event.media)
        elif isinstance(event, CallEnded):
            self.leg.stop()

    # ------------------------------------------------------------ what the user does

    def register(self) -> None:
        self.agent.register(time.monotonic())
        self.flush()

    def call(self, target: str) -> Call:
        call = self.agent.call(target, time.monotonic())
        self.flush()
        return call

    def answer(self, call: Call) -> None:
        self.agent.answer(call, time.monotonic())
        self.flush()

    def hangup(self, call: Call) -> None:
        self.agent.hangup(call, time.monotonic())
        self.flush()

    async def next_event(self, timeout: float | None = None) -> Event | str:
        return await asyncio.wait_for(self.events.get(), timeout)

    async def close(self) -> None:
        """Hang up what is up, unregister (briefly waiting for the answer), close."""
        for call in list(self.ua.calls.values()) if self.ua is not None else []:
            self.hangup(call)
        if self.ua is not None and self.ua.registered:
            self.agent.unregister(time.monotonic())
            self.flush()
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                try:
                    event = await self.next_event(deadline - time.monotonic())
                except asyncio.TimeoutError:
                    break
                if isinstance(event, (Unregistered, str)):
                    break
        if self._timer is not None:
            self._timer.cancel()
        if self.leg is not None:
            self.leg.close()
        if self._transport is not None:
            self._transport.close()

