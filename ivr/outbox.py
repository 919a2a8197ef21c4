"""The voicemail outbox as a state machine: pure, ``now`` passed in.

An :class:`~pbx.models.OutboxEmail` row is ``pending`` until it is sent,
refused for good, or out of time, or until its message is deleted before it
went.  A failed attempt that may succeed later (the server is down, busy, or
answers 4xx: RFC 5321 §4.2.1 transient) is tried again after a back-off that
doubles from 30 s up to an hour, for five days (sendmail's queue timeout); a
5xx to the recipient or the message (RFC 5321 §4.2.1 permanent) ends it at
once.  Like h11's state tables: a move not in :data:`MOVES` raises.
"""

from __future__ import annotations

from pbx.models import OutboxEmail

FIRST_RETRY = 30.0  # seconds after the first failed attempt
MAX_RETRY = 3600.0  # the back-off stops doubling at an hour
GIVE_UP_AFTER = 5 * 86400.0  # a row still unsent this long after its message fails
KEEP_DONE = 30 * 86400.0  # sent, failed and dropped rows are kept this long (who got what)

MOVES: dict[str, frozenset[str]] = {
    "pending": frozenset({"pending", "sent", "failed", "dropped"}),
    "sent": frozenset(),
    "failed": frozenset(),
    "dropped": frozenset(),
}


class OutboxStateError(RuntimeError):
    """A row was moved where the table does not allow (a bug, not a peer's fault)."""


def retry_delay(attempts: int) -> float:
    """Seconds from the ``attempts``-th failed attempt to the next: 30, 60, 120 … 3600."""
    return min(FIRST_RETRY * 2 ** max(attempts - 1, 0), MAX_RETRY)


def _move(row: OutboxEmail, state: str) -> None:
    if state not in MOVES[row.state]:
        raise OutboxStateError(f"outbox row {row.id}: {row.state} cannot become {state}")
    row.state = state


def record_sent(row: OutboxEmail, now: float) -> None:
    """The server took the email (250 to DATA)."""
    _move(row, "sent")
    row.attempts += 1
    row.sent_at = now
    row.last_error = ""


def record_failure(row: OutboxEmail, now: float, error: str, *, permanent: bool) -> None:
    """An attempt failed with ``error``: try again after the back-off, unless the
    refusal is permanent or the next try would fall past :data:`GIVE_UP_AFTER`."""
    due = now + retry_delay(row.attempts + 1)
    gave_up = not permanent and due > row.created_at + GIVE_UP_AFTER
    _move(row, "failed" if permanent or gave_up else "pending")
    row.attempts += 1
    row.last_error = (f"gave up after {row.attempts} attempts: {error}" if gave_up
                      else error)[:1000]
    if row.state == "pending":
        row.due_at = due


def record_dropped(row: OutboxEmail, reason: str) -> None:
    """Nothing left to send (the message was deleted first); not an attempt."""
    _move(row, "dropped")
    row.last_error = reason[:1000]
