"""SIP over WebSocket (RFC 7118): one WebSocket message is one SIP message.

A web client (JsSIP, SIP.js, a browser extension) opens a WebSocket with the
``sip`` subprotocol; the handshake is refused without it (§4).  Like a phone
over TCP or TLS, it is reached only over the connection it opened: its
Contact names a ``.invalid`` host (§5.2), so requests to it go back over the
connection it registered on (the location service keeps that flow).
Messages go out as text frames when they are UTF-8, binary ones otherwise
(§5.1), in order, through one writer per connection.  Over TLS (``wss``,
what a browser on an HTTPS page must use) the transport is WSS, in Via and
in the flows it keeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from pbx.sip.flow import Flow
from pbx.transport.udp import plain_host

log = logging.getLogger("pbx.transport.ws")

Receiver = Callable[[bytes, Flow], None]
SUBPROTOCOL = Subprotocol("sip")
MAX_MESSAGE = 65535  # bytes; a SIP message larger than this is no phone's


class WebSocketTransport:
    """The WS listener and its connections, keyed by the client's flow."""

    def __init__(self, receiver: Receiver, tls: ssl.SSLContext | None = None,
                 admit: Callable[[str], bool] | None = None) -> None:
        """``tls``: serve ``wss`` with this context; ``admit`` is asked of each
        handshake's source host (False: 403)."""
        self.receiver = receiver
        self.tls = tls
        self.admit = admit
        self.name = "WSS" if tls is not None else "WS"
        self.connections: dict[Flow, asyncio.Queue[bytes | None]] = {}
        self.server: Server | None = None

    async def listen(self, host: str, port: int, reuse_port: bool = False) -> None:
        """Listen on ``host:port`` (with ``reuse_port``, beside the node's other workers)."""
        self.server = await serve(self._serve, host, port, subprotocols=[SUBPROTOCOL],
                                  process_request=self._check, max_size=MAX_MESSAGE,
                                  server_header=None, reuse_port=reuse_port or None,
                                  ssl=self.tls)

    @property
    def local_port(self) -> int:
        assert self.server is not None
        return int(next(iter(self.server.sockets)).getsockname()[1])

    async def _serve(self, websocket: ServerConnection) -> None:
        host, port = websocket.remote_address[:2]
        flow = Flow(self.name, plain_host(host), port)
        outbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.connections[flow] = outbox
        writer = asyncio.create_task(self._write(websocket, outbox))
        try:
            async for message in websocket:
                self.receiver(message.encode() if isinstance(message, str) else message, flow)
        except ConnectionClosed:
            pass
        finally:
            if self.connections.get(flow) is outbox:
                del self.connections[flow]
            outbox.put_nowait(None)
            await writer

    @staticmethod
    async def _write(websocket: ServerConnection, outbox: asyncio.Queue[bytes | None]) -> None:
        while (data := await outbox.get()) is not None:
            try:
                text = data.decode()
            except UnicodeDecodeError:
                text = None
            with contextlib.suppress(ConnectionClosed):
                await websocket.send(data if text is None else text)

    def send(self, data: bytes, flow: Flow) -> bool:
        """Send over the client's connection; False when it has none (it reconnects)."""
        outbox = self.connections.get(flow)
        if outbox is None:
            return False
        outbox.put_nowait(data)
        return True

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


    def _check(self, connection: ServerConnection, request: Request) -> Response | None:
        """A banned source's handshake is refused; so is one without ``sip``."""
        host = plain_host(connection.remote_address[0])
        if self.admit is not None and not self.admit(host):
            log.info("WebSocket from %s refused: the source is banned", host)
            return connection.respond(403, "Forbidden\n")
        return _require_sip(connection, request)


def _require_sip(connection: ServerConnection, request: Request) -> Response | None:
    """RFC 7118 §4: a handshake that does not ask for the ``sip`` subprotocol is refused."""
    offered = ",".join(request.headers.get_all("Sec-WebSocket-Protocol"))
    if SUBPROTOCOL not in (p.strip() for p in offered.split(",")):
        log.info("WebSocket from %s without the sip subprotocol: refused",
                 connection.remote_address[0])
        return connection.respond(400, "The sip WebSocket subprotocol is required (RFC 7118)\n")
    return None
