"""Toll-fraud guards: how many calls to the public network, and where (pure).

A hijacked phone or a guessed SIP password is worth money to whoever sends
calls to premium and far-away numbers through it, many at once, all night.
Operators cap it the way carriers and 3CX/FreePBX do: calls in progress at
once and calls placed within any hour (a sliding window), per extension and
per organisation, and international calls off or limited to an allow-list of
E.164 prefixes (``+45, +47, +358, +49``).  The settings are the
organisation's :class:`~pbx.config.CallPolicyConfig`; 0 means no limit.

Emergency calls are always allowed and never counted: nobody must find
112 busy because the office has called a lot today.

:class:`TollGuard` keeps the counts; call control asks :meth:`TollGuard.check`
before it places a call, and reports :meth:`TollGuard.started` and
:meth:`TollGuard.ended`.  Time is passed in.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from pbx.config import CallPolicyConfig
from pbx.numbering import ExternalNumber
from pbx.refusal import Refusal

WINDOW = 3600.0  # seconds: "calls per hour" counts the calls placed in the last hour


@dataclass(frozen=True, slots=True)
class _Placed:
    organisation: int
    extension: str


class TollGuard:
    """Calls to the public network in progress and placed lately, per
    organisation and per extension (extension "": a call no extension makes,
    such as a queue's callback; only the organisation's limits apply)."""

    def __init__(self) -> None:
        self._active: dict[str, _Placed] = {}  # by call id
        self._at_once: dict[tuple[int, str], int] = {}  # (organisation, extension or "*")
        self._placed: dict[tuple[int, str], deque[float]] = {}  # start times, oldest first

    def check(self, organisation: int, policy: CallPolicyConfig, extension: str,
              number: ExternalNumber, now: float, call_id: str = "") -> Refusal | None:
        """May ``extension`` call ``number`` at ``now``?  None: yes.  A call
        already counted (``call_id``, trying a second number after a forward)
        is not counted again, but its number still has to be allowed."""
        if number.emergency:
            return None
        if number.international:
            if not policy.international:
                return Refusal(403, "International calls are not allowed", "international")
            allowed = policy.international_prefixes
            if allowed and not number.number.startswith(allowed):
                return Refusal(403, f"Calls abroad go only to {', '.join(allowed)}",
                               "international")
        if call_id in self._active:
            return None
        scopes = [((organisation, "*"), policy.max_outbound_calls, policy.max_org_calls_per_hour,
                   "for the organisation")]
        if extension:
            scopes.append(((organisation, extension), policy.max_outbound_per_extension,
                           policy.max_calls_per_hour, "per extension"))
        for key, at_once, per_hour, whose in scopes:
            if at_once and self._at_once.get(key, 0) >= at_once:
                return Refusal(403, f"Outbound calls at once: the limit {whose} is {at_once}",
                               "concurrent")
            if per_hour and self._recent(key, now) >= per_hour:
                return Refusal(403, f"Outbound calls in an hour: the limit {whose} is "
                                    f"{per_hour}", "rate")
        return None

    def started(self, organisation: int, extension: str, call_id: str, number: ExternalNumber,
                now: float) -> None:
        """Call ``call_id`` to ``number`` was placed: it counts from now on."""
        if number.emergency or call_id in self._active:
            return
        self._active[call_id] = _Placed(organisation, extension)
        for key in self._keys(organisation, extension):
            self._at_once[key] = self._at_once.get(key, 0) + 1
            self._recent(key, now)  # forget the calls older than the window first
            self._placed.setdefault(key, deque()).append(now)

    def ended(self, call_id: str) -> None:
        """Call ``call_id`` ended (answered or not): one fewer at once.  Calls
        never started, and second reports, change nothing."""
        placed = self._active.pop(call_id, None)
        if placed is None:
            return
        for key in self._keys(placed.organisation, placed.extension):
            left = self._at_once[key] - 1
            if left:
                self._at_once[key] = left
            else:
                del self._at_once[key]

    def _recent(self, key: tuple[int, str], now: float) -> int:
        times = self._placed.get(key)
        if times is None:
            return 0
        while times and times[0] <= now - WINDOW:
            times.popleft()
        if not times:
            del self._placed[key]
        return len(times)

    @staticmethod
    def _keys(organisation: int, extension: str) -> list[tuple[int, str]]:
        return [(organisation, "*")] + ([(organisation, extension)] if extension else [])
