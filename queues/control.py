"""What supervisors do to agents from the wallboard or the API, as the queue
engine offers it: log in and out, pause with a reason and unpause.  The engine
implements :class:`AgentControl`; the admin API only calls it, so the
wallboard works with any engine (and with a fake in tests)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

PAUSE_REASONS = ("lunch", "admin", "training", "meeting", "break", "other")


class ControlError(Exception):
    """The engine refuses: ``status`` 404 (no such agent or queue) or 409 (the
    agent's state does not allow it), with a reason a person can read."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class AgentControl(Protocol):
    """The queue engine's agent commands; each change is published as an
    ``AgentStateChanged`` event (that is how the wallboard sees it)."""

    def log_in(self, organisation: int, agent: str, queues: Sequence[str]) -> None:
        """Log ``agent`` into ``queues`` (empty: all the queues it is a member of)."""

    def log_out(self, organisation: int, agent: str) -> None:
        """Log ``agent`` out of every queue."""

    def pause(self, organisation: int, agent: str, reason: str) -> None:
        """Keep ``agent`` from queue calls (``reason``: one of PAUSE_REASONS)."""

    def unpause(self, organisation: int, agent: str) -> None:
        """Let ``agent`` take queue calls again."""
