"""Services attached to calls through the application interface, in the
in-memory harness: a service answers, plays, sends the caller on; rooms are
told apart by kind; a service's dial and connect make one call, one record."""

from __future__ import annotations

from pathlib import Path

from ivr.conference import ConferenceApp
from ivr.mailbox_menu import MailboxMenuApp
from pbx.calls.channel import Channel, Party
from pbx.calls.views import conferences_in_use
from pbx.config import ConferenceConfig
from pbx.events import CallAnswered, CallEnded
from pbx.queue_settings import QueueConfig
from queues.service import QueueApp
from tests.harness import CallHarness


class Operator:
    """Answers, greets, then sends the caller on (as an IVR option does)."""

    kind = "operator"

    def __init__(self) -> None:
        self.hung_up = 0

    def start(self, channel: Channel, ident: str) -> None:
        assert channel.answer()
        channel.on_hangup(self._gone)
        channel.play("transferring", on_done=lambda: channel.redirect(ident))

    def _gone(self) -> None:
        self.hung_up += 1


async def test_a_service_that_answered_sends_the_caller_on_without_a_second_200() -> None:
    """Regression: a call redirected after a service answered got a second 200 on its INVITE."""
    calls = CallHarness()
    calls.register("1002")
    operator = Operator()
    calls.serve("500", operator, "1002")
    invite = await calls.call("1001", "500")
    assert calls.statuses(invite) == [200]
    calls.acked(invite)
    calls.clock.advance(1)  # the prompt is missing here: it "plays" for 0 s
    await calls.settle()
    forks = calls.phones["1002"].invites()
    assert len(forks) == 1
    calls.phones["1002"].reply(forks[0], 200)
    assert calls.statuses(invite) == [200]  # still one
    call = calls.b2bua.live_calls()[0]
    assert call.a.media.peer is call.b.media  # type: ignore[union-attr]  # bridged
    assert [e.answered_by for e in calls.events_of(CallAnswered)] == ["operator:1002", "1002"]  # type: ignore[attr-defined]
    calls.b2bua.on_bye(calls.in_dialog(invite, "BYE"), calls.phones["1001"].flow, None)
    await calls.settle()
    assert operator.hung_up == 0  # it let go when it redirected
    assert calls.free_ports == calls.ports.pool.size
    ended = calls.events_of(CallEnded)
    assert len(ended) == 1 and ended[0].answered_by == "1002"  # type: ignore[attr-defined]


async def test_a_service_hears_the_hang_up_and_its_timers_die() -> None:
    calls = CallHarness()
    fired: list[str] = []

    class Waiter:
        kind = "waiter"

        def start(self, channel: Channel, ident: str) -> None:
            channel.answer()
            channel.after(10, lambda: fired.append("timer"))
            channel.on_hangup(lambda: fired.append("hangup"))
            channel.on_hangup(lambda: fired.append("again"))

    calls.serve("501", Waiter())
    invite = await calls.call("1001", "501")
    calls.b2bua.on_bye(calls.in_dialog(invite, "BYE"), calls.phones["1001"].flow, None)
    calls.clock.advance(20)
    assert fired == ["hangup", "again"]


async def test_conferences_in_use_are_told_apart_by_kind_not_by_name(tmp_path: Path) -> None:
    """Regression: /api/conferences listed voicemail callers and hid a room named call-team."""
    calls = CallHarness(rooms=(ConferenceConfig(number="call-team"),))
    calls.b2bua.register(ConferenceApp(lambda org, n: calls.tenant.rooms.get(n), calls.b2bua,
                                       lambda name: tmp_path / name, lambda *a: None))
    calls.b2bua.register(MailboxMenuApp(calls.directory, calls.store, calls.events, tmp_path))
    room = await calls.call("1001", "call-team")
    assert calls.statuses(room)[-1] == 200
    menu = await calls.call("1002", "133")  # the voicemail menu: a service's private room
    assert calls.statuses(menu)[-1] == 200
    calls.register("1004")
    await calls.call("1003", "1004")
    calls.phones["1004"].reply(calls.phones["1004"].invites()[-1], 200)
    listed = conferences_in_use(calls.engine, "")
    assert [r["room"] for r in listed] == ["call-team"]
    assert len(listed[0]["participants"]) == 1  # type: ignore[arg-type]


