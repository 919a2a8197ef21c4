"""The voicemail menu's pure part: what the caller hears and what changes in
the mailbox, key by key (Asterisk's VoiceMailMain): messages, the mailbox
options on 0 (greetings, PIN), logging in with mailbox and PIN, shared
mailboxes after one's own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlmodel import Session

from media.languages import TEXTS
from pbx.models import Voicemail
from pbx.store import Store
from pbx.voicemail import discard_message, mailbox_messages, mark_heard
from ivr.mailbox_menu import (
    MAX_TIMEOUTS, CheckPin, Delete, HangUp, MailboxMenu, MarkHeard, MessageRef, OpenMailbox,
    PlayMessage, RecordGreeting, Say, SayName, SetPin, StopRecording, announcement, counted,
    trim_silence,
)

KEYS = Say(("message_options", "mailbox_options_key"))
GOODBYE = [Say(("goodbye",)), HangUp()]
OPTIONS = [Say(("greeting_menu",))]


def mailbox() -> list[MessageRef]:
    """Two new messages (10 left after 12, by id) and one saved, oldest of all."""
    return [MessageRef(12, False, 200.0), MessageRef(10, False, 300.0),
            MessageRef(7, True, 100.0)]


def started() -> MailboxMenu:
    menu = MailboxMenu()
    menu.start(mailbox())
    return menu


def test_counts_are_said_with_prompts() -> None:
    assert announcement(0, 0) == ("no_messages",)
    assert announcement(1, 0) == ("you_have", "number_1", "new_message")
    assert announcement(2, 1) == ("you_have", "number_2", "new_messages", "and", "number_1",
                                  "saved_message")
    assert announcement(0, 3) == ("you_have", "number_3", "saved_messages")
    assert counted(20) == ("number_20",)
    assert counted(21) == counted(500) == ("more_than_twenty",)
    said = {name for n in (1, 5, 20, 21) for name in announcement(n, n)}
    for language in ("en", "sv"):  # every prompt the menu says exists in both languages
        assert said | {*KEYS.prompts, "message_deleted", "message_saved", "no_more_messages",
                       "goodbye", "greeting_menu", "shared_mailbox_key", "enter_mailbox",
                       "enter_your_pin", "wrong_pin", "temporary_greeting_days",
                       "enter_new_pin", "confirm_new_pin", "pin_rules", "pin_changed",
                       "greeting_saved", "record_after_tone"} <= set(TEXTS[language])


def test_no_messages_says_so_offers_the_options_then_hangs_up() -> None:
    menu = MailboxMenu()
    assert menu.start([]) == [Say(("no_messages", "mailbox_options_key"))]
    assert menu.key("5") == []
    assert menu.timeout() == GOODBYE  # one wait at the end, not three
    assert menu.key("0") == [] and menu.timeout() == []  # the call is ending


def test_new_messages_oldest_first_then_saved_ones_each_marked_heard_once() -> None:
    menu = MailboxMenu()
    assert menu.start(mailbox()) == [
        Say(("you_have", "number_2", "new_messages", "and", "number_1", "saved_message")),
        PlayMessage(12), KEYS, MarkHeard(12),
    ]
    assert menu.key("#") == [PlayMessage(10), KEYS, MarkHeard(10)]
    assert menu.key("#") == [PlayMessage(7), KEYS]  # saved already: nothing to mark
    assert menu.key("*") == [PlayMessage(10), KEYS]  # back: heard by now
    assert menu.key("5") == [PlayMessage(10), KEYS]
    assert menu.key("9") == [Say(("message_saved",)), PlayMessage(7), KEYS]
    assert menu.key("#") == [Say(("no_more_messages", "mailbox_options_key"))]
    assert menu.key("#") == []
    assert menu.key("*") == [PlayMessage(7), KEYS]  # back to the last one


def test_seven_deletes_and_the_next_message_takes_its_place() -> None:
    menu = started()
    assert menu.key("7") == [Delete(12), Say(("message_deleted",)), PlayMessage(10), KEYS,
                             MarkHeard(10)]
    assert menu.key("7") == [Delete(10), Say(("message_deleted",)), PlayMessage(7), KEYS]
    assert menu.key("7") == [Delete(7), Say(("message_deleted",)),
                             Say(("no_more_messages", "mailbox_options_key"))]
    assert menu.messages == []


def test_previous_at_the_first_message_plays_it_again() -> None:
    menu = started()
    assert menu.key("*") == [PlayMessage(12), KEYS]


def test_zero_opens_the_options_and_other_keys_do_nothing() -> None:
    menu = started()
    for key in "123468ABCD":
        assert menu.key(key) == []
    assert menu.key("0") == OPTIONS
    assert menu.key("*") == [PlayMessage(12), KEYS]  # back where the caller was


def test_silence_asks_for_a_key_again_then_says_goodbye() -> None:
    menu = started()
    for _ in range(MAX_TIMEOUTS - 1):
        assert menu.timeout() == [KEYS]
    assert menu.timeout() == GOODBYE


def test_a_key_starts_the_patience_over() -> None:
    menu = started()
    for _ in range(MAX_TIMEOUTS - 1):
        menu.timeout()
    menu.key("5")
    assert menu.timeout() == [KEYS]


@pytest.mark.parametrize("broken", [12, 10])
def test_a_message_that_cannot_play_is_skipped(broken: int) -> None:
    menu = started()
    if broken == 10:
        menu.key("#")
    after = {12: [PlayMessage(10), KEYS, MarkHeard(10)], 10: [PlayMessage(7), KEYS]}
    assert menu.skipped(broken) == after[broken]
    assert broken not in [m.id for m in menu.messages]


def test_the_only_message_cannot_play() -> None:
    menu = MailboxMenu()
    menu.start([MessageRef(3, False, 1.0)])
    assert menu.skipped(3) == [Say(("no_more_messages", "mailbox_options_key"))]


def test_the_store_operations_the_menu_and_the_api_share(tmp_path: Path) -> None:
    store = Store("sqlite://")
    wav = tmp_path / "m.wav"
    wav.write_bytes(b"RIFF")
    with Session(store.engine) as db:
        for created, box in ((300.0, "1001"), (100.0, "1001"), (200.0, "1002")):
            db.add(Voicemail(organisation_id=1, mailbox=box, path=str(wav), created_at=created))
        db.commit()
        first, second = mailbox_messages(db, 1, "1001")
        assert (first.created_at, second.created_at) == (100.0, 300.0)
        assert mailbox_messages(db, 2, "1001") == []
        mark_heard(db, first)
        assert store.mailbox_counts(1, "1001") == (1, 1)
        discard_message(db, first)
    assert store.mailbox_counts(1, "1001") == (1, 0)
    assert not wav.exists()


# ------------------------------------------------------------------ the mailbox options


def test_greetings_are_recorded_from_the_options() -> None:
    menu = started()
    menu.key("0")
    for key, kind in (("1", "unavailable"), ("2", "busy"), ("3", "name")):
        assert menu.key(key) == [RecordGreeting(kind)]
        assert menu.key("5") == [] and menu.timeout() == []  # recording: only # counts
        assert menu.key("#") == [StopRecording()]
        assert menu.recorded(True) == [Say(("greeting_saved", "greeting_menu"))]
    menu.key("1")
    assert menu.recorded(False) == OPTIONS  # nothing was said: nothing kept


def test_a_temporary_greeting_asks_for_its_days_first() -> None:
    menu = started()
    menu.key("0")
    assert menu.key("4") == [Say(("temporary_greeting_days",))]
    menu.key("0")
    assert menu.key("#") == [Say(("invalid_option",)), Say(("temporary_greeting_days",))]
    for key in "400":  # more than a year
        menu.key(key)
    assert menu.key("#") == [Say(("invalid_option",)), Say(("temporary_greeting_days",))]
    menu.key("7")
    assert menu.timeout() == [RecordGreeting("temporary", 7)]  # keyed, then silence: counts


def test_the_pin_is_changed_twice_keyed_with_its_rules() -> None:
    menu = started()
    menu.key("0")
    assert menu.key("5") == [Say(("enter_new_pin",))]
    for key in "12#":
        answer = menu.key(key)
    assert answer == [Say(("pin_rules",)), Say(("enter_new_pin",))]
    for key in "4321#":
        answer = menu.key(key)
    assert answer == [Say(("confirm_new_pin",))]
    for key in "4320#":
        answer = menu.key(key)
    assert answer == [Say(("wrong_pin",)), Say(("enter_new_pin",))]
    for key in "4321#4321#":
        answer = menu.key(key)
    assert answer == [SetPin("4321"), Say(("pin_changed", "greeting_menu"))]
    assert menu.key("5") == [Say(("enter_new_pin",))]
    assert menu.key("*") == OPTIONS  # changed its mind


def test_the_options_wait_then_say_goodbye() -> None:
    menu = started()
    menu.key("0")
    for _ in range(MAX_TIMEOUTS - 1):
        assert menu.timeout() == OPTIONS
    assert menu.timeout() == GOODBYE


def test_the_options_of_an_empty_mailbox() -> None:
    menu = MailboxMenu()
    menu.start([])
    assert menu.key("0") == OPTIONS
    assert menu.key("*") == [Say(("no_more_messages", "mailbox_options_key"))]


# ------------------------------------------------------------------ getting in


def test_from_another_phone_the_mailbox_and_its_pin_are_asked() -> None:
    menu = MailboxMenu()
    assert menu.ask_mailbox() == [Say(("enter_mailbox",))]
    assert menu.key("#") == [Say(("enter_mailbox",))]  # nothing keyed: asked again
    for key in "1002":
        assert menu.key(key) == []
    assert menu.key("#") == [Say(("enter_your_pin",))]
    for key in "1234":
        menu.key(key)
    assert menu.key("#") == [CheckPin("1002", "1234")]
    assert menu.key("7") == [] and menu.timeout() == []  # while the PIN is checked
    assert menu.pin_checked(True, ("1002", "2000")) == [OpenMailbox("1002")]
    assert menu.mailbox == "1002"


def test_three_wrong_pins_and_the_pbx_hangs_up() -> None:
    menu = MailboxMenu()
    menu.ask_mailbox()
    for _ in range(2):
        for key in "1002#9999#":
            menu.key(key)
        assert menu.pin_checked(False) == [Say(("wrong_pin",)), Say(("enter_mailbox",))]
    for key in "1002#9999":
        menu.key(key)
    assert menu.timeout() == [CheckPin("1002", "9999")]  # keyed, then silence: counts
    assert menu.pin_checked(False) == [Say(("wrong_pin", "goodbye")), HangUp()]
    assert menu.key("1") == []


def test_on_ones_own_phone_only_the_pin_is_asked_again() -> None:
    menu = MailboxMenu()
    assert menu.ask_pin("1002") == [Say(("enter_your_pin",))]
    for key in "11#":
        answer = menu.key(key)
    assert answer == [CheckPin("1002", "11")]
    assert menu.pin_checked(False) == [Say(("wrong_pin",)), Say(("enter_your_pin",))]
    for _ in range(MAX_TIMEOUTS - 1):
        assert menu.timeout() == [Say(("enter_your_pin",))]
    assert menu.timeout() == GOODBYE


def test_shared_mailboxes_follow_ones_own_with_their_names() -> None:
    menu = MailboxMenu()
    assert menu.open(("1002", "2000", "2001")) == [OpenMailbox("1002")]
    assert menu.start([]) == [Say(("no_messages", "mailbox_options_key")),
                              Say(("shared_mailbox_key",)), SayName("2000")]
    assert menu.key("2") == [OpenMailbox("2000")]
    assert menu.mailbox == "2000"
    assert menu.start([MessageRef(4, False, 1.0)])[-1] == MarkHeard(4)
    assert menu.key("#") == [Say(("no_more_messages", "mailbox_options_key")),
                             Say(("shared_mailbox_key",)), SayName("2001")]
    menu.key("2")
    assert menu.start([]) == [Say(("no_messages", "mailbox_options_key"))]  # the last one
    assert menu.key("2") == []


def test_silence_is_trimmed_from_a_recorded_greeting() -> None:
    voice = (np.sin(np.arange(4000) * 0.3) * 5000).astype(np.int16)
    quiet = np.zeros(8000, dtype=np.int16)
    trimmed = trim_silence(np.concatenate([quiet, voice, quiet]))
    assert 3840 <= len(trimmed) <= 4160
    assert len(trim_silence(quiet)) == 0
