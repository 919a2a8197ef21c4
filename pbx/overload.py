"""Overload control (RFC 7339 ideas, like Kamailio's and Asterisk's load shedding), pure.

A node offered more than it can serve answers everything late: phones
retransmit, the retransmissions add load, transactions time out, and the
goodput collapses.  The governor turns signals that the node falls behind
into a shedding *level* (0 to 1): the share of new out-of-dialog INVITEs,
REGISTERs and SUBSCRIBEs answered ``503 Service Unavailable`` with
``Retry-After`` at once, cheaply, instead of late.  In-dialog requests (BYE,
ACK, re-INVITE), responses and media are never shed: they finish work the
node already took on.

The level follows the highest signal relative to its limit (its *pressure*)
with hysteresis: it rises while the pressure is at or over 1, holds between
``LOW`` and 1, and falls only under ``LOW``, so the node does not flap
between shedding and accepting at every probe.  RFC 7339 §5.5's "loss"
algorithm shapes the answer: a level of 0.4 refuses 4 requests in 10,
spread evenly (a credit counter, no randomness).  A REGISTER or INVITE that
carries credentials is the second half of a digest handshake the node has
half done: it passes until the level is 1.

Time and samples are passed in; :mod:`pbx.overload_watch` measures them.
"""

from __future__ import annotations

from dataclasses import dataclass

LOW = 0.5  # pressure under which the level falls
RISE_PER_SECOND = 2.5  # level gained per second at or over a limit: full shedding in 0.4 s
FALL_PER_SECOND = 0.5  # level lost per second under LOW: 2 s from full shedding to none
SHED_METHODS = frozenset(("INVITE", "REGISTER", "SUBSCRIBE"))


@dataclass(frozen=True, slots=True)
class OverloadLimits:
    """When the node counts as falling behind (any one signal suffices)."""

    loop_lag_ms: float = 100.0  # the event loop answers a timer this late
    udp_backlog_kb: float = 256.0  # datagrams waiting in the SIP UDP socket (kernel bytes)
    transactions: int = 2000  # server transactions still owing their final answer
    media_tick_ms: float = 15.0  # the 20 ms media tick's own cost
    retry_after: int = 10  # seconds, in the 503's Retry-After


@dataclass(frozen=True, slots=True)
class LoadSample:
    """One probe's reading of the signals."""

    loop_lag_ms: float = 0.0
    udp_backlog_kb: float = 0.0
    transactions: int = 0
    media_tick_ms: float = 0.0

    def pressure(self, limits: OverloadLimits) -> tuple[float, str]:
        """The highest ratio of a signal to its limit, and that signal's name."""
        ratios = (
            (self.loop_lag_ms / limits.loop_lag_ms, "loop_lag"),
            (self.udp_backlog_kb / limits.udp_backlog_kb, "udp_backlog"),
            (self.transactions / limits.transactions, "transactions"),
            (self.media_tick_ms / limits.media_tick_ms, "media_tick"),
        )
        return max(ratios)


@dataclass(frozen=True, slots=True)
class OverloadChange:
    """The node started or stopped shedding (for the event bus and the log)."""

    overloaded: bool
    reason: str  # the signal that crossed its limit (or was the last over it)
    sample: LoadSample
    shed: int  # requests refused during the episode that ends (0 when one starts)


class LoadGovernor:
    """Decides, per sample, how much new work to shed, and per request, whether to."""

    def __init__(self, limits: OverloadLimits) -> None:
        self.limits = limits
        self.level = 0.0
        self.reason = ""
        self.sample = LoadSample()
        self.shed = 0  # requests refused since the start
        self._episode_start = 0  # ``shed`` when the current episode began
        self._credit = 0.0
        self._last: float | None = None

    @property
    def overloaded(self) -> bool:
        return self.level > 0.0

    def observe(self, sample: LoadSample, now: float) -> OverloadChange | None:
        """Take one probe's sample; returns the change when shedding starts or stops."""
        elapsed = 0.0 if self._last is None else max(0.0, now - self._last)
        self._last = now
        self.sample = sample
        was = self.overloaded
        pressure, signal = sample.pressure(self.limits)
        if pressure >= 1.0:
            # the first sample over a limit starts shedding at once; then it climbs
            self.level = min(1.0, max(self.level + RISE_PER_SECOND * elapsed, 0.1))
            self.reason = signal
        elif pressure < LOW:
            self.level = max(0.0, self.level - FALL_PER_SECOND * elapsed)
        if self.overloaded == was:
            return None
        if self.overloaded:
            self._episode_start = self.shed
            self._credit = 0.0
            return OverloadChange(True, self.reason, sample, 0)
        return OverloadChange(False, self.reason, sample, self.shed - self._episode_start)

    def admit(self, credentials: bool) -> bool:
        """Take a new out-of-dialog request (True) or refuse it with 503 (False)."""
        level = self.level
        if level <= 0.0 or (credentials and level < 1.0):
            return True
        self._credit += 1.0 - level
        if self._credit >= 1.0 - 1e-9:  # float sums of (1 - level) fall a hair short
            self._credit -= 1.0
            return True
        self.shed += 1
        return False