async def test_dial_and_connect_make_one_call_with_one_record() -> None:
    """A queue's way: hold the caller, dial an agent, connect the two."""
    calls = CallHarness()
    calls.register("1002")

    class Queue:
        kind = "queue"

        def start(self, channel: Channel, ident: str) -> None:
            channel.answer()
            channel.music_on_hold()
            calls.b2bua.dial(channel.party.organisation, "1002",
                             caller=Party(channel.party.organisation, channel.party.number),
                             on_answer=lambda agent: calls.b2bua.connect(channel, agent),
                             on_fail=lambda status: channel.hang_up())

    calls.serve("700", Queue())
    invite = await calls.call("1001", "700")
    assert calls.statuses(invite) == [200]
    calls.phones["1002"].reply(calls.phones["1002"].invites()[-1], 200)
    assert calls.b2bua.active_calls == 1
    call = calls.b2bua.live_calls()[0]
    assert (call.a.number, call.b.number) == ("1001", "1002")  # type: ignore[union-attr]
    assert call.a.media.peer is call.b.media  # type: ignore[union-attr]
    # the agent leaves: the caller goes too, and there is one record
    calls.b2bua.end_calls_of(calls.tenant.id, "1002")
    await calls.settle()
    assert calls.b2bua.active_calls == 0
    dial, record = calls.events_of(CallEnded)  # the agent's dial ends folded into the call
    assert calls.records() == [record] and dial.merged_into == record.call_id  # type: ignore[attr-defined]
    assert calls.free_ports == calls.ports.pool.size


class Mailbox:
    """Stands in for voicemail: notes who came, and why."""

    kind = "voicemail"

    def __init__(self) -> None:
        self.came: list[tuple[str, str, str]] = []

    def start(self, channel: Channel, ident: str) -> None:
        self.came.append((ident, channel.party.diverted_from, channel.party.diversion_reason))
        channel.answer()


async def test_calls_an_extension_cannot_take_go_to_its_mailbox() -> None:
    """FreePBX/Telavox default: unregistered, no answer, busy and DND all leave a message."""
    calls = CallHarness()
    mailbox = Mailbox()
    calls.b2bua.register(mailbox)
    nobody = await calls.call("1001", "1002")  # 1002 has no device registered
    assert calls.statuses(nobody)[-1] == 200
    calls.register("1003")
    await calls.call("1001", "1003")
    calls.phones["1003"].reply(calls.phones["1003"].invites()[-1], 486)
    await calls.settle()
    await calls.call("1002", "1003")
    calls.clock.advance(31)  # nobody answers within the ring timeout
    await calls.settle()
    assert mailbox.came == [("1002", "1002", "unavailable"), ("1003", "1003", "user-busy"),
                            ("1003", "1003", "no-answer")]


async def test_no_mailbox_by_default_when_the_extension_says_so() -> None:
    calls = CallHarness()
    mailbox = Mailbox()
    calls.b2bua.register(mailbox)
    calls.tenant.extensions["1002"].voicemail = False
    refused = await calls.call("1001", "1002")
    assert calls.statuses(refused) == [480] and mailbox.came == []


async def test_a_queue_dial_rings_the_agents_phones_and_nothing_else() -> None:
    """devices_only: no forward, no voicemail; DND refuses at once."""
    calls = CallHarness()
    calls.b2bua.register(Mailbox())
    calls.tenant.extensions["1002"].forward_always = "1003"
    calls.register("1002", "1003")
    outcome: list[object] = []
    calls.b2bua.dial(calls.tenant.id, "1002", caller=Party(calls.tenant.id, "700"),
                     on_answer=outcome.append, on_fail=outcome.append, devices_only=True)
    await calls.settle()
    assert len(calls.phones["1002"].invites()) == 1 and calls.phones["1003"].invites() == []
    calls.tenant.extensions["1003"].dnd = True
    calls.b2bua.dial(calls.tenant.id, "1003", caller=Party(calls.tenant.id, "700"),
                     on_answer=outcome.append, on_fail=outcome.append, devices_only=True)
    await calls.settle()
    assert outcome == [486] and calls.phones["1003"].invites() == []


