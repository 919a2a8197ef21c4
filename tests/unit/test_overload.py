"""The load governor (pbx/overload.py) driven by hand-made samples and a fake clock."""

from __future__ import annotations

import pytest

from pbx.overload import (
    MAX_LEVEL, LoadGovernor, LoadSample, OverloadLimits, datagram_truesize, udp_wait_ms,
)
from pbx.sip.message import Response
from pbx.sip.parser import parse_message

LIMITS = OverloadLimits(loop_lag_ms=100, udp_wait_ms=200, transactions=100,
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
    (LoadSample(udp_wait_ms=300), "udp_wait"),
    (LoadSample(transactions=100), "transactions"),
    (LoadSample(media_tick_ms=19), "media_tick"),
])
def test_any_signal_at_its_limit_twice_in_a_row_starts_shedding(sample: LoadSample,
                                                                  reason: str) -> None:
    governor = LoadGovernor(LIMITS)
    assert governor.observe(CALM, 0.0) is None and not governor.overloaded
    assert governor.observe(sample, 0.1) is None  # one late sample: a spike, not a load
    assert governor.observe(CALM, 0.2) is None and governor.observe(sample, 0.3) is None
    assert not governor.overloaded
    change = governor.observe(sample, 0.4)
    assert change is not None and change.overloaded and change.reason == reason
    assert governor.overloaded and governor.reason == reason and change.sample == sample


def test_the_level_climbs_while_over_and_holds_in_the_band() -> None:
    governor = LoadGovernor(LIMITS)
    run(governor, LoadSample(transactions=100), 0.0, 0.4)
    assert 0.2 < governor.level < 0.5
    run(governor, LoadSample(transactions=200), 0.4, 0.2)
    assert 0.55 < governor.level < 0.8  # twice over the limit: twice as fast
    run(governor, LoadSample(transactions=150), 0.6, 1.0)
    assert governor.level == MAX_LEVEL  # a tenth of new work always goes through
    # between half the limit and the limit: hysteresis, the level only creeps down
    assert run(governor, LoadSample(transactions=70), 1.6, 5.0) == []
    assert governor.level == pytest.approx(MAX_LEVEL - 0.5)


REGISTER = (b"REGISTER sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.7;branch=z9hG4bK1\r\n"
            b"From: <sip:1001@pbx.test>;tag=a1\r\nTo: <sip:1001@pbx.test>\r\nCall-ID: c1\r\n"
            b"CSeq: 1 REGISTER\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")


def refused(governor: LoadGovernor, message: bytes = REGISTER) -> bool:
    return governor.refusal(message, "t1", "pbx") is not None


def test_it_stops_only_after_the_signals_stay_low_and_counts_the_refusals() -> None:
    governor = LoadGovernor(LIMITS)
    run(governor, LoadSample(loop_lag_ms=500), 0.0, 1.5)
    assert sum(refused(governor) for _ in range(20)) == 18  # full shedding: 9 in 10
    assert run(governor, CALM, 1.5, 1.0) == [] and governor.overloaded  # still draining
    changes = run(governor, CALM, 2.5, 2.0)
    assert len(changes) == 1 and not changes[0].overloaded and changes[0].shed == 18
    assert governor.level == 0.0 and not refused(governor)


def test_a_level_refuses_that_share_evenly() -> None:
    governor = LoadGovernor(LIMITS)
    governor.observe(LoadSample(transactions=100), 0.0)
    governor.level = 0.4  # as if climbed there
    answers = [refused(governor) for _ in range(100)]
    assert answers.count(True) == 40 and governor.shed == 40
    assert not any(answers[i] and answers[i + 1] for i in range(99))  # never two in a row


def test_the_refusal_is_a_503_for_the_request_built_from_its_raw_lines() -> None:
    governor = LoadGovernor(LIMITS)
    run(governor, LoadSample(udp_wait_ms=900), 0.0, 1.0)
    raw = governor.refusal(REGISTER, "t1", "pbx/0.1")
    assert raw is not None
    response = parse_message(raw)
    request = parse_message(REGISTER)
    assert isinstance(response, Response) and response.status == 503
    assert response.headers.get("Retry-After") == "7"
    assert response.headers.get("Server") == "pbx/0.1"
    assert response.to_addr.tag == "t1" and response.from_addr.tag == "a1"
    for name in ("Via", "From", "Call-ID", "CSeq"):
        assert response.headers.get(name) == request.headers.get(name)


@pytest.mark.parametrize("message", [
    REGISTER.replace(b"Content-Length", b"Authorization: Digest x\r\nContent-Length"),
    REGISTER.replace(b"REGISTER", b"INVITE").replace(b"pbx.test>\r\n", b"pbx.test>;tag=x\r\n"),
    b"BYE sip:1001@10.0.0.7 SIP/2.0\r\n" + REGISTER.split(b"\r\n", 1)[1],
    b"SIP/2.0 200 OK\r\n" + REGISTER.split(b"\r\n", 1)[1],
    REGISTER.replace(b"Call-ID: c1\r\n", b""),  # the parser's 400
    REGISTER.replace(b"Call-ID: c1\r\n", b"Call-ID:\r\n c1\r\n"),  # folded: the parser's
    REGISTER[:-4],  # no end of headers
], ids=["credentials", "re-INVITE", "BYE", "response", "no Call-ID", "folded", "cut"])
def test_what_is_not_new_uncredentialed_work_goes_to_the_parser(message: bytes) -> None:
    governor = LoadGovernor(LIMITS)
    run(governor, LoadSample(udp_wait_ms=900), 0.0, 1.0)
    assert governor.level == MAX_LEVEL
    assert not refused(governor, message) and governor.shed == 0


def test_calm_node_refuses_nothing_and_reports_nothing() -> None:
    governor = LoadGovernor(LIMITS)
    assert run(governor, LoadSample(40, 100, 40, 5), 0.0, 10.0) == []
    assert not any(refused(governor) for _ in range(1000)) and governor.shed == 0


def test_a_late_node_that_waits_for_a_core_others_hold_sheds_nothing() -> None:
    """Starved, not overloaded: refusing work would not give the core back."""
    governor = LoadGovernor(LIMITS)
    starved = LoadSample(loop_lag_ms=400, udp_wait_ms=900, media_tick_ms=30, cpu=0.3)
    assert run(governor, starved, 0.0, 2.0) == [] and governor.level == 0.0
    changes = run(governor, LoadSample(transactions=150, cpu=0.3), 2.0, 0.3)
    assert changes and changes[0].reason == "transactions"  # open work counts always


def test_udp_wait_is_the_queue_over_the_read_rate() -> None:
    assert datagram_truesize(500) == 1280  # measured on loopback: 1000 x 500 B = 1,280,000
    # 200 requests of 500 bytes queued, 1,000 read in the last 0.1 s: 20 ms to reach the last
    assert udp_wait_ms(200 * 1280, 1000, 500_000, 0.1) == pytest.approx(20.0)
    assert udp_wait_ms(0, 1000, 500_000, 0.1) == 0.0
    assert udp_wait_ms(1280, 0, 0, 0.25) == 250.0  # nothing read: it waited the whole time
