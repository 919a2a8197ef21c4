"""Listening in (ChanSpy) on the real call control: a supervisor joins an
agent's call, listens unheard, whispers to the agent, barges in; others may not."""

from __future__ import annotations

from sqlmodel import Session

from ivr.spy import SpyApp
from pbx.models import ApiUser
from tests.harness import CallHarness


async def spying() -> tuple[CallHarness, object]:
    calls = CallHarness()
    with Session(calls.store.engine) as db:
        db.add(ApiUser(organisation_id=calls.tenant.id, username="sue", password_hash="x",
                       role="supervisor", extension="1003"))
        db.commit()
    calls.directory.reload()
    calls.tenant = calls.directory.default
    calls.b2bua.register(SpyApp(calls.directory, calls.b2bua))
    calls.register("1002")
    invite = await calls.call("1001", "1002")
    calls.phones["1002"].reply(calls.phones["1002"].invites()[-1], 200)
    calls.acked(invite)
    return calls, invite


def member_of(calls: CallHarness, number: str):  # type: ignore[no-untyped-def]
    """The engine member of ``number``'s leg in the call room it is in."""
    for room in calls.engine.rooms.values():
        for member in room.members:
            for call in calls.b2bua.live_calls():
                for leg in call.legs():
                    if leg.number == number and leg.media is member.port.leg:
                        return room, member
    raise AssertionError(f"{number} is in no room")


async def test_a_supervisor_listens_then_whispers_then_barges() -> None:
    calls, _ = await spying()
    spy = await calls.call("1003", "*551002")
    assert calls.statuses(spy)[-1] == 200
    room, supervisor = member_of(calls, "1003")
    assert room.kind == "call" and supervisor.listen_only  # nobody hears a listener
    _, agent = member_of(calls, "1002")
    assert len(room.members) == 3
    channel = next(c.a.channel for c in calls.b2bua.live_calls()  # type: ignore[union-attr]
                   if c.a is not None and c.a.number == "1003")
    channel.key("5")
    assert not supervisor.listen_only and supervisor.whisper_to is agent.port
    channel.key("6")
    assert not supervisor.listen_only and supervisor.whisper_to is None
    assert room.tone is None  # no tone told anyone


async def test_the_supervisor_goes_when_the_call_ends_and_nothing_leaks() -> None:
    calls, invite = await spying()
    spy = await calls.call("1003", "*551002")
    calls.acked(spy)
    calls.b2bua.on_bye(calls.in_dialog(invite, "BYE"), calls.phones["1001"].flow, None)
    await calls.settle()
    assert calls.b2bua.active_calls == 0
    assert calls.free_ports == calls.ports.pool.size and calls.engine.ports == []


async def test_only_supervisors_listen_and_only_to_a_call() -> None:
    calls, _ = await spying()
    refused = await calls.call("1004", "*551002")
    assert calls.statuses(refused) == [403]
    nothing = await calls.call("1003", "*551004")
    assert calls.statuses(nothing) == [404]


async def test_a_mode_after_a_star_starts_the_supervisor_in_it() -> None:
    """``*55`` + extension + ``*5``: whispering from the start (the wallboard's button)."""
    calls, _ = await spying()
    spy = await calls.call("1003", "*551002*5")
    assert calls.statuses(spy)[-1] == 200
    _, supervisor = member_of(calls, "1003")
    _, agent = member_of(calls, "1002")
    assert not supervisor.listen_only and supervisor.whisper_to is agent.port
    wrong = await calls.call("1003", "*551002*9")
    assert calls.statuses(wrong)[-1] == 404
