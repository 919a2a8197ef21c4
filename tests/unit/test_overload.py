"""The load governor (pbx/overload.py) driven by hand-made samples and a fake clock."""

from __future__ import annotations

import pytest

from pbx.overload import LoadGovernor, LoadSample, OverloadLimits

LIMITS = OverloadLimits(loop_lag_ms=100, udp_backlog_kb=256, transactions=100,
                        media_tick_ms=15, retry_after=7)
CALM = LoadSample()


def run(governor: LoadGovernor, sample: LoadSample, start: float, seconds: float,
        step: float = 0.1) -> list[object]:
    """Feed ``sample`` every ``step`` for ``seconds``; the changes reported."""
    changes = []
    for i in range(round(seconds / step)):
        change = governor.observe(sample, start + i * step)
        if change is not None:
            changes.append(change)
    return changes


@pytest.mark.parametrize("sample, reason", [
    (LoadSample(loop_lag_ms=150), "loop_lag"),
    (LoadSample(udp_backlog_kb=300), "udp_backlog"),
    (LoadSample(transactions=100), "transactions"),
    (LoadSample(media_tick_ms=19), "media_tick"),
])
def test_any_signal_at_its_limit_starts_shedding_at_once(sample: LoadSample, reason: str) -> None:
    governor = LoadGovernor(LIMITS)
    assert governor.observe(CALM, 0.0) is None and not governor.overloaded
    change = governor.observe(sample, 0.1)
    assert change is not None and change.overloaded and change.reason == reason
    assert governor.overloaded and governor.reason == reason and change.sample == sample


def test_the_level_climbs_while_over_and_holds_in_the_band() -> None:
    governor = LoadGovernor(LIMITS)
    run(governor, LoadSample(transactions=150), 0.0, 0.3)
    climbing = governor.level
    assert 0.5 < climbing < 1.0
    run(governor, LoadSample(transactions=150), 0.3, 0.5)
    assert governor.level == 1.0
    # between half the limit and the limit: hysteresis, no change either way
    assert run(governor, LoadSample(transactions=70), 0.8, 5.0) == []
    assert governor.level == 1.0


def test_it_stops_only_after_the_signals_stay_low_and_counts_the_refusals() -> None:
    governor = LoadGovernor(LIMITS)
    run(governor, LoadSample(loop_lag_ms=500), 0.0, 1.0)
    refused = sum(not governor.admit(credentials=False) for _ in range(20))
    assert refused == 20  # full shedding: even credentials would be refused
    assert run(governor, CALM, 1.0, 1.0) == [] and governor.overloaded  # still draining
    changes = run(governor, CALM, 2.0, 2.0)
    assert len(changes) == 1 and not changes[0].overloaded and changes[0].shed >= 20
    assert governor.level == 0.0 and governor.admit(credentials=False)


def test_a_level_refuses_that_share_evenly() -> None:
    governor = LoadGovernor(LIMITS)
    governor.observe(LoadSample(transactions=100), 0.0)
    governor.level = 0.4  # as if climbed there
    answers = [governor.admit(credentials=False) for _ in range(100)]
    assert answers.count(False) == 40 and governor.shed == 40
    assert all(answers[i] or answers[i + 1] for i in range(99))  # never two refusals in a row


def test_credentials_pass_until_full_shedding() -> None:
    """The second half of a digest handshake: the node did half the work already."""
    governor = LoadGovernor(LIMITS)
    governor.observe(LoadSample(transactions=100), 0.0)
    governor.level = 0.9
    assert all(governor.admit(credentials=True) for _ in range(50))
    governor.level = 1.0
    assert not governor.admit(credentials=True)


def test_calm_node_admits_everything_and_reports_nothing() -> None:
    governor = LoadGovernor(LIMITS)
    assert run(governor, LoadSample(40, 100, 40, 5), 0.0, 10.0) == []
    assert all(governor.admit(credentials=False) for _ in range(1000)) and governor.shed == 0
