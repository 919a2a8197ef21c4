"""Commands on live calls (pbx/calls/commands.py) in the in-memory harness:
hang up, blind transfer that works and that fails, park / retrieve / come
back, click-to-call with both phones played by the test, and the live-call
view and screen-pop events that go with them."""

from __future__ import annotations

from typing import TypeVar

import pytest

from ivr.park import Park
from pbx.calls.channel import Channel, Party
from pbx.calls.commands import CallCommands, CommandError, Outcome
from pbx.calls.views import live_calls
from pbx.config import slot_range
from pbx.events import CallAnswered, CallEnded, CallRinging, CallStarted
from pbx.models import Number
from pbx.sip.message import Request, Response
from tests.harness import CallHarness

PARK_SECONDS = 300.0
E = TypeVar("E")


@pytest.fixture
def park(calls: CallHarness) -> Park:
    lot = Park(calls.b2bua, calls.clock, slot_range("701-703"), PARK_SECONDS)
    calls.b2bua.register(lot)
    return lot


@pytest.fixture
def commands(calls: CallHarness, park: Park) -> CallCommands:
    return CallCommands(calls.b2bua, park)


async def answered_call(calls: CallHarness, caller: str = "1001",
                        callee: str = "1002") -> tuple[Request, Request, Response]:
    """``caller`` calls ``callee``, who answers: the caller's INVITE, the fork, its 200."""
    calls.register(callee)
    invite = await calls.call(caller, callee)
    fork = calls.phones[callee].invites()[-1]
    ok = calls.phones[callee].reply(fork, 200)
    calls.acked(invite)
    assert calls.statuses(invite)[-1] == 200
    return invite, fork, ok


def bridged(calls: CallHarness, a: str, b: str) -> bool:
    """The one live call is between ``a`` and ``b``, media through the relay."""
    (call,) = calls.b2bua.live_calls()
    assert call.a is not None and call.b is not None
    return ((call.a.number, call.b.number) == (a, b) and call.a.media is not None
            and call.a.media.peer is call.b.media)


def of(calls: CallHarness, kind: type[E]) -> list[E]:
    """The events of ``kind`` the harness's bus carried, typed."""
    return [e for e in calls.seen if isinstance(e, kind)]


def ended(calls: CallHarness) -> list[CallEnded]:
    return calls.records()


# ------------------------------------------------------------------ hang up

async def test_hanging_up_an_answered_call_byes_both_phones(
        calls: CallHarness, commands: CallCommands) -> None:
    invite, _, _ = await answered_call(calls)
    (call,) = calls.b2bua.live_calls()
    commands.hang_up(calls.tenant.id, call.id)
    await calls.settle()
    assert len(calls.phones["1002"].requests("BYE")) == 1
    assert [m for m, _ in calls.sip.sent if isinstance(m, Request) and m.method == "BYE"
            and m.call_id == invite.call_id]  # the caller's dialog too
    (record,) = ended(calls)
    assert (record.disposition, record.hangup_by, record.answered_by) == ("answered", "api", "1002")
    assert calls.b2bua.active_calls == 0 and calls.free_ports == calls.ports.pool.size


async def test_hanging_up_a_ringing_call_answers_the_caller_and_cancels_the_forks(
        calls: CallHarness, commands: CallCommands) -> None:
    calls.register("1002")
    invite = await calls.call("1001", "1002")
    (call,) = calls.b2bua.live_calls()
    commands.hang_up(calls.tenant.id, call.id)
    await calls.settle()
    assert calls.statuses(invite)[-1] == 480
    assert len(calls.phones["1002"].requests("CANCEL")) == 1
    (record,) = ended(calls)
    assert (record.disposition, record.hangup_by) == ("cancelled", "api")
    assert calls.free_ports == calls.ports.pool.size


async def test_no_command_reaches_another_organisations_call(
        calls: CallHarness, commands: CallCommands) -> None:
    await answered_call(calls)
    (call,) = calls.b2bua.live_calls()
    with pytest.raises(CommandError) as missing:
        commands.hang_up(calls.tenant.id + 1, call.id)
    assert missing.value.status == 404
    assert calls.b2bua.active_calls == 1


# ------------------------------------------------------------------ blind transfer

