"""Presence profiles and voicemail through the admin API and real SIP peers.

A scripted phone leaves a message: it waits for the greeting's tone, sends a
tone of its own, hangs up; the API then lists the message and its WAV holds
that tone.  Profiles switched by hand, by calendar and back decide whether a
direct call rings the phone or reaches voicemail, while ring group calls
still ring it."""

from __future__ import annotations

import http.server
import io
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile

from pbx.sip.message import Request, Response
from tests.integration.audio import level
from tests.integration.peers import (
    ADMIN_PASSWORD, Pbx, login_once, organisation, run_sipp, running_pbx, sipp_callee, user_of,
)
from tests.integration.sipclient import SipClient
from tests.integration.voicemail_calls import BEEP_HZ, leave_message, messages

pytestmark = pytest.mark.integration

USERS = {"1001": "pw-1001-secret", "1002": "pw-1002-secret", "1003": "pw-1003-secret"}
SECTIONS = """
[600]
type = ringgroup
members = 1002
timeout = 10
"""


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    with running_pbx(tmp_path_factory.mktemp("profiles"), USERS, sections=SECTIONS,
                     admin_password=ADMIN_PASSWORD,
                     calendar_private_hosts="yes") as server:  # the feed is on loopback
        yield server



def admin(pbx: Pbx) -> dict[str, str]:
    return login_once(pbx, "admin", ADMIN_PASSWORD)


def profile_id(pbx: Pbx, extension: str, name: str) -> int:
    items = httpx.get(f"{pbx.api}/extensions/{extension}/profiles", headers=admin(pbx)).json()
    return next(p["id"] for p in items["items"] if p["name"] == name)


def audio_of(pbx: Pbx, headers: dict[str, str], message_id: int) -> np.ndarray:
    response = httpx.get(f"{pbx.api}/voicemail/{message_id}/audio", headers=headers)
    assert response.status_code == 200 and response.headers["content-type"] == "audio/wav"
    audio, rate = soundfile.read(io.BytesIO(response.content), dtype="float64")
    assert rate == 8000
    return audio  # type: ignore[no-any-return]


def test_forward_to_voicemail_takes_a_message(pbx: Pbx) -> None:
    """forward_always = voicemail: the PBX answers, greets, records after the tone."""
    headers = admin(pbx)
    patched = httpx.patch(f"{pbx.api}/extensions/1003", headers=headers,
                          json={"forward_always": "voicemail"})
    assert patched.status_code == 200
    try:
        leave_message(pbx, "1001", USERS["1001"], "1003", seconds=2.0, frequency=700.0)
    finally:
        httpx.patch(f"{pbx.api}/extensions/1003", headers=headers, json={"forward_always": ""})
    mine = user_of(pbx, "1003")
    found = messages(pbx, mine, 1)
    assert len(found) == 1
    message = found[0]
    assert (message["mailbox"], message["caller"], message["heard"]) == ("1003", "1001", False)
    assert abs(message["duration"] - 2.0) < 0.5, message
    audio = audio_of(pbx, mine, message["id"])
    assert abs(len(audio) / 8000 - message["duration"]) < 0.05
    assert level(audio, 700.0) > 20 * max(level(audio, BEEP_HZ), 1e-3)  # the caller, not the tone
    # another user neither lists it nor hears it; an admin sees every mailbox
    other = user_of(pbx, "1001")
    assert messages(pbx, other, 0) == []
    audio_url = f"{pbx.api}/voicemail/{message['id']}/audio"
    assert httpx.get(audio_url, headers=other).status_code == 403
    assert httpx.delete(f"{pbx.api}/voicemail/{message['id']}", headers=other).status_code == 403
    assert any(m["id"] == message["id"] for m in messages(pbx, headers, 1))
    own = httpx.get(f"{pbx.api}/voicemail", headers=headers, params={"own": "true"})
    assert own.status_code == 200 and own.json()["items"] == []  # the admin has no mailbox
    marked = httpx.patch(f"{pbx.api}/voicemail/{message['id']}", headers=mine,
                         json={"heard": True})
    assert marked.status_code == 200 and marked.json()["heard"] is True
    assert httpx.delete(f"{pbx.api}/voicemail/{message['id']}", headers=mine).status_code == 204
    assert httpx.get(audio_url, headers=mine).status_code == 404
    assert not list((pbx.data_dir / "voicemail").rglob("*.wav"))


