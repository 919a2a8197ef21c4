"""Outbound routes: FreePBX dial patterns on E.164 numbers, routes in order,
trunks in failover order, number rewriting per trunk and route, the caller ID
a route chooses, and emergency calls that get out on any trunk."""

from __future__ import annotations

import pytest

from pbx.models import OutboundRoute
from pbx.numbering import COUNTRIES, ExternalNumber, NumberingPlan
from pbx.outbound import (
    Attempt, Caller, OutboundPlan, PatternError, Route, check_caller_id, parse_pattern, plan,
)
from pbx.refusal import Refusal
from pbx.trunks.settings import TrunkSettings

SE = NumberingPlan(COUNTRIES["SE"])


def trunk(name: str, number_format: str, *dids: str, **settings: object) -> TrunkSettings:
    return TrunkSettings(name=name, host=f"{name}.example", auth="ip",  # type: ignore[arg-type]
                         number_format=number_format, dids=dids, **settings)


TRUNKS = {t.name: t for t in (
    trunk("carrier-a", "e164", "+4681230000", "+4681230001"),
    trunk("carrier-b", "national", "081239999"),  # its DIDs written its way
    trunk("cheap-intl", "e164-noplus"),
)}
ANNA = Caller("1001", "+4681234501")
NOBODY = Caller("1009")  # shows no number of its own


def route(name: str, patterns: str, trunks: str, **fields: object) -> Route:
    return Route.of(OutboundRoute(organisation_id=1, name=name, patterns=patterns,
                                  trunks=trunks, **fields))


@pytest.mark.parametrize(("pattern", "matching", "other"), [
    ("+46.", ["+4681234567", "+46701234567"], ["+4532123456", "+46", "112"]),
    ("+467[02369]XXXXXXX", ["+46701234567", "+46791234567"], ["+46711234567", "+4670123456"]),
    ("+.", ["+4681234567", "+12125550100"], ["112", "+"]),
    ("+!", ["+", "+4681234567"], ["112"]),
    ("112", ["112"], ["1120", "+46112"]),
    ("_+1NXXNXXXXXX", ["+12125550100"], ["+11125550100", "+1212555010"]),
    ("+4[57-9].", ["+4532123456", "+4722123456", "+49301234567"], ["+4681234567", "+4412"]),
    ("+358Z.", ["+35891234567"], ["+35801234567"]),
    ("+45zxxxxxxx", ["+4532123456"], ["+4502123456"]),  # letters are case-blind
])
def test_dial_patterns_match_e164_numbers(pattern: str, matching: list[str],
                                          other: list[str]) -> None:
    parsed = parse_pattern(pattern)
    assert [n for n in matching if not parsed.matches(n)] == []
    assert [n for n in other if parsed.matches(n)] == []


@pytest.mark.parametrize(("pattern", "reason"), [
    ("", "a pattern needs at least one character"),
    ("_", "a pattern needs at least one character"),
    ("+", "'+' alone matches nothing; '+.' matches every number"),
    ("+46.X", "'.' at 4 must be the last character"),
    ("+46!1", "'!' at 4 must be the last character"),
    ("46+", "'+' at 3: it comes only first"),
    ("+46[0-9", "'[' at 4 is never closed"),
    ("+46[]", "[]: a class holds digits and ranges such as [0236-9]"),
    ("+46[a-c]", "[a-c]: a class holds digits and ranges such as [0236-9]"),
    ("+46[9-1]", "[9-1]: the range 9-1 runs backwards"),
    ("+46 8", "' ' at 4: use digits, X, Z, N, [1-5], . or !"),
    ("+46A", "'A' at 4: use digits, X, Z, N, [1-5], . or !"),
    ("^+46.*$", "'^' at 1: use digits, X, Z, N, [1-5], . or !"),
    ("X" * 41, "a pattern has at most 40 characters"),
])
def test_bad_patterns_are_refused_with_what_is_wrong(pattern: str, reason: str) -> None:
    with pytest.raises(PatternError) as refused:
        parse_pattern(pattern)
    assert str(refused.value) == reason


def test_caller_id_choices() -> None:
    for good in ("user", "trunk", "anonymous", "+4681234567"):
        assert check_caller_id(good) == good
    for bad in ("", "USER", "4681234567", "+46", "1001"):
        with pytest.raises(ValueError, match="use user, trunk, anonymous or an E.164 number"):
            check_caller_id(bad)


def test_the_first_matching_route_takes_the_call_over_its_trunks_in_order() -> None:
    routes = [route("mobiles", "+467[02369]XXXXXXX", "carrier-b"),
              route("sweden", "+46.", "carrier-a, carrier-b"),
              route("world", "+.", "cheap-intl, carrier-a")]
    home = plan(routes, TRUNKS, SE, SE.normalise("08-123 45 67"), ANNA)
    assert home == OutboundPlan("sweden", ExternalNumber("+4681234567"), (
        Attempt("carrier-a", "+4681234567", "+4681234501"),
        Attempt("carrier-b", "081234567", "081234501"),  # its format, caller ID too
    ), privacy=False)
    mobile = plan(routes, TRUNKS, SE, SE.normalise("070-123 45 67"), ANNA)
    assert isinstance(mobile, OutboundPlan) and mobile.route == "mobiles"
    assert [a.trunk for a in mobile.attempts] == ["carrier-b"]
    abroad = plan(routes, TRUNKS, SE, SE.normalise("00 45 32 12 34 56"), ANNA)
    assert isinstance(abroad, OutboundPlan) and abroad.route == "world"
    assert abroad.attempts == (Attempt("cheap-intl", "4532123456", "4681234501"),
                               Attempt("carrier-a", "+4532123456", "+4681234501"))


