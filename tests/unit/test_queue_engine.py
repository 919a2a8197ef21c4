"""The ACD engine on its own: strategies, penalties, agent states, callbacks,
overflow and announcements, with time moved by hand."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from pbx.events import (
    AgentStateChanged, QueueAbandoned, QueueAnswered, QueueCallback, QueueCompleted,
    QueueEvent, QueueJoined, QueueOffered, QueueOverflowed,
)
from pbx.queue_settings import QueueConfig
from queues.engine import Acd, Caller, QueueError

ORG = 1


class World:
    """An engine with a hand-moved clock and the events it published."""

    def __init__(self, *queues: QueueConfig, seed: int = 1) -> None:
        self.time = 1000.0
        self.events: list[QueueEvent] = []
        self.busy_profile: set[str] = set()
        self.acd = Acd(lambda: self.time, self.events.append, random.Random(seed),
                       eligible=lambda org, ext: ext not in self.busy_profile)
        self.acd.configure(ORG, queues)
        self.serial = 0

    def call(self, queue: str = "700", number: str = "", did: str = "") -> Caller:
        self.serial += 1
        return self.acd.join(ORG, queue, f"call{self.serial}", number or f"0700{self.serial}",
                             did)

    def offers(self) -> list[tuple[str, tuple[str, ...]]]:
        return [(o.caller.call_id, o.agents) for o in self.acd.dispatch()]

    def talk(self, caller: Caller, agent: str, seconds: float = 60.0) -> None:
        self.acd.answered(caller, agent)
        self.time += seconds
        self.acd.completed(caller, seconds, "agent")

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def states(self, agent: str) -> list[str]:
        return [e.state for e in self.of(AgentStateChanged) if e.agent == agent]


def queue(members: str = "1002,1003,1004", **options: Any) -> QueueConfig:
    return QueueConfig.model_validate({"number": "700", "members": members, **options})


def serve_in_turn(world: World, calls: int) -> list[str]:
    """Callers come one after the other; the first agent offered takes each."""
    taken = []
    for _ in range(calls):
        caller = world.call()
        (offer,) = world.acd.dispatch()
        agent = offer.agents[0]
        world.talk(caller, agent)
        world.time += 1
        taken.append(agent)
    return taken


# ------------------------------------------------------------------ settings


def test_members_carry_penalties_in_order() -> None:
    assert queue("1002,1003:5,1004:2").penalties == {"1002": 0, "1003": 5, "1004": 2}


@pytest.mark.parametrize("members", ["1002,1002", "1002:x", "1002:101", ":3"])
def test_bad_members_are_refused(members: str) -> None:
    with pytest.raises(ValueError):
        queue(members)


def test_unknown_strategy_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="rrmemory"):
        queue(strategy="roundrobin")


def test_asterisk_names_are_accepted() -> None:
    settings = QueueConfig.model_validate({"number": "700", "announce-position": "yes",
                                           "announce-position-limit": "5"})
    assert settings.announce_position and settings.announce_position_limit == 5


# ------------------------------------------------------------------ strategies


def test_ringall_rings_every_free_agent_and_the_others_stop_on_answer() -> None:
    world = World(queue())
    caller = world.call()
    assert world.offers() == [("call1", ("1002", "1003", "1004"))]
    assert world.acd.answered(caller, "1003") == ["1002", "1004"]
    assert world.states("1002") == ["ringing", "available"]
    assert world.states("1003") == ["ringing", "on_queue_call"]


def test_linear_starts_at_the_top_every_call() -> None:
    world = World(queue(strategy="linear"))
    assert serve_in_turn(world, 3) == ["1002", "1002", "1002"]


def test_linear_goes_down_the_list_when_nobody_answers() -> None:
    world = World(queue(strategy="linear", retry=5))
    caller = world.call()
    rung = []
    for _ in range(4):
        (offer,) = world.acd.dispatch()
        rung.append(offer.agents[0])
        world.acd.ring_failed(caller, offer.agents[0], no_answer=True)
        assert world.acd.dispatch() == []  # the retry wait
        world.time += 5
    assert rung == ["1002", "1003", "1004", "1002"]


@pytest.mark.parametrize("strategy", ["rrmemory", "rrordered"])
def test_round_robin_with_memory_shares_calls_evenly(strategy: str) -> None:
    world = World(queue("1002,1003,1004,1005,1006", strategy=strategy))
    taken = serve_in_turn(world, 20)
    assert taken[:6] == ["1002", "1003", "1004", "1005", "1006", "1002"]
    assert Counter(taken) == {a: 4 for a in ("1002", "1003", "1004", "1005", "1006")}


def test_leastrecent_picks_who_has_been_idle_longest() -> None:
    world = World(queue(strategy="leastrecent"))
    for agent in ("1004", "1002", "1003"):  # their calls end in this order
        world.talk(world.call(), agent, 30)
    caller = world.call()
    assert world.offers() == [(caller.call_id, ("1004",))]


def test_fewestcalls_and_leasttalktime_count_this_queues_calls() -> None:
    world = World(queue(strategy="fewestcalls"))
    world.talk(world.call(), "1002", 300)
    world.talk(world.call(), "1003", 10)
    world.call()
    assert world.offers()[0][1] == ("1004",)

    talk = World(queue(strategy="leasttalktime"))
    for agent, seconds in (("1002", 300), ("1003", 10), ("1004", 100)):
        talk.talk(talk.call(), agent, seconds)
    talk.call()
    assert talk.offers()[0][1] == ("1003",)


def test_random_reaches_everyone_and_wrandom_prefers_low_penalties() -> None:
    world = World(queue(strategy="random"), seed=3)
    assert set(serve_in_turn(world, 30)) == {"1002", "1003", "1004"}
    weighted = World(queue("1002:0,1003:9", strategy="wrandom"), seed=3)
    taken = Counter(serve_in_turn(weighted, 200))
    assert taken["1002"] > 2 * taken["1003"] > 0


def test_ring_progressively_adds_an_agent_every_delay_and_keeps_the_first_ringing() -> None:
    world = World(queue(strategy="ring-progressively", progressive_delay=5))
    caller = world.call()
    assert world.offers() == [(caller.call_id, ("1002",))]
    world.time += 4
    assert world.offers() == []
    world.time += 1
    assert world.offers() == [(caller.call_id, ("1003",))]
    assert caller.ringing == {"1002", "1003"}
    world.time += 5
    assert world.offers() == [(caller.call_id, ("1004",))]


# ------------------------------------------------------------------ penalties


def test_lower_penalty_first_higher_only_when_none_is_free() -> None:
    world = World(queue("1002:1,1003:0,1004:2", strategy="ringall"))
    first = world.call()
    assert world.offers() == [(first.call_id, ("1003",))]
    second = world.call()
    assert world.offers() == [(second.call_id, ("1002",))]


def test_higher_penalty_tiers_join_after_the_wait() -> None:
    world = World(queue("1002:0,1003:5,1004:9", strategy="ringall", penalty_wait=30))
    world.acd.pause(ORG, "1002", "lunch")
    caller = world.call()
    assert world.offers() == []
    world.time += 29
    assert world.offers() == []
    world.time += 1
    assert world.offers() == [(caller.call_id, ("1003",))]


# ------------------------------------------------------------------ agents


def test_agent_states_are_published_on_every_change() -> None:
    world = World(queue(wrapuptime=10))
    acd = world.acd
    acd.pause(ORG, "1002", "lunch")
    acd.unpause(ORG, "1002")
    caller = world.call()
    acd.dispatch()
    world.talk(caller, "1002", 30)
    world.time += 10
    acd.tick()
    acd.logout(ORG, "1002")
    assert world.states("1002") == ["paused", "available", "ringing", "on_queue_call",
                                    "wrap_up", "available", "logged_out"]
    paused = world.of(AgentStateChanged)[0]
    assert (paused.reason, paused.queues) == ("lunch", ("700",))


def test_paused_logged_out_and_wrapping_up_agents_are_skipped() -> None:
    world = World(queue(wrapuptime=30))
    world.acd.pause(ORG, "1002", "admin")
    world.acd.logout(ORG, "1003")
    first = world.call()
    assert world.offers() == [(first.call_id, ("1004",))]
    world.talk(first, "1004", 5)
    world.call()
    assert world.offers() == []  # 1004 wraps up for 30 s
    world.time += 30
    assert world.offers()[0][1] == ("1004",)


def test_a_profile_without_queue_calls_keeps_the_agent_out() -> None:
    world = World(queue())
    world.busy_profile.add("1003")
    world.call()
    assert world.offers()[0][1] == ("1002", "1004")


def test_ringinuse_decides_whether_agents_on_direct_calls_are_offered() -> None:
    world = World(queue("1002,1003"))
    world.acd.direct_call(ORG, "1002", True)
    assert world.states("1002") == ["on_direct_call"]
    world.call()
    assert world.offers()[0][1] == ("1003",)
    inuse = World(queue("1002,1003", ringinuse=True))
    inuse.acd.direct_call(ORG, "1002", True)
    inuse.call()
    assert inuse.offers()[0][1] == ("1002", "1003")


def test_autopause_pauses_an_agent_who_lets_it_ring_out() -> None:
    world = World(queue("1002,1003", strategy="linear", autopause=True, retry=0))
    caller = world.call()
    world.acd.dispatch()
    world.acd.ring_failed(caller, "1002", no_answer=True)
    assert world.states("1002")[-1] == "paused"
    assert world.offers() == [(caller.call_id, ("1003",))]


def test_bad_agent_requests_say_why() -> None:
    world = World(queue())
    with pytest.raises(QueueError, match="no agent") as unknown:
        world.acd.login(ORG, "1099")
    assert unknown.value.status == 404
    with pytest.raises(QueueError, match="logged in already"):
        world.acd.login(ORG, "1002")
    with pytest.raises(QueueError, match="not paused"):
        world.acd.unpause(ORG, "1002")
    world.acd.logout(ORG, "1002")
    with pytest.raises(QueueError, match="log in first") as paused:
        world.acd.pause(ORG, "1002", "lunch")
    assert paused.value.status == 409
    with pytest.raises(QueueError, match="no queue 799"):
        world.acd.join(ORG, "799", "c", "1")


# ------------------------------------------------------------------ across queues


def test_an_agent_in_two_queues_gets_the_longest_waiting_caller_one_at_a_time() -> None:
    sales = queue("1002", strategy="ringall")
    support = QueueConfig(number="701", members=("1002",))
    world = World(sales, support)
    world.time = 1000
    older = world.call("701")
    world.time = 1005
    world.call("700")
    assert world.offers() == [(older.call_id, ("1002",))]
    assert world.offers() == []  # ringing: one call at a time


def test_queue_weight_goes_before_waiting_time() -> None:
    light = queue("1002")
    heavy = QueueConfig(number="701", members=("1002",), weight=10)
    world = World(light, heavy)
    world.call("700")
    world.time += 60
    newer = world.call("701")
    assert world.offers() == [(newer.call_id, ("1002",))]


# ------------------------------------------------------------------ callers


def test_priority_callers_go_ahead_by_number_or_did() -> None:
    world = World(queue(priority_callers="+46705550000,+4681230000"))
    world.call(number="0700")
    world.call(number="0701")
    vip = world.call(number="+46705550000")
    by_did = world.call(number="0702", did="+4681230000")
    joined = world.of(QueueJoined)
    assert [(j.position, j.priority) for j in joined] == [(1, 0), (2, 0), (1, 1), (2, 1)]
    assert world.acd.waiting()[:2] == [vip, by_did]


def test_maxlen_and_joinempty_refuse_with_a_reason() -> None:
    world = World(queue(maxlen=1))
    world.call()
    with pytest.raises(QueueError, match="full"):
        world.call()
    empty = World(queue("1002", joinempty=False))
    empty.acd.logout(ORG, "1002")
    with pytest.raises(QueueError, match="joinempty"):
        empty.call()


def test_abandon_frees_the_ringing_agents_and_records_the_wait() -> None:
    world = World(queue())
    world.call()
    caller = world.call()
    world.time += 12
    assert world.acd.abandon(caller) == []
    world.offers()
    first = world.acd.waiting()[0]
    assert world.acd.abandon(first) == ["1002", "1003", "1004"]
    assert [(a.position, a.wait) for a in world.of(QueueAbandoned)] == [(2, 12.0), (1, 12.0)]
    assert world.states("1003") == ["ringing", "available"]


def test_abandoned_resume_gives_the_old_place_back_within_the_window() -> None:
    world = World(queue(abandoned_resume=60))
    first = world.call(number="0701")
    world.call(number="0702")
    world.acd.abandon(first)
    world.time += 30
    back = world.call(number="0701")
    assert world.acd.waiting()[0] is back
    assert world.of(QueueJoined)[-1].position == 1
    late = World(queue(abandoned_resume=60))
    first = late.call(number="0701")
    late.call(number="0702")
    late.acd.abandon(first)
    late.time += 61
    late.call(number="0701")
    assert late.of(QueueJoined)[-1].position == 2


def test_maxwait_overflows_to_the_destination_but_not_while_an_agent_rings() -> None:
    world = World(queue("1002", maxwait=60, overflow="voicemail:1002"))
    world.acd.pause(ORG, "1002", "lunch")
    caller = world.call()
    world.time += 59
    assert world.acd.tick().overflows == []
    world.time += 1
    (overflow,) = world.acd.tick().overflows
    assert (overflow.caller, overflow.destination, overflow.reason) == \
        (caller, "voicemail:1002", "maxwait")
    assert world.of(QueueOverflowed)[0].wait == 60
    assert world.acd.waiting() == []


def test_leavewhenempty_and_maxwait_noagents() -> None:
    world = World(queue("1002", leavewhenempty=True, overflow="500"))
    caller = world.call()
    assert world.acd.tick().overflows == []  # 1002 rings
    world.acd.ring_failed(caller, "1002", no_answer=True)
    world.acd.logout(ORG, "1002")
    assert [o.reason for o in world.acd.tick().overflows] == ["noagents"]
    noagents = World(queue("1002", maxwait_noagents=20, overflow="701"))
    noagents.acd.logout(ORG, "1002")
    noagents.call()
    noagents.time += 19
    assert noagents.acd.tick().overflows == []
    noagents.time += 1
    assert [o.reason for o in noagents.acd.tick().overflows] == ["noagents"]


def test_positions_are_said_within_the_limit_and_only_when_they_improved() -> None:
    world = World(queue("1002", strategy="linear", **{
        "announce-position": True, "announce-position-limit": 3, "announce-frequency": 30}))
    world.acd.pause(ORG, "1002", "lunch")
    callers = [world.call() for _ in range(4)]
    said = {a.caller.call_id: a.position for a in world.acd.tick().announcements}
    assert said == {"call1": 1, "call2": 2, "call3": 3}  # the fourth is beyond the limit
    world.time += 30
    assert world.acd.tick().announcements == []  # nothing improved
    world.acd.abandon(callers[0])
    world.time += 30
    said = {a.caller.call_id: a.position for a in world.acd.tick().announcements}
    assert said == {"call2": 1, "call3": 2, "call4": 3}


def test_holdtime_is_the_smoothed_wait_less_what_the_caller_waited() -> None:
    world = World(queue("1002", **{"announce-holdtime": True, "announce-frequency": 60,
                                   "periodic-announce-frequency": 90}))
    first = world.call()
    world.time += 200
    world.talk(first, "1002", 10)
    world.acd.pause(ORG, "1002", "lunch")
    second = world.call()
    (said,) = world.acd.tick().announcements
    assert (said.caller, said.minutes, said.periodic) == (second, 4, "")  # 200 s: 4 minutes
    world.time += 90
    (said,) = world.acd.tick().announcements
    assert (said.minutes, said.periodic) == (2, "queue_periodic")  # 110 s to go


# ------------------------------------------------------------------ callback


def test_callback_keeps_the_exact_place_and_reserves_an_agent_first() -> None:
    world = World(queue("1002", strategy="linear", callback=True, callback_retry=30))
    world.acd.pause(ORG, "1002", "lunch")
    first, second, third = world.call(), world.call(), world.call()
    assert world.acd.request_callback(second) == []
    assert [c.call_id for c in world.acd.waiting()] == ["call1", "call2", "call3"]
    world.acd.unpause(ORG, "1002")
    world.talk(first, world.acd.dispatch()[0].agents[0])
    (offer,) = world.acd.dispatch()
    assert offer.callback and offer.caller is second and offer.agents == ("1002",)
    assert world.of(AgentStateChanged)[-1].reason == "callback"
    world.acd.callback_dialled(second)
    assert world.acd.dispatch() == []  # the agent is held; third waits
    assert world.acd.callback_answered(second) == "1002"
    world.acd.answered(second, "1002")
    assert [c.state for c in world.of(QueueCallback)] == ["requested", "dialled", "connected"]
    assert world.of(QueueAnswered)[-1].call_id == "call2"
    assert world.acd.waiting() == [third]


def test_an_unanswered_callback_is_retried_then_fails() -> None:
    world = World(queue("1002", callback=True, callback_attempts=2, callback_retry=30))
    caller = world.call()
    world.acd.pause(ORG, "1002", "lunch")
    world.acd.request_callback(caller)
    world.acd.unpause(ORG, "1002")
    world.acd.dispatch()
    world.acd.callback_dialled(caller)
    assert world.acd.callback_failed(caller) is False
    assert world.states("1002")[-1] == "available"
    assert world.acd.dispatch() == []
    world.time += 30
    assert world.offers() == [(caller.call_id, ("1002",))]
    assert world.acd.callback_failed(caller) is True
    assert world.of(QueueCallback)[-1].state == "failed"
    assert world.acd.waiting() == []


def test_a_callback_restored_after_a_restart_is_back_in_its_place() -> None:
    world = World(queue("1002"))
    world.acd.pause(ORG, "1002", "lunch")
    world.time = 2000
    world.call()
    restored = world.acd.restore_callback(ORG, "700", "old", "0701", 1500.0, 0, 1)
    assert restored is not None and world.acd.waiting()[0] is restored
    assert world.acd.restore_callback(ORG, "799", "old", "0701", 1500.0, 0, 1) is None


def test_completed_calls_are_published_with_talk_time() -> None:
    world = World(queue())
    caller = world.call()
    world.acd.dispatch()
    world.talk(caller, "1002", 42)
    assert [(e.agent, e.talk, e.hangup_by) for e in world.of(QueueCompleted)] == \
        [("1002", 42, "agent")]
    assert [e.agent for e in world.of(QueueOffered)] == ["1002", "1003", "1004"]
