"""Live queue statistics of a scripted scenario, checked against figures worked
out by hand (in the comments)."""

from datetime import datetime

from pbx.events import AgentStateChanged, CallStarted, QueueCompleted, QueueJoined
from queues.stats import LiveStatistics, Settings
from tests.unit.queue_scenario import T, agent, scenario


def test_scripted_scenario_matches_hand_computed_figures() -> None:
    stats = LiveStatistics(Settings(threshold=20, target=0.8))
    for event in scenario():
        stats.apply(event)
    shown = stats.queue_snapshot(1, "700", T + 530)
    assert {k: shown[k] for k in (
        "waiting", "longest_wait", "callbacks_pending", "logged_in", "answered", "abandoned",
        "overflowed", "callbacks", "average_wait", "average_talk", "answered_within",
        "abandoned_within", "service_level", "service_level_excluding_short_abandons",
        "estimated_wait", "open", "survey", "staffing")} == {
        "waiting": 1,  # c8
        "longest_wait": 30.0,  # joined at 500
        "callbacks_pending": 1,  # c5
        "logged_in": 3,
        "answered": 3, "abandoned": 2, "overflowed": 1, "callbacks": 1,
        "average_wait": 14.0,  # (2 + 25 + 15) / 3
        "average_talk": 90.0,  # (120 + 90 + 60) / 3
        "answered_within": 2,  # c1 (2 s), c7 (15 s)
        "abandoned_within": 1,  # c3 (10 s)
        "service_level": 40.0,  # 2 / (3 + 2)
        "service_level_excluding_short_abandons": 50.0,  # 2 / (3 + 2 - 1)
        # 2 free agents for 2 ahead (c8 and the callback): ceil(3 / 3 on duty) × 90 s
        "estimated_wait": 90.0,
        "open": True,
        "survey": {"answers": 3, "average": 3.67},  # (5 + 2 + 4) / 3
        # 8 callers in the last hour × 90 s / 3600 s = 0.2 Erlang: one agent reaches
        # 1 - 0.2·exp(-0.8·20/90) = 83.3 % within 20 s
        "staffing": {"erlangs": 0.2, "agents_needed": 1, "service_level": 83.3},
    }
    assert shown["agents"] == {"logged_out": 1, "available": 2, "ringing": 0,
                               "on_queue_call": 0, "on_direct_call": 1, "wrap_up": 0,
                               "paused": 0}
    one, three, four = (stats.agent_snapshot(1, name, T + 530) for name in ("1002", "1003", "1004"))
    assert (one["state"], one["in_state"], one["calls"], one["talk_time"], one["survey"]) == (
        "on_direct_call", 10.0, 2, 180.0, {"answers": 2, "average": 4.5})
    assert (three["state"], three["in_state"], three["calls"], three["talk_time"]) == (
        "available", 395.0, 1, 90.0)
    assert (four["state"], four["pause_time"], four["in_state"]) == ("available", 400.0, 130.0)


def test_pause_time_runs_while_paused_and_keeps_the_reason() -> None:
    stats = LiveStatistics()
    stats.apply(agent("1004", "paused", 0, "training"))
    shown = stats.agent_snapshot(1, "1004", T + 75)
    assert (shown["state"], shown["reason"], shown["pause_time"]) == ("paused", "training", 75.0)
    assert stats.queue_snapshot(1, "700", T + 75)["open"] is False  # nobody on duty


def test_a_new_day_starts_the_counters_again_but_keeps_the_waiting() -> None:
    stats = LiveStatistics()
    for event in scenario():
        stats.apply(event)
    tomorrow = datetime(2026, 12, 4, 8, 0).timestamp()
    shown = stats.queue_snapshot(1, "700", tomorrow)
    assert (shown["answered"], shown["abandoned"], shown["service_level"]) == (0, 0, None)
    assert shown["waiting"] == 1
    assert stats.agent_snapshot(1, "1002", tomorrow)["calls"] == 0
    # a pause across midnight: today counts from midnight, the state from its start
    stats.apply(agent("1004", "paused", 600, "admin"))
    lunch = stats.agent_snapshot(1, "1004", tomorrow)
    assert lunch["pause_time"] == 8 * 3600.0
    assert lunch["in_state"] == tomorrow - (T + 600)


def test_nobody_on_duty_means_no_estimate() -> None:
    stats = LiveStatistics()
    stats.apply(agent("1002", "logged_out", 0))
    stats.apply(QueueJoined(1, "700", "c1", "+46", 1, 0, T + 1))
    assert stats.estimated_wait(1, "700", T + 2) is None
    assert stats.queue_snapshot(1, "700", T + 2)["open"] is False


def test_changes_name_the_queue_and_agents_touched() -> None:
    stats = LiveStatistics()
    assert stats.apply(QueueCompleted(1, "700", "c1", "1002", 10, "agent", T)) == (
        {"700"}, {"1002"})
    assert stats.apply(CallStarted(1, "x", "1", "2", T)) == (set(), set())
    stats.apply(AgentStateChanged(1, "1003", "available", "", ("700", "701"), T))
    moved = stats.apply(AgentStateChanged(1, "1003", "available", "", ("702",), T + 1))
    assert moved == ({"700", "701", "702"}, {"1003"})  # the queues it left change too
    assert [name for name, _ in stats.members(1, "700")] == []
    assert [name for name, _ in stats.members(1, "702")] == ["1003"]
