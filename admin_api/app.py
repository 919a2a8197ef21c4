"""The HTTP application served by ``pbx serve`` on ``--http-port``: one router
per resource, all sharing ``admin_api.deps``."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from admin_api import (
    audit, auth, call_control, callpolicy, calls, conferences, devices, events, extensions, ivrs,
    licenses, mailboxes, media, numbers, organisations, outbound, presence, profiles, provision,
    queue_stats, queue_widget, queues, recordings, ringgroups, schedules, services,
    shared_mailboxes, timeconditions, trunks, users, voicemail, webhooks,
)
from admin_api.users import bootstrap_admin
from pbx.calls.commands import CallCommands
from pbx.overload import LoadGovernor
from pbx.server import SipServer
from pbx.webhooks import WebhookOutbox
from queues.live import QueueStatistics
from queues.service import QueueApp


class Overload(BaseModel):
    """Overload control (pbx/overload.py): is the node shedding new work, why, and
    the probe's last measures."""

    overloaded: bool
    level: float  # share of new INVITE/REGISTER/SUBSCRIBE refused with 503 (0 to 1)
    reason: str  # the signal that last reached its limit
    shed: int  # requests refused since the start
    loop_lag_ms: float
    udp_wait_ms: float  # estimated wait of a datagram in the SIP UDP socket
    transactions: int  # server transactions still owing their final answer
    cpu: float  # the node's share of a core over the last probe window


class Health(BaseModel):
    """What a load balancer or an operator checks: is the node up, how busy."""

    status: str
    registrations: int  # bindings known, in a cluster those saved by the other nodes too
    registrations_accepted: int = 0  # REGISTERs this node answered 200 since it started
    transports: dict[str, int]
    calls: int = 0
    subscriptions: int = 0  # BLF and message-waiting subscriptions of phones
    transactions: int = 0  # SIP transactions open or absorbing retransmissions (RFC 3261 §17)
    media_ports_free: int = 0
    media_ports_total: int = 0
    media_channels: int = 0  # channels the engine mixes (conferences, recorded and held calls)
    media_tick_ms: float = 0.0  # the last 20 ms tick: all of it, and its compute part
    media_mix_ms: float = 0.0
    overload: Overload | None = None


def overload_of(governor: LoadGovernor) -> Overload:
    sample = governor.sample
    return Overload(overloaded=governor.overloaded, level=round(governor.level, 3),
                    reason=governor.reason, shed=governor.shed,
                    loop_lag_ms=round(sample.loop_lag_ms, 1),
                    udp_wait_ms=round(sample.udp_wait_ms, 1),
                    transactions=sample.transactions, cpu=round(sample.cpu, 2))


def create_app(sip: SipServer, *, commands: CallCommands | None = None,
               outbox: WebhookOutbox | None = None, statistics: QueueStatistics | None = None,
               queue_app: QueueApp | None = None, bootstrap: bool = True) -> FastAPI:
    """The API of node ``sip``; ``commands`` act on its live calls, ``outbox``
    learns of every change to the organisations' webhooks, ``statistics`` are
    the live queue figures and ``queue_app`` runs its ACD queues; ``bootstrap``:
    make the first admin if there is none (one worker of a node does)."""
    app = FastAPI(title="PBX admin API", version="0.1.0")
    app.state.sip = sip
    app.state.calls = commands
    app.state.webhooks = outbox
    app.state.queue_stats = statistics
    app.state.queues = queue_app
    app.state.on_logout = []  # callables taking a revoked token's hash (the softphone's pages)

    @app.get("/api/health", response_model=Health, tags=["system"])
    def health() -> Health:
        return Health(
            status="ok",
            registrations=len(sip.location),
            registrations_accepted=sip.registrar.accepted,
            transports={name: t.local_port for name, t in sip.transports.items()},
            calls=sip.b2bua.active_calls if sip.b2bua else 0,
            subscriptions=len(sip.notifier) if sip.notifier else 0,
            transactions=len(sip.transactions),
            media_ports_free=sip.relay.pool.free if sip.relay else 0,
            media_ports_total=sip.relay.pool.size if sip.relay else 0,
            media_channels=len(sip.engine.ports),
            media_tick_ms=round(sip.engine.tick_ms, 3),
            media_mix_ms=round(sip.engine.mix_ms, 3),
            overload=overload_of(sip.governor),
        )

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/admin/")

    if bootstrap:
        bootstrap_admin(sip)
    app.mount("/admin", StaticFiles(directory=Path(__file__).parent / "web", html=True), name="admin")
    for module in (auth, organisations, users, extensions, devices, provision, licenses,
                   services, ringgroups, numbers, calls, call_control, recordings, audit,
                   conferences, events, profiles, presence, voicemail, mailboxes, shared_mailboxes,
                   media, schedules, timeconditions, ivrs, trunks, outbound, callpolicy, webhooks,
                   queue_stats, queue_widget, queues):
        app.include_router(module.router)
    return app