async def test_a_transfer_rings_the_target_and_drops_the_holder_when_it_answers(
        calls: CallHarness, commands: CallCommands) -> None:
    invite, _, _ = await answered_call(calls)
    calls.register("1003")
    (call,) = calls.b2bua.live_calls()
    outcomes: list[Outcome] = []
    commands.transfer(calls.tenant.id, call.id, "1003", None, outcomes.append)
    await calls.settle()
    (ring,) = calls.phones["1003"].invites()
    assert ring.from_addr.uri.user == "1001"  # the target sees who it gets
    assert bridged(calls, "1001", "1002")  # they talk on while 1003 rings
    calls.phones["1003"].reply(ring, 200)
    await calls.settle()
    assert outcomes == [Outcome(call.id, "1003")]
    assert len(calls.phones["1002"].requests("BYE")) == 1
    assert not calls.phones["1002"].requests("NOTIFY")  # no REFER, no NOTIFY
    assert bridged(calls, "1001", "1003")
    calls.b2bua.on_bye(calls.in_dialog(invite, "BYE"), calls.phones["1001"].flow, None)
    await calls.settle()
    (record,) = ended(calls)
    assert record.answered_by == "1003" and "transfer:1003:api" in record.path
    assert calls.free_ports == calls.ports.pool.size
    calls.clock.advance(40)
    assert not calls.b2bua.legs.dialogs  # 1002's too: nothing outlives the call


async def test_a_failed_transfer_leaves_the_call_as_it_was(
        calls: CallHarness, commands: CallCommands) -> None:
    await answered_call(calls)
    calls.register("1003")
    (call,) = calls.b2bua.live_calls()
    outcomes: list[Outcome] = []
    commands.transfer(calls.tenant.id, call.id, "1003", None, outcomes.append)
    await calls.settle()
    calls.phones["1003"].reply(calls.phones["1003"].invites()[-1], 486)
    await calls.settle()
    assert outcomes == [Outcome(call.id, status=486,
                                reason="1003 did not take the call (486 Busy Here)")]
    assert not calls.phones["1001"].requests("BYE") and not calls.phones["1002"].requests("BYE")
    assert bridged(calls, "1001", "1002") and call.transfer is None
    # and it can be transferred again: nobody answers this time
    commands.transfer(calls.tenant.id, call.id, "1003", None, outcomes.append)
    await calls.settle()
    calls.clock.advance(31)
    assert outcomes[-1].status == 480 and bridged(calls, "1001", "1002")


async def test_the_holder_may_be_the_caller(calls: CallHarness, commands: CallCommands) -> None:
    await answered_call(calls)
    calls.register("1003")
    (call,) = calls.b2bua.live_calls()
    outcomes: list[Outcome] = []
    commands.transfer(calls.tenant.id, call.id, "1003", "1001", outcomes.append)
    await calls.settle()
    (ring,) = calls.phones["1003"].invites()
    calls.phones["1003"].reply(ring, 200)
    await calls.settle()
    assert outcomes[0].ok and bridged(calls, "1002", "1003")


async def test_transfers_refused_at_once_say_why(
        calls: CallHarness, commands: CallCommands) -> None:
    calls.register("1002")
    await calls.call("1001", "1002")  # ringing, not answered
    (ringing,) = calls.b2bua.live_calls()
    with pytest.raises(CommandError) as unanswered:
        commands.transfer(calls.tenant.id, ringing.id, "1003", None, print)
    assert unanswered.value.status == 409
    commands.hang_up(calls.tenant.id, ringing.id)
    await answered_call(calls)
    (call,) = calls.b2bua.live_calls()
    for number, holder, status in (("4711", None, 404), ("1002", None, 409),
                                   ("1003", "1004", 422)):
        with pytest.raises(CommandError) as refused:
            commands.transfer(calls.tenant.id, call.id, number, holder, print)
        assert refused.value.status == status, refused.value.reason
    calls.tenant.extensions["1003"].dnd = True
    with pytest.raises(CommandError) as dnd:
        commands.transfer(calls.tenant.id, call.id, "1003", None, print)
    assert dnd.value.status == 502 and "486" in dnd.value.reason
    assert bridged(calls, "1001", "1002")


async def test_a_call_ending_while_the_target_rings_reports_once(
        calls: CallHarness, commands: CallCommands) -> None:
    await answered_call(calls)
    calls.register("1003")
    (call,) = calls.b2bua.live_calls()
    outcomes: list[Outcome] = []
    commands.transfer(calls.tenant.id, call.id, "1003", None, outcomes.append)
    await calls.settle()
    commands.hang_up(calls.tenant.id, call.id)
    await calls.settle()
    assert [o.status for o in outcomes] == [487]
    assert len(calls.phones["1003"].requests("CANCEL")) == 1
    assert calls.free_ports == calls.ports.pool.size


# ------------------------------------------------------------------ park and retrieve

