"""What a caller at a mailbox hears and what their keys do, pure: the greeting
chosen by the diversion reason and a temporary greeting's validity, the spoken
defaults, and the caller-option machine (Telavox "hänvisning")."""

from __future__ import annotations

import numpy as np

from ivr.voicemail_greeting import (
    AskCallback, CallerOptions, CampOn, Greet, KeepCallback, LeaveMessage, Redirect,
    choose_greeting, default_greeting,
)
from media.languages import TEXTS

NOW = 1_800_000_000.0
EVERY_KIND = {"unavailable": None, "busy": None, "name": None}


def test_the_diversion_reason_picks_busy_or_unavailable() -> None:
    assert choose_greeting(EVERY_KIND, "user-busy", NOW) == "busy"
    for reason in ("no-answer", "unavailable", "unconditional", ""):
        assert choose_greeting(EVERY_KIND, reason, NOW) == "unavailable"


def test_a_missing_greeting_means_the_spoken_default() -> None:
    assert choose_greeting({"unavailable": None}, "user-busy", NOW) is None
    assert choose_greeting({"busy": None, "name": None}, "no-answer", NOW) is None
    assert choose_greeting({}, "user-busy", NOW) is None


def test_a_temporary_greeting_replaces_the_others_while_it_is_valid() -> None:
    recorded = {**EVERY_KIND, "temporary": NOW + 3600}
    assert choose_greeting(recorded, "user-busy", NOW) == "temporary"
    assert choose_greeting(recorded, "no-answer", NOW + 3599) == "temporary"
    assert choose_greeting(recorded, "no-answer", NOW + 3600) == "unavailable"  # it ended
    assert choose_greeting({"temporary": NOW - 1}, "no-answer", NOW) is None
    assert choose_greeting({"temporary": None}, "user-busy", NOW) == "temporary"  # no end


def test_spoken_defaults_say_the_extension_or_the_recorded_name() -> None:
    assert default_greeting("no-answer", "1002", None) == (
        "the_person_at", "digit_1", "digit_0", "digit_0", "digit_2", "is_not_available")
    assert default_greeting("user-busy", "1002", None)[-1] == "is_busy"
    name = np.ones(800, dtype=np.float32)
    said = default_greeting("user-busy", "1002", name)
    assert said[0] is name and said[1:] == ("is_busy",)
    assert default_greeting("no-answer", None, None) == ("unavailable",)  # a shared mailbox
    for parts in (default_greeting("user-busy", "1002", None), ("unavailable",)):
        assert set(parts) <= set(TEXTS["sv"])


def test_the_options_are_said_after_the_greeting() -> None:
    plain = CallerOptions()
    assert plain.start(("greeting",)) == [Greet(("greeting", "leave_message",
                                                 "callback_option"))]
    busy = CallerOptions(operator="1001", camp_on="1002")
    assert busy.start(("greeting",)) == [Greet(("greeting", "busy_wait", "leave_message_options",
                                                "callback_option"))]
    for said in busy.said_options():
        assert said in TEXTS["de"]


def test_heard_to_the_end_the_tone_comes() -> None:
    options = CallerOptions(operator="1001")
    options.start(())
    assert options.greeted() == [LeaveMessage()]
    assert options.key("0") == []  # recording: keys mean nothing now
    assert options.greeted() == []


def test_hash_and_any_other_key_skip_to_the_tone() -> None:
    for key in "#35*9":
        options = CallerOptions(operator="1001")
        options.start(())
        assert options.key(key) == [LeaveMessage()], key


def test_zero_goes_to_the_operator_when_there_is_one() -> None:
    options = CallerOptions(operator="1001")
    options.start(())
    assert options.key("0") == [Redirect("1001")]
    assert options.greeted() == []
    nobody = CallerOptions()
    nobody.start(())
    assert nobody.key("0") == [LeaveMessage()]


def test_one_waits_only_on_a_busy_greeting_offering_it() -> None:
    options = CallerOptions(camp_on="1002")
    options.start(())
    assert options.key("1") == [CampOn("1002")]
    assert options.key("5") == []
    assert options.free() == [Redirect("1002")]
    assert options.gave_up() == []
    unavailable = CallerOptions()
    unavailable.start(())
    assert unavailable.key("1") == [LeaveMessage()]


def test_a_wait_that_ends_or_is_given_up_leads_to_a_message() -> None:
    options = CallerOptions(camp_on="1002")
    options.start(())
    options.key("1")
    assert options.gave_up() == [LeaveMessage(("leave_message",))]
    assert options.free() == []
    waiting = CallerOptions(camp_on="1002")
    waiting.start(())
    waiting.key("1")
    assert waiting.key("#") == [LeaveMessage(("leave_message",))]


def test_two_takes_a_call_back_number_ended_by_hash() -> None:
    options = CallerOptions()
    options.start(())
    assert options.key("2") == [AskCallback()]
    for key in "0701234567":
        assert options.key(key) == []
    assert options.key("#") == [KeepCallback("0701234567")]
    assert options.key("1") == []


def test_star_starts_the_number_over_and_an_empty_one_is_asked_again() -> None:
    options = CallerOptions()
    options.start(())
    options.key("2")
    assert options.key("#") == [AskCallback()]
    options.key("9")
    assert options.key("*") == [AskCallback()]
    for key in "123A":  # A-D are no digits of a number
        options.key(key)
    assert options.key("#") == [KeepCallback("123")]


def test_silence_keeps_what_was_keyed_or_falls_back_to_a_message() -> None:
    keyed = CallerOptions()
    keyed.start(())
    keyed.key("2")
    keyed.key("4")
    keyed.key("2")
    assert keyed.timeout() == [KeepCallback("42")]
    silent = CallerOptions()
    silent.start(())
    assert silent.timeout() == []  # nothing to time out at the greeting
    silent.key("2")
    assert silent.timeout() == [LeaveMessage(("leave_message",))]
