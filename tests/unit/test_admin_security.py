"""Login rate limit: failures count, successes do not, the window slides."""

from __future__ import annotations

from admin_api.security import LoginLimiter, RequestLimiter


def test_only_failures_count_and_they_expire() -> None:
    limiter = LoginLimiter(attempts=3, window=60)
    for _ in range(20):
        assert limiter.allow("10.0.0.1", 0.0)  # successful logins: never limited
    for t in (1.0, 2.0, 3.0):
        limiter.failed("10.0.0.2", t)
    assert not limiter.allow("10.0.0.2", 10.0)
    assert limiter.allow("10.0.0.1", 10.0)  # another address is not affected
    assert limiter.allow("10.0.0.2", 61.5)  # the first failure left the window


def test_request_limiter_says_how_long_to_wait() -> None:
    limiter = RequestLimiter(requests=3, window=10)
    assert [limiter.allow("a", t) for t in (0.0, 1.0, 2.0)] == [0.0, 0.0, 0.0]
    assert limiter.allow("a", 4.0) == 6.0  # the first request leaves the window at 10
    assert limiter.allow("b", 4.0) == 0.0  # another source is not affected
    assert limiter.allow("a", 10.0) == 0.0
