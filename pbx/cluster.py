"""Nodes of a cluster on one PostgreSQL follow each other's changes.

Each node keeps the directory (organisations, extensions, dial plan) in
memory and reloads it when its admin API changes the store (and so the
webhooks' subscriptions).  A node that reloads says so with PostgreSQL's
``NOTIFY`` on :data:`CHANNEL`; the others ``LISTEN`` and reload theirs.
Registrations work the same way: a node that saves a batch of bindings
notifies :data:`BINDINGS_CHANNEL` in the same transaction, naming the
addresses of record, and the others read those from the store, so a node
taking over an organisation reaches its phones before they register again.
A music-on-hold class changed through one node's API is named on
:data:`MUSIC_CHANNEL`, and every other worker of every node reads its files
again from the shared data directory.
PostgreSQL's own publish/subscribe, nothing of ours on the wire.  On SQLite
(one node) there is nothing to follow.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence

from pbx.directory import Directory
from pbx.tasks import Following

log = logging.getLogger("pbx.cluster")

CHANNEL = "pbx_directory"
BINDINGS_CHANNEL = "pbx_bindings"
MUSIC_CHANNEL = "pbx_music"
RETRY = 5.0  # seconds before listening again after the database went away
NOTE_LIMIT = 7900  # bytes: PostgreSQL refuses a NOTIFY payload of 8000 or more
EVERY = "*"  # a bindings note naming no AOR: too many to name, read them all

_from_node = Following()  # set while a reload follows another node's


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


def music_note(node: str, name: str) -> str:
    """The payload telling the others that ``node`` changed music class ``name``."""
    return f"{node}\n{name}"


async def listen(url: str, handlers: Mapping[str, Callable[[str], Awaitable[None]]]) -> None:
    """Call each channel's handler with the payloads notified on it, for ever
    (one connection for them all), listening again after the database went away."""
    import psycopg

    while True:
        try:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
                for channel in handlers:
                    await connection.execute(f"LISTEN {channel}")
                log.info("following the other nodes' changes (LISTEN %s)", ", ".join(handlers))
                async for note in connection.notifies():
                    await handlers[note.channel](note.payload)
        except psycopg.Error as exc:
            log.warning("listening on %s failed (%s); again in %.0f s", ", ".join(handlers),
                        exc, RETRY)
            await asyncio.sleep(RETRY)


class _Follower:
    """Listens from start to stop, the payloads of each channel to its handler."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.node = node_name()
        self._task: asyncio.Task[None] | None = None

    def handlers(self) -> dict[str, Callable[[str], Awaitable[None]]]:
        raise NotImplementedError

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(listen(self.url, self.handlers()))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class PeerFollower(_Follower):
    """Takes what the cluster's other workers saved: their registrations into this
    worker's location service, their music-on-hold changes into its engine."""

    def __init__(self, url: str, bindings: Callable[[list[str] | None], Awaitable[None]],
                 music: Callable[[str], Awaitable[object]]) -> None:
        """``bindings``: takes the store's bindings of these AORs (None: of all);
        ``music``: reads a music class's folder again."""
        super().__init__(url)
        self.bindings = bindings
        self.music = music

    def handlers(self) -> dict[str, Callable[[str], Awaitable[None]]]:
        return {BINDINGS_CHANNEL: self._bindings, MUSIC_CHANNEL: self._music}

    async def _bindings(self, payload: str) -> None:
        node, aors = read_bindings_note(payload)
        if node == self.node:
            return
        try:
            await self.bindings(aors)
        except Exception:  # the store went away: the phones' next REGISTER mends it
            log.exception("cannot read the bindings node %s saved", node)

    async def _music(self, payload: str) -> None:
        node, _, name = payload.partition("\n")
        if node == self.node:
            return
        log.info("node %s changed music class %s: reading it again", node, name)
        try:
            await self.music(name)
        except Exception:
            log.exception("cannot read music class %s again", name)


class DirectoryFollower(_Follower):
    """Tells the other nodes of this node's reloads, and reloads on theirs."""

    def __init__(self, url: str, directory: Directory,
                 also: Sequence[Callable[[], None]] = ()) -> None:
        """``also``: what else reloads on another node's change (blocking calls)."""
        super().__init__(url)
        self.directory = directory
        self.also = list(also)

    def handlers(self) -> dict[str, Callable[[str], Awaitable[None]]]:
        return {CHANNEL: self._note}

    def start(self) -> None:
        self.directory.on_reload(self.changed)
        super().start()

    def changed(self) -> None:
        """After a reload (in the reloading thread): tell the others, unless it
        was theirs."""
        if _from_node.active():
            return
        import psycopg

        try:
            with psycopg.connect(self.url, autocommit=True) as connection:
                connection.execute("SELECT pg_notify(%s, %s)", (CHANNEL, self.node))
        except psycopg.Error as exc:
            log.error("cannot tell the other nodes of a change: %s", exc)

    def _follow(self) -> None:
        self.directory.reload()
        for reload in self.also:
            reload()

    async def _note(self, payload: str) -> None:
        if payload != self.node:
            log.info("node %s changed the store: reloading", payload)
            await asyncio.to_thread(_from_node.run(self._follow))
