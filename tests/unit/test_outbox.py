"""The outbox state machine with ``now`` moved by hand: the back-off schedule,
an outage that lasts days, permanent refusals, and moves the table forbids."""

from __future__ import annotations

import pytest

from ivr.outbox import (
    GIVE_UP_AFTER, OutboxStateError, record_dropped, record_failure, record_sent,
    retry_delay,
)
from pbx.models import OutboxEmail

T0 = 1_800_000_000.0


def row() -> OutboxEmail:
    return OutboxEmail(id=1, voicemail_id=7, recipient="b@example.com", created_at=T0, due_at=T0)


def test_the_back_off_doubles_from_30_s_to_an_hour() -> None:
    assert [retry_delay(n) for n in range(1, 11)] == [
        30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]


def test_a_failed_attempt_is_counted_and_the_row_comes_due_again() -> None:
    email = row()
    record_failure(email, T0, "SMTPConnectError: connection refused", permanent=False)
    assert (email.state, email.attempts, email.due_at) == ("pending", 1, T0 + 30)
    assert email.last_error == "SMTPConnectError: connection refused"
    record_failure(email, T0 + 30, "SMTPConnectError: connection refused", permanent=False)
    assert (email.attempts, email.due_at) == (2, T0 + 90)
    record_sent(email, T0 + 95)
    assert (email.state, email.attempts, email.sent_at, email.last_error) == (
        "sent", 3, T0 + 95, "")


def test_an_outage_of_days_is_ridden_out_then_given_up_after_five() -> None:
    email = row()
    now = T0
    while email.state == "pending":
        assert email.due_at == now
        record_failure(email, now, "SMTPServerDisconnected: gone", permanent=False)
        if email.state == "pending":
            assert email.due_at - now == retry_delay(email.attempts)
            now = email.due_at
    assert email.state == "failed"
    assert email.last_error == f"gave up after {email.attempts} attempts: " \
                               "SMTPServerDisconnected: gone"
    assert GIVE_UP_AFTER - 3600 < now - T0 <= GIVE_UP_AFTER  # the last try, within five days
    assert 7 + 115 < email.attempts < 7 + 120  # seven until the hourly pace, then hourly


def test_a_5xx_refusal_ends_it_at_once() -> None:
    email = row()
    record_failure(email, T0, "recipient refused: (550, 'no such user')", permanent=True)
    assert (email.state, email.attempts) == ("failed", 1)


def test_a_message_deleted_first_drops_its_email_without_an_attempt() -> None:
    email = row()
    record_dropped(email, "the message was deleted first")
    assert (email.state, email.attempts, email.last_error) == (
        "dropped", 0, "the message was deleted first")


@pytest.mark.parametrize("done", ["sent", "failed", "dropped"])
def test_a_finished_row_cannot_move_again(done: str) -> None:
    email = row()
    email.state = done
    with pytest.raises(OutboxStateError, match=f"{done} cannot become"):
        record_sent(email, T0)
    with pytest.raises(OutboxStateError):
        record_failure(email, T0, "x", permanent=False)
    with pytest.raises(OutboxStateError):
        record_dropped(email, "x")
