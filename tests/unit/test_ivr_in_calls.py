"""The IVR on the real call control, in the in-memory harness: a call to the
IVR's number rings while its greetings load in a worker thread, is answered
once, and a key sends the caller through the dial plan to a phone, to
voicemail, or ends the call, with every port back in the pool."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import soundfile
from sqlmodel import Session

from ivr.app import IvrApp
from ivr.greetings import GreetingLibrary, recording_folder
from ivr.tenant import hours
from ivr.tree import IvrTree, to_json
from pbx.calls.session import LegChannel
from pbx.events import CallAnswered, CallEnded
from pbx.models import Ivr
from tests.harness import CallHarness

TREE = IvrTree.model_validate({
    "name": "reception", "number": "500",
    "menus": {"main": {
        "greeting": {"recording": "welcome.wav"},
        "options": {"2": {"extension": "1002"}, "9": {"voicemail": "1003"}, "0": "hangup"},
        "timeout": 5, "retries": 0, "on_timeout": "hangup",
    }},
})


async def ivr_harness(tmp_path: Path) -> CallHarness:
    calls = CallHarness()
    with Session(calls.store.engine) as db:
        db.add(Ivr(organisation_id=calls.tenant.id, number="500", name="reception",
                   tree=to_json(TREE)))
        db.commit()
    calls.directory.reload()
    folder = recording_folder(tmp_path, calls.tenant.id, "reception")
    folder.mkdir(parents=True)
    soundfile.write(folder / "welcome.wav", np.full(16000, 0.1), 8000)  # two seconds
    calls.b2bua.register(IvrApp(calls.directory, calls.clock, hours, GreetingLibrary(tmp_path)))
    return calls


async def answered(calls: CallHarness, caller: str) -> tuple[LegChannel, object]:
    """``caller`` dials the IVR; it answers once its greetings are loaded."""
    invite = await calls.call(caller, "500")
    for _ in range(200):  # the worker thread reads the greeting
        if 200 in calls.statuses(invite):
            break
        await asyncio.sleep(0.01)
    assert calls.statuses(invite).count(200) == 1
    calls.acked(invite)
    channel = calls.b2bua.live_calls()[0].a.channel  # type: ignore[union-attr]
    assert isinstance(channel, LegChannel)
    return channel, invite


async def test_a_key_puts_the_caller_through_to_an_extension(tmp_path: Path) -> None:
    calls = await ivr_harness(tmp_path)
    calls.register("1002")
    channel, invite = await answered(calls, "1001")
    calls.clock.advance(0.5)
    channel.key("2")  # during the greeting
    await calls.settle()
    forks = calls.phones["1002"].invites()
    assert len(forks) == 1
    calls.phones["1002"].reply(forks[0], 200)
    assert calls.statuses(invite).count(200) == 1  # the caller's INVITE answered once
    assert [e.answered_by for e in calls.events_of(CallAnswered)] == [  # type: ignore[attr-defined]
        "ivr:500", "1002"]
    calls.b2bua.on_bye(calls.in_dialog(invite, "BYE"), calls.phones["1001"].flow, None)
    await calls.settle()
    assert calls.free_ports == calls.ports.pool.size
    calls.clock.advance(60)  # call control keeps an ended call a while for late requests
    assert calls.clock.pending() == 0


async def test_a_key_leads_to_voicemail(tmp_path: Path) -> None:
    calls = await ivr_harness(tmp_path)
    served: list[tuple[str, str]] = []

    class Mailbox:
        kind = "voicemail"

        def start(self, channel: object, ident: str) -> None:
            served.append((self.kind, ident))

    calls.b2bua.register(Mailbox())
    channel, _ = await answered(calls, "1001")
    channel.key("9")
    await calls.settle()
    assert served == [("voicemail", "1003")]  # voicemail:1003 through the dial plan


async def test_silence_hangs_up_and_leaves_nothing_behind(tmp_path: Path) -> None:
    calls = await ivr_harness(tmp_path)
    _, invite = await answered(calls, "1001")
    calls.clock.advance(2.0 + 5.0)  # the greeting, then the timeout: no retries
    await calls.settle()
    assert calls.phones["1001"].requests("BYE")  # the PBX hung up
    ended = calls.events_of(CallEnded)
    assert len(ended) == 1
    assert calls.free_ports == calls.ports.pool.size
    assert calls.statuses(invite).count(200) == 1
    calls.clock.advance(60)  # call control keeps an ended call a while for late requests
    assert calls.clock.pending() == 0


async def test_on_a_holiday_the_ivr_takes_its_closed_branch(tmp_path: Path) -> None:
    """Christmas Eve 2026 is a Thursday inside the weekly hours: the clock,
    injected, says closed (a Swedish holiday), so the caller reaches voicemail."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from ivr.schedule import Definition
    from pbx.models import SwitchboardSchedule

    hours_json = Definition(mon=["08:00-17:00"], tue=["08:00-17:00"], wed=["08:00-17:00"],
                            thu=["08:00-17:00"], fri=["08:00-17:00"]).model_dump_json()
    closed_tree = IvrTree.model_validate({
        **TREE.model_dump(mode="json", exclude_none=True), "schedule": "office-hours",
        "closed": {"voicemail": "1003"},
    })
    calls = CallHarness()
    with Session(calls.store.engine) as db:
        db.add(SwitchboardSchedule(organisation_id=calls.tenant.id, name="office-hours",
                                   definition=hours_json))
        db.add(Ivr(organisation_id=calls.tenant.id, number="500", name="reception",
                   tree=to_json(closed_tree)))
        db.commit()
    calls.directory.reload()
    folder = recording_folder(tmp_path, calls.tenant.id, "reception")
    folder.mkdir(parents=True)
    soundfile.write(folder / "welcome.wav", np.full(16000, 0.1), 8000)
    calls.b2bua.register(IvrApp(calls.directory, calls.clock, hours, GreetingLibrary(tmp_path)))
    mailbox: list[str] = []

    class Voicemail:
        kind = "voicemail"

        def start(self, channel: object, ident: str) -> None:
            mailbox.append(ident)

    calls.b2bua.register(Voicemail())
    stockholm = ZoneInfo("Europe/Stockholm")
    for day, expected in ((datetime(2026, 12, 24, 10, 0, tzinfo=stockholm), ["1003"]),
                          (datetime(2026, 12, 17, 10, 0, tzinfo=stockholm), [])):
        mailbox.clear()
        calls.clock.jump(day.timestamp())
        invite = await calls.call("1001", "500")
        for _ in range(200):
            if 200 in calls.statuses(invite):
                break
            await asyncio.sleep(0.01)
        calls.acked(invite)
        calls.clock.advance(3)  # the closed branch says nothing before it redirects
        await calls.settle()
        assert mailbox == expected, day
        calls.b2bua.end_calls_of(calls.tenant.id, "1001")
