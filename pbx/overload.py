"""Overload control (RFC 7339 ideas, like Kamailio's and Asterisk's load shedding), pure.

A node offered more than it can serve answers everything late: phones
retransmit, the retransmissions add load, transactions time out, and the
goodput collapses.  The governor turns signals that the node falls behind
into a shedding *level* (0 to 1): the share of new out-of-dialog INVITEs,
REGISTERs and SUBSCRIBEs answered ``503 Service Unavailable`` with
``Retry-After`` at once, cheaply, instead of late.  In-dialog requests (BYE,
ACK, re-INVITE), responses and media are never shed: they finish work the
node already took on.

The timed signals (loop lag, UDP queue wait, media tick) count only while
the node itself is busy (``busy_cpu``: its share of a core over the probe's
window): a node that waits for a core other programs hold is late too, but
refusing work does not give it the core back, it only throws its goodput
away.  Open transactions count always.

The level follows the highest signal relative to its limit (its *pressure*),
taken as the lower of the last two samples so one late wake-up (the process
descheduled for a moment on a shared core) does not count, with hysteresis:
it rises fast while the pressure is at or over 1, creeps down between
``LOW`` and 1 and falls under ``LOW``, so the node neither flaps
between shedding and accepting at every probe nor stays stuck at a level
its load no longer needs.  It stops at ``MAX_LEVEL``: a signal the shedding
cannot relieve (a core other programs hold makes the loop late whatever the
node refuses) must not bring the goodput to nothing.  RFC 7339 §5.5's "loss"
algorithm shapes the answer: a level of 0.4 refuses 4 requests in 10,
spread evenly (a credit counter, no randomness).  A REGISTER or INVITE that
carries credentials answers the node's digest challenge: it is the second
half of work already begun, and passes at every level (floods of them are
pike's to stop, :mod:`pbx.pike`).

A refusal must cost much less than the work it saves, or shedding only
moves the collapse: parsing is most of the cost of a REGISTER, so
:meth:`LoadGovernor.refusal` decides on the raw bytes and builds the 503 by
copying the lines a response needs (Via, From, To, Call-ID, CSeq), as
Kamailio's ``sl_send_reply`` does, statelessly: refused work keeps no
transaction.  Anything it cannot read that simply goes to the parser.

Time and samples are passed in; :mod:`pbx.overload_watch` measures them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

LOW = 0.5  # pressure under which the level falls
RISE_PER_SECOND = 1.0  # level gained per second per unit of pressure at or over a limit
FALL_PER_SECOND = 0.5  # level lost per second under LOW
CREEP_PER_SECOND = 0.1  # level lost per second between LOW and the limit
MAX_LEVEL = 0.9  # a tenth of new work is always taken on
_NEW_WORK = re.compile(rb"(?:INVITE|REGISTER|SUBSCRIBE) ")
_TAG = re.compile(rb";[ \t]*tag[ \t]*=", re.I)
_COPIED = frozenset((b"via", b"v", b"from", b"f", b"call-id", b"i", b"cseq"))  # and To
_CREDENTIALS = frozenset((b"authorization", b"proxy-authorization"))


@dataclass(frozen=True, slots=True)
class OverloadLimits:
    """When the node counts as falling behind (any one signal suffices)."""

    loop_lag_ms: float = 100.0  # the event loop answers a timer this late
    udp_wait_ms: float = 200.0  # the SIP UDP socket's queue, as time (T1 is 500 ms)
    transactions: int = 2000  # server transactions still owing their final answer
    media_tick_ms: float = 15.0  # the 20 ms media tick's own cost
    retry_after: int = 10  # seconds, in the 503's Retry-After
    busy_cpu: float = 0.6  # share of a core the node must use for the timed signals to count


@dataclass(frozen=True, slots=True)
class LoadSample:
    """One probe's reading of the signals."""

    loop_lag_ms: float = 0.0
    udp_wait_ms: float = 0.0
    transactions: int = 0
    media_tick_ms: float = 0.0
    cpu: float = 1.0  # the node's share of a core since the last sample

    def pressure(self, limits: OverloadLimits) -> tuple[float, str]:
        """The highest ratio of a signal to its limit, and that signal's name."""
        ratios = [(self.transactions / limits.transactions, "transactions")]
        if self.cpu >= limits.busy_cpu:
            ratios += [
                (self.loop_lag_ms / limits.loop_lag_ms, "loop_lag"),
                (self.udp_wait_ms / limits.udp_wait_ms, "udp_wait"),
                (self.media_tick_ms / limits.media_tick_ms, "media_tick"),
            ]
        return max(ratios)