async def park_call(calls: CallHarness, commands: CallCommands) -> tuple[str, str]:
    """1001 → 1002 answered, then parked by 1002: (call id, slot)."""
    await answered_call(calls)
    (call,) = calls.b2bua.live_calls()
    return call.id, commands.park(calls.tenant.id, call.id, None)


async def test_a_parked_caller_hears_music_and_the_holder_is_hung_up(
        calls: CallHarness, commands: CallCommands, park: Park) -> None:
    call_id, slot = await park_call(calls, commands)
    await calls.settle()
    assert slot == "701"
    assert len(calls.phones["1002"].requests("BYE")) == 1
    (call,) = calls.b2bua.live_calls()
    assert call.a is not None and call.b is None
    assert [p.leg for p in calls.engine.listening] == [call.a.media]  # music on hold
    (parked,) = park.parked(calls.tenant.id)
    assert (parked.slot, parked.parked_by, parked.channel.party.number) == ("701", "1002", "1001")
    (live,) = live_calls(calls.b2bua.live_calls(), calls.tenant.id, calls.clock.now())
    assert (live.state, live.service, live.answered_by) == ("parked", "park:701", "1002")
    assert calls.free_ports == calls.ports.pool.size - 1  # the caller's port only
    with pytest.raises(CommandError) as again:  # a parked call has one party
        commands.park(calls.tenant.id, call_id, None)
    assert again.value.status == 409


async def test_retrieving_a_parked_call_rings_the_retriever_and_connects(
        calls: CallHarness, commands: CallCommands, park: Park) -> None:
    call_id, slot = await park_call(calls, commands)
    calls.register("1003")
    told: list[tuple[str, int]] = []
    park.retrieve(calls.tenant.id, slot, "1003", lambda *how: told.append(how))
    await calls.settle()
    (ring,) = calls.phones["1003"].invites()
    assert ring.from_addr.uri.user == "1001"  # the retriever sees who was parked
    calls.phones["1003"].reply(ring, 200)
    await calls.settle()
    assert told == [("1003", 200)] and park.parked(calls.tenant.id) == []
    assert bridged(calls, "1001", "1003") and not calls.engine.listening
    calls.clock.advance(PARK_SECONDS + 1)  # the comeback timer died with the parking
    assert len(calls.phones["1002"].invites()) == 1
    commands.hang_up(calls.tenant.id, call_id)
    await calls.settle()
    (record,) = ended(calls)  # one call, one record, from the first ring
    assert record.call_id == call_id and record.answered_by == "1003"
    assert "park:701" in record.path
    assert calls.free_ports == calls.ports.pool.size
    calls.clock.advance(40)
    assert not calls.b2bua.legs.dialogs


async def test_a_retrieval_nobody_takes_leaves_the_call_parked(
        calls: CallHarness, commands: CallCommands, park: Park) -> None:
    _, slot = await park_call(calls, commands)
    calls.register("1003")
    told: list[tuple[str, int]] = []
    park.retrieve(calls.tenant.id, slot, "1003", lambda *how: told.append(how))
    await calls.settle()
    calls.phones["1003"].reply(calls.phones["1003"].invites()[-1], 486)
    await calls.settle()
    assert told == [("", 486)]
    assert [p.slot for p in park.parked(calls.tenant.id)] == ["701"]
    park.retrieve(calls.tenant.id, slot, "4711", lambda *how: told.append(how))
    assert told[-1] == ("", 404)  # the dial plan refuses at once: reported, still parked
    assert park.parked(calls.tenant.id)[0].retrieving is None


async def test_a_call_parked_too_long_comes_back_to_who_parked_it(
        calls: CallHarness, commands: CallCommands, park: Park) -> None:
    call_id, _ = await park_call(calls, commands)
    calls.clock.advance(PARK_SECONDS - 1)
    assert len(calls.phones["1002"].invites()) == 1  # the first call only
    calls.clock.advance(2)
    await calls.settle()
    back = calls.phones["1002"].invites()[-1]
    assert back.from_addr.uri.user == "1001"
    assert "reason=deflection" in (back.headers.get("Diversion") or "")
    assert park.parked(calls.tenant.id) == []
    calls.phones["1002"].reply(back, 200)
    await calls.settle()
    assert bridged(calls, "1001", "1002")
    assert calls.b2bua.live_calls()[0].id == call_id


