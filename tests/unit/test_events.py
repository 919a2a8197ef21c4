"""The event bus: every subscriber gets every event, a failing one harms none
of the others, a slow queue loses its oldest events and never grows."""

from __future__ import annotations

import asyncio

from pbx.events import CallEnded, CallRinging, CallStarted, EventBus, MailboxChanged, as_dict


def started(n: int) -> CallStarted:
    return CallStarted(1, f"call-{n}", "1001", "1002", float(n))


def test_fan_out_survives_a_broken_subscriber() -> None:
    bus, seen = EventBus(), []

    def broken(event: object) -> None:
        raise RuntimeError("subscriber bug")

    bus.subscribe(broken)
    bus.subscribe(seen.append)
    bus.publish(started(1))
    assert seen == [started(1)]
    bus.unsubscribe(seen.append)
    bus.publish(started(2))
    assert seen == [started(1)]


def test_queue_keeps_the_newest_and_closes() -> None:
    async def scenario() -> None:
        bus = EventBus()
        queue = bus.queue(size=2)
        for n in range(5):
            bus.publish(started(n))
        assert queue.dropped == 3
        assert [(await queue.get()).call_id for _ in range(2)] == ["call-3", "call-4"]
        queue.close()
        bus.publish(started(9))
        assert queue.queue.empty()

    asyncio.run(scenario())


def test_events_as_json_fields() -> None:
    ended = CallEnded(1, "c", "1001", "1002", "1002", "answered", 200, 12.5, 100.0)
    assert as_dict(ended) == {
        "type": "call.ended", "organisation": 1, "call_id": "c", "caller": "1001",
        "dialled": "1002", "answered_by": "1002", "disposition": "answered", "status": 200,
        "duration": 12.5, "at": 100.0, "started_at": 0.0, "answered_at": None,
        "hangup_by": "", "path": (), "quality": {}, "trunk": "", "direction": "internal",
        "recorded": True, "merged_into": "",
    }
    assert as_dict(CallRinging(1, "c", "1002", 99.0, "+46701234567", "Bo", "+4681234567")) == {
        "type": "call.ringing", "organisation": 1, "call_id": "c", "extension": "1002",
        "at": 99.0, "caller": "+46701234567", "caller_name": "Bo", "did": "+4681234567",
    }
    assert as_dict(MailboxChanged(1, "1003", 101.0)) == {
        "type": "voicemail", "organisation": 1, "mailbox": "1003", "at": 101.0,
    }
