"""Spoken diversion: what a caller hears when a profile turns them away, and
where they go then (the announcement pure; the service on the in-memory harness)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
from sqlmodel import Session, select

from ivr.diversion import DiversionApp, announcement
from pbx.models import Extension, Profile
from tests.harness import CallHarness

TZ = ZoneInfo("Europe/Stockholm")
NOW = datetime(2026, 12, 2, 9, 30, tzinfo=TZ)
NAME = np.ones(800, dtype=np.float32)


def test_a_meeting_until_eleven_today() -> None:
    said = announcement(name=NAME, number="1002", profile="Meeting", profile_said=None,
                        until=NOW.replace(hour=11, minute=0), now=NOW, language="en")
    assert said[0] is NAME
    assert said[1:] == ("in_a_meeting", "until", "number_11", "oclock")


def test_no_name_says_the_extension_and_tomorrow_says_the_day() -> None:
    said = announcement(name=None, number="1002", profile="Lunch", profile_said=None,
                        until=datetime(2026, 12, 3, 13, 0, tzinfo=TZ), now=NOW, language="sv")
    assert said[:5] == ("the_person_at", "digit_1", "digit_0", "digit_0", "digit_2")
    assert said[5:] == ("at_lunch", "until", "oclock", "number_13", "on_thursday")


def test_an_unknown_profile_is_said_by_name_and_no_end_says_no_time() -> None:
    status = np.zeros(400, dtype=np.float32)
    said = announcement(name=NAME, number="1002", profile="Dentist", profile_said=status,
                        until=None, now=NOW, language="en")
    assert said[1] == "has_status" and said[2] is status and len(said) == 3
    unsaid = announcement(name=NAME, number="1002", profile="Dentist", profile_said=None,
                          until=None, now=NOW, language="en")
    assert unsaid[1:] == ("is_not_available",)


async def test_a_caller_hears_why_then_reaches_the_mailbox_or_the_operator() -> None:
    calls = CallHarness()
    with Session(calls.store.engine) as db:
        ext = db.exec(select(Extension).where(Extension.number == "1002")).one()
        meeting = Profile(organisation_id=ext.organisation_id, extension="1002", name="Meeting",
                          accept="none", divert="1003")
        db.add(meeting)
        db.commit()
        db.refresh(meeting)
        ext.profile_id, ext.profile_until = meeting.id, calls.clock.now() + 3600
        ext.display_name = "Alice Andersson"
        db.add(ext)
        db.commit()
    calls.directory.reload()
    calls.tenant = calls.directory.default
    spoken: list[str] = []

    def speech(text: str, language: str) -> np.ndarray:
        spoken.append(text)
        return NAME

    app = DiversionApp(calls.directory, calls.clock, lambda tenant: "1004", speech,
                       worker=lambda job, then: (job(), then()))
    calls.b2bua.register(app)
    calls.register("1003", "1004")
    invite = await calls.call("1001", "1002")
    assert spoken == ["Alice Andersson"]
    assert calls.statuses(invite) == [200]
    calls.acked(invite)
    assert calls.phones["1003"].invites() == []  # still hearing why
    calls.clock.advance(30)  # the announcement ends: on to the profile's divert
    await calls.settle()
    fork = calls.phones["1003"].invites()[-1]
    assert "Diversion" in fork.headers and "1002" in fork.headers.get("Diversion", "")
    # a second caller presses 0: the operator
    second = await calls.call("1003", "1002")
    calls.acked(second)
    call = next(c for c in calls.b2bua.live_calls() if c.a and c.a.number == "1003")
    call.a.channel.key("0")  # type: ignore[union-attr]
    await calls.settle()
    assert calls.phones["1004"].invites()
