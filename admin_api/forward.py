"""With ``pbx serve --workers N``, each organisation's API requests are served
by the worker that holds its calls (its home, :mod:`pbx.workers`).

Only worker 0 listens on the HTTP port (uvicorn cannot share it with
``SO_REUSEPORT`` and still send a request to the right process); every
other worker serves the same app on a private Unix socket.  This ASGI
middleware, in front of worker 0's app, reads the organisation of each
request (the owner of its bearer token, from the ``Authorization`` header or
the ``token`` query parameter a browser's WebSocket has to use; the
organisation slug in a public wait-time widget's path) and, when that
organisation lives on another worker, passes the request there: HTTP with
httpx, WebSockets with websockets, both over the Unix socket, frames and
close codes as they come.  So live calls, queue and agent state,
presence, the live feeds and the softphone of every organisation are
answered by the process that has them, the way nginx passes requests to an
upstream.  A request without a known organisation (logging in,
provisioning, a bad token) is answered by worker 0, which holds the store
like every worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

import httpx
from sqlmodel import Session, select
from websockets.asyncio.client import ClientConnection, unix_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from admin_api.security import token_hash
from pbx.models import ApiToken, ApiUser, Organisation
from pbx.store import Store
from pbx.workers import Workers

log = logging.getLogger("pbx.api.forward")
# the passed WebSockets' own log: never below INFO, where websockets writes the
# request line of each handshake, and a browser's WebSocket URL carries its token
_client_log = logging.getLogger("pbx.api.forward.websocket")
_client_log.setLevel(logging.INFO)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

WIDGET = "/api/public/queues/"
REMEMBERED = 10_000  # tokens and slugs whose organisation is kept (routing only: the
# home worker checks the token itself, so a revoked one gets its 401 there)


class HomeWorkers:
    """ASGI middleware: requests of organisations homed elsewhere go there."""

    def __init__(self, app: ASGIApp, store: Store, workers: Workers,
                 socket_of: Callable[[int], str]) -> None:
        self.app = app
        self.store = store
        self.workers = workers
        self.socket_of = socket_of
        self._organisations: dict[str, int] = {}
        self._clients: dict[int, httpx.AsyncClient] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            organisation = await self._organisation_of(scope)
            if organisation is not None:
                home = self.workers.home(organisation)
                if home != self.workers.index:
                    if scope["type"] == "http":
                        await self._http(home, scope, receive, send)
                    else:
                        await self._websocket(home, scope, receive, send)
                    return
        await self.app(scope, receive, send)

    # ------------------------------------------------------------ whose request

    async def _organisation_of(self, scope: Scope) -> int | None:
        key = _key(scope)
        if key is None:
            return None
        organisation = self._organisations.get(key)
        if organisation is None:
            organisation = await asyncio.to_thread(self._look_up, key)
            if organisation is None:
                return None  # not remembered: the slug or token may exist soon
            if len(self._organisations) >= REMEMBERED:
                self._organisations.clear()
            self._organisations[key] = organisation
        return organisation

    def _look_up(self, key: str) -> int | None:
        kind, _, value = key.partition(":")
        with Session(self.store.engine) as db:
            if kind == "slug":
                return db.exec(select(Organisation.id).where(Organisation.slug == value)).first()
            return db.exec(select(ApiUser.organisation_id).join(
                ApiToken, ApiToken.user_id == ApiUser.id).where(  # type: ignore[arg-type]
                ApiToken.token_hash == value)).first()

    # ------------------------------------------------------------------- HTTP

    def _client(self, worker: int) -> httpx.AsyncClient:
        client = self._clients.get(worker)
        if client is None:
            transport = httpx.AsyncHTTPTransport(uds=self.socket_of(worker))
            client = self._clients[worker] = httpx.AsyncClient(transport=transport,
                                                               timeout=None)
        return client

    async def _http(self, worker: int, scope: Scope, receive: Receive, send: Send) -> None:
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        query = scope.get("query_string", b"").decode("latin-1")
        client = self._client(worker)
        request = client.build_request(
            scope["method"], f"http://worker{scope['path']}" + (f"?{query}" if query else ""),
            headers=[*_headers(scope), (b"x-forwarded-for", _client_host(scope))],
            content=bytes(body))
        try:
            response = await client.send(request, stream=True)
        except httpx.TransportError as exc:
            log.error("worker %d unreachable for %s %s: %s", worker, scope["method"],
                      scope["path"], exc)
            await _answer(send, 502, b'{"detail":"the organisation\'s worker is unreachable"}')
            return
        try:
            await send({"type": "http.response.start", "status": response.status_code,
                        "headers": [(k.lower(), v) for k, v in response.headers.raw
                                    if k.lower() != b"connection"]})
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()

    # ------------------------------------------------------------- WebSockets

    async def _websocket(self, worker: int, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        host = dict(scope["headers"]).get(b"host", b"worker").decode("latin-1")
        query = scope.get("query_string", b"").decode("latin-1")
        uri = f"ws://{host}{scope['path']}" + (f"?{query}" if query else "")
        passed = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in _headers(scope)
                  if k in (b"authorization", b"cookie", b"origin")]
        try:
            upstream = await unix_connect(
                self.socket_of(worker), uri, additional_headers=[
                    *passed, ("X-Forwarded-For", _client_host(scope).decode("latin-1"))],
                subprotocols=scope.get("subprotocols") or None, max_size=None,
                open_timeout=10, logger=_client_log)
        except InvalidStatus as exc:  # refused there (a bad token): refused here
            await send({"type": "websocket.close", "code": 1008,
                        "reason": f"refused ({exc.response.status_code})"})
            return
        except (OSError, TimeoutError) as exc:
            log.error("worker %d unreachable for the WebSocket %s: %s", worker,
                      scope["path"], exc)
            await send({"type": "websocket.close", "code": 1011,
                        "reason": "the organisation's worker is unreachable"})
            return
        async with upstream:
            await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})
            down = asyncio.ensure_future(_downstream(upstream, send))
            up = asyncio.ensure_future(_upstream(receive, upstream))
            await asyncio.wait({down, up}, return_when=asyncio.FIRST_COMPLETED)
            for task in (down, up):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await task


async def _downstream(upstream: ClientConnection, send: Send) -> None:
    """The worker's frames to the browser, then its close code."""
    with contextlib.suppress(ConnectionClosed):
        async for frame in upstream:
            key = "text" if isinstance(frame, str) else "bytes"
            await send({"type": "websocket.send", key: frame})
    await send({"type": "websocket.close", "code": upstream.close_code or 1000,
                "reason": upstream.close_reason or ""})


