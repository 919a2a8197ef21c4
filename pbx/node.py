"""One PBX node (ARCHITECTURE.md principle 5): the store, the SIP server and
the HTTP side in one process and one event loop, stopped cleanly on a signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import uvicorn

from admin_api.app import create_app
from admin_api.forward import HomeWorkers
from ivr.app import IvrApp
from ivr.conference import ConferenceApp
from ivr.diversion import DiversionApp
from ivr.greetings import GreetingLibrary
from ivr.mailbox_menu import MailboxMenuApp
from ivr.mailer import Mailer
from ivr.park import Park
from ivr.schedule_watch import SwitchboardWatch
from ivr.spy import SpyApp
from ivr.tenant import hours
from ivr.voicemail import VoicemailApp
from pbx.calls.commands import CallCommands
from pbx.calls.views import extension_dialogs
from pbx.cluster import DirectoryFollower, PeerFollower, libpq_url
from pbx.config import Config
from pbx.models import ConferenceRoom
from pbx.queue_settings import QueueConfig
from pbx.server import SipServer
from pbx.steering import Steering, from_worker
from pbx.store import Store
from pbx.webhooks import WebhookOutbox, WebhookSender, WebhookSettings
from pbx.workers import Workers
from queues.history import QueueEventWriter, QueueHistory
from queues.live import QueueStatistics, retained_snapshots
from queues.service import AgentCodes, QueueApp
from queues.stats import Settings
from queues.store import QueueStore
from softphone.gateway import install as install_softphone

log = logging.getLogger("pbx.node")


def register_services(sip: SipServer, statistics: QueueStatistics | None = None,
                      ) -> tuple[CallCommands, QueueApp]:
    """The switchboard services, each as the destination kind it serves: call
    control finds them by kind and never imports them.  Returns the commands
    the admin API gives live calls (they park calls in the parking lot) and
    the queues (the API logs agents in and out); ``statistics`` learn each
    queue's service-level threshold and target from its settings."""
    b2bua = sip.b2bua
    general = sip.config.general

    def room(organisation: int, number: str) -> ConferenceRoom | None:
        tenant = sip.directory.tenants.get(organisation)
        return sip.conference(tenant, number) if tenant is not None else None

    def line_busy(organisation: int, extension: str) -> bool:
        """Is the extension in a call (or ringing for one) now? (camp-on)"""
        return extension in extension_dialogs(b2bua.live_calls(), organisation)

    general = sip.config.general
    b2bua.register(VoicemailApp(sip.directory, sip.store, sip.config.data_path, sip.events,
                                lambda: sip.prompts, operator=general.operator,
                                camp_on_timeout=general.camp_on_timeout, line_busy=line_busy))
    b2bua.register(MailboxMenuApp(sip.directory, sip.store, sip.events, sip.config.data_path))
    b2bua.register(ConferenceApp(room, b2bua, sip.recording_path, sip.write_recording))
    b2bua.register(IvrApp(sip.directory, b2bua.clock, hours, GreetingLibrary(sip.config.data_path)))
    b2bua.register(SpyApp(sip.directory, b2bua))
    b2bua.register(DiversionApp(sip.directory, b2bua.clock,
                                lambda tenant: sip.config.general.operator))
    park = Park(b2bua, b2bua.clock, general.parking_slots, general.park_timeout)
    b2bua.register(park)

    def configured(organisation: int, settings: Iterable[QueueConfig]) -> None:
        if statistics is not None:
            for queue in settings:
                statistics.live.configure(organisation, queue.number, Settings(
                    queue.servicelevel, queue.servicelevel_target / 100, queue.widget),
                    b2bua.clock.now())

    queues = QueueApp(sip.directory, b2bua, b2bua.clock, sip.events.publish,
                      QueueStore(sip.store), configured=configured)
    sip.events.subscribe(queues.on_event)
    b2bua.register(queues)
    b2bua.register(AgentCodes(queues))
    return CallCommands(b2bua, park), queues


def webhooks_of(config: Config, store: Store) -> tuple[WebhookOutbox, WebhookSender]:
    """The webhook outbox (a bus subscriber) and its sender."""
    general = config.general
    outbox = WebhookOutbox(store)
    settings = WebhookSettings(general.webhooks_max_attempts, general.webhooks_first_retry,
                               general.webhooks_allow_http)
    return outbox, WebhookSender(store, outbox, settings)