async def test_a_parked_caller_who_hangs_up_frees_the_slot(
        calls: CallHarness, commands: CallCommands, park: Park) -> None:
    call_id, slot = await park_call(calls, commands)
    (call,) = calls.b2bua.live_calls()
    assert call.a is not None
    invite = call.a.invite
    calls.b2bua.on_bye(calls.in_dialog(invite, "BYE", cseq=5), calls.phones["1001"].flow, None)
    await calls.settle()
    assert park.parked(calls.tenant.id) == [] and park.free_slot(calls.tenant.id) == "701"
    (record,) = ended(calls)
    assert (record.disposition, record.hangup_by) == ("answered", "caller")
    calls.clock.advance(PARK_SECONDS + 1)
    assert len(calls.phones["1002"].invites()) == 1
    assert calls.free_ports == calls.ports.pool.size


async def test_a_full_parking_lot_says_so(calls: CallHarness, commands: CallCommands) -> None:
    for caller in ("1001", "1003", "1004"):
        await answered_call(calls, caller, "1002")
    slots = [commands.park(calls.tenant.id, call.id, "1002")
             for call in calls.b2bua.live_calls()]
    assert slots == ["701", "702", "703"]
    await answered_call(calls, "1001", "1003")
    (fourth,) = [c for c in calls.b2bua.live_calls() if c.b is not None]
    with pytest.raises(CommandError) as full:
        commands.park(calls.tenant.id, fourth.id, None)
    assert full.value.status == 409


# ------------------------------------------------------------------ click-to-call

async def test_click_to_call_rings_the_user_then_the_number_as_one_call(
        calls: CallHarness, commands: CallCommands) -> None:
    calls.register("1001", "1002")
    calls.tenant.extensions["1001"].display_name = '"Ann Agent" <1001>'
    calls.tenant.extensions["1002"].display_name = '"Bo Customer" <1002>'
    answered: list[Outcome] = []
    call = commands.click_to_call(calls.tenant.id, "1001", "1002", answered.append)
    await calls.settle()
    (mine,) = calls.phones["1001"].invites()
    assert (mine.from_addr.uri.user, mine.from_addr.display_name) == ("1002", "Bo Customer")
    assert not calls.phones["1002"].invites()  # not before the user answers
    calls.phones["1001"].reply(mine, 180)
    user_ok = calls.phones["1001"].reply(mine, 200)
    await calls.settle()
    assert answered == [Outcome(call.id, "1001")]
    (theirs,) = calls.phones["1002"].invites()
    assert (theirs.from_addr.uri.user, theirs.from_addr.display_name) == ("1001", "Ann Agent")
    (live,) = live_calls(calls.b2bua.live_calls(), calls.tenant.id, calls.clock.now())
    assert (live.state, live.caller, live.dialled, live.ringing) == ("ringing", "1001", "1002",
                                                                     ("1002",))
    assert [p for p in calls.engine.rooms if p.startswith("private")]  # ringback plays
    calls.phones["1002"].reply(theirs, 200)
    await calls.settle()
    assert bridged(calls, "1001", "1002") and not calls.engine.rooms
    calls.b2bua.on_bye(calls.from_callee(mine, user_ok, "BYE"), calls.phones["1001"].flow, None)
    await calls.settle()
    assert len(calls.phones["1002"].requests("BYE")) == 1
    started = of(calls, CallStarted)
    assert [(e.call_id, e.caller, e.dialled) for e in started] == [(call.id, "1001", "1002")]
    assert [e.answered_by for e in of(calls, CallAnswered)] == ["1002"]
    (record,) = ended(calls)
    assert (record.call_id, record.caller, record.dialled, record.answered_by, record.hangup_by,
            record.disposition) == (call.id, "1001", "1002", "1002", "caller", "answered")
    assert record.answered_at is not None and record.path[0] == "click-to-call:1001"
    assert calls.free_ports == calls.ports.pool.size


async def test_click_to_call_the_user_does_not_answer(
        calls: CallHarness, commands: CallCommands) -> None:
    calls.register("1001", "1002")
    answered: list[Outcome] = []
    call = commands.click_to_call(calls.tenant.id, "1001", "1002", answered.append)
    await calls.settle()
    calls.clock.advance(31)
    await calls.settle()
    assert [o.status for o in answered] == [480] and not calls.phones["1002"].invites()
    (record,) = ended(calls)
    assert (record.call_id, record.caller, record.dialled, record.disposition,
            record.answered_by) == (call.id, "1001", "1002", "noanswer", "")
    assert calls.b2bua.active_calls == 0 and calls.free_ports == calls.ports.pool.size


async def test_click_to_call_the_number_is_busy(
        calls: CallHarness, commands: CallCommands) -> None:
    calls.register("1001", "1002")
    calls.tenant.extensions["1002"].voicemail = False
    commands.click_to_call(calls.tenant.id, "1001", "1002")
    await calls.settle()
    mine = calls.phones["1001"].invites()[-1]
    calls.phones["1001"].reply(mine, 200)
    await calls.settle()
    calls.phones["1002"].reply(calls.phones["1002"].invites()[-1], 486)
    await calls.settle()
    assert len(calls.phones["1001"].requests("BYE")) == 1  # the user hears it ended
    (record,) = ended(calls)
    assert (record.caller, record.disposition, record.status) == ("1001", "busy", 486)


