"""Toll-fraud guards on a clock moved by hand: calls per hour in a sliding
window, calls at once, international calls and the prefix allow-list, per
extension and per organisation; emergency calls always through, never counted."""

from __future__ import annotations

from pbx.config import CallPolicyConfig
from pbx.limits import TollGuard
from pbx.numbering import COUNTRIES, ExternalNumber, NumberingPlan
from pbx.refusal import Refusal
from tests.fakes import FakeClock

SE = NumberingPlan(COUNTRIES["SE"])
HOME = SE.normalise("08-123 45 67")
DENMARK = SE.normalise("+45 32 12 34 56")
GERMANY = SE.normalise("+49 30 1234567")
SATELLITE = SE.normalise("+881 6 1234 5678")  # a premium destination toll fraud loves
EMERGENCY = SE.normalise("112")
UNLIMITED = CallPolicyConfig(max_outbound_calls=0, max_outbound_per_extension=0,
                             max_calls_per_hour=0, max_org_calls_per_hour=0)


def place(guard: TollGuard, policy: CallPolicyConfig, extension: str, number: ExternalNumber,
          clock: FakeClock, call_id: str, org: int = 1) -> Refusal | None:
    """What call control does: ask, and count the call if it goes out."""
    refusal = guard.check(org, policy, extension, number, clock.now())
    if refusal is None:
        guard.started(org, extension, call_id, number, clock.now())
    return refusal


def test_three_calls_an_hour_then_the_fourth_is_refused_until_the_first_is_an_hour_old(
    clock: FakeClock,
) -> None:
    guard, policy = TollGuard(), UNLIMITED.model_copy(update={"max_calls_per_hour": 3})
    for n in range(3):
        assert place(guard, policy, "1001", HOME, clock, f"c{n}") is None
        guard.ended(f"c{n}")
        clock.advance(600)
    fourth = place(guard, policy, "1001", HOME, clock, "c3")
    assert fourth == Refusal(403, "Outbound calls in an hour: the limit per extension is 3", "rate")
    assert isinstance(fourth, Refusal)
    assert fourth.phrase == "Forbidden - Outbound calls in an hour: the limit per extension is 3"
    assert place(guard, policy, "1002", HOME, clock, "other") is None  # per extension
    clock.advance(1799)  # 3599 s after the first call: still within its hour
    assert place(guard, policy, "1001", HOME, clock, "c3") is not None
    clock.advance(1)  # the first call is an hour old: out of the window
    assert place(guard, policy, "1001", HOME, clock, "c3") is None
    assert place(guard, policy, "1001", HOME, clock, "c4") is not None


def test_calls_at_once_per_extension_and_for_the_organisation(clock: FakeClock) -> None:
    guard = TollGuard()
    policy = UNLIMITED.model_copy(update={"max_outbound_per_extension": 2,
                                          "max_outbound_calls": 3})
    assert place(guard, policy, "1001", HOME, clock, "a1") is None
    assert place(guard, policy, "1001", HOME, clock, "a2") is None
    assert place(guard, policy, "1001", HOME, clock, "a3") == Refusal(
        403, "Outbound calls at once: the limit per extension is 2", "concurrent")
    assert place(guard, policy, "1002", HOME, clock, "b1") is None
    assert place(guard, policy, "1003", HOME, clock, "c1") == Refusal(
        403, "Outbound calls at once: the limit for the organisation is 3", "concurrent")
    assert place(guard, policy, "1003", HOME, clock, "t2", org=2) is None  # another tenant
    guard.ended("a1")
    guard.ended("a1")  # a second report of the same end changes nothing
    guard.ended("never-started")
    assert place(guard, policy, "1003", HOME, clock, "c1") is None
    assert place(guard, policy, "1001", HOME, clock, "a4") == Refusal(
        403, "Outbound calls at once: the limit for the organisation is 3", "concurrent")
    guard.ended("b1")
    assert place(guard, policy, "1001", HOME, clock, "a4") is None  # 1001 has two again
    assert place(guard, policy, "", HOME, clock, "queue") is not None  # org limit still binds


def test_the_organisations_calls_per_hour_count_every_extension(clock: FakeClock) -> None:
    guard, policy = TollGuard(), UNLIMITED.model_copy(update={"max_org_calls_per_hour": 2})
    assert place(guard, policy, "1001", HOME, clock, "x") is None
    assert place(guard, policy, "", HOME, clock, "callback") is None  # a queue's callback
    assert place(guard, policy, "1002", HOME, clock, "y") == Refusal(
        403, "Outbound calls in an hour: the limit for the organisation is 2", "rate")
    clock.advance(3600)
    assert place(guard, policy, "1002", HOME, clock, "y") is None


def test_emergency_calls_are_never_refused_and_never_counted(clock: FakeClock) -> None:
    guard = TollGuard()
    closed = CallPolicyConfig(max_outbound_calls=1, max_outbound_per_extension=1,
                              max_calls_per_hour=1, max_org_calls_per_hour=1,
                              international=False)
    assert place(guard, closed, "1001", HOME, clock, "ordinary") is None
    assert place(guard, closed, "1001", HOME, clock, "second") is not None  # the limits bind
    for n in range(5):
        assert place(guard, closed, "1001", EMERGENCY, clock, f"sos{n}") is None
    guard.ended("ordinary")
    clock.advance(3600)
    assert place(guard, closed, "1001", HOME, clock, "later") is None  # the 112s did not count


def test_international_calls_off_or_limited_to_an_allow_list(clock: FakeClock) -> None:
    guard = TollGuard()
    home_only = UNLIMITED.model_copy(update={"international": False})
    assert place(guard, home_only, "1001", HOME, clock, "h") is None
    assert place(guard, home_only, "1001", DENMARK, clock, "d") == Refusal(
        403, "International calls are not allowed", "international")
    nordic = UNLIMITED.model_copy(update={"international_prefixes": ("+45", "+47", "+358",
                                                                     "+4930")})
    assert place(guard, nordic, "1001", DENMARK, clock, "d") is None
    assert place(guard, nordic, "1001", GERMANY, clock, "g") is None  # +4930: Berlin only
    assert place(guard, nordic, "1001", SE.normalise("+49 89 1234567"), clock, "m") == Refusal(
        403, "Calls abroad go only to +45, +47, +358, +4930", "international")
    assert place(guard, nordic, "1001", SATELLITE, clock, "s") is not None
    assert place(guard, nordic, "1001", HOME, clock, "h2") is None  # home is not abroad
    anywhere = UNLIMITED.model_copy(update={"international": True})
    assert place(guard, anywhere, "1001", SATELLITE, clock, "s") is None


def test_a_call_that_tries_another_number_is_counted_once(clock: FakeClock) -> None:
    """A call forwarded on to a second external number (the first did not
    answer) is still one call, but the second number must be allowed too."""
    guard = TollGuard()
    policy = UNLIMITED.model_copy(update={"max_outbound_per_extension": 1,
                                          "max_calls_per_hour": 1,
                                          "international_prefixes": ("+45",)})
    assert place(guard, policy, "1001", HOME, clock, "call-1") is None
    assert guard.check(1, policy, "1001", DENMARK, clock.now(), "call-1") is None
    assert guard.check(1, policy, "1001", GERMANY, clock.now(), "call-1") == Refusal(
        403, "Calls abroad go only to +45", "international")
    assert guard.check(1, policy, "1001", DENMARK, clock.now(), "call-2") is not None