def queue_statistics(sip: SipServer) -> tuple[QueueStatistics, QueueEventWriter]:
    """The live queue figures (with their snapshots retained on MQTT) and the
    writer that stores every queue event for history; both on the bus."""
    stats = QueueStatistics(sip.events)
    writer = QueueEventWriter(QueueHistory(sip.store.engine))
    sip.events.subscribe(writer.on_event)
    if sip.mqtt is not None:
        stats.listeners.append(retained_snapshots(sip.mqtt))
    return stats, writer


def as_worker(sip: SipServer, outbox: WebhookOutbox, workers: Workers, group: str) -> Steering:
    """Make ``sip`` one of the node's workers: messages steered to the worker
    of their organisation, trunks registered and switchboards watched by it;
    each tells the others what its admin API changed."""
    steering = Steering(sip, workers, group)
    sip.steering = steering
    sip.trunks.registers = workers.is_home
    steering.commands["webhooks"] = lambda: sip.tasks.thread(from_worker.run(outbox.reload))
    outbox.reloaded.append(
        lambda: None if from_worker.active() else steering.everywhere("webhooks"))
    return steering


def web_servers(sip: SipServer, commands: CallCommands, outbox: WebhookOutbox,
                stats: QueueStatistics, queues: QueueApp, workers: Workers = Workers(),
                group: str = "") -> list[tuple[uvicorn.Server, list[socket.socket] | None]]:
    """The admin API and web pages, each server with the sockets it serves on
    (None: its configured port).  Worker 0 serves HTTP (and HTTPS when
    configured), passing an organisation homed on another worker there
    (admin_api/forward.py); the other workers serve the same app on their
    private Unix socket (:func:`api_socket`)."""
    app = create_app(sip, commands=commands, outbox=outbox, statistics=stats, queue_app=queues,
                     bootstrap=workers.index == 0)
    install_softphone(app, sip)  # the browser softphone: /softphone/ and its WebSocket
    general = sip.config.general
    if workers.index != 0:
        path = api_socket(group, workers.index)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(path))
        path.chmod(0o600)
        listener.listen(128)
        # X-Forwarded-For comes from worker 0 only: the socket is its alone
        config = uvicorn.Config(app, log_level="warning", lifespan="off",
                                proxy_headers=True, forwarded_allow_ips="*")
        return [(quiet(uvicorn.Server(config)), [listener])]
    front: Any = app if workers.count == 1 else HomeWorkers(
        app, sip.store, workers, lambda index: str(api_socket(group, index)))
    web = [uvicorn.Config(front, host=general.bind, port=general.http_port, log_level="warning",
                          lifespan="off")]
    if general.https_port:
        cert, key = sip.tls_files()
        web.append(uvicorn.Config(front, host=general.bind, port=general.https_port,
                                  log_level="warning", lifespan="off", ssl_certfile=str(cert),
                                  ssl_keyfile=str(key)))
    return [(quiet(uvicorn.Server(settings)), None) for settings in web]


def api_socket(group: str, index: int) -> Path:
    """Where worker ``index`` of node ``group`` serves the admin API to worker 0."""
    return Path(tempfile.gettempdir()) / f"pbx-{group}" / f"api-{index}.sock"


def forget_api_socket(group: str, index: int) -> None:
    """Remove a stopping worker's API socket, and the node's folder once empty."""
    path = api_socket(group, index)
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # another worker's socket is still there
        path.parent.rmdir()


def quiet(server: uvicorn.Server) -> uvicorn.Server:
    """The node handles SIGINT/SIGTERM itself (draining calls first)."""
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    return server


async def collect_garbage(every: float = 60.0) -> None:
    """A full collection every minute.  With the high thresholds above, a call's
    reference cycles (its legs, dialogs, parsed messages) reach the oldest
    generation while the call lasts and, once it ended, wait there for a full
    collection that comes rarely: bench/soak.py saw the RSS climb ~6 MB a
    minute at 2 calls/s, and a collection before each tracemalloc snapshot
    took the growth from 5.7 MB to 0.6 MB per 100 s.  Frozen start-up objects
    are not walked, so the pause is short."""
    while True:
        await asyncio.sleep(every)
        started = time.perf_counter()
        found = gc.collect()
        log.debug("full garbage collection: %d objects in %.1f ms", found,
                  (time.perf_counter() - started) * 1000)


