"""Nodes of a cluster on one PostgreSQL follow each other's changes.

Each node keeps the directory (organisations, extensions, dial plan) in
memory and reloads it when its admin API changes the store (and so the
webhooks' subscriptions).  A node that reloads says so with PostgreSQL's
``NOTIFY`` on :data:`CHANNEL`; the others ``LISTEN`` and reload theirs.
Registrations work the same way: a node that saves a batch of bindings
notifies :data:`BINDINGS_CHANNEL` in the same transaction, naming the
addresses of record, and the others read those from the store, so a node
taking over an organisation reaches its phones before they register again.
PostgreSQL's own publish/subscribe, nothing of ours on the wire.  On SQLite
(one node) there is nothing to follow.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections.abc import Awaitable, Callable, Collection, Sequence

from pbx.directory import Directory

log = logging.getLogger("pbx.cluster")

CHANNEL = "pbx_directory"
BINDINGS_CHANNEL = "pbx_bindings"
RETRY = 5.0  # seconds before listening again after the database went away
NOTE_LIMIT = 7900  # bytes: PostgreSQL refuses a NOTIFY payload of 8000 or more
EVERY = "*"  # a bindings note naming no AOR: too many to name, read them all

_following = threading.local()  # set while a reload follows another node's


def libpq_url(url: str) -> str | None:
    """The store's URL as psycopg takes it; None when the store is not PostgreSQL."""
    scheme, _, rest = url.partition("://")
    return f"postgresql://{rest}" if scheme in ("postgresql", "postgresql+psycopg") else None


def node_name() -> str:
    """This process among the cluster's (workers of one machine included)."""
    return f"{socket.gethostname()}/{os.getpid()}"


def bindings_note(node: str, aors: Collection[str]) -> str:
    """The payload telling the others which AORs' bindings ``node`` saved."""
    note = "\n".join([node, *sorted(aors)])
    return note if len(note.encode()) < NOTE_LIMIT else f"{node}\n{EVERY}"


def read_bindings_note(payload: str) -> tuple[str, list[str] | None]:
    """(node, AORs) of a bindings note; None for the AORs when it names them all."""
    node, *aors = payload.split("\n")
    return node, None if aors == [EVERY] else aors


async def listen(url: str, channel: str, handle: Callable[[str], Awaitable[None]]) -> None:
    """Call ``handle`` with each payload notified on ``channel``, for ever,
    listening again after the database went away."""
    import psycopg

    while True:
        try:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
                await connection.execute(f"LISTEN {channel}")
                log.info("following the other nodes' changes (LISTEN %s)", channel)
                async for note in connection.notifies():
                    await handle(note.payload)
        except psycopg.Error as exc:
            log.warning("listening on %s failed (%s); again in %.0f s", channel, exc, RETRY)
            await asyncio.sleep(RETRY)


class _Follower:
    """Listens on one channel from start to stop, payloads to ``_note``."""

    channel = ""

    def __init__(self, url: str) -> None:
        self.url = url
        self.node = node_name()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            listen(self.url, self.channel, self._note))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _note(self, payload: str) -> None:
        raise NotImplementedError


class BindingsFollower(_Follower):
    """Reads the bindings another node saved into this node's location service."""

    channel = BINDINGS_CHANNEL

    def __init__(self, url: str, follow: Callable[[list[str] | None], Awaitable[None]]) -> None:
        """``follow``: takes the store's bindings of these AORs (None: of all)."""
        super().__init__(url)
        self.follow = follow

    async def _note(self, payload: str) -> None:
        node, aors = read_bindings_note(payload)
        if node == self.node:
            return
        try:
            await self.follow(aors)
        except Exception:  # the store went away: the phones' next REGISTER mends it
            log.exception("cannot read the bindings node %s saved", node)


class DirectoryFollower(_Follower):
    """Tells the other nodes of this node's reloads, and reloads on theirs."""

    channel = CHANNEL

    def __init__(self, url: str, directory: Directory,
                 also: Sequence[Callable[[], None]] = ()) -> None:
        """``also``: what else reloads on another node's change (blocking calls)."""
        super().__init__(url)
        self.directory = directory
        self.also = list(also)

    def start(self) -> None:
        self.directory.on_reload(self.changed)
        super().start()

    def changed(self) -> None:
        """After a reload (in the reloading thread): tell the others, unless it
        was theirs."""
        if getattr(_following, "active", False):
            return
        import psycopg

        try:
            with psycopg.connect(self.url, autocommit=True) as connection:
                connection.execute("SELECT pg_notify(%s, %s)", (CHANNEL, self.node))
        except psycopg.Error as exc:
            log.error("cannot tell the other nodes of a change: %s", exc)

    def _follow(self) -> None:
        _following.active = True
        try:
            self.directory.reload()
            for reload in self.also:
                reload()
        finally:
            _following.active = False

    async def _note(self, payload: str) -> None:
        if payload != self.node:
            log.info("node %s changed the store: reloading", payload)
            await asyncio.to_thread(self._follow)
