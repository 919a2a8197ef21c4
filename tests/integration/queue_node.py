"""The admin API of a PBX node served for real (uvicorn on loopback, in a thread
of this process) with the queues and their statistics wired as ``pbx serve``
wires them, so a test can steer the queue engine over the API and publish
queue events onto the node's bus (what the engine does on calls) and watch
the API, the WebSocket and the wallboard react.  The SIP side is built but not
started: no phones needed."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from sqlmodel import Session, select

from admin_api.app import create_app
from pbx.calls.commands import CallCommands
from pbx.config import load_config
from pbx.events import Event
from pbx.models import ApiUser, License, Organisation
from pbx.node import queue_statistics, register_services
from pbx.passwords import hash_password
from pbx.server import SipServer
from pbx.store import Store
from queues.live import QueueStatistics
from queues.service import QueueApp
from tests.integration.peers import free_ports, write_config

PASSWORD = "Queue-stats-pw-42"
AGENTS = {"1002": "pw-1002-secret", "1003": "pw-1003-secret", "1004": "pw-1004-secret"}


QUEUE = """
[700]
type = queue
name = Support
members = 1002, 1003
"""


@dataclass
class StatsNode:
    url: str
    sip: SipServer
    stats: QueueStatistics
    queues: QueueApp
    loop: asyncio.AbstractEventLoop
    organisation: int
    app: FastAPI
    drain: Any = None

    def publish(self, *events: Event) -> None:
        """Publish on the node's loop, as the engine does, and store them."""
        async def publish() -> None:
            for event in events:
                self.sip.events.publish(event)
            await self.drain()

        asyncio.run_coroutine_threadsafe(publish(), self.loop).result(10)

    def headers(self, username: str = "sue") -> dict[str, str]:
        answer = httpx.post(f"{self.url}/api/login",
                            json={"username": username, "password": PASSWORD})
        assert answer.status_code == 200, answer.text
        return {"Authorization": f"Bearer {answer.json()['token']}"}


@contextmanager
def stats_node(tmp: Path, queues: str = "") -> Iterator[StatsNode]:
    """A node with extensions 1002–1004, supervisor ``sue`` (extension 1003),
    agent ``al`` (1002) and user ``ulla`` (1004), licensed, with password PASSWORD."""
    (tmp / "data").mkdir(exist_ok=True)
    config = load_config(write_config(tmp / "sip.conf", AGENTS, queues, data_dir=str(tmp / "data")))
    store = Store(config.database_url)
    store.seed(config)
    with Session(store.engine) as db:
        org = db.exec(select(Organisation)).first()
        assert org is not None and org.id is not None
        for name, role, extension in (("sue", "supervisor", "1003"), ("al", "agent", "1002"),
                                      ("ulla", "user", "1004")):
            person = ApiUser(organisation_id=org.id, username=name, role=role,
                             extension=extension, password_hash=hash_password(PASSWORD))
            db.add(person)
            db.flush()
            db.add(License(organisation_id=org.id, user_id=person.id))
        db.commit()
        organisation = org.id
    sip = SipServer(config, store)
    stats, writer = queue_statistics(sip)
    loop = asyncio.new_event_loop()

    async def services() -> tuple[CallCommands, QueueApp]:
        return register_services(sip, stats)  # the engine's timers run on the node's loop

    commands, queues = loop.run_until_complete(services())
    app = create_app(sip, commands=commands, statistics=stats, queue_app=queues)
    port = free_ports(1)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off",
                                           log_level="warning"))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(),))
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the API did not start"
        time.sleep(0.05)
    try:
        yield StatsNode(f"http://127.0.0.1:{port}", sip, stats, queues, loop, organisation,
                        app, writer.drain)
    finally:
        server.should_exit = True
        thread.join(10)
        loop.close()
        store.close()