def test_no_route_is_404_and_a_route_without_known_trunks_is_503() -> None:
    routes = [route("sweden", "+46.", "carrier-a"), route("gone", "+45.", "old-carrier")]
    assert plan(routes, TRUNKS, SE, SE.normalise("+1 212 555 0100"), ANNA) == Refusal(
        404, "No outbound route for +12125550100", "route")
    refused = plan(routes, TRUNKS, SE, SE.normalise("+45 32 12 34 56"), ANNA)
    assert refused == Refusal(503, "No trunk of route gone is available", "route")
    assert isinstance(refused, Refusal)
    assert refused.phrase == "Service Unavailable - No trunk of route gone is available"
    partly = plan([route("sweden", "+46.", "old-carrier, carrier-a")], TRUNKS, SE,
                  SE.normalise("08-123 45 67"), ANNA)
    assert isinstance(partly, OutboundPlan)
    assert [a.trunk for a in partly.attempts] == ["carrier-a"]  # the unknown one is skipped


def test_strip_and_prepend_rewrite_the_number_after_the_trunks_format() -> None:
    routes = [route("tech-prefix", "+46.", "carrier-b, carrier-a", strip=1, prepend="1234#")]
    found = plan(routes, TRUNKS, SE, SE.normalise("08-123 45 67"), ANNA)
    assert isinstance(found, OutboundPlan)
    assert [a.number for a in found.attempts] == ["1234#81234567", "1234#4681234567"]


@pytest.mark.parametrize(("choice", "caller", "shown", "privacy"), [
    ("user", ANNA, ["+4681234501", "081234501"], False),
    ("user", NOBODY, ["+4681230000", "081239999"], False),  # each trunk's first DID
    ("user", Caller("1002", "1002"), ["+4681230000", "081239999"], False),  # not a number
    ("trunk", ANNA, ["+4681230000", "081239999"], False),
    ("anonymous", ANNA, ["+4681234501", "081234501"], True),  # asserted, withheld (RFC 3325)
    ("+4681234599", ANNA, ["+4681234599", "081234599"], False),
    ("user", Caller("1003", "08-123 45 02"), ["+4681234502", "081234502"], False),
])
def test_the_caller_id_the_route_chooses(choice: str, caller: Caller, shown: list[str],
                                         privacy: bool) -> None:
    routes = [route("sweden", "+46.", "carrier-a, carrier-b", caller_id=choice)]
    found = plan(routes, TRUNKS, SE, SE.normalise("08-123 45 67"), caller)
    assert isinstance(found, OutboundPlan)
    assert [a.caller_id for a in found.attempts] == shown
    assert found.privacy is privacy


def test_trunks_out_of_service_or_without_a_plan_for_their_country_are_passed_over() -> None:
    trunks = {**TRUNKS, "carrier-a": TRUNKS["carrier-a"].model_copy(update={"enabled": False}),
              "paris": trunk("paris", "national", country="FR"),
              "paris-e164": trunk("paris-e164", "e164", country="FR")}
    routes = [route("sweden", "+46.", "carrier-a, paris, paris-e164, carrier-b")]
    found = plan(routes, trunks, SE, SE.normalise("08-123 45 67"), ANNA)
    assert isinstance(found, OutboundPlan)
    assert [(a.trunk, a.number) for a in found.attempts] == [
        ("paris-e164", "+4681234567"), ("carrier-b", "081234567")]


def test_no_caller_id_at_all_is_none() -> None:
    found = plan([route("world", "+.", "cheap-intl")], TRUNKS, SE,
                 SE.normalise("+1 212 555 0100"), NOBODY)
    assert isinstance(found, OutboundPlan) and found.attempts[0].caller_id == ""


def test_emergency_calls_get_out_on_every_trunk_unrewritten_and_never_anonymous() -> None:
    routes = [route("world", "+.", "cheap-intl", caller_id="anonymous", strip=2, prepend="9"),
              route("sweden", "+46.", "carrier-a, cheap-intl", caller_id="anonymous")]
    emergency = SE.normalise("112")
    found = plan(routes, TRUNKS, SE, emergency, ANNA)
    assert found == OutboundPlan("", emergency, (
        Attempt("cheap-intl", "112", "4681234501"),
        Attempt("carrier-a", "112", "+4681234501"),
    ), privacy=False)
    own = [route("sos", "112", "carrier-b"), *routes]
    first = plan(own, TRUNKS, SE, emergency, ANNA)
    assert isinstance(first, OutboundPlan) and first.route == "sos"
    assert [a.trunk for a in first.attempts] == ["carrier-b", "cheap-intl", "carrier-a"]
    assert plan([], TRUNKS, SE, emergency, ANNA) == Refusal(
        503, "No trunk of any route is available", "route")


def test_stored_routes_are_read_from_their_comma_lists() -> None:
    read = route("sweden", " +46. , 112 ", "carrier-a,carrier-b ,", strip=0, prepend="",
                 caller_id="trunk")
    assert [p.text for p in read.patterns] == ["+46.", "112"]
    assert read.trunks == ("carrier-a", "carrier-b")
    assert read.matches("112") and read.matches("+4681234567") and not read.matches("+45")