async def _upstream(receive: Receive, upstream: ClientConnection) -> None:
    """The browser's frames to the worker, then its going away."""
    while True:
        message = await receive()
        if message["type"] == "websocket.receive":
            text = message.get("text")
            await upstream.send(text if text is not None else message.get("bytes") or b"")
        elif message["type"] == "websocket.disconnect":
            await upstream.close(message.get("code", 1000))
            return


def _key(scope: Scope) -> str | None:
    """What names the request's organisation: a token's hash, or a widget's slug."""
    path: str = scope["path"]
    if path.startswith(WIDGET):
        slug = path[len(WIDGET):].split("/", 1)[0]
        return f"slug:{slug}" if slug else None
    for name, value in scope["headers"]:
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            return f"token:{token_hash(value[7:].decode('latin-1').strip())}"
    tokens = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
    return f"token:{token_hash(tokens[0].strip())}" if tokens else None


def _headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    """The request's headers for the worker, less what belongs to this hop."""
    return [(k, v) for k, v in scope["headers"] if k not in _HOP]


_HOP = {b"connection", b"keep-alive", b"upgrade", b"transfer-encoding", b"x-forwarded-for",
        b"sec-websocket-key", b"sec-websocket-version", b"sec-websocket-extensions",
        b"sec-websocket-protocol"}


def _client_host(scope: Scope) -> bytes:
    client = scope.get("client")
    return (client[0] if client else "").encode("latin-1")


async def _answer(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
