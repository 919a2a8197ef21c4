"""Flood and brute-force protection per source IP, and known scanners (pure).

The job of Kamailio's pike module (and fail2ban on a SIP log): a :class:`SourceGuard`
counts events of a source IP in a sliding window and blocks the source for a while
once there are too many.  The server runs two: one over every request (a flood:
Kamailio's default is more than 16 requests in 2 s, then 300 s of silence) and one
over failed digest authentications (password guessing).  Blocked sources are dropped
without an answer.  :func:`scanner_pattern` recognises the User-Agent of SIP scanners
(SIPVicious and friends), whose requests are dropped unanswered too.  Time is passed in.
"""

from __future__ import annotations

import logging
import re
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterable

log = logging.getLogger("pbx.pike")

# User-Agents of SIP scanners and attack tools, as Kamailio, Asterisk and fail2ban
# setups list them (SIPVicious svmap/svwar/svcrack, sipcli, sundayddr, iWar, SIVuS,
# sippts...).  Matched case-insensitively as whole words of the User-Agent.
SCANNERS = (
    "friendly-scanner", "friendly-request", "sipvicious", "sipcli", "VaxSIPUserAgent",
    "VaxIPUserAgent", "sundayddr", "iWar", "SIVuS", "Gulp", "sipv", "smap", "sip-scan",
    "sipsscan", "siparmyknife", "sippts", "sipptk", "pplsip", "SIPScan",
)


def scanner_pattern(names: Iterable[str]) -> re.Pattern[str] | None:
    """A pattern finding any of ``names`` as a word of a User-Agent; None for no names."""
    words = [re.escape(name) for name in names if name]
    if not words:
        return None
    return re.compile(rf"(?<![\w-])(?:{'|'.join(words)})(?![\w-])", re.IGNORECASE)


class SourceGuard:
    """Counts events per source IP in a sliding window and blocks noisy sources.

    ``limit`` events within ``window`` seconds block the source for ``block_for``
    seconds, unless ``trusted(source)`` (asked only then: the PBX itself, a carrier,
    a proxy in front), whose count starts again instead.  Memory is bounded twice:
    histories older than the window and expired blocks are pruned on every call, and
    at most ``max_sources`` histories are kept (the least recently seen source is
    forgotten first, against floods from spoofed UDP sources).  Blocks need ``limit``
    events each, so their number is bounded by the same.
    """

    def __init__(
        self,
        limit: int = 10,
        window: float = 60.0,
        block_for: float = 600.0,
        *,
        what: str = "authentication failures",
        trusted: Callable[[str], bool] | None = None,
        max_sources: int = 65536,
    ) -> None:
        if limit < 1 or window <= 0 or block_for <= 0 or max_sources < 1:
            raise ValueError("limit, window, block_for and max_sources must be positive")
        self.limit = limit
        self.window = window
        self.block_for = block_for
        self.what = what
        self.trusted = trusted
        self.max_sources = max_sources
        # Both ordered by last change; as window and block_for are fixed, also by expiry.
        # the last ``limit`` event times of a source, as machine doubles (a few
        # hundred bytes a source: floods from spoofed addresses fill all of them)
        self._events: OrderedDict[str, array[float]] = OrderedDict()
        self._blocked_until: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        """Sources held in memory (histories and blocks)."""
        return len(self._events) + len(self._blocked_until)

    def is_blocked(self, source: str, now: float) -> bool:
        """True while ``source`` serves a block: drop its requests without an answer."""
        self._prune(now)
        return source in self._blocked_until

    def record(self, source: str, now: float) -> bool:
        """Count one event of ``source``; True when this event starts a block."""
        self._prune(now)
        if source in self._blocked_until:
            return False
        history = self._events.pop(source, None)
        if history is None:
            history = array("d")
        history.append(now)
        if len(history) > self.limit:
            del history[0]
        if len(history) == self.limit and now - history[0] < self.window:
            if self.trusted is not None and self.trusted(source):
                del history[:]
            else:
                self._blocked_until[source] = now + self.block_for
                log.warning("blocking %s for %.0f s after %d %s in %.1f s", source,
                            self.block_for, self.limit, self.what, now - history[0])
                return True
        self._events[source] = history
        if len(self._events) > self.max_sources:
            self._events.popitem(last=False)
        return False

    def forget(self, source: str, now: float) -> None:
        """Forget the events of ``source``: a user who mistyped once then succeeded is no threat.

        A running block is kept; it ends on its own.
        """
        self._prune(now)
        self._events.pop(source, None)

    def _prune(self, now: float) -> None:
        while self._blocked_until:
            source, until = next(iter(self._blocked_until.items()))
            if until > now:
                break
            del self._blocked_until[source]
        while self._events:
            source, history = next(iter(self._events.items()))
            if history and now - history[-1] < self.window:
                break
            del self._events[source]
