"""Outbound routes: which trunks carry a call to the public network, and how (pure).

An organisation's routes are tried in order (FreePBX outbound routes, 3CX
outbound rules); the first whose dial pattern matches the number takes the
call.  A route names its trunks in failover order: when one answers 5xx,
408 or not at all, call control tries the next (RFC 3263 §4.3 in spirit:
the next target on a transport or server failure).  Each trunk gets the
number written its way (its ``number_format`` in its ``country``,
:func:`~pbx.numbering.carrier_format`), then the route's rewrite (``strip``
leading characters, ``prepend`` some), and the caller ID the route chooses.

Dial patterns are matched against the normalised number: E.164 with its
``+`` (``+4681234567``), or an emergency number as dialled (``112``).  The
syntax is FreePBX's dial pattern:

=========  ==============================================================
``X``      any digit 0-9
``Z``      1-9
``N``      2-9
``[1-5]``  one of the digits and ranges listed (``[0236-9]``)
``.``      one or more further characters (last only)
``!``      zero or more further characters (last only)
other      a digit, or ``+`` first, matched as it is
=========  ==============================================================

So ``+46.`` is every Swedish number, ``+467[02369]XXXXXXX`` a Swedish
mobile, ``+.`` any number at all, ``112`` the emergency number.  A leading
``_`` (Asterisk's habit) is accepted and dropped; letters are case-blind.

Caller ID (``caller_id``): ``user`` — the number the user shows outward
(their profile's or extension's, from the numbers table), else the trunk's
main number; ``trunk`` — the trunk's main number (the first of its
``dids``); ``anonymous`` — withheld from the called party (RFC 3325
``Privacy: id``; the plan keeps the user's number for a carrier that takes
it asserted); or one E.164 number of the
organisation for everybody (the switchboard number).  Emergency calls
always show who calls: privacy never applies to them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pbx.fields import split_commas
from pbx.models import OutboundRoute
from pbx.numbering import (
    COUNTRIES, Country, ExternalNumber, NumberError, NumberingPlan, carrier_format,
)
from pbx.refusal import Refusal
from pbx.trunks.settings import TrunkSettings

CALLER_ID_CHOICES = ("user", "trunk", "anonymous")
FIXED_CALLER_ID = r"^\+[1-9][0-9]{6,14}$"
NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$"  # a route's
PREPEND = r"^[0-9+*#]{0,20}$"
MAX_STRIP = 20
_CLASSES = {"X": "[0-9]", "Z": "[1-9]", "N": "[2-9]"}


class PatternError(ValueError):
    """A dial pattern that cannot be read, and why."""


@dataclass(frozen=True, slots=True)
class DialPattern:
    text: str
    regex: re.Pattern[str]

    def matches(self, number: str) -> bool:
        return self.regex.fullmatch(number) is not None


def parse_pattern(text: str) -> DialPattern:
    """Read a FreePBX dial pattern (module docstring), or say what is wrong with it."""
    body = text.strip()
    body = body.removeprefix("_")
    if not body:
        raise PatternError("a pattern needs at least one character")
    if len(body) > 40:
        raise PatternError("a pattern has at most 40 characters")
    if body == "+":
        raise PatternError("'+' alone matches nothing; '+.' matches every number")
    out, i = [], 0
    while i < len(body):
        ch, where = body[i], f"at {i + 1}"
        if ch in ".!":
            if i != len(body) - 1:
                raise PatternError(f"'{ch}' {where} must be the last character")
            out.append(".+" if ch == "." else ".*")
        elif ch.upper() in _CLASSES:
            out.append(_CLASSES[ch.upper()])
        elif ch == "+":
            if i != 0:
                raise PatternError(f"'+' {where}: it comes only first")
            out.append(r"\+")
        elif ch.isascii() and ch.isdigit():
            out.append(ch)
        elif ch == "[":
            end = body.find("]", i)
            if end < 0:
                raise PatternError(f"'[' {where} is never closed")
            out.append(_digit_class(body[i:end + 1]))
            i = end
        else:
            raise PatternError(f"{ch!r} {where}: use digits, X, Z, N, [1-5], . or !")
        i += 1
    return DialPattern(text.strip(), re.compile("".join(out)))


def _digit_class(text: str) -> str:
    inner = text[1:-1]
    if not re.fullmatch(r"([0-9](-[0-9])?)+", inner):
        raise PatternError(f"{text}: a class holds digits and ranges such as [0236-9]")
    for low, high in re.findall(r"([0-9])-([0-9])", inner):
        if low > high:
            raise PatternError(f"{text}: the range {low}-{high} runs backwards")
    return text


def check_caller_id(value: str) -> str:
    """``user``, ``trunk``, ``anonymous`` or an E.164 number, else ValueError."""
    if value in CALLER_ID_CHOICES or re.match(FIXED_CALLER_ID, value):
        return value
    raise ValueError(f"use {', '.join(CALLER_ID_CHOICES)} or an E.164 number such as "
                     "+4681234567")


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    patterns: tuple[DialPattern, ...]
    trunks: tuple[str, ...]  # by name, failover order
    strip: int = 0
    prepend: str = ""
    caller_id: str = "user"

    def matches(self, number: str) -> bool:
        return any(pattern.matches(number) for pattern in self.patterns)

    @classmethod
    def of(cls, row: OutboundRoute) -> Route:
        """A stored route (checked when it was stored: PatternError otherwise)."""
        return cls(row.name, tuple(parse_pattern(p) for p in split_commas(row.patterns)),
                   split_commas(row.trunks), row.strip, row.prepend, row.caller_id)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who calls: the extension and the number it shows outward, from the numbers
    table (its profile's, else its own ``caller_id_number``); "" when it has none.
    Never the extension number itself: that means nothing outside."""

    extension: str
    outward: str = ""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One trunk to try: the called number and the caller ID as it wants them."""

    trunk: str
    number: str
    caller_id: str  # "" when there is none to show


@dataclass(frozen=True, slots=True)
class OutboundPlan:
    route: str  # the route that matched ("" for an emergency call no route named)
    number: ExternalNumber
    attempts: tuple[Attempt, ...]  # in order: the next one when a trunk fails
    privacy: bool  # RFC 3325: send From anonymous, the identity in P-Asserted-Identity


def plan(routes: Sequence[Route], trunks: Mapping[str, TrunkSettings], dialling: NumberingPlan,
         number: ExternalNumber, caller: Caller) -> OutboundPlan | Refusal:
    """How ``number`` (already normalised) leaves: the trunks to try, in order,
    or why it cannot.  Trunks that are unknown, disabled, or want national
    numbers in a country without a plan here are passed over.  An emergency
    number takes the first route matching it and then every other route's
    trunks: it must get out on whatever works."""
    route = next((r for r in routes if r.matches(number.number)), None)
    if number.emergency:
        names = [*(route.trunks if route else ()), *(t for r in routes for t in r.trunks)]
    elif route is None:
        return Refusal(404, f"No outbound route for {number.number}", "route")
    else:
        names = list(route.trunks)
    attempts: list[Attempt] = []
    for name in dict.fromkeys(names):
        trunk = trunks.get(name)
        country = COUNTRIES.get(trunk.country) if trunk is not None else None
        if trunk is None or not trunk.enabled or (country is None
                                                  and trunk.number_format == "national"):
            continue
        where = country or dialling.country
        sent = carrier_format(number, trunk.number_format, where)
        if not number.emergency and route is not None:
            sent = route.prepend + sent[route.strip:]
        identity = _identity(route.caller_id if route else "user", trunk, where, dialling,
                             caller)
        shown = carrier_format(identity, trunk.number_format, where) if identity else ""
        attempts.append(Attempt(name, sent, shown))
    if not attempts:
        which = f"route {route.name}" if route else "any route"
        return Refusal(503, f"No trunk of {which} is available", "route")
    privacy = route is not None and route.caller_id == "anonymous" and not number.emergency
    return OutboundPlan(route.name if route else "", number, tuple(attempts), privacy)


def _identity(choice: str, trunk: TrunkSettings, where: Country, dialling: NumberingPlan,
              caller: Caller) -> ExternalNumber | None:
    """The number a call shows (before privacy hides it), by the route's choice:
    the organisation's numbers read in its country, the trunk's in the trunk's."""
    main = (trunk.dids[0], where) if trunk.dids else ("", where)
    candidates = {"user": ((caller.outward, dialling.country), main),
                  "anonymous": ((caller.outward, dialling.country), main),
                  "trunk": (main,)}.get(choice, ((choice, dialling.country),))
    for candidate, country in candidates:
        if not candidate:
            continue
        try:
            found = country.parse(candidate)
        except NumberError:
            continue
        if not found.emergency:
            return found
    return None
