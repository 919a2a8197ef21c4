"""Per-source guards against floods and password guessing, and the scanner list
(pbx.pike), driven by a hand-advanced clock."""

from __future__ import annotations

import logging

import pytest

from pbx.pike import SCANNERS, SourceGuard, scanner_pattern

ATTACKER = "203.0.113.7"
PHONE = "198.51.100.20"


def fail(
    guard: SourceGuard, source: str, times: int, start: float, step: float = 1.0
) -> list[bool]:
    return [guard.record(source, start + i * step) for i in range(times)]


def test_block_starts_at_the_nth_failure_within_the_window() -> None:
    guard = SourceGuard(limit=5, window=60.0, block_for=600.0)
    assert fail(guard, ATTACKER, 4, start=0.0) == [False] * 4
    assert not guard.is_blocked(ATTACKER, 4.0)
    assert guard.record(ATTACKER, 4.0) is True
    assert guard.is_blocked(ATTACKER, 4.0)
    assert guard.record(ATTACKER, 5.0) is False  # already blocked: not a new block
    assert not guard.is_blocked(PHONE, 5.0)


def test_failures_spread_wider_than_the_window_do_not_block() -> None:
    guard = SourceGuard(limit=5, window=60.0, block_for=600.0)
    assert fail(guard, ATTACKER, 50, start=0.0, step=15.0) == [False] * 50  # 4 per minute
    assert not guard.is_blocked(ATTACKER, 750.0)


def test_sliding_window_counts_only_recent_failures() -> None:
    guard = SourceGuard(limit=3, window=10.0, block_for=100.0)
    assert fail(guard, ATTACKER, 2, start=0.0) == [False, False]
    assert guard.record(ATTACKER, 10.0) is False  # the one at 0.0 has left the window
    assert guard.record(ATTACKER, 10.5) is True  # 1.0, 10.0, 10.5


def test_block_ends_after_block_for_and_counting_starts_afresh() -> None:
    guard = SourceGuard(limit=3, window=60.0, block_for=600.0)
    assert fail(guard, ATTACKER, 3, start=0.0)[-1] is True
    assert guard.is_blocked(ATTACKER, 601.9)
    assert not guard.is_blocked(ATTACKER, 602.0)
    assert fail(guard, ATTACKER, 2, start=602.0) == [False, False]
    assert guard.record(ATTACKER, 604.0) is True


def test_success_forgets_failures_but_not_a_running_block() -> None:
    guard = SourceGuard(limit=3, window=60.0, block_for=600.0)
    fail(guard, PHONE, 2, start=0.0)
    guard.forget(PHONE, 2.0)
    assert fail(guard, PHONE, 2, start=3.0) == [False, False]
    assert fail(guard, ATTACKER, 3, start=0.0)[-1] is True
    guard.forget(ATTACKER, 3.0)
    assert guard.is_blocked(ATTACKER, 3.0)


def test_sources_are_counted_apart() -> None:
    guard = SourceGuard(limit=3, window=60.0, block_for=600.0)
    for i in range(2):
        guard.record(ATTACKER, float(i))
        guard.record(PHONE, float(i))
    assert guard.record(ATTACKER, 2.0) is True
    assert not guard.is_blocked(PHONE, 2.0)


def test_block_is_logged_as_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    guard = SourceGuard(limit=2, window=60.0, block_for=300.0)
    with caplog.at_level(logging.WARNING, logger="pbx.pike"):
        guard.record(ATTACKER, 0.0)
        assert caplog.records == []
        guard.record(ATTACKER, 1.0)
    (record,) = caplog.records
    assert record.name == "pbx.pike" and record.levelno == logging.WARNING
    assert ATTACKER in record.getMessage() and "300" in record.getMessage()


def test_memory_is_pruned_by_time() -> None:
    guard = SourceGuard(limit=3, window=60.0, block_for=600.0)
    for i in range(1000):
        guard.record(f"192.0.{i // 250}.{i % 250}", i / 100)  # until 9.99 s
    fail(guard, ATTACKER, 3, start=10.0)
    assert len(guard) == 1001
    assert guard.is_blocked(ATTACKER, 69.9)
    assert len(guard) == 10  # failed at 9.9 s and later: still inside the window
    assert guard.is_blocked(ATTACKER, 70.0)
    assert len(guard) == 1  # histories idle for a window are gone; the block stays
    assert not guard.is_blocked(ATTACKER, 612.0)
    assert len(guard) == 0


def test_memory_is_capped_against_many_sources() -> None:
    guard = SourceGuard(limit=2, window=60.0, block_for=600.0, max_sources=100)
    for i in range(1000):
        guard.record(f"10.0.{i // 256}.{i % 256}", 0.0)
    assert len(guard) == 100
    assert guard.record("10.0.3.231", 1.0) is True  # the most recent are kept
    assert guard.record("10.0.0.0", 1.0) is False  # the oldest was forgotten


@pytest.mark.parametrize(
    "kwargs",
    [{"limit": 0}, {"window": 0.0}, {"block_for": -1.0}, {"max_sources": 0}],
)
def test_refuses_bad_configuration(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SourceGuard(**kwargs)


def test_a_flood_bans_like_kamailio_pike() -> None:
    """More than 16 requests in 2 s ban the source for 300 s (limit 17)."""
    guard = SourceGuard(limit=17, window=2.0, block_for=300.0, what="requests")
    assert not any(fail(guard, ATTACKER, 16, 0.0, 0.1))
    assert guard.record(ATTACKER, 1.7) is True  # the 17th within 2 s
    assert guard.is_blocked(ATTACKER, 301.0) and not guard.is_blocked(ATTACKER, 302.0)
    # a phone at 8 requests a second never gets there
    assert not any(fail(guard, PHONE, 200, 0.0, 0.125))


def test_a_trusted_source_is_never_banned_and_asked_only_at_the_limit() -> None:
    asked: list[str] = []

    def trusted(source: str) -> bool:
        asked.append(source)
        return source == PHONE

    guard = SourceGuard(limit=3, window=2.0, block_for=300.0, trusted=trusted)
    assert not any(fail(guard, PHONE, 30, 0.0, 0.01))
    assert not guard.is_blocked(PHONE, 1.0)
    assert asked == [PHONE] * 10  # once per 3 requests: the count starts again
    assert fail(guard, ATTACKER, 3, 0.0, 0.01)[-1] is True


@pytest.mark.parametrize("agent", [
    "friendly-scanner", "sipvicious", "SIPVicious 0.3.4", "sipcli/v1.8", "VaxSIPUserAgent/3.1",
    "sundayddr", "iWar", "SIVuS", "Gulp", "sipv", "smap 0.6.0", "pplsip", "sippts"])
def test_scanners_are_recognised(agent: str) -> None:
    pattern = scanner_pattern(SCANNERS)
    assert pattern is not None and pattern.search(agent)


@pytest.mark.parametrize("agent", [
    "Yealink SIP-T46S 66.86.0.15", "Grandstream GXP2170 1.0.11.3", "baresip v1.0.0 (x86_64/linux)",
    "Linphone/5.2", "sipsak 0.9.8", "Zoiper rv2.10", "MicroSIP/3.21.3", "sipp", ""])
def test_phones_are_not_scanners(agent: str) -> None:
    pattern = scanner_pattern(SCANNERS)
    assert pattern is not None and not pattern.search(agent)


def test_no_scanner_names_no_pattern() -> None:
    assert scanner_pattern([]) is None
