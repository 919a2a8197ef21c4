"""The voicemail menu's pure part: what the caller hears and what changes in
the mailbox, key by key (Asterisk's VoiceMailMain, small)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session

from media.languages import TEXTS
from pbx.models import Voicemail
from pbx.store import Store
from pbx.voicemail import discard_message, mailbox_messages, mark_heard
from ivr.mailbox_menu import (
    MAX_TIMEOUTS, Delete, HangUp, MailboxMenu, MarkHeard, MessageRef, PlayMessage, Say,
    announcement, counted,
)

KEYS = Say(("message_keys",))
GOODBYE = [Say(("goodbye",)), HangUp()]


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
        assert said | {"message_keys", "message_deleted", "message_saved",
                       "no_more_messages", "goodbye"} <= set(TEXTS[language])


def test_no_messages_says_so_and_hangs_up() -> None:
    menu = MailboxMenu()
    assert menu.start([]) == [Say(("no_messages",)), HangUp()]
    assert menu.key("5") == [] and menu.timeout() == []  # the call is ending


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
    assert menu.key("#") == [Say(("no_more_messages", "goodbye")), HangUp()]
    assert menu.key("#") == []


def test_seven_deletes_and_the_next_message_takes_its_place() -> None:
    menu = started()
    assert menu.key("7") == [Delete(12), Say(("message_deleted",)), PlayMessage(10), KEYS,
                             MarkHeard(10)]
    assert menu.key("7") == [Delete(10), Say(("message_deleted",)), PlayMessage(7), KEYS]
    assert menu.key("7") == [Delete(7), Say(("message_deleted",)),
                             Say(("no_more_messages", "goodbye")), HangUp()]
    assert menu.messages == []


def test_previous_at_the_first_message_plays_it_again() -> None:
    menu = started()
    assert menu.key("*") == [PlayMessage(12), KEYS]


def test_zero_ends_and_other_keys_do_nothing() -> None:
    menu = started()
    for key in "123468ABCD":
        assert menu.key(key) == []
    assert menu.key("0") == GOODBYE
    assert menu.key("7") == []


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
    assert menu.skipped(3) == [Say(("no_more_messages", "goodbye")), HangUp()]


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
