"""The wallboard's WebSocket feed sends what piled up while the loop was busy
in one go, oldest first (admin_api/queue_stats.py)."""

from __future__ import annotations

import asyncio

from admin_api.queue_stats import queued
from queues.live import Update


def test_every_update_queued_behind_the_first_goes_out_in_order() -> None:
    made = [Update(1, {"type": "queue.joined", "call_id": f"c{n}"}, [], []) for n in range(4)]
    updates: asyncio.Queue[Update] = asyncio.Queue(10)
    for update in made[1:]:
        updates.put_nowait(update)
    assert queued(made[0], updates) == made
    assert updates.empty()
    assert queued(made[0], updates) == made[:1]  # nothing behind it: just the one
