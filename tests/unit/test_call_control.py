"""Call control in memory (tests/harness.py): the real B2BUA, phones played
by the test, no sockets and no sleeping."""

from __future__ import annotations

import pytest

from pbx.events import CallAnswered, CallEnded
from pbx.sip.errors import SipError
from pbx.sip.message import Request, Response
from tests.harness import CallHarness


async def test_a_call_rings_every_device_and_the_first_answer_wins(calls: CallHarness) -> None:
    calls.register("1002")
    invite = await calls.call("1001", "1002")
    forks = calls.phones["1002"].invites()
    assert len(forks) == 1
    calls.phones["1002"].reply(forks[0], 180)
    calls.phones["1002"].reply(forks[0], 200)
    assert calls.statuses(invite) == [180, 200]
    answered = calls.events_of(CallAnswered)
    assert [e.answered_by for e in answered] == ["1002"]  # type: ignore[attr-defined]


async def test_every_pickup_gives_its_ports_back(calls: CallHarness) -> None:
    """Regression: a pickup overwrote the picker's port, leaking one pair per pickup."""
    calls.register("1002")
    free = calls.free_ports
    for _ in range(3):
        ringing = await calls.call("1001", "1002")
        picker = await calls.call("1003", "*8")
        assert calls.statuses(picker)[-1] == 200
        assert calls.statuses(ringing)[-1] == 200
        bye = calls.in_dialog(picker, "BYE")
        calls.b2bua.on_bye(bye, calls.phones["1003"].flow, None)
        await calls.settle()
        assert calls.b2bua.active_calls == 0
        assert calls.free_ports == free


async def test_a_picked_up_call_is_answered_on_the_bus(calls: CallHarness) -> None:
    """Regression: picked-up calls published no call.answered (statistics missed them)."""
    calls.register("1002")
    await calls.call("1001", "1002")
    await calls.call("1003", "**1002")
    answered = calls.events_of(CallAnswered)
    assert [e.answered_by for e in answered] == ["1003"]  # type: ignore[attr-defined]
    calls.b2bua.end_calls_of(calls.tenant.id, "1003")
    own, picked = calls.events_of(CallEnded)  # the picker's own call first: folded in
    assert (own.recorded, own.merged_into) == (False, picked.call_id)  # type: ignore[attr-defined]
    assert picked.recorded and picked.answered_by == "1003"  # type: ignore[attr-defined]


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


def notifies(calls: CallHarness, number: str) -> list[str]:
    """The sipfrag first lines of the transfer NOTIFYs phone ``number`` got."""
    return [n.body.decode().split("\r\n")[0] + " " + (n.headers.get("Subscription-State") or "")
            for n in calls.phones[number].requests("NOTIFY")]


async def blind_transfer(calls: CallHarness, target: str) -> tuple[Request, Request, Response]:
    invite, fork, ok = await answered_call(calls)
    refer = calls.from_callee(fork, ok, "REFER", headers={"Refer-To": f"<sip:{target}@127.0.0.1>"})
    calls.b2bua.on_refer(refer, calls.phones["1002"].flow, None)
    await calls.settle()
    assert calls.statuses(refer) == [202]
    return invite, fork, ok


async def test_a_refused_blind_transfer_tells_the_referrer_and_keeps_the_call(
        calls: CallHarness) -> None:
    """Regression: a refusing target left the referrer without a final NOTIFY."""
    calls.register("1003")
    await blind_transfer(calls, "1003")
    target = calls.phones["1003"].invites()[-1]
    calls.phones["1003"].reply(target, 486)
    assert notifies(calls, "1002") == ["SIP/2.0 100 Trying active;expires=60",
                                       "SIP/2.0 486 Transfer Failed terminated;reason=noresource"]
    assert calls.b2bua.active_calls == 1
    assert not calls.phones["1001"].requests("BYE") and not calls.phones["1002"].requests("BYE")


async def test_an_unanswered_blind_transfer_times_out_and_the_call_stays(
        calls: CallHarness) -> None:
    calls.register("1003")
    await blind_transfer(calls, "1003")
    calls.clock.advance(31)  # 1003's ring timeout is 30 s
    assert notifies(calls, "1002")[-1].startswith("SIP/2.0 480")
    assert len(calls.phones["1003"].requests("CANCEL")) == 1
    assert calls.b2bua.active_calls == 1
    assert not calls.phones["1001"].requests("BYE")