async def run(config: Config, workers: Workers = Workers(), group: str = "",
              ready: Callable[[], None] | None = None) -> int:
    """Run until SIGINT/SIGTERM; returns the process exit code.  As worker
    ``workers.index`` of several (``group`` names the node), only worker 0
    serves HTTP and runs the store-wide jobs (voicemail email, webhooks; none
    with ``jobs = no``, a cluster's other nodes);
    ``ready`` is called (in a thread: it may wait) once SIP answers, before
    HTTP opens."""
    config.data_path.mkdir(parents=True, exist_ok=True)
    store = await asyncio.to_thread(Store, config.database_url)
    first = workers.index == 0
    jobs = first and config.general.jobs  # one worker, on one node of a cluster
    if first:
        await asyncio.to_thread(store.seed, config)
    sip = SipServer(config, store)
    sip.jobs = jobs
    stats, queue_events = queue_statistics(sip)
    commands, queues = register_services(sip, stats)
    outbox, sender = webhooks_of(config, store)
    await asyncio.to_thread(outbox.reload)
    sip.events.subscribe(outbox.on_event)
    steering = as_worker(sip, outbox, workers, group) if workers.count > 1 else None
    if steering is not None:
        await steering.start()
    await sip.start()
    shared = libpq_url(config.database_url)  # a cluster's store
    follower = DirectoryFollower(shared, sip.directory, also=[outbox.reload]) \
        if shared and first else None
    if follower is not None:
        outbox.reloaded.append(follower.changed)  # webhooks changed through this node's API
        follower.start()
    # every worker: any may be an organisation's next home, and each plays music
    peers = PeerFollower(shared, sip.follow_bindings, sip.load_music) if shared else None
    if peers is not None:
        sip.announce = peers.node
        peers.start()
    watch = SwitchboardWatch(sip.directory, sip.events.publish)  # opens/closes → events
    watch.watches = workers.is_home
    watch.start()
    mailer = Mailer(store, sip.events, config)  # voicemail to email, from the outbox
    if jobs:
        mailer.start()
        sender.start()
    # Everything loaded so far lives as long as the process: keep the collector
    # from walking it again and again, and let it run less often under load
    # (tens of thousands of short-lived transactions at registration storms).
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    collector = asyncio.create_task(collect_garbage())
    # a worker's private API socket listens before the node is ready: worker 0
    # passes requests there as soon as it opens the HTTP port
    servers = web_servers(sip, commands, outbox, stats, queues, workers, group)
    # said before the supervisor hears it: worker 0 opens HTTP once all have
    log.info("PBX ready (realm %s, data %s%s)", config.general.realm, config.data_path,
             f", worker {workers.index} of {workers.count}" if workers.count > 1 else "")
    if ready is not None:
        await asyncio.to_thread(ready)
    general = config.general
    http_tasks = {asyncio.create_task(server.serve(sockets=sockets))
                  for server, sockets in servers}

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    host = f"[{general.bind}]" if ":" in general.bind else general.bind
    if first:
        log.info("admin pages: http://%s:%d/admin/%s", host, general.http_port,
                 f" and https://{host}:{general.https_port}/admin/" if general.https_port else "")
    stop_wait = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({stop_wait, *http_tasks}, return_when=asyncio.FIRST_COMPLETED)
    for task in done & http_tasks:
        if task.exception() is not None:
            log.error("HTTP server failed: %s", task.exception())
    log.info("stopping")
    await sip.drain()  # new calls get 503 + Retry-After while live ones end
    for server, _ in servers:
        server.should_exit = True
    await asyncio.gather(*http_tasks, return_exceptions=True)
    stop_wait.cancel()
    collector.cancel()
    await watch.stop()
    for listener in (follower, peers):
        if listener is not None:
            await listener.stop()
    if jobs:
        await mailer.stop()
        await sender.stop()
    await queue_events.drain()
    await sip.stop()
    if steering is not None:
        steering.close()
        forget_api_socket(group, workers.index)
    store.close()
    return 0
