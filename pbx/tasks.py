"""Background work started from callbacks (store writes, port releases, file
reads): each task is kept referenced until it is done (asyncio keeps only weak
ones), and a failure is logged instead of vanishing with the task."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class Following:
    """A mark a thread carries while it repeats what another process did (a
    reload after another worker's or another node's), so that it is not passed
    back on; one per kind of peer, since a reload that follows a node is still
    news to this node's other workers."""

    def __init__(self) -> None:
        self._local = threading.local()

    def active(self) -> bool:
        """Is this thread repeating another's change?"""
        return getattr(self._local, "active", False)

    def run(self, work: Callable[[], None]) -> Callable[[], None]:
        """``work``, to be run with the mark set."""
        def marked() -> None:
            self._local.active = True
            try:
                work()
            finally:
                self._local.active = False
        return marked


class Tasks:
    """The background tasks of one owner; ``what`` names them in the log."""

    def __init__(self, log: logging.Logger, what: str) -> None:
        self.log = log
        self.what = what
        self._running: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._running)

    def spawn(self, work: Coroutine[Any, Any, T],
              then: Callable[[T], None] | None = None) -> asyncio.Task[T]:
        """Run ``work`` on the running loop; ``then`` gets its result (on the loop)."""
        task = asyncio.get_running_loop().create_task(work)
        self._running.add(task)
        task.add_done_callback(lambda done: self._done(done, then))
        return task

    def thread(self, fn: Callable[..., T], *args: Any,
               then: Callable[[T], None] | None = None) -> asyncio.Task[T]:
        """Run the blocking ``fn(*args)`` in a worker thread."""
        return self.spawn(asyncio.to_thread(fn, *args), then)

    def _done(self, task: asyncio.Task[T], then: Callable[[T], None] | None) -> None:
        self._running.discard(task)
        if task.cancelled():
            return
        if task.exception() is not None:
            self.log.error("%s failed: %r", self.what, task.exception(),
                           exc_info=task.exception())
            return
        if then is not None:
            then(task.result())

    async def drain(self) -> None:
        """Wait for what still runs (at shutdown)."""
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)


Worker = Callable[[Callable[[], None], Callable[[], None]], None]
"""Runs a blocking ``job`` off the event loop, then ``then`` back on it (a
service's way to read files or speak text before it goes on; tests pass a
worker that runs both at once)."""

_log = logging.getLogger("pbx.tasks")


def in_thread(job: Callable[[], None], then: Callable[[], None]) -> None:
    """The production :data:`Worker`: the loop's thread pool.  ``then`` runs even
    when ``job`` failed (logged): the call goes on with what there is."""
    def done(future: asyncio.Future[None]) -> None:
        if future.cancelled():
            return
        if future.exception() is not None:
            _log.error("background job failed: %r", future.exception())
        then()

    asyncio.get_running_loop().run_in_executor(None, job).add_done_callback(done)