async def test_a_transfer_to_an_unregistered_extension_drops_nobody(calls: CallHarness) -> None:
    """Regression: an unregistered target ended both calls without a BYE."""
    await blind_transfer(calls, "1004")
    assert notifies(calls, "1002")[-1].startswith("SIP/2.0 480")
    assert calls.b2bua.active_calls == 1
    assert not calls.phones["1001"].requests("BYE") and not calls.phones["1002"].requests("BYE")


async def test_a_completed_blind_transfer_joins_the_kept_party_to_the_target(
        calls: CallHarness) -> None:
    calls.register("1003")
    free = calls.free_ports
    invite, _, _ = await blind_transfer(calls, "1003")
    calls.phones["1003"].reply(calls.phones["1003"].invites()[-1], 200)
    await calls.settle()
    assert notifies(calls, "1002")[-1].startswith("SIP/2.0 200")
    assert len(calls.phones["1002"].requests("BYE")) == 1
    call = calls.b2bua.live_calls()[0]
    assert (call.a.number, call.b.number) == ("1001", "1003")  # type: ignore[union-attr]
    assert call.a.media.peer is call.b.media  # type: ignore[union-attr]
    calls.b2bua.on_bye(calls.in_dialog(invite, "BYE"), calls.phones["1001"].flow, None)
    await calls.settle()
    assert calls.free_ports == free + 0 and calls.b2bua.active_calls == 0


async def test_the_referrer_may_hang_up_while_the_target_rings(calls: CallHarness) -> None:
    calls.register("1003")
    _, fork, ok = await blind_transfer(calls, "1003")
    bye = calls.from_callee(fork, ok, "BYE", cseq=3)
    calls.b2bua.on_bye(bye, calls.phones["1002"].flow, None)
    assert calls.b2bua.active_calls == 1  # 1001 waits for 1003
    calls.phones["1003"].reply(calls.phones["1003"].invites()[-1], 200)
    await calls.settle()
    call = calls.b2bua.live_calls()[0]
    assert (call.a.number, call.b.number) == ("1001", "1003")  # type: ignore[union-attr]


async def test_replaces_naming_no_dialog_gets_481_and_two_get_400(calls: CallHarness) -> None:
    """RFC 3891 §3, regression: Replaces was ignored."""
    nothing = await calls.call("1001", "1002",
                               headers={"Replaces": "nope@x;to-tag=a;from-tag=b"})
    assert calls.statuses(nothing) == [481]
    with pytest.raises(SipError) as two:
        await calls.call("1001", "1002", headers={"Replaces": "a@x;to-tag=a;from-tag=b",
                                                  "replaces": "b@x;to-tag=a;from-tag=b"})
    assert two.value.status == 400
    assert calls.b2bua.active_calls == 0 and calls.free_ports == calls.ports.pool.size


async def test_an_invite_with_replaces_takes_over_an_answered_call(calls: CallHarness) -> None:
    invite, fork, ok = await answered_call(calls)
    # 1003 replaces 1002 (the dialog as 1002's phone sees it: its tag is To's)
    replaces = f"{fork.call_id};to-tag={ok.to_addr.tag};from-tag={fork.from_addr.tag}"
    new = await calls.call("1003", "1002", headers={"Replaces": replaces})
    assert calls.statuses(new)[-1] == 200
    assert len(calls.phones["1002"].requests("BYE")) == 1
    call = calls.b2bua.live_calls()[0]
    assert (call.a.number, call.b.number) == ("1001", "1003")  # type: ignore[union-attr]


async def test_a_malformed_contact_is_refused_and_leaves_nothing(calls: CallHarness) -> None:
    """Regression: a lazily parsed bad Contact raised inside call control; the
    call and its ports stayed for good."""
    bad = await calls.call("1001", "1002", headers={"Contact": "<sip:1001@127.0.0.1"})
    assert calls.statuses(bad)[-1] == 400
    assert calls.b2bua.active_calls == 0 and calls.free_ports == calls.ports.pool.size
