"""A scripted day of one queue (queue events only), shared by the live
statistics and history tests: eight callers, three agents on duty."""

from datetime import datetime

from pbx.events import (
    AgentStateChanged, CallStarted, Event, QueueAbandoned, QueueAnswered, QueueCallback,
    QueueCompleted, QueueJoined, QueueOffered, QueueOverflowed, SurveyAnswered,
)

T = datetime(2026, 12, 3, 9, 0).timestamp()
Q = ("700",)


def agent(name: str, state: str, at: float, reason: str = "") -> AgentStateChanged:
    return AgentStateChanged(1, name, state, reason, Q, T + at)


def scenario() -> list[Event]:
    """Eight callers, three agents on duty, one logged out."""
    return [
        agent("1002", "available", 0), agent("1003", "available", 0),
        agent("1004", "paused", 0, "lunch"), agent("1005", "logged_out", 0),
        QueueJoined(1, "700", "c1", "+4611", 1, 0, T + 10),
        QueueOffered(1, "700", "c1", "1002", T + 10),
        QueueAnswered(1, "700", "c1", "1002", 2, T + 12), agent("1002", "on_queue_call", 12),
        QueueJoined(1, "700", "c2", "+4612", 1, 0, T + 20),
        QueueAnswered(1, "700", "c2", "1003", 25, T + 45), agent("1003", "on_queue_call", 45),
        QueueJoined(1, "700", "c3", "+4613", 1, 0, T + 50),
        QueueAbandoned(1, "700", "c3", 1, 10, T + 60),  # within 20 s
        QueueJoined(1, "700", "c4", "+4614", 1, 0, T + 70),
        QueueAbandoned(1, "700", "c4", 1, 30, T + 100),
        QueueJoined(1, "700", "c5", "+4615", 1, 0, T + 110),
        QueueCallback(1, "700", "c5", "+4615", "requested", "", T + 112),
        QueueJoined(1, "700", "c6", "+4616", 2, 0, T + 120),
        QueueCompleted(1, "700", "c1", "1002", 120, "caller", T + 132),
        agent("1002", "wrap_up", 132), agent("1002", "available", 142),
        SurveyAnswered(1, "700", "c1", "1002", 5, T + 140),
        QueueCompleted(1, "700", "c2", "1003", 90, "agent", T + 135),
        agent("1003", "available", 135),
        SurveyAnswered(1, "700", "c2", "1003", 2, T + 141),
        QueueJoined(1, "700", "c7", "+4617", 2, 0, T + 200),
        QueueAnswered(1, "700", "c7", "1002", 15, T + 215), agent("1002", "on_queue_call", 215),
        QueueCompleted(1, "700", "c7", "1002", 60, "caller", T + 275),
        agent("1002", "available", 275),
        SurveyAnswered(1, "700", "c7", "1002", 4, T + 280),
        QueueOverflowed(1, "700", "c6", 180, "voicemail:700", "maxwait", T + 300),
        agent("1004", "available", 400),
        QueueJoined(1, "700", "c8", "+4618", 1, 0, T + 500),
        agent("1002", "on_direct_call", 520),
        CallStarted(1, "x", "1", "2", T + 521),  # not a queue event: ignored
    ]
