"""What the voicemail unit tests share: an organisation with its mailboxes and
the voicemail service over a fake channel, and waiting for the service's
worker threads."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from sqlmodel import Session, select

from ivr.voicemail import VoicemailApp
from media.prompts import PromptLibrary
from pbx.calls.channel import Party
from pbx.config import Config, ExtensionConfig, General, MailboxConfig
from pbx.directory import Directory
from pbx.events import EventBus
from pbx.models import Voicemail
from pbx.store import Store
from tests.fakes import FakeChannel, FakeClock


async def eventually(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    """Until ``condition`` holds (the service reads and writes in worker threads)."""
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("it never happened")


class Setup:
    """An organisation with 1001–1003, a shared mailbox 2000 (1002, 1003), the service."""

    def __init__(self, tmp: Path, operator: str = "1001") -> None:
        config = Config(general=General(),
                        extensions=tuple(ExtensionConfig(number=n, secret="s3cret-Pw")
                                         for n in ("1001", "1002", "1003")),
                        mailboxes=(MailboxConfig(number="2000", name="Support",
                                                 members=("1002", "1003")),))
        # a file, not memory: the service writes from worker threads, and in-memory
        # SQLite is one connection that would show a thread's uncommitted rows
        self.store = Store(f"sqlite:///{tmp / 'pbx.sqlite3'}")
        self.store.seed(config)
        self.directory = Directory(self.store, "pbx.test")
        self.org = self.directory.default.id
        self.events = EventBus()
        self.seen: list[object] = []
        self.events.subscribe(self.seen.append)
        self.data = tmp
        prompts = PromptLibrary(tmp / "prompts", "en")
        self.app = VoicemailApp(self.directory, self.store, tmp, self.events, lambda: prompts,
                                operator=operator)
        self.clock = FakeClock()

    def caller(self, reason: str = "no-answer", number: str = "0701234567") -> FakeChannel:
        return FakeChannel(self.clock, Party(self.org, number, diverted_from="1002",
                                             diversion_reason=reason))

    def messages(self) -> list[Voicemail]:
        with Session(self.store.engine) as db:
            return list(db.exec(select(Voicemail)).all())
