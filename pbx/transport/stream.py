"""SIP over TCP and TLS (RFC 3261 §18.3, RFC 5626 §4.4.1 keep-alives).

One ``StreamConnection`` (an ``asyncio.Protocol``) per connection wraps the pure
``StreamFramer``: bytes in, whole messages out.  Connections are kept in a table
keyed by the peer's flow so that requests to a phone reuse the connection it
registered on: a phone behind NAT or a firewall can only be reached that way.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable

from pbx.sip.flow import Flow
from pbx.sip.errors import ParseError
from pbx.sip.parser import StreamFramer
from pbx.transport.udp import plain_host

log = logging.getLogger("pbx.transport.stream")

Receiver = Callable[[bytes, Flow], None]


class StreamConnection(asyncio.Protocol):
    """One TCP or TLS connection: framing, keep-alive pongs, idle timeout."""

    def __init__(self, owner: StreamTransport) -> None:
        self.owner = owner
        self.framer = StreamFramer()
        self.transport: asyncio.Transport | None = None
        self.flow: Flow | None = None
        self._pings = 0
        self._idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        host, port = transport.get_extra_info("peername")[:2]
        self.flow = Flow(self.owner.name, plain_host(host), port)
        self.owner.connections[self.flow] = self
        self._touch()

    def data_received(self, data: bytes) -> None:
        self._touch()
        try:
            messages = self.framer.feed(data)
        except ParseError as exc:
            log.warning("closing %s: %s", self.flow, exc.reason)
            self.close()
            return
        if self.framer.keepalive_pings != self._pings:
            self._pings = self.framer.keepalive_pings
            self.write(b"\r\n")  # RFC 5626 §4.4.1: the pong to a CRLFCRLF ping
        assert self.flow is not None
        for message in messages:
            self.owner.receiver(message, self.flow)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle is not None:
            self._idle.cancel()
        if self.flow is not None and self.owner.connections.get(self.flow) is self:
            del self.owner.connections[self.flow]

    def write(self, data: bytes) -> bool:
        if self.transport is None or self.transport.is_closing():
            return False
        self.transport.write(data)
        return True

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _touch(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        loop = asyncio.get_running_loop()
        self._idle = loop.call_later(self.owner.idle_timeout, self._expire)

    def _expire(self) -> None:
        log.info("closing idle connection %s", self.flow)
        self.close()


class StreamTransport:
    """A TCP or TLS listener and its connection table."""

    def __init__(
        self,
        name: str,
        receiver: Receiver,
        ssl_context: ssl.SSLContext | None = None,
        idle_timeout: float = 3900.0,
    ) -> None:
        self.name = name
        self.receiver = receiver
        self.ssl_context = ssl_context
        self.idle_timeout = idle_timeout
        self.connections: dict[Flow, StreamConnection] = {}
        self.server: asyncio.Server | None = None

    async def listen(self, host: str, port: int, reuse_port: bool = False) -> None:
        """Listen on ``host:port`` (with ``reuse_port``, beside the node's other
        workers: a connection belongs to the worker that accepted it)."""
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: StreamConnection(self), host, port, ssl=self.ssl_context, reuse_address=True,
            reuse_port=reuse_port or None,
        )

    @property
    def local_port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    def send(self, data: bytes, flow: Flow) -> bool:
        """Send over the flow's open connection; TCP opens a new one if needed."""
        connection = self.connections.get(flow)
        if connection is not None:
            return connection.write(data)
        if self.ssl_context is not None:
            return False  # a TLS phone re-opens its own flow (RFC 5626 §4.4)
        asyncio.get_running_loop().create_task(self._connect_and_send(data, flow))
        return True

    async def _connect_and_send(self, data: bytes, flow: Flow) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(lambda: StreamConnection(self), flow.host, flow.port), 5.0
            )
        except (OSError, asyncio.TimeoutError) as exc:
            log.info("cannot connect to %s: %s", flow, exc)
            return
        connection.write(data)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for connection in list(self.connections.values()):
            connection.close()
        if self.server is not None:
            await self.server.wait_closed()
