"""SIP over TCP and TLS (RFC 3261 §18.3, RFC 5626 §4.4.1 keep-alives).

One ``StreamConnection`` (an ``asyncio.Protocol``) per connection wraps the pure
``StreamFramer``: bytes in, whole messages out.  Connections are kept in a table
keyed by the peer's flow so that requests to a phone reuse the connection it
registered on: a phone behind NAT or a firewall can only be reached that way.

Over TLS we open connections only to peers we were told about (a carrier's
trunk, :meth:`StreamTransport.expect`), each with its own client context and
the name its certificate must carry; a phone re-opens its own flow.  When such
a connection cannot be made (refused, no answer, a certificate that fails
verification) the owner hears it through ``on_error``: the requests waiting
for it fail at once (RFC 3261 §8.1.3.1: as a 503) instead of timing out.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from pbx.sip.flow import Flow
from pbx.sip.errors import ParseError
from pbx.sip.parser import StreamFramer
from pbx.transport.tls import failure
from pbx.transport.udp import plain_host

log = logging.getLogger("pbx.transport.stream")

Receiver = Callable[[bytes, Flow], None]
Refuser = Callable[[ParseError, Flow], None]
ErrorSink = Callable[[Flow, str], None]
CONNECT_TIMEOUT = 5.0  # seconds for TCP connect and TLS handshake together


@dataclass(frozen=True, slots=True)
class TlsPeer:
    """How to open a TLS connection to one peer: our client context (its CAs,
    whether it verifies) and the name the peer's certificate must carry."""

    context: ssl.SSLContext
    server_name: str


class StreamConnection(asyncio.Protocol):
    """One TCP or TLS connection: framing, keep-alive pongs, idle timeout."""

    def __init__(self, owner: StreamTransport, inbound: bool = True) -> None:
        self.owner = owner
        self.inbound = inbound  # accepted (asked of ``admit``), not opened by us
        self.framer = StreamFramer()
        self.transport: asyncio.Transport | None = None
        self.flow: Flow | None = None
        self._pings = 0
        self._idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        host, port = transport.get_extra_info("peername")[:2]
        flow = Flow(self.owner.name, plain_host(host), port)
        if self.inbound and self.owner.admit is not None and not self.owner.admit(flow.host):
            log.info("connection from %s closed: the source is banned", flow)
            transport.close()
            return
        self.flow = flow
        self.owner.connections[flow] = self
        self._touch()

    def data_received(self, data: bytes) -> None:
        self._touch()
        try:
            messages = self.framer.feed(data)
        except ParseError as exc:
            log.warning("closing %s: %s", self.flow, exc.reason)
            assert self.flow is not None
            if self.owner.refuse is not None:
                self.owner.refuse(exc, self.flow)  # the 400 goes out before the close
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
        refuse: Refuser | None = None,
        admit: Callable[[str], bool] | None = None,
    ) -> None:
        """``refuse`` answers the request a stream broke its framing on, if any;
        ``admit`` is asked of each accepted connection's source host (False:
        closed at once)."""
        self.name = name
        self.receiver = receiver
        self.refuse = refuse
        self.admit = admit
        self.ssl_context = ssl_context
        self.idle_timeout = idle_timeout
        self.connections: dict[Flow, StreamConnection] = {}
        self.server: asyncio.Server | None = None
        self.peers: dict[Flow, TlsPeer] = {}  # TLS flows we may open ourselves
        self.connecting: dict[Flow, list[bytes]] = {}  # data waiting for a connection
        self.on_error: ErrorSink | None = None

    def expect(self, flow: Flow, peer: TlsPeer) -> None:
        """Requests to ``flow`` may open a TLS connection, verified as ``peer`` says."""
        self.peers[flow] = peer

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
        """Send over the flow's open connection; TCP opens a new one if needed, TLS
        only to a peer it was told to :meth:`expect`."""
        connection = self.connections.get(flow)
        if connection is not None:
            return connection.write(data)
        waiting = self.connecting.get(flow)
        if waiting is not None:
            waiting.append(data)
            return True
        peer = self.peers.get(flow)
        if self.ssl_context is not None and peer is None:
            return False  # a TLS phone re-opens its own flow (RFC 5626 §4.4)
        self.connecting[flow] = [data]
        asyncio.get_running_loop().create_task(self._connect_and_send(flow, peer))
        return True

    async def _connect_and_send(self, flow: Flow, peer: TlsPeer | None) -> None:
        loop = asyncio.get_running_loop()
        tls = {} if peer is None else {"ssl": peer.context, "server_hostname": peer.server_name}
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(lambda: StreamConnection(self, inbound=False),
                                       flow.host, flow.port,
                                       **tls), CONNECT_TIMEOUT)
        except (OSError, asyncio.TimeoutError) as exc:
            self.connecting.pop(flow, None)
            if peer is None:
                log.info("cannot connect to %s: %s", flow, exc)
                return
            reason = failure(exc) if not isinstance(exc, asyncio.TimeoutError) \
                else f"no connection within {CONNECT_TIMEOUT:g} s"
            log.warning("TLS to %s (%s:%d) refused: %s", peer.server_name, flow.host, flow.port,
                        reason)
            if self.on_error is not None:
                self.on_error(flow, reason)
            return
        for data in self.connecting.pop(flow, []):
            connection.write(data)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for connection in list(self.connections.values()):
            connection.close()
        if self.server is not None:
            await self.server.wait_closed()
