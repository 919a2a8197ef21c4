"""Passwords, tokens and the login rate limit of the admin API.

Passwords are stored as scrypt hashes with a per-user salt (:mod:`pbx.passwords`,
shared with mailbox PINs); API tokens are random and stored as SHA-256 only,
so a stolen database yields neither.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections import defaultdict, deque

from pbx.passwords import check_password, hash_password

__all__ = ["LoginLimiter", "check_password", "hash_password", "new_sip_secret", "new_token",
           "token_hash", "weak_password_reason"]


def weak_password_reason(password: str) -> str | None:
    """Why a password is refused, or None: 12+ characters with letters and digits."""
    if len(password) < 12:
        return "at least 12 characters"
    if not re.search(r"[A-Za-z]", password) or not re.search(r"\d", password):
        return "letters and digits"
    return None


def new_token() -> tuple[str, str]:
    """A bearer token and the hash to keep of it."""
    token = secrets.token_urlsafe(32)
    return token, token_hash(token)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_sip_secret() -> str:
    """A strong SIP password a phone can be typed with (no ambiguous characters)."""
    alphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(20))


class LoginLimiter:
    """At most ``attempts`` failed logins per source per ``window`` seconds;
    successful logins do not count, so a busy office is never locked out."""

    def __init__(self, attempts: int = 10, window: float = 60.0) -> None:
        self.attempts = attempts
        self.window = window
        self._failures: dict[str, deque[float]] = defaultdict(deque)

    def allow(self, source: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        failures = self._failures.get(source)
        if failures is None:
            return True
        while failures and now - failures[0] > self.window:
            failures.popleft()
        if not failures:
            del self._failures[source]
            return True
        return len(failures) < self.attempts

    def failed(self, source: str, now: float | None = None) -> None:
        self._failures[source].append(time.monotonic() if now is None else now)


class RequestLimiter:
    """At most ``requests`` per source per ``window`` seconds (a sliding window):
    what keeps a public endpoint from being flooded.  ``allow`` answers 0 when
    the request may go, else the seconds until it may (a Retry-After)."""

    def __init__(self, requests: int = 60, window: float = 60.0, sources: int = 100_000) -> None:
        self.requests = requests
        self.window = window
        self.sources = sources  # a flood from many addresses forgets the oldest ones
        self._seen: dict[str, deque[float]] = {}

    def allow(self, source: str, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        seen = self._seen.pop(source, None) or deque()
        while seen and now - seen[0] >= self.window:
            seen.popleft()
        self._seen[source] = seen  # newest last: the dict's order is by activity
        if len(self._seen) > self.sources:
            del self._seen[next(iter(self._seen))]
        if len(seen) >= self.requests:
            return seen[0] + self.window - now
        seen.append(now)
        return 0.0
