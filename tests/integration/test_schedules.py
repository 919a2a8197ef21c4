"""Opening hours and the switchboard through a running PBX: schedules and time
conditions over HTTP, the override that closes the switchboard with one call
(and the ``switchboard`` event on the WebSocket), the refusals, and a sipp
call that a time condition sends to voicemail while closed."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.integration.peers import ADMIN_PASSWORD, Pbx, run_sipp, running_pbx, sipp_callee

pytestmark = pytest.mark.integration

USERS = {n: f"sipp-{n}-pw" for n in ("2001", "2002", "2003")}
ALWAYS = {day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
SECTIONS = """
[office-hours]
type = schedule
mon = 08:00-17:00
tue = 08:00-17:00
wed = 08:00-17:00
thu = 08:00-17:00
fri = 08:00-17:00
holidays = SE
"""


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    with running_pbx(tmp_path_factory.mktemp("schedules"), USERS, sections=SECTIONS,
                     admin_password=ADMIN_PASSWORD) as server:
        yield server


@pytest.fixture(scope="module")
def admin(pbx: Pbx) -> dict[str, str]:
    return pbx.login("admin", ADMIN_PASSWORD)


def user(pbx: Pbx, admin: dict[str, str], name: str, role: str) -> dict[str, str]:
    made = httpx.post(f"{pbx.api}/users", headers=admin,
                      json={"username": name, "password": f"{name}-pass-1234", "role": role})
    assert made.status_code == 201, made.text
    return pbx.login(name, f"{name}-pass-1234")


def feed(pbx: Pbx, headers: dict[str, str]) -> ClientConnection:
    token = headers["Authorization"][7:]
    return connect(f"ws://{pbx.host}:{pbx.http_port}/api/events?token={token}")


def next_event(events: ClientConnection, kind: str) -> dict[str, Any]:
    """The next event of type ``kind`` (calls and registrations pass by too)."""
    while True:
        event = json.loads(events.recv(timeout=10))
        if event["type"] == kind:
            return event  # type: ignore[no-any-return]


def test_the_seeded_schedule_is_there(pbx: Pbx, admin: dict[str, str]) -> None:
    seeded = httpx.get(f"{pbx.api}/schedules/office-hours", headers=admin)
    assert seeded.status_code == 200, seeded.text
    body = seeded.json()
    assert body["mon"] == ["08:00-17:00"] and body["sat"] == [] and body["holidays"] == "SE"
    assert body["timezone"] == "Europe/Stockholm"
    assert body["state"]["reason"] in ("schedule", "holiday")
    assert body["state"]["next_change"][-6:] in ("+01:00", "+02:00")  # the organisation's zone


def test_close_now_with_one_call_and_the_event(pbx: Pbx, admin: dict[str, str]) -> None:
    made = httpx.post(f"{pbx.api}/schedules", headers=admin,
                      json={"name": "reception", "holidays": "", **ALWAYS})
    assert made.status_code == 201, made.text
    assert made.json()["timezone"] == "Europe/Stockholm"  # the organisation's
    state = httpx.get(f"{pbx.api}/schedules/reception/state", headers=admin).json()
    assert state == {"schedule": "reception", "open": True, "reason": "schedule", "label": "",
                     "next_change": None, "overrides": []}
    with feed(pbx, admin) as events:
        closed = httpx.post(f"{pbx.api}/schedules/reception/override", headers=admin,
                            json={"action": "close", "label": "fire drill"})
        assert closed.status_code == 200, closed.text
        assert closed.json()["open"] is False and closed.json()["reason"] == "override"
        event = next_event(events, "switchboard")
        assert (event["schedule"], event["open"], event["reason"]) == ("reception", False,
                                                                       "override")
        state = httpx.get(f"{pbx.api}/schedules/reception/state", headers=admin).json()
        assert (state["open"], state["reason"], state["label"]) == (False, "override",
                                                                   "fire drill")
        assert [o["action"] for o in state["overrides"]] == ["close"]
        back = httpx.post(f"{pbx.api}/schedules/reception/override", headers=admin,
                          json={"action": "schedule"})
        assert back.status_code == 200 and back.json()["open"] is True
        event = next_event(events, "switchboard")
        assert (event["open"], event["reason"]) == (True, "schedule")
    audit = httpx.get(f"{pbx.api}/audit", headers=admin).json()
    assert [a["action"] for a in audit if a["target"] == "reception"][:3] == [
        "schedule.override", "schedule.override", "schedule.create"]


def test_closed_until_a_time_and_planned_ahead(pbx: Pbx, admin: dict[str, str]) -> None:
    httpx.post(f"{pbx.api}/schedules", headers=admin,
               json={"name": "planned", "holidays": "", **ALWAYS})
    closed = httpx.post(f"{pbx.api}/schedules/planned/override", headers=admin,
                        json={"action": "close", "until": "2035-01-01T12:00:00+01:00"})
    assert closed.status_code == 200, closed.text
    assert closed.json()["next_change"] is None  # 2035 is beyond the year looked ahead
    assert closed.json()["overrides"][0]["until"] == "2035-01-01T12:00:00+01:00"
    planned = httpx.post(f"{pbx.api}/schedules/planned/override", headers=admin,
                         json={"action": "open", "start": "2034-06-01T09:00:00",
                               "until": "2034-06-01T10:00:00"})  # no offset: the local zone
    assert planned.status_code == 200, planned.text
    assert [(o["action"], o["start"]) for o in planned.json()["overrides"]][1] == (
        "open", "2034-06-01T09:00:00+02:00")
    cleared = httpx.delete(f"{pbx.api}/schedules/planned/overrides", headers=admin)
    assert cleared.status_code == 200 and cleared.json()["overrides"] == []
    assert cleared.json()["open"] is True


def test_supervisors_switch_agents_read(pbx: Pbx, admin: dict[str, str]) -> None:
    supervisor = user(pbx, admin, "sofia", "supervisor")
    agent = user(pbx, admin, "anton", "agent")
    assert httpx.get(f"{pbx.api}/schedules/office-hours/state", headers=agent).status_code == 200
    assert httpx.get(f"{pbx.api}/switchboard", headers=agent).json()["items"][0]["schedule"]
    refused = httpx.post(f"{pbx.api}/schedules/office-hours/override", headers=agent,
                         json={"action": "open"})
    assert refused.status_code == 403
    assert httpx.post(f"{pbx.api}/schedules", headers=supervisor,
                      json={"name": "mine"}).status_code == 403  # only admins define hours
    opened = httpx.post(f"{pbx.api}/schedules/office-hours/override", headers=supervisor,
                        json={"action": "open"})
    assert opened.status_code == 200 and opened.json()["reason"] == "override"
    assert httpx.post(f"{pbx.api}/schedules/office-hours/override", headers=supervisor,
                      json={"action": "schedule"}).json()["reason"] != "override"


@pytest.mark.parametrize("body,loc,message", [
    ({"name": "bad", "mon": ["08:00-25:00"]}, ["body", "mon", 0], "25:00 is not a time of day"),
    ({"name": "bad", "tue": ["08:00-12:00", "11:00-13:00"]}, ["body", "tue"],
     "08:00-12:00 and 11:00-13:00 overlap"),
    ({"name": "bad", "wed": ["13:00-17:00", "08:00-12:00"]}, ["body", "wed"],
     "list the intervals from the earliest"),
    ({"name": "bad", "thu": ["09:00-09:00"]}, ["body", "thu", 0], "is empty"),
    ({"name": "bad", "holidays": "XX"}, ["body", "holidays"], "unknown country 'XX'"),
    ({"name": "bad", "timezone": "Europe/Atlantis"}, ["body", "timezone"],
     "unknown time zone 'Europe/Atlantis'"),
    ({"name": "bad", "exceptions": [{"date": "2026-12-24"}, {"date": "2026-12-24"}]},
     ["body", "exceptions"], "2026-12-24 is listed twice"),
    ({"name": "bad name!"}, ["body", "name"], "String should match pattern"),
])
def test_an_invalid_schedule_is_a_422_naming_the_field(
        pbx: Pbx, admin: dict[str, str], body: dict[str, Any], loc: list[Any],
        message: str) -> None:
    answer = httpx.post(f"{pbx.api}/schedules", headers=admin, json=body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["detail"][0]
    assert error["loc"] == loc and message in error["msg"]


def test_other_refusals(pbx: Pbx, admin: dict[str, str]) -> None:
    api = pbx.api
    patched = httpx.patch(f"{api}/schedules/office-hours", headers=admin,
                          json={"sun": ["22:00-10:00"]})  # into Monday's 08:00
    assert patched.status_code == 422
    assert patched.json()["detail"][0]["loc"] == ["body", "sun"]
    assert "runs past midnight into mon 08:00-17:00" in patched.json()["detail"][0]["msg"]
    assert httpx.post(f"{api}/schedules", headers=admin,
                      json={"name": "office-hours"}).status_code == 409
    assert httpx.get(f"{api}/schedules/nowhere/state", headers=admin).status_code == 404
    past = httpx.post(f"{api}/schedules/office-hours/override", headers=admin,
                      json={"action": "close", "until": "2001-01-01T00:00:00Z"})
    assert past.status_code == 422 and past.json()["detail"][0]["loc"] == ["body", "until"]
    odd = httpx.post(f"{api}/schedules/office-hours/override", headers=admin,
                     json={"action": "schedule", "until": "2030-01-01T00:00:00Z"})
    assert odd.status_code == 422 and "back to schedule" in odd.json()["detail"][0]["msg"]
    assert httpx.post(f"{api}/schedules/office-hours/override", headers=admin,
                      json={"action": "shut"}).status_code == 422
    far = httpx.post(f"{api}/schedules/office-hours/override", headers=admin,
                     json={"action": "close", "until": "9999-12-31T23:59:59-12:00"})
    assert far.status_code == 422 and "ten years" in far.json()["detail"][0]["msg"]

    def condition(**fields: str) -> httpx.Response:
        body = {"number": "530", "schedule": "office-hours", "open_target": "2002",
                "closed_target": "voicemail:2001", **fields}
        return httpx.post(f"{api}/timeconditions", headers=admin, json=body)

    taken = condition(number="2002")
    assert taken.status_code == 409 and "extension 2002" in taken.json()["detail"]
    assert condition(number="133").status_code == 409  # the voicemail menu's number
    for fields, where, message in [
        ({"schedule": "nowhere"}, "schedule", "no schedule nowhere"),
        ({"open_target": "4040"}, "open_target", "no extension, service or number 4040"),
        ({"closed_target": "voicemail:4040"}, "closed_target", "no extension 4040"),
        ({"closed_target": "530"}, "closed_target", "loop"),
    ]:
        answer = condition(**fields)
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"][0]["loc"] == ["body", where]
        assert message in answer.json()["detail"][0]["msg"]
    assert condition().status_code == 201
    assert condition(number="531", open_target="530").status_code == 201
    loop = httpx.patch(f"{api}/timeconditions/530", headers=admin, json={"open_target": "531"})
    assert loop.status_code == 422 and "loop" in loop.json()["detail"][0]["msg"]
    assert condition(number="530").status_code == 409  # its own number is taken now
    assert httpx.post(f"{api}/extensions", headers=admin,
                      json={"number": "530"}).status_code == 409
    in_use = httpx.delete(f"{api}/schedules/office-hours", headers=admin)
    assert in_use.status_code == 409 and "time condition 530" in in_use.json()["detail"]
    mailbox = httpx.delete(f"{api}/extensions/2001", headers=admin)
    assert mailbox.status_code == 409 and "time condition 530" in mailbox.json()["detail"]
    assert httpx.delete(f"{api}/timeconditions/530", headers=admin).status_code == 409  # 531
    assert httpx.delete(f"{api}/timeconditions/531", headers=admin).status_code == 204
    assert httpx.delete(f"{api}/timeconditions/530", headers=admin).status_code == 204


@pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed")
def test_a_time_condition_sends_a_call_to_voicemail_while_closed(
        pbx: Pbx, admin: dict[str, str], tmp_path: Path) -> None:
    """520: 2002 while open, 2001's mailbox while closed.  A real call (sipp) to
    520 after one API call closes the switchboard is answered by voicemail."""
    assert httpx.post(f"{pbx.api}/schedules", headers=admin,
                      json={"name": "desk", "holidays": "", **ALWAYS}).status_code == 201
    made = httpx.post(f"{pbx.api}/timeconditions", headers=admin, json={
        "number": "520", "name": "Front desk", "schedule": "desk", "open_target": "2002",
        "closed_target": "voicemail:2001"})
    assert made.status_code == 201, made.text
    assert made.json()["routes_to"] == "2002"
    caller = [("2003", USERS["2003"], "520")]
    with feed(pbx, admin) as events:
        with sipp_callee(tmp_path, pbx, "2002", USERS["2002"], ["-m", "1"]) as desk:
            result = run_sipp("call_uac.xml", pbx, caller, tmp=tmp_path, extra=["-d", "500"])
            assert result.returncode == 0 and result.successful == 1, result.output[-2000:]
            assert desk.wait(15) == 0  # the open branch: the desk answered
        assert next_event(events, "call.answered")["answered_by"] == "2002"
        closed = httpx.post(f"{pbx.api}/schedules/desk/override", headers=admin,
                            json={"action": "close"})
        assert closed.status_code == 200
        assert next_event(events, "switchboard")["open"] is False
        assert httpx.get(f"{pbx.api}/timeconditions/520",
                         headers=admin).json()["routes_to"] == "voicemail:2001"
        # the greeting and the caller's options take ~13 s before the beep
        result = run_sipp("call_uac.xml", pbx, caller, tmp=tmp_path, extra=["-d", "20000"],
                          timeout=60)
        assert result.returncode == 0 and result.successful == 1, result.output[-2000:]
        assert next_event(events, "call.answered")["answered_by"] == "voicemail:2001"
        left = next_event(events, "voicemail")
        assert left["mailbox"] == "2001"
