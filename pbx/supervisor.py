"""``pbx serve --workers N``: N worker processes of one node (:mod:`pbx.workers`).

Worker 0 starts first (it seeds the store and renders the prompts); the
others follow once its SIP side is up, and worker 0 opens the admin API (and
``/api/health``) when all of them are: a node that answers HTTP is whole.  A signal stops them all; a
worker that dies stops the node (the service manager restarts it whole, as
Kamailio does when a child dies): a node half up would answer for
organisations it cannot serve.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

from pbx.config import Config
from pbx.workers import Workers, port_share

log = logging.getLogger("pbx.supervisor")

PR_SET_PDEATHSIG = 1  # prctl(2)


def default_workers() -> int:
    """One worker per core this process may run on."""
    return len(os.sched_getaffinity(0))


def run_node(config: Config, workers: Workers = Workers(), group: str = "",
             ready: Callable[[], None] | None = None) -> int:
    """One process of the node on the fastest event loop there is."""
    from pbx.node import run

    try:
        import uvloop
    except ImportError:
        return asyncio.run(run(config, workers, group, ready))
    return uvloop.run(run(config, workers, group, ready))


def _worker(config: Config, workers: Workers, group: str, supervisor: Connection,
            parent: int) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)  # the loop installs its own
    # a supervisor killed outright (SIGKILL) takes its workers along: no orphan holds the ports
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        raise SystemExit(1)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(logging.Formatter(
            f"%(asctime)s %(levelname)s w{workers.index} %(name)s: %(message)s"))
    general = config.general
    low, high = port_share(general.rtp_port_min, general.rtp_port_max, workers)
    mine = config.with_overrides(rtp_port_min=low, rtp_port_max=high)

    def ready() -> None:
        supervisor.send(True)
        if workers.index == 0:
            with contextlib.suppress(EOFError):  # EOF: the node stops before it was whole
                supervisor.recv()  # the others are up too

    raise SystemExit(run_node(mine, workers, group, ready))


def supervise(config: Config, count: int) -> int:
    """Run ``count`` workers until a signal, or until one of them dies."""
    port_share(config.general.rtp_port_min, config.general.rtp_port_max, Workers(0, count))
    context = multiprocessing.get_context("fork")
    group = str(os.getpid())
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    processes: list[BaseProcess] = []
    code = 0
    first: Connection | None = None
    for index in range(count):
        ours, theirs = context.Pipe()
        process = context.Process(target=_worker, name=f"pbx-worker-{index}",
                                  args=(config, Workers(index, count), group, theirs,
                                        os.getpid()))
        process.start()
        theirs.close()
        processes.append(process)
        if index == 0:
            first = ours  # told to open HTTP once all are up
        while not stopping and process.is_alive() and not ours.poll(0.2):
            pass
        try:
            if not stopping:
                ours.recv()
        except EOFError:  # it died before it was up
            process.join(5)
            log.error("worker %d did not start (exit code %s)", index, process.exitcode)
            stopping, code = True, 1
        if index > 0:
            ours.close()
        if stopping:
            break
    else:
        assert first is not None
        first.send(True)  # worker 0 opens HTTP now
        log.info("%d workers running", count)
    while not stopping:
        gone = wait([p.sentinel for p in processes], timeout=0.5)
        if gone and not stopping:
            dead = next(p for p in processes if p.sentinel in gone)
            dead.join()
            if dead.exitcode:
                log.error("%s exited (code %s): stopping the node", dead.name, dead.exitcode)
            stopping, code = True, 1 if dead.exitcode else 0
    if first is not None:
        first.close()  # worker 0 may still wait for the others
    for process in processes:
        if process.is_alive():
            os.kill(process.pid, signal.SIGTERM)  # type: ignore[arg-type]
    for process in processes:
        process.join(30)
        if process.is_alive():
            log.error("%s does not stop: killed", process.name)
            process.kill()
            process.join()
    return code
