"""A softphone's line to its PBX: the asyncio glue around the pure
:class:`~softphone.ua.UserAgent`.

:class:`Line` owns one connection to the PBX (a connected UDP socket, or a
TCP/TLS stream cut into messages by the stack's ``StreamFramer``), feeds the
agent what arrives, sends what it has to say and follows its ``get_timer``
with one timer.  What happens comes out through ``on_event``: the agent's
events, or a ``str`` saying the connection is gone.  Both softphones stand on
it: the command-line one (:mod:`softphone.phone`) and the browser page's
gateway (:mod:`softphone.gateway`), one line per open page.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable

from pbx.sip.errors import ParseError
from pbx.sip.parser import StreamFramer
from softphone.ua import Account, Call, Event, UserAgent


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, line: Line) -> None:
        self.line = line

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        if data.strip(b"\r\n\x00 "):
            self.line.received(data)

    def error_received(self, exc: Exception) -> None:
        self.line.on_event(f"the PBX is not reachable: {exc}")


class _Stream(asyncio.Protocol):
    def __init__(self, line: Line) -> None:
        self.line = line
        self.framer = StreamFramer()

    def data_received(self, data: bytes) -> None:
        try:
            messages = self.framer.feed(data)
        except ParseError as exc:
            self.line.on_event(f"the PBX broke the stream: {exc.reason}")
            return
        for message in messages:
            self.line.received(message)

    def connection_lost(self, exc: Exception | None) -> None:
        self.line.on_event("the PBX closed the connection")


class Line:
    """The user agent on the wire: its connection to the PBX and its clock."""

    def __init__(self, account: Account, on_event: Callable[[Event | str], None]) -> None:
        self.account = account
        self.on_event = on_event  # an agent's event, or a str: the connection is gone
        self.ua: UserAgent | None = None
        self.local_host = ""
        self._transport: asyncio.BaseTransport | None = None
        self._send: Callable[[bytes], None] = lambda data: None
        self._timer: asyncio.TimerHandle | None = None

    async def connect(self, verify_tls: bool = True, rtp: tuple[str, int] = ("", 0)) -> None:
        """Open the connection to the PBX (OSError when it cannot be opened);
        ``rtp`` is the phone's RTP address, for calls that bring none."""
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
        self.local_host = host
        sent_by = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.ua = UserAgent(self.account, sent_by, rtp)

    @property
    def agent(self) -> UserAgent:
        assert self.ua is not None, "connect() first"
        return self.ua

    def received(self, data: bytes) -> None:
        self.agent.receive(data, time.monotonic())
        self.flush()

    def flush(self) -> None:
        """Send what the agent has to say, hand on its events, re-arm its timer."""
        agent = self.agent
        for data in agent.messages_to_send():
            self._send(data)
        while (event := agent.next_event()) is not None:
            self.on_event(event)
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

    # ------------------------------------------------------------ what the user does

    def register(self) -> None:
        self.agent.register(time.monotonic())
        self.flush()

    def unregister(self) -> None:
        self.agent.unregister(time.monotonic())
        self.flush()

    def call(self, target: str, rtp: tuple[str, int] | None = None) -> Call:
        call = self.agent.call(target, time.monotonic(), rtp)
        self.flush()
        return call

    def answer(self, call: Call, rtp: tuple[str, int] | None = None) -> None:
        self.agent.answer(call, time.monotonic(), rtp)
        self.flush()

    def hangup(self, call: Call) -> None:
        self.agent.hangup(call, time.monotonic())
        self.flush()

    def hold(self, call: Call, held: bool = True) -> None:
        self.agent.hold(call, time.monotonic(), held)
        self.flush()

    def transfer(self, call: Call, target: str, replaces: Call | None = None) -> None:
        self.agent.transfer(call, target, time.monotonic(), replaces)
        self.flush()

    def disconnect(self) -> None:
        """Stop the clock and close the connection (after hanging up and unregistering)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None:
            self._transport.close()
