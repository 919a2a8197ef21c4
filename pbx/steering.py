"""A worker's side of ``pbx serve --workers N``: steer every SIP message to the
worker it belongs to (:mod:`pbx.workers`) over the link (:mod:`pbx.transport.link`),
send on connections other workers hold, and carry what the admin API (worker
0) asks of the others.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pbx.sip.flow import Flow
from pbx.sip.message import Request, Response, set_origin
from pbx.tasks import Following
from pbx.transport.link import WorkerLink
from pbx.workers import Workers, owner

if TYPE_CHECKING:
    from pbx.server import SipServer

log = logging.getLogger("pbx.steering")

MAX_FLOWS = 200_000  # connections remembered by the worker that holds them
RELOAD_WAIT = 10.0  # seconds the admin API waits for the other workers' reloads


class Steering:
    """Routes messages between this worker and its peers."""

    def __init__(self, sip: SipServer, workers: Workers, group: str) -> None:
        self.sip = sip
        self.workers = workers
        self.link = WorkerLink(group, workers.index, workers.count, self._received,
                               self._send_here, self._command)
        self.holders: dict[Flow, int] = {}  # TCP/TLS flow → the worker holding its connection
        self.commands: dict[str, Callable[..., None]] = {
            "end_calls_of": sip.end_calls_of,
            "unregister": sip.unregister,
            "mailbox_changed": sip.mailbox_changed,
            "reload": self._reload,
            "reloaded": self._reloaded,
            "music": self._music,
        }
        self._reloads = itertools.count()
        self._waiting: dict[int, tuple[list[int], threading.Event]] = {}
        set_origin(workers.mark)

    async def start(self) -> None:
        await self.link.open()
        # each worker's API serves its organisations: its reloads are everyone's
        self.sip.directory.on_reload(self._reload_everywhere)

    def close(self) -> None:
        self.link.close()

    # ------------------------------------------------------------ SIP messages

    def elsewhere(self, message: Request | Response, data: bytes, flow: Flow) -> bool:
        """Forward ``message`` if another worker owns it; True when it did."""
        target = owner(message, flow, self.workers, self._organisation_of)
        if target is None or target == self.workers.index:
            return False
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s from %s:%d to worker %d", getattr(message, "method", None)
                      or f"{message.status} response", flow.host, flow.port, target)
        self.link.forward(target, data, flow)
        return True

    def _organisation_of(self, request: Request, flow: Flow) -> int | None:
        carrier = self.sip.trunks.carrier_of(flow)
        if carrier is not None:
            return carrier.organisation
        directory = self.sip.directory
        if request.method == "REGISTER":
            tenant = directory.tenant_for(request.uri.host)
        else:
            tenant = directory.origin(request.from_addr.uri.host, request.uri.host)
        return tenant.id if tenant is not None else None

    def _received(self, data: bytes, flow: Flow, sender: int) -> None:
        if flow.transport != "UDP" and sender >= 0:
            if len(self.holders) >= MAX_FLOWS:
                del self.holders[next(iter(self.holders))]
            self.holders[flow] = sender
        self.sip.receive(data, flow, steered=True)

    def send(self, data: bytes, flow: Flow) -> bool:
        """Send over a connection another worker holds; False: not such a flow."""
        if flow.transport == "UDP":
            return False
        holder = self.holders.get(flow)
        transport = self.sip.transports.get(flow.transport)
        if holder is None or holder == self.workers.index or transport is None \
                or flow in getattr(transport, "connections", {}):
            return False
        self.link.send_via(holder, data, flow)
        return True

    def _send_here(self, data: bytes, flow: Flow) -> None:
        transport = self.sip.transports.get(flow.transport)
        connections = getattr(transport, "connections", {})
        if transport is None or flow not in connections or not transport.send(data, flow):
            log.info("cannot send to %s for another worker: no such connection", flow)

    # ------------------------------------------------------------ the admin API

    def at_home(self, organisation: int, name: str, *args: Any) -> bool:
        """Run command ``name`` on ``organisation``'s worker; True when that is
        another one (the caller must not run it here)."""
        home = self.workers.home(organisation)
        if home == self.workers.index:
            return False
        self._command_to(home, name, organisation, *args)
        return True

    def everywhere(self, name: str, *args: Any) -> None:
        """Run command ``name`` on every other worker.  Callable from any thread."""
        for index in range(self.workers.count):
            if index != self.workers.index:
                self._command_to(index, name, *args)

    def _command_to(self, worker: int, name: str, *args: Any) -> None:
        loop = self.sip.loop
        if loop is not None:
            loop.call_soon_threadsafe(self.link.command, worker, name, *args)

    def _command(self, name: str, args: list[Any]) -> None:
        command = self.commands.get(name)
        if command is None:
            log.warning("unknown command %r from another worker", name)
            return
        command(*args)

    def _reload_everywhere(self) -> None:
        """This worker reloaded its directory (in the reloading thread) after its
        admin API changed the store: the others reload too, and the API answers
        once they have, so a phone of an extension just made registers
        whichever worker it reaches.  A reload that follows another worker's
        goes no further."""
        if from_worker.active():
            return
        token = next(self._reloads)
        done = threading.Event()
        self._waiting[token] = ([self.workers.count - 1], done)
        self.everywhere("reload", token, self.workers.index)
        loop = self.sip.loop
        if loop is not None and not loop_thread(loop) and not done.wait(RELOAD_WAIT):
            log.warning("workers still reloading after %.0f s", RELOAD_WAIT)
        self._waiting.pop(token, None)

    def _reload(self, token: int, origin: int) -> None:
        self.sip.tasks.thread(from_worker.run(self.sip.directory.reload),
                              then=lambda _: self.link.command(origin, "reloaded", token))

    def _reloaded(self, token: int) -> None:
        waiting = self._waiting.get(token)
        if waiting is not None:
            waiting[0][0] -= 1
            if waiting[0][0] <= 0:
                waiting[1].set()

    def _music(self, name: str) -> None:
        asyncio.get_running_loop().create_task(self.sip.load_music(name))


from_worker = Following()  # set while a thread reloads after another worker


def loop_thread(loop: asyncio.AbstractEventLoop) -> bool:
    """Is this the thread ``loop`` runs in (where waiting for it would hang it)?"""
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