def test_profiles_api_defaults_roles_and_schedules(pbx: Pbx) -> None:
    headers = admin(pbx)
    listing = httpx.get(f"{pbx.api}/extensions/1002/profiles", headers=headers)
    assert listing.status_code == 200
    profiles = {p["name"]: p for p in listing.json()["items"]}
    assert list(profiles) == ["Working", "Lunch", "Meeting", "Off"]
    assert (profiles["Lunch"]["accept"], profiles["Lunch"]["divert"]) == ("queue", "voicemail")
    assert profiles["Meeting"]["calendar_match"] == "*"
    # the user of 1002 switches their own profile, not someone else's
    own = user_of(pbx, "1002")
    switched = httpx.post(f"{pbx.api}/extensions/1002/profile", headers=own,
                          json={"profile_id": profiles["Off"]["id"],
                                "until": "2099-01-01T12:00:00+01:00"})
    assert switched.status_code == 200, switched.text
    body = switched.json()
    assert (body["profile"]["name"], body["reason"]) == ("Off", "manual")
    assert body["until"].startswith("2099-01-01T11:00:00")
    refused = httpx.post(f"{pbx.api}/extensions/1001/profile", headers=own,
                         json={"profile_id": profile_id(pbx, "1001", "Off")})
    assert refused.status_code == 403 and "own extension" in refused.json()["detail"]
    assert httpx.post(f"{pbx.api}/extensions/1002/profile", headers=own, json={
        "profile_id": profile_id(pbx, "1001", "Off")}).status_code == 422  # 1001's profile
    past = httpx.post(f"{pbx.api}/extensions/1002/profile", headers=own, json={
        "profile_id": profiles["Off"]["id"], "until": "2001-01-01T00:00:00Z"})
    assert past.status_code == 422 and "until" in past.json()["detail"]
    assert httpx.post(f"{pbx.api}/extensions/1002/profile", headers=own,
                      json={"profile_id": None}).json()["reason"] == "none"
    # profiles: create, rename clash, patch, delete; a caller ID is one of the organisation's
    assert httpx.post(f"{pbx.api}/numbers", headers=headers,
                      json={"number": "+46701234567", "target": "1002"}).status_code == 201
    foreign = httpx.post(f"{pbx.api}/extensions/1002/profiles", headers=own, json={
        "name": "Spoof", "caller_id": "+46709999999"})
    assert foreign.status_code == 422 and foreign.json()["detail"][0]["loc"][-1] == "caller_id"
    created = httpx.post(f"{pbx.api}/extensions/1002/profiles", headers=own, json={
        "name": "Travel", "accept": "direct", "divert": "1001", "caller_id": "+46701234567"})
    assert created.status_code == 201, created.text
    assert httpx.post(f"{pbx.api}/extensions/1002/profiles", headers=own,
                      json={"name": "Travel"}).status_code == 409
    bad = httpx.post(f"{pbx.api}/extensions/1002/profiles", headers=own,
                     json={"name": "X", "accept": "sometimes"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][-1] == "accept"
    travel = created.json()["id"]
    patched = httpx.patch(f"{pbx.api}/profiles/{travel}", headers=own, json={"accept": "both"})
    assert patched.status_code == 200 and patched.json()["accept"] == "both"
    assert httpx.patch(f"{pbx.api}/profiles/{profiles['Off']['id']}", headers=user_of(pbx, "1001"),
                       json={"accept": "both"}).status_code == 403
    # schedules: every day, all day: the schedule decides (a manual choice without end yields)
    schedule = httpx.post(f"{pbx.api}/extensions/1002/schedules", headers=own, json={
        "profile_id": travel, "days": ["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
        "start": "00:00", "end": "24:00"})
    assert schedule.status_code == 201, schedule.text
    assert schedule.json()["days"] == ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    httpx.post(f"{pbx.api}/extensions/1002/profile", headers=own,
               json={"profile_id": profiles["Working"]["id"]})
    active = httpx.get(f"{pbx.api}/extensions/1002/profile", headers=own).json()
    assert (active["profile"]["name"], active["reason"]) == ("Travel", "schedule")
    for wrong in ({"start": "25:00"}, {"end": "12:60"}, {"days": ["someday"]}, {"days": []}):
        reply = httpx.post(f"{pbx.api}/extensions/1002/schedules", headers=own,
                           json={"profile_id": travel, "start": "08:00", "end": "17:00", **wrong})
        assert reply.status_code == 422 and next(iter(wrong)) in reply.json()["detail"][0]["loc"]
    same = httpx.post(f"{pbx.api}/extensions/1002/schedules", headers=own,
                      json={"profile_id": travel, "start": "08:00", "end": "08:00"})
    assert same.status_code == 422 and "end" in same.json()["detail"]
    # deleting the profile takes its schedule along; the manual choice is back
    assert httpx.delete(f"{pbx.api}/profiles/{travel}", headers=own).status_code == 204
    assert httpx.get(f"{pbx.api}/extensions/1002/schedules", headers=own).json()["total"] == 0
    active = httpx.get(f"{pbx.api}/extensions/1002/profile", headers=own).json()
    assert (active["profile"]["name"], active["reason"]) == ("Working", "manual")
    httpx.post(f"{pbx.api}/extensions/1002/profile", headers=own, json={"profile_id": None})
    actions = {e["action"] for e in httpx.get(f"{pbx.api}/audit", headers=headers).json()}
    assert {"profile.defaults", "profile.switch", "profile.create", "profile.update",
            "profile.delete", "schedule.create"} <= actions


def ics(summary: str, start: float, end: float) -> str:
    stamp = "%Y%m%dT%H%M%SZ"
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//PBX tests//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{summary}@test\r\nSUMMARY:{summary}\r\n"
        f"DTSTART:{time.strftime(stamp, time.gmtime(start))}\r\n"
        f"DTEND:{time.strftime(stamp, time.gmtime(end))}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


@pytest.fixture
def feed() -> Iterator[tuple[str, list[str]]]:
    """An HTTP server on loopback serving ``/cal.ics``: whatever the list holds."""
    body: list[str] = [""]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            data = body[0].encode()
            self.send_response(200 if self.path == "/cal.ics" else 404)
            self.send_header("Content-Type", "text/calendar")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/cal.ics", body
    finally:
        server.shutdown()
        server.server_close()


def test_calendar_upload_and_url_switch_to_meeting(pbx: Pbx, feed: tuple[str, list[str]]) -> None:
    own = user_of(pbx, "1002")
    now = time.time()
    uploaded = httpx.put(f"{pbx.api}/extensions/1002/calendar",
                         content=ics("Board meeting", now - 600, now + 600),
                         headers={**own, "Content-Type": "text/calendar"})
    assert uploaded.status_code == 200, uploaded.text
    assert [e["summary"] for e in uploaded.json()["events"]] == ["Board meeting"]
    active = httpx.get(f"{pbx.api}/extensions/1002/profile", headers=own).json()
    assert (active["profile"]["name"], active["reason"], active["detail"]) == (
        "Meeting", "calendar", "Board meeting")
    invalid = httpx.put(f"{pbx.api}/extensions/1002/calendar", content="not a calendar",
                        headers={**own, "Content-Type": "text/calendar"})
    assert invalid.status_code == 422 and "invalid iCalendar data" in invalid.json()["detail"]
    # a subscription: fetched at once; an event titled "Lunch" picks the Lunch profile
    url, body = feed
    body[0] = ics("Lunch with Bo", now - 60, now + 900)
    subscribed = httpx.put(f"{pbx.api}/extensions/1002/calendar", headers=own, json={"url": url})
    assert subscribed.status_code == 200 and subscribed.json()["url"] == url
    active = httpx.get(f"{pbx.api}/extensions/1002/profile", headers=own).json()
    assert (active["profile"]["name"], active["reason"]) == ("Lunch", "calendar")
    missing = httpx.put(f"{pbx.api}/extensions/1002/calendar", headers=own,
                        json={"url": url.replace("cal.ics", "nothing.ics")})
    assert missing.status_code == 422 and "404" in missing.json()["detail"]
    assert httpx.put(f"{pbx.api}/extensions/1002/calendar", headers=own,
                     json={"url": "file:///etc/passwd"}).status_code == 422
    assert httpx.put(f"{pbx.api}/extensions/1002/calendar",
                     headers={**own, "Content-Type": "text/plain"},
                     content="x").status_code == 415
    assert httpx.delete(f"{pbx.api}/extensions/1002/calendar", headers=own).status_code == 204
    assert httpx.get(f"{pbx.api}/extensions/1002/profile", headers=own).json()["reason"] == "none"
    assert httpx.put(f"{pbx.api}/extensions/1001/calendar", headers=own,
                     json={"url": url}).status_code == 403


# ------------------------------------------------------------------ the router uses the profile


@contextmanager
def phone(pbx: Pbx, number: str) -> Iterator[SipClient]:
    """A scripted phone registered as ``number``, unregistered afterwards."""
    with SipClient(pbx.host, pbx.sip_port) as client:
        contact = [f"<sip:{number}@{client.host_port()}>"]
        registered = client.register(number, USERS[number], contacts=contact)
        assert registered is not None and registered.status == 200
        try:
            yield client
        finally:
            client.register(number, USERS[number], contacts=contact, expires=0)


def ring_and_refuse(client: SipClient, status: int = 486) -> tuple[threading.Thread, list[Request]]:
    """In the background: wait for an INVITE and answer it ``status``."""
    seen: list[Request] = []

    def run() -> None:
        invite = client.receive_request(5, "INVITE")
        if invite is not None:
            seen.append(invite)
            client.respond(invite, status)

    worker = threading.Thread(target=run)
    worker.start()
    return worker, seen


def call(pbx: Pbx, target: str, label: str) -> Response | None:
    with SipClient(pbx.host, pbx.sip_port) as caller:
        caller.call_id += f"-{label}"
        _, final = caller.invite("1001", USERS["1001"], target)
        return final


def switch(pbx: Pbx, number: str, profile: str | None) -> dict:  # type: ignore[type-arg]
    chosen = profile_id(pbx, number, profile) if profile else None
    reply = httpx.post(f"{pbx.api}/extensions/{number}/profile", headers=user_of(pbx, number),
                       json={"profile_id": chosen})
    assert reply.status_code == 200, reply.text
    return reply.json()  # type: ignore[no-any-return]


def test_lunch_sends_direct_calls_to_voicemail_while_group_calls_still_ring(pbx: Pbx) -> None:
    with phone(pbx, "1002") as desk:
        assert switch(pbx, "1002", "Lunch")["profile"]["name"] == "Lunch"
        try:
            before = len(messages(pbx, user_of(pbx, "1002"), 0))
            leave_message(pbx, "1001", USERS["1001"], "1002", seconds=2.0, frequency=900.0)
            assert desk.receive_request(0.5, "INVITE") is None  # the phone never rang
            found = messages(pbx, user_of(pbx, "1002"), before + 1)
            assert len(found) == before + 1
            newest = found[0]
            assert newest["mailbox"] == "1002" and abs(newest["duration"] - 2.0) < 0.5, newest
            audio = audio_of(pbx, user_of(pbx, "1002"), newest["id"])
            assert level(audio, 900.0) > 20 * max(level(audio, BEEP_HZ), 1e-3)
            # a ring group call is a queue call: Lunch takes those, the phone rings
            worker, seen = ring_and_refuse(desk)
            final = call(pbx, "600", "group-at-lunch")
            worker.join()
            assert seen and final is not None and final.status == 486
        finally:
            switch(pbx, "1002", "Working")
        worker, seen = ring_and_refuse(desk)
        final = call(pbx, "1002", "back-at-work")
        worker.join()
        assert seen and final is not None and final.status == 486  # it rang again


def test_meeting_skips_group_calls_and_diverts_or_refuses_direct_ones(pbx: Pbx) -> None:
    headers = admin(pbx)
    meeting = profile_id(pbx, "1002", "Meeting")
    with phone(pbx, "1002") as desk, phone(pbx, "1003") as colleague:
        switch(pbx, "1002", "Meeting")
        try:
            # no queue calls in a meeting: the group has nobody to ring
            final = call(pbx, "600", "group-in-meeting")
            assert final is not None and final.status == 480
            assert desk.receive_request(0.5, "INVITE") is None
            # divert to a colleague: the caller hears why (the PBX answers), then the
            # colleague's phone rings with Diversion
            httpx.patch(f"{pbx.api}/profiles/{meeting}", headers=headers, json={"divert": "1003"})
            worker, seen = ring_and_refuse(colleague)
            final = call(pbx, "1002", "meeting-divert")
            worker.join()
            assert seen and final is not None and final.status == 200
            diversion = seen[0].headers.get("Diversion") or ""
            assert "<sip:1002@" in diversion and "reason=unavailable" in diversion
            # no divert: busy, and the profile is named
            httpx.patch(f"{pbx.api}/profiles/{meeting}", headers=headers, json={"divert": ""})
            final = call(pbx, "1002", "meeting-busy")
            assert final is not None and (final.status, final.reason) == (
                486, "Busy Here - Profile Meeting")
        finally:
            httpx.patch(f"{pbx.api}/profiles/{meeting}", headers=headers,
                        json={"divert": "voicemail"})
            switch(pbx, "1002", None)


def test_the_profiles_caller_id_is_shown_on_outgoing_calls(pbx: Pbx) -> None:
    headers = admin(pbx)
    working = profile_id(pbx, "1001", "Working")
    assert httpx.post(f"{pbx.api}/numbers", headers=headers,
                      json={"number": "+46812345678", "target": "1001"}).status_code == 201
    shows = httpx.patch(f"{pbx.api}/profiles/{working}", headers=headers,
                        json={"caller_id": "+46812345678"})
    assert shows.status_code == 200, shows.text
    # the number cannot go while the profile shows it
    taken = httpx.delete(f"{pbx.api}/numbers/+46812345678", headers=headers)
    assert taken.status_code == 409 and "profile Working of 1001" in taken.json()["detail"]
    try:
        with phone(pbx, "1002") as desk:
            worker, seen = ring_and_refuse(desk)
            assert call(pbx, "1002", "plain-id") is not None
            worker.join()
            assert seen and seen[0].from_addr.uri.user == "1001"  # not chosen yet
            switch(pbx, "1001", "Working")
            worker, seen = ring_and_refuse(desk)
            assert call(pbx, "1002", "profile-id") is not None
            worker.join()
            assert seen and seen[0].from_addr.uri.user == "+46812345678"
    finally:
        switch(pbx, "1001", None)
        httpx.patch(f"{pbx.api}/profiles/{working}", headers=headers, json={"caller_id": ""})


def test_deleting_an_extension_takes_its_profiles_along(pbx: Pbx) -> None:
    headers = admin(pbx)
    assert httpx.post(f"{pbx.api}/extensions", headers=headers,
                      json={"number": "2050"}).status_code == 201
    off = profile_id(pbx, "2050", "Off")
    assert httpx.post(f"{pbx.api}/extensions/2050/profile", headers=headers,
                      json={"profile_id": off}).status_code == 200
    assert httpx.post(f"{pbx.api}/extensions/2050/schedules", headers=headers, json={
        "profile_id": off, "start": "18:00", "end": "08:00"}).status_code == 201
    assert httpx.delete(f"{pbx.api}/extensions/2050", headers=headers).status_code == 204
    assert httpx.post(f"{pbx.api}/extensions", headers=headers,
                      json={"number": "2050"}).status_code == 201
    fresh = httpx.get(f"{pbx.api}/extensions/2050/profile", headers=headers).json()
    assert fresh["reason"] == "none"  # nothing of the old one's choices
    assert httpx.get(f"{pbx.api}/extensions/2050/schedules", headers=headers).json()["total"] == 0
    listing = httpx.get(f"{pbx.api}/extensions/2050/profiles", headers=headers).json()
    assert [p["name"] for p in listing["items"]] == ["Working", "Lunch", "Meeting", "Off"]


def test_sipp_calls_follow_the_profile_switch(pbx: Pbx, tmp_path: Path) -> None:
    """sipp on both ends: in a Meeting, voicemail answers sipp's call and the
    sipp phone never rings; switched back to Working, the phone answers."""
    own = user_of(pbx, "1003")
    call = [("1001", USERS["1001"], "1003")]

    def switch(name: str) -> None:
        answer = httpx.post(f"{pbx.api}/extensions/1003/profile", headers=own,
                            json={"profile_id": profile_id(pbx, "1003", name)})
        assert answer.status_code == 200 and answer.json()["profile"]["name"] == name

    def messages() -> int:
        return httpx.get(f"{pbx.api}/voicemail", headers=own).json()["total"]  # type: ignore[no-any-return]

    before = messages()
    with sipp_callee(tmp_path, pbx, "1003", USERS["1003"], ["-m", "1"]) as phone:
        switch("Meeting")
        # the caller hears why (about 5 s), the greeting and the caller's options
        # (~13 s), the tone, then talks
        result = run_sipp("call_uac.xml", pbx, call, tmp=tmp_path, extra=["-d", "25000"],
                          timeout=60)
        assert result.returncode == 0 and result.successful == 1, result.output[-2000:]
        assert phone.poll() is None  # answered by voicemail: the phone did not ring
        deadline = time.monotonic() + 5
        while messages() == before:  # sipp's audio is the message
            assert time.monotonic() < deadline, pbx.log()[-2000:]
            time.sleep(0.2)
        switch("Working")
        result = run_sipp("call_uac.xml", pbx, call, tmp=tmp_path, extra=["-d", "1000"])
        assert result.returncode == 0 and result.successful == 1, result.output[-2000:]
        assert phone.wait(15) == 0  # this time the phone answered, talked and got the BYE


def test_calls_an_extension_cannot_take_leave_a_message_by_default(pbx: Pbx) -> None:
    """With ``voicemail`` on (the product's default; this module's phones have it off),
    a call to an extension with no device registered, and one it refuses as busy,
    both reach its mailbox, as FreePBX and Telavox do."""
    headers = admin(pbx)
    mine = user_of(pbx, "1002")
    before = {m["id"] for m in messages(pbx, mine, 0)}
    assert httpx.patch(f"{pbx.api}/extensions/1002", headers=headers,
                       json={"voicemail": True}).status_code == 200
    try:
        # nobody registered
        leave_message(pbx, "1001", USERS["1001"], "1002", seconds=1.5, frequency=600.0)
        with phone(pbx, "1002") as busy:
            worker, seen = ring_and_refuse(busy, 486)
            leave_message(pbx, "1001", USERS["1001"], "1002", seconds=1.5, frequency=800.0)
            worker.join()
            assert seen, "the phone rang first"
    finally:
        httpx.patch(f"{pbx.api}/extensions/1002", headers=headers, json={"voicemail": False})
    found = [m for m in messages(pbx, mine, len(before) + 2) if m["id"] not in before]
    assert [(m["mailbox"], m["caller"]) for m in found] == [("1002", "1001")] * 2
    calls = httpx.get(f"{pbx.api}/cdrs", headers=headers, params={"limit": 5}).json()["items"]
    paths = [" ".join(c["path"]) for c in calls if c["callee"] == "1002"]
    assert any("unavailable:voicemail" in p for p in paths)
    assert any("user-busy:voicemail" in p for p in paths)
    for message in found:
        assert httpx.delete(f"{pbx.api}/voicemail/{message['id']}", headers=mine).status_code == 204


def test_colleagues_see_each_others_profile_status_not_its_settings(pbx: Pbx) -> None:
    """1002 goes to Lunch until a time: an agent of the organisation (1004) sees
    the name and end time in /api/presence, not the profile's settings (403 on
    the profile itself); another organisation's admin sees nothing of it."""
    headers = admin(pbx)
    assert httpx.post(f"{pbx.api}/extensions", headers=headers,
                      json={"number": "1004"}).status_code == 201
    made = httpx.post(f"{pbx.api}/users", headers=headers, json={
        "username": "agent1004", "password": "agent1004-Pass-12345", "role": "agent",
        "extension": "1004"})
    assert made.status_code == 201, made.text
    agent = pbx.login("agent1004", "agent1004-Pass-12345")
    lunch = profile_id(pbx, "1002", "Lunch")
    switched = httpx.post(f"{pbx.api}/extensions/1002/profile", headers=headers,
                          json={"profile_id": lunch, "until": "2099-01-01T13:00:00+01:00"})
    assert switched.status_code == 200, switched.text
    try:
        listing = httpx.get(f"{pbx.api}/presence", headers=agent)
        assert listing.status_code == 200, listing.text
        by_number = {c["extension"]: c for c in listing.json()}
        assert set(by_number) >= {"1001", "1002", "1003", "1004"}
        colleague = by_number["1002"]
        assert colleague["profile"] == "Lunch"
        assert colleague["until"].startswith("2099-01-01T12:00:00")
        assert colleague["line"] in ("available", "offline")
        assert "divert" not in listing.text and "caller_id" not in listing.text
        one = httpx.get(f"{pbx.api}/presence/1002", headers=agent)
        assert one.status_code == 200 and one.json() == colleague
        assert httpx.get(f"{pbx.api}/presence/9999", headers=agent).status_code == 404
        # the profile's settings stay with its owner, supervisors and admins
        assert httpx.get(f"{pbx.api}/extensions/1002/profile", headers=agent).status_code == 403
        assert httpx.get(f"{pbx.api}/extensions/1002/profiles", headers=agent).status_code == 403
        other = organisation(pbx, "elsewhere", "business")
        theirs = httpx.get(f"{pbx.api}/presence", headers=other)
        assert theirs.status_code == 200 and theirs.json() == []
        assert httpx.get(f"{pbx.api}/presence/1002", headers=other).status_code == 404
        assert httpx.get(f"{pbx.api}/presence").status_code == 401
    finally:
        httpx.post(f"{pbx.api}/extensions/1002/profile", headers=headers,
                   json={"profile_id": None})