def datagram_truesize(payload: float) -> int:
    """Linux's accounting of one queued datagram (its skb's truesize): payload with
    IP and UDP headers, headroom and shared info rounded up to a power of two,
    plus the skb: 1,280 bytes for a 500-byte request on loopback, as measured."""
    return (1 << math.ceil(math.log2(payload + 28 + 64 + 320))) + 256


def udp_wait_ms(backlog_bytes: int, datagrams: int, payload_bytes: int, seconds: float) -> float:
    """How long the newest datagram in the socket waits before it is read, estimated:
    the datagrams queued (the kernel's bytes over :func:`datagram_truesize` of the
    mean datagram read) over the rate they were read at in the last ``seconds``.
    A queue nobody read from in that time waited all of it, at least.

    A lag probe cannot see this wait: under uvloop the loop serves its timers
    between datagrams while the datagrams wait in the kernel."""
    if backlog_bytes <= 0:
        return 0.0
    if datagrams == 0:
        return seconds * 1000
    queued = backlog_bytes / datagram_truesize(payload_bytes / datagrams)
    return queued / datagrams * seconds * 1000


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
        self._last_pressure = 0.0

    @property
    def overloaded(self) -> bool:
        return self.level > 0.0

    def observe(self, sample: LoadSample, now: float) -> OverloadChange | None:
        """Take one probe's sample; returns the change when shedding starts or stops."""
        elapsed = 0.0 if self._last is None else max(0.0, now - self._last)
        self._last = now
        self.sample = sample
        was = self.overloaded
        current, signal = sample.pressure(self.limits)
        pressure, self._last_pressure = min(current, self._last_pressure), current
        if pressure >= 1.0:
            # the first sample over a limit starts shedding at once; then it climbs,
            # faster the further over (a sudden storm fills the queue in a second)
            rise = RISE_PER_SECOND * elapsed * min(pressure, 4.0)
            self.level = min(MAX_LEVEL, max(self.level + rise, 0.1))
            self.reason = signal
        else:
            fall = FALL_PER_SECOND if pressure < LOW else CREEP_PER_SECOND
            self.level = max(0.0, self.level - fall * elapsed)
        if self.overloaded == was:
            return None
        if self.overloaded:
            self._episode_start = self.shed
            self._credit = 0.0
            return OverloadChange(True, self.reason, sample, 0)
        return OverloadChange(False, self.reason, sample, self.shed - self._episode_start)

    def refusal(self, message: bytes, tag: str, server: str) -> bytes | None:
        """The ``503`` (with Retry-After, To ``tag`` and ``server``) refusing
        ``message``, when its raw bytes start new work (an INVITE, REGISTER or
        SUBSCRIBE without a To tag) without credentials and the level says
        refuse; None: parse it and serve it.  Folded or broken header lines
        are left to the parser (and its 400)."""
        if _NEW_WORK.match(message) is None:
            return None
        end = message.find(b"\r\n\r\n")
        if end < 0:
            return None
        copied = []
        for line in message[:end].split(b"\r\n")[1:]:
            name, colon, value = line.partition(b":")
            if not colon or line[:1] in (b" ", b"\t"):
                return None
            name = name.rstrip(b" \t").lower()
            if name in _COPIED:
                copied.append(line)
            elif name == b"to" or name == b"t":
                if _TAG.search(value) is not None:
                    return None  # inside a dialog
                copied.append(line + b";tag=" + tag.encode())
            elif name in _CREDENTIALS:
                return None
        if len(copied) < 5 or not self._refuse():
            return None
        return b"\r\n".join((
            b"SIP/2.0 503 Service Unavailable - Overloaded", *copied,
            b"Retry-After: %d" % self.limits.retry_after, b"Server: " + server.encode(),
            b"Content-Length: 0", b"", b""))

    def _refuse(self) -> bool:
        """True (and counted) when this new request is one of the share to refuse."""
        level = self.level
        if level <= 0.0:
            return False
        self._credit += 1.0 - level
        if self._credit >= 1.0 - 1e-9:  # float sums of (1 - level) fall a hair short
            self._credit -= 1.0
            return False
        self.shed += 1
        return True
