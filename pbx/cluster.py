"""Nodes of a cluster on one PostgreSQL follow each other's admin changes.

Each node keeps the directory (organisations, extensions, dial plan) in
memory and reloads it when its admin API changes the store (and so the
webhooks' subscriptions).  A node that reloads says so with PostgreSQL's
``NOTIFY`` on :data:`CHANNEL`; the others ``LISTEN`` and reload theirs:
PostgreSQL's own publish/subscribe, nothing of ours on the wire.  On SQLite (one node) there is nothing to follow.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections.abc import Callable, Sequence

from pbx.directory import Directory

log = logging.getLogger("pbx.cluster")

CHANNEL = "pbx_directory"
RETRY = 5.0  # seconds before listening again after the database went away

_following = threading.local()  # set while a reload follows another node's


def libpq_url(url: str) -> str | None:
    """The store's URL as psycopg takes it; None when the store is not PostgreSQL."""
    scheme, _, rest = url.partition("://")
    return f"postgresql://{rest}" if scheme in ("postgresql", "postgresql+psycopg") else None


class DirectoryFollower:
    """Tells the other nodes of this node's reloads, and reloads on theirs."""

    def __init__(self, url: str, directory: Directory,
                 also: Sequence[Callable[[], None]] = ()) -> None:
        """``also``: what else reloads on another node's change (blocking calls)."""
        self.url = url
        self.directory = directory
        self.also = list(also)
        self.node = f"{socket.gethostname()}/{os.getpid()}"
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.directory.on_reload(self.changed)
        self._task = asyncio.get_running_loop().create_task(self._listen())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

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

    async def _listen(self) -> None:
        import psycopg

        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                        self.url, autocommit=True) as connection:
                    await connection.execute(f"LISTEN {CHANNEL}")
                    log.info("following the other nodes' changes (LISTEN %s)", CHANNEL)
                    async for note in connection.notifies():
                        if note.payload != self.node:
                            log.info("node %s changed the store: reloading", note.payload)
                            await asyncio.to_thread(self._follow)
            except psycopg.Error as exc:
                log.warning("listening for other nodes' changes failed (%s); again in %.0f s",
                            exc, RETRY)
                await asyncio.sleep(RETRY)