async def test_a_service_ringing_an_agent_names_itself_in_history_info() -> None:
    """RFC 7044: the call was first for the queue (its name shown), then mapped
    to the agent; the agent's phone (the browser softphone) shows the queue."""
    calls = CallHarness()
    calls.register("1002")
    calls.b2bua.dial(calls.tenant.id, "1002",
                     caller=Party(calls.tenant.id, "1001", "Bertil", service="700",
                                  service_name="Support"),
                     on_answer=lambda agent: None, on_fail=lambda status: None,
                     devices_only=True)
    await calls.settle()
    (invite,) = calls.phones["1002"].invites()
    first, second = invite.headers.get_all("History-Info")
    assert first == f'"Support" <sip:700@{calls.tenant.domain}>;index=1'
    assert second == f"<sip:1002@{calls.tenant.domain}>;index=1.1;mp=1"
    assert invite.headers.get("Diversion") is None  # not a diversion of someone's call
    assert invite.from_addr.display_name == "Bertil"


async def test_after_the_agent_hangs_up_the_caller_goes_back_to_the_service() -> None:
    calls = CallHarness()
    calls.register("1002")
    survey: list[Channel] = []

    class Queue:
        kind = "queue"

        def start(self, channel: Channel, ident: str) -> None:
            channel.answer()
            calls.b2bua.dial(channel.party.organisation, "1002",
                             caller=Party(channel.party.organisation, channel.party.number),
                             on_answer=lambda agent: calls.b2bua.connect(channel, agent,
                                                                         after=survey.append),
                             on_fail=lambda status: None, devices_only=True)

    calls.serve("700", Queue())
    invite = await calls.call("1001", "700")
    calls.acked(invite)
    fork = calls.phones["1002"].invites()[-1]
    ok = calls.phones["1002"].reply(fork, 200)
    calls.b2bua.on_bye(calls.from_callee(fork, ok, "BYE", cseq=2), calls.phones["1002"].flow, None)
    await calls.settle()
    assert len(survey) == 1 and survey[0].alive and calls.b2bua.active_calls == 1
    assert not calls.phones["1001"].requests("BYE")
    survey[0].hang_up()
    await calls.settle()
    assert calls.b2bua.active_calls == 0 and calls.free_ports == calls.ports.pool.size
    assert len(calls.records()) == 1


async def test_an_agent_who_picked_up_a_call_gets_queue_calls_again_after_it() -> None:
    """Regression: the picker's own call (``**1002``, folded into the picked-up
    one) published no end, so the queue kept the agent ``on_direct_call``."""
    calls = CallHarness(queues=(QueueConfig(number="700", members=("1001",)),))
    queues = QueueApp(calls.directory, calls.b2bua, calls.clock,  # type: ignore[arg-type]
                      calls.events.publish)
    calls.events.subscribe(queues.on_event)
    calls.serve("700", queues)
    calls.register("1001", "1002")
    agent = queues.acd.agents[calls.tenant.id, "1001"]
    await calls.call("1003", "1002")
    picker = await calls.call("1001", "**1002")
    assert calls.statuses(picker)[-1] == 200
    assert agent.state(calls.clock.now()) == "on_direct_call"
    calls.acked(picker)
    calls.b2bua.on_bye(calls.in_dialog(picker, "BYE"), calls.phones["1001"].flow, None)
    await calls.settle()
    assert calls.b2bua.active_calls == 0
    assert agent.state(calls.clock.now()) == "available"
    rung = len(calls.phones["1001"].invites())
    await calls.call("1004", "700")
    calls.clock.advance(0)
    await calls.settle()
    assert len(calls.phones["1001"].invites()) == rung + 1  # the queue offers the agent a call