async def test_click_to_call_to_a_service_is_answered_by_it(
        calls: CallHarness, commands: CallCommands) -> None:
    class Menu:
        kind = "ivr"

        def start(self, channel: Channel, ident: str) -> None:
            channel.answer()
            channel.play("welcome")

    calls.serve("500", Menu())
    calls.register("1001")
    commands.click_to_call(calls.tenant.id, "1001", "500")
    await calls.settle()
    calls.phones["1001"].reply(calls.phones["1001"].invites()[-1], 200)
    await calls.settle()
    (live,) = live_calls(calls.b2bua.live_calls(), calls.tenant.id, calls.clock.now())
    assert (live.state, live.answered_by) == ("ivr:500", "ivr:500")


async def test_click_to_call_refusals_say_why(
        calls: CallHarness, commands: CallCommands) -> None:
    calls.register("1002")
    for extension, number, status in (("9999", "1002", 404), ("1001", "1002", 409),
                                      ("1002", "4711", 404), ("1002", "*8", 422),
                                      ("1002", "1002", 422)):
        with pytest.raises(CommandError) as refused:
            commands.click_to_call(calls.tenant.id, extension, number)
        assert refused.value.status == status, refused.value.reason
    assert calls.b2bua.active_calls == 0 and not calls.seen


# ------------------------------------------------------------------ views and events

async def test_the_live_view_follows_a_call(calls: CallHarness) -> None:
    calls.register("1002")
    invite = await calls.call("1001", "1002")
    org, now = calls.tenant.id, calls.clock.now()
    (ringing,) = live_calls(calls.b2bua.live_calls(), org, now)
    assert (ringing.state, ringing.ringing, ringing.answered_by) == ("ringing", ("1002",), "")
    fork = calls.phones["1002"].invites()[-1]
    calls.phones["1002"].reply(fork, 200)
    calls.acked(invite)
    calls.clock.advance(5)
    (talking,) = live_calls(calls.b2bua.live_calls(), org, calls.clock.now())
    assert (talking.state, talking.answered_by, talking.duration) == ("answered", "1002", 5.0)
    assert talking.parties == ("1001", "1002")
    hold = calls.in_dialog(invite, "INVITE", cseq=2)
    hold.body = invite.body.replace(b"a=sendrecv", b"a=sendonly")
    hold.headers.set("Content-Type", "application/sdp")
    calls.b2bua.on_invite(hold, calls.phones["1001"].flow, None)
    (held,) = live_calls(calls.b2bua.live_calls(), org, calls.clock.now())
    assert held.state == "held"
    assert live_calls(calls.b2bua.live_calls(), org, now, extension="1003") == []
    assert live_calls(calls.b2bua.live_calls(), org + 1, now) == []


async def test_call_events_carry_what_a_screen_pop_shows(calls: CallHarness) -> None:
    calls.tenant.numbers["+4681234567"] = Number(organisation_id=calls.tenant.id,
                                                 number="+4681234567", target="1002")
    calls.tenant.extensions["1001"].display_name = '"Ann Caller" <1001>'
    calls.register("1002")
    await calls.call("1001", "+4681234567")
    (started,) = of(calls, CallStarted)
    assert (started.caller, started.caller_name, started.did) == ("1001", "Ann Caller",
                                                                  "+4681234567")
    (ringing,) = of(calls, CallRinging)
    assert (ringing.extension, ringing.caller, ringing.caller_name, ringing.did) == (
        "1002", "1001", "Ann Caller", "+4681234567")
    (live,) = live_calls(calls.b2bua.live_calls(), calls.tenant.id, calls.clock.now())
    assert (live.did, live.caller_name) == ("+4681234567", "Ann Caller")


async def test_a_services_dial_the_dial_plan_refuses_is_reported(calls: CallHarness) -> None:
    """Regression: a dial to an extension on DND (or an unknown number) never
    called on_fail, so a service waited for it for ever."""
    calls.tenant.extensions["1002"].dnd = True
    failures: list[int] = []
    for number in ("1002", "4711"):
        calls.b2bua.dial(calls.tenant.id, number, caller=Party(calls.tenant.id, "800"),
                         on_answer=lambda channel: None, on_fail=failures.append)
    assert failures == [486, 404] and calls.b2bua.active_calls == 0
