"""Failed-authentication guard: block a source after repeated digest failures (pure).

The same job as Kamailio's pike module or fail2ban on a SIP log: a source that fails
digest authentication ``max_failures`` times within ``window`` seconds is refused for
``block_for`` seconds, which makes password guessing over SIP slow. Time is passed in.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque

log = logging.getLogger("pbx.pike")


class AuthFailureGuard:
    """Counts digest failures per source IP in a sliding window and blocks noisy sources.

    Memory is bounded twice: failure histories older than the window and expired blocks
    are pruned on every call, and at most ``max_sources`` histories are kept (the least
    recently failing source is forgotten first, against floods from spoofed UDP sources).
    Blocks need ``max_failures`` failures each, so their number is bounded by the same.
    """

    def __init__(
        self,
        max_failures: int = 10,
        window: float = 60.0,
        block_for: float = 600.0,
        *,
        max_sources: int = 65536,
    ) -> None:
        if max_failures < 1 or window <= 0 or block_for <= 0 or max_sources < 1:
            raise ValueError("max_failures, window, block_for and max_sources must be positive")
        self.max_failures = max_failures
        self.window = window
        self.block_for = block_for
        self.max_sources = max_sources
        # Both ordered by last change; as window and block_for are fixed, also by expiry.
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._blocked_until: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        """Sources held in memory (failure histories and blocks)."""
        return len(self._failures) + len(self._blocked_until)

    def is_blocked(self, source: str, now: float) -> bool:
        """True while ``source`` serves a block: drop its requests without an answer."""
        self._prune(now)
        return source in self._blocked_until

    def record_failure(self, source: str, now: float) -> bool:
        """Count one failed authentication; True when this failure starts a block."""
        self._prune(now)
        if source in self._blocked_until:
            return False
        history = self._failures.pop(source, None)
        if history is None:
            history = deque(maxlen=self.max_failures)
        history.append(now)
        if len(history) == self.max_failures and now - history[0] < self.window:
            self._blocked_until[source] = now + self.block_for
            log.warning(
                "blocking %s for %.0f s after %d authentication failures in %.0f s",
                source, self.block_for, self.max_failures, now - history[0],
            )
            return True
        self._failures[source] = history
        if len(self._failures) > self.max_sources:
            self._failures.popitem(last=False)
        return False

    def record_success(self, source: str, now: float) -> None:
        """Forget the failures of ``source``: a user who mistyped once then succeeded is no threat.

        A running block is kept; it ends on its own.
        """
        self._prune(now)
        self._failures.pop(source, None)

    def _prune(self, now: float) -> None:
        while self._blocked_until:
            source, until = next(iter(self._blocked_until.items()))
            if until > now:
                break
            del self._blocked_until[source]
        while self._failures:
            source, history = next(iter(self._failures.items()))
            if now - history[-1] < self.window:
                break
            del self._failures[source]
