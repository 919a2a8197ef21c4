"""The queue service over fake channels and a fake call control: what callers
hear, which agents ring, connect, callback, overflow, survey, feature codes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pbx.calls.channel import Channel, Party
from pbx.config import Config, General
from pbx.directory import Tenant
from pbx.events import (
    AgentStateChanged, CallAnswered, CallEnded, CallStarted, QueueAbandoned, QueueAnswered,
    QueueCallback, QueueCompleted, QueueOverflowed, SurveyAnswered,
)
from pbx.models import Extension, Profile
from pbx.profiles import Presence, zone
from pbx.queue_settings import QueueConfig
from pbx.store import Store
from queues.service import AgentCodes, QueueApp
from queues.store import QueueStore
from tests.fakes import FakeChannel, FakeClock

ORG = 1


@dataclass(eq=False)
class Ring:
    """A call the service placed (an agent's phones, a callback)."""

    number: str
    caller: Party
    on_answer: Callable[[Channel], None]
    on_fail: Callable[[int], None]
    timeout: float | None
    devices_only: bool
    id: str
    cancelled: bool = False
    over: bool = False

    def cancel(self) -> None:
        if not self.over:
            self.cancelled = self.over = True
            self.on_fail(487)

    def answer(self, calls: FakeCalls) -> FakeChannel:
        self.over = True
        channel = FakeChannel(calls.clock, Party(ORG, self.number, extension=self.number),
                              call_id=self.id)
        self.on_answer(channel)
        return channel

    def fail(self, status: int) -> None:
        self.over = True
        self.on_fail(status)


@dataclass
class FakeCalls:
    """Call control as the queue sees it: dials recorded, connects recorded."""

    clock: FakeClock
    rings: list[Ring] = field(default_factory=list)
    connected: list[tuple[Channel, Channel, Any]] = field(default_factory=list)
    refuse: dict[str, int] = field(default_factory=dict)  # number → status at once

    def dial(self, organisation: int, number: str, *, caller: Party,
             on_answer: Callable[[Channel], None], on_fail: Callable[[int], None],
             timeout: float | None = None, devices_only: bool = False) -> Ring:
        ring = Ring(number, caller, on_answer, on_fail, timeout, devices_only,
                    f"dial{len(self.rings) + 1}")
        self.rings.append(ring)
        if number in self.refuse:
            ring.fail(self.refuse[number])
        return ring

    def connect(self, a: Channel, b: Channel, after: Any = None) -> None:
        self.connected.append((a, b, after))

    def monitor(self, supervisor: Channel, extension: str, mode: str) -> None:
        return None

    def ringing(self) -> list[str]:
        return [r.number for r in self.rings if not r.over]

    def ring_of(self, number: str) -> Ring:
        return next(r for r in self.rings if r.number == number and not r.over)


class Switchboard:
    """A queue service, its tenant, its events; callers come with :meth:`call`."""

    def __init__(self, *queues: QueueConfig, store: QueueStore | None = None,
                 clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock()
        self.calls = FakeCalls(self.clock)
        self.events: list[Any] = []
        exts = {n: Extension(organisation_id=ORG, number=n, secret="x")
                for n in ("1001", "1002", "1003", "1004")}
        self.tenant = Tenant(ORG, "acme", "acme.example", extensions=exts,
                             queues={q.number: q for q in queues})
        self.directory = SimpleNamespace(tenants={ORG: self.tenant})
        self.app = QueueApp(self.directory, self.calls, self.clock,  # type: ignore[arg-type]
                            self.events.append, store, worker=lambda job, then: (job(), then()))
        self.serial = 0

    def call(self, queue: str = "700", number: str = "") -> FakeChannel:
        self.serial += 1
        channel = FakeChannel(self.clock, Party(ORG, number or f"070{self.serial}"),
                              call_id=f"call{self.serial}")
        self.app.start(channel, queue)
        return channel

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def end(self, call_id: str, hangup_by: str) -> None:
        self.app.on_event(CallEnded(ORG, call_id, "", "", "", "answered", 200, 1.0,
                                    self.clock.now(), hangup_by=hangup_by))


def queue(members: str = "1002,1003", **options: Any) -> QueueConfig:
    return QueueConfig.model_validate({"number": "700", "members": members, **options})


def test_a_caller_is_answered_hears_music_and_the_agents_phones_ring() -> None:
    board = Switchboard(queue(timeout=20, musicclass="jazz"))
    caller = board.call()
    assert caller.answered and caller.music == "jazz"
    assert board.calls.ringing() == ["1002", "1003"]
    ring = board.calls.rings[0]
    assert ring.devices_only and ring.timeout == 20 and ring.caller.number == "0701"


def test_the_first_agent_to_answer_is_connected_and_the_other_stops_ringing() -> None:
    board = Switchboard(queue())
    caller = board.call()
    board.clock.advance(7)
    agent = board.calls.ring_of("1003").answer(board.calls)
    assert board.calls.connected == [(caller, agent, None)]
    assert board.calls.rings[0].cancelled
    assert board.of(QueueAnswered)[0].wait == 7
    board.clock.advance(30)
    board.end(caller.id, "callee")
    (done,) = board.of(QueueCompleted)
    assert (done.agent, done.talk, done.hangup_by) == ("1003", 30, "agent")


def test_a_caller_hanging_up_during_the_ring_cancels_it_at_once() -> None:
    board = Switchboard(queue())
    caller = board.call()
    caller.caller_hangs_up()
    assert board.calls.ringing() == []
    assert all(r.cancelled for r in board.calls.rings)
    assert [e.state for e in board.of(AgentStateChanged) if e.agent == "1002"] == \
        ["available", "ringing", "available"]
    assert len(board.of(QueueAbandoned)) == 1


def test_no_answer_then_the_retry_rings_again() -> None:
    board = Switchboard(queue("1002", strategy="linear", retry=5))
    board.call()
    board.calls.ring_of("1002").fail(480)
    board.clock.advance(4)
    assert board.calls.ringing() == []
    board.clock.advance(2)
    assert board.calls.ringing() == ["1002"]


def test_an_agent_refusing_at_once_dnd_is_skipped() -> None:
    board = Switchboard(queue("1002,1003", strategy="linear", retry=1))
    board.calls.refuse["1002"] = 486
    board.call()
    board.clock.advance(2)
    assert board.calls.ringing() == ["1003"]


def test_maxwait_overflows_to_voicemail_through_the_dial_plan() -> None:
    board = Switchboard(queue("1002", maxwait=30, overflow="voicemail:1002"))
    board.app.set_agent(ORG, "1002", "pause", "lunch")
    caller = board.call()
    board.clock.advance(31)
    assert caller.redirected == "voicemail:1002"
    assert board.of(QueueOverflowed)[0].reason == "maxwait"


def test_a_full_queue_sends_callers_to_the_overflow_or_refuses_them() -> None:
    board = Switchboard(queue(maxlen=1, overflow="500"))
    board.app.set_agent(ORG, "1002", "logout")
    board.app.set_agent(ORG, "1003", "logout")
    board.call()
    second = board.call()
    assert second.redirected == "500"
    assert board.of(QueueOverflowed)[0].reason == "full"
    strict = Switchboard(queue(joinempty=False))
    strict.app.set_agent(ORG, "1002", "logout")
    strict.app.set_agent(ORG, "1003", "logout")
    assert strict.call().ended == 480


def test_positions_are_said_then_the_music_comes_back() -> None:
    board = Switchboard(queue("1002", **{"announce-position": True,
                                         "announce-frequency": 20}))
    board.app.set_agent(ORG, "1002", "pause", "lunch")
    board.call()
    second = board.call()
    board.clock.advance(1)
    assert second.said() == ["queue_you_are", "number_2", "queue_in_line"]
    board.clock.advance(3)
    assert second.music == "default"


def test_callback_keeps_the_place_reserves_an_agent_then_calls_back() -> None:
    board = Switchboard(queue("1002", callback=True))
    board.app.set_agent(ORG, "1002", "pause", "lunch")
    first, second, third = board.call(), board.call(), board.call()
    assert second.said() == ["queue_callback_offer"]
    second.press("1")
    board.clock.advance(5)
    assert second.ended == 200 and second.said()[-1] == "queue_callback_saved"
    board.app.set_agent(ORG, "1002", "unpause")
    board.clock.advance(1)
    board.calls.ring_of("1002").answer(board.calls)  # first's turn
    board.end(first.id, "caller")
    board.clock.advance(1)
    assert board.calls.ringing() == ["0702"]  # the callback, while 1002 is held for it
    back = board.calls.ring_of("0702")
    assert back.caller.number == "700"
    callee = back.answer(board.calls)
    assert callee.said() == ["queue_callback_hello"]
    assert board.calls.ringing() == ["1002"]
    agent = board.calls.ring_of("1002").answer(board.calls)
    assert board.calls.connected[-1][:2] == (callee, agent)
    assert [c.state for c in board.of(QueueCallback)] == ["requested", "dialled", "connected"]
    assert third.alive and third.music == "default"  # still waiting, behind the callback


def test_an_unanswered_callback_is_tried_again_later() -> None:
    board = Switchboard(queue("1002", callback=True, callback_retry=60,
                              callback_attempts=2))
    board.app.set_agent(ORG, "1002", "pause", "lunch")
    caller = board.call()
    caller.press("1")
    board.app.set_agent(ORG, "1002", "unpause")
    board.clock.advance(1)
    board.calls.ring_of("0701").fail(480)
    board.clock.advance(30)
    assert board.calls.ringing() == []
    board.clock.advance(31)
    board.calls.ring_of("0701").fail(486)
    assert board.of(QueueCallback)[-1].state == "failed"
    assert board.app.acd.waiting() == []


def test_a_pending_callback_survives_a_restart(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'pbx.sqlite3'}")
    store.seed(Config(general=General()))  # the default organisation, id 1
    board = Switchboard(queue("1002", callback=True), store=QueueStore(store))
    board.app.set_agent(ORG, "1002", "pause", "lunch")
    board.call()
    board.call().press("1")
    after = Switchboard(queue("1002", callback=True), store=QueueStore(store),
                        clock=board.clock)
    assert after.app.acd.agents[ORG, "1002"].pause_reason == "lunch"
    (kept,) = after.app.acd.waiting()
    assert (kept.call_id, kept.callback) == ("call2", "0702")
    after.app.set_agent(ORG, "1002", "unpause")
    after.clock.advance(1)
    assert after.calls.ringing() == ["0702"]


def test_the_survey_takes_a_rating_after_the_agent_hangs_up() -> None:
    board = Switchboard(queue("1002", survey=True))
    caller = board.call()
    board.calls.ring_of("1002").answer(board.calls)
    after = board.calls.connected[0][2]
    board.clock.advance(40)
    back = FakeChannel(board.clock, caller.party, call_id=caller.id)
    back.answer()
    after(back)
    assert board.of(QueueCompleted)[0].hangup_by == "agent"
    assert back.said() == ["survey_rate"]
    back.press("4")
    assert board.of(SurveyAnswered)[0].score == 4
    board.clock.advance(5)
    assert back.ended == 200


def test_a_caller_who_gives_no_rating_is_hung_up_after_the_survey_timeout() -> None:
    board = Switchboard(queue("1002", survey=True, survey_timeout=4))
    caller = board.call()
    board.calls.ring_of("1002").answer(board.calls)
    back = FakeChannel(board.clock, caller.party, call_id=caller.id)
    back.answer()
    board.calls.connected[0][2](back)
    board.clock.advance(3.9)
    assert back.ended is None
    board.clock.advance(0.2)
    assert back.ended == 200 and board.of(SurveyAnswered) == []


def test_agents_on_their_own_calls_are_not_offered_queue_calls() -> None:
    board = Switchboard(queue("1002,1003"))
    board.app.on_event(CallAnswered(ORG, "direct1", "1002", board.clock.now()))
    board.call()
    assert board.calls.ringing() == ["1003"]
    board.end("direct1", "caller")
    states = [e.state for e in board.of(AgentStateChanged) if e.agent == "1002"]
    assert states == ["available", "on_direct_call", "available"]


def test_an_agent_who_picked_up_a_call_is_free_when_that_call_ends() -> None:
    """Regression: the picker's own call (``**1002``) is folded into the picked-up
    one and ends with it; the agent stayed ``on_direct_call`` for ever."""
    board = Switchboard(queue("1002,1003"))
    board.app.on_event(CallStarted(ORG, "own", "1003", "**1002", board.clock.now()))
    board.app.on_event(CallEnded(ORG, "own", "1003", "**1002", "", "pickup", 200, 0.0,
                                 board.clock.now(), recorded=False, merged_into="picked"))
    board.app.on_event(CallAnswered(ORG, "picked", "1003", board.clock.now()))
    assert board.app.acd.agents[ORG, "1003"].state(board.clock.now()) == "on_direct_call"
    board.end("picked", "caller")
    states = [e.state for e in board.of(AgentStateChanged) if e.agent == "1003"]
    assert states == ["available", "on_direct_call", "available"]


def test_every_agent_is_announced_at_start_as_restored() -> None:
    """Statistics and wallboards know the agents before their first call."""
    board = Switchboard(queue("1002,1003"))
    assert {(e.agent, e.state, e.queues) for e in board.of(AgentStateChanged)} == {
        ("1002", "available", ("700",)), ("1003", "available", ("700",))}


def test_dnd_keeps_an_agent_out_of_distribution() -> None:
    board = Switchboard(queue("1002,1003"))
    board.tenant.extensions["1002"].dnd = True
    board.call()
    assert board.calls.ringing() == ["1003"]


@pytest.mark.parametrize(("code", "prompt", "state"), [
    ("login", "agent_logged_out", "logged_out"), ("pause", "agent_paused", "paused"),
    ("pause1", "agent_paused", "paused"),
])
def test_feature_codes_toggle_login_and_pause(code: str, prompt: str, state: str) -> None:
    board = Switchboard(queue())
    codes = AgentCodes(board.app)
    phone = FakeChannel(board.clock, Party(ORG, "1002", extension="1002"))
    codes.start(phone, code)
    assert phone.said() == [prompt]
    start, event = (e for e in board.of(AgentStateChanged) if e.agent == "1002")
    assert start.state == "available" and event.state == state
    assert event.reason == {"pause": "break", "pause1": "lunch"}.get(code, "")
    board.clock.advance(2)
    assert phone.ended == 200
    again = FakeChannel(board.clock, Party(ORG, "1002", extension="1002"))
    codes.start(again, code)
    assert board.of(AgentStateChanged)[-1].state == "available"


def test_a_feature_code_from_a_non_agent_says_so() -> None:
    board = Switchboard(queue())
    phone = FakeChannel(board.clock, Party(ORG, "1004", extension="1004"))
    AgentCodes(board.app).start(phone, "login")
    assert phone.said() == ["not_an_agent"]


def test_a_key_that_cuts_an_announcement_short_brings_the_music_back() -> None:
    board = Switchboard(queue("1002", **{"announce-position": True,
                                         "announce-frequency": 20}))
    board.app.set_agent(ORG, "1002", "pause", "lunch")
    caller = board.call()
    assert caller.playing is not None
    caller.press("5")
    assert caller.music == "default"


def test_an_anonymous_caller_cannot_ask_for_a_callback() -> None:
    board = Switchboard(queue("1002", callback=True))
    board.app.set_agent(ORG, "1002", "pause", "lunch")
    caller = board.call(number="anonymous")
    caller.press("1")
    assert caller.alive and caller.said()[-1] == "invalid_option"
    assert board.of(QueueCallback) == []


def test_a_presence_profile_without_queue_calls_keeps_the_agent_out() -> None:
    board = Switchboard(queue("1002,1003"))
    focus = Profile(id=1, organisation_id=ORG, extension="1002", name="Focus", accept="direct")
    board.tenant.extensions["1002"].profile_id = 1  # chosen by hand, until further notice
    board.directory.tenants[ORG] = dataclasses.replace(
        board.tenant, presence=Presence.of(zone("UTC"), [focus], [], []))
    board.call()
    assert board.calls.ringing() == ["1003"]


def test_an_autopause_is_kept_across_a_restart(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'pbx.sqlite3'}")
    store.seed(Config(general=General()))
    board = Switchboard(queue("1002", autopause=True), store=QueueStore(store))
    board.call()
    board.calls.ring_of("1002").fail(480)
    after = Switchboard(queue("1002", autopause=True), store=QueueStore(store))
    assert after.app.acd.agents[ORG, "1002"].pause_reason == "autopause"
