"""Voicemail as callers and owners use it, over a running PBX with scripted
SIP phones (real sockets, RFC 4733 keys): an uploaded greeting is what the
caller hears (its tone found by FFT), ``#`` skips it to the beep, ``0``
reaches the operator's phone, ``2`` and keyed digits leave a call-back
number as a message; a shared mailbox's message shows for both members in
the API and lights both lamps (one SUBSCRIBEd, one by unsolicited NOTIFY);
the menu on ``*98`` wants the PIN, and three wrong ones hang up.  Shared
mailboxes are services of the plan; who may change greetings and PINs."""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import numpy as np
import pytest
import soundfile

from media.g711 import ulaw_decode
from pbx.sip.message import Response
from tests.integration.audio import key_in, tone_share, voiced_frames
from tests.integration.peers import ADMIN_PASSWORD, Pbx, organisation, running_pbx, user_of
from tests.integration.sipclient import SipClient, lamp_until, message_summary
from tests.integration.voicemail_calls import (
    BEEP_HZ, answered_call, leave_message, messages, until_bye,
)

pytestmark = pytest.mark.integration
USERS = {n: f"pw-{n}-secret" for n in ("1001", "1002", "1003", "1004")}
GREETING_HZ = 500.0  # the uploaded greeting's tone
SECTIONS = """
[2000]
type = mailbox
name = Support
members = 1002, 1003
"""


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    with running_pbx(tmp_path_factory.mktemp("voicemail-options"), USERS, sections=SECTIONS,
                     admin_password=ADMIN_PASSWORD, operator="1004") as server:
        yield server


def tone_wav(frequency: float, seconds: float) -> bytes:
    t = np.arange(int(8000 * seconds)) / 8000
    out = io.BytesIO()
    soundfile.write(out, (np.sin(2 * np.pi * frequency * t) * 8000).astype(np.int16), 8000,
                    format="WAV")
    return out.getvalue()


@contextmanager
def forwarded_to_voicemail(pbx: Pbx, extension: str) -> Iterator[None]:
    admin = pbx.admin_headers()
    patched = httpx.patch(f"{pbx.api}/extensions/{extension}", headers=admin,
                          json={"forward_always": "voicemail"})
    assert patched.status_code == 200, patched.text
    try:
        yield
    finally:
        httpx.patch(f"{pbx.api}/extensions/{extension}", headers=admin,
                    json={"forward_always": ""})


def frames_until(rtp: socket.socket, frequency: float, count: int,
                 seconds: float = 30.0) -> list[np.ndarray]:
    """The 20 ms frames the phone hears until ``count`` in a row carry ``frequency``."""
    heard: list[np.ndarray] = []
    run = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            frame = ulaw_decode(rtp.recv(2048)[12:]).astype(np.float64)
        except TimeoutError:
            continue
        if len(frame) != 160:
            continue
        heard.append(frame)
        run = run + 1 if tone_share(frame, frequency) > 0.8 else 0
        if run >= count:
            return heard
    raise AssertionError(f"no {frequency:.0f} Hz tone of {count} frames came")


def toned(frames: list[np.ndarray], frequency: float) -> int:
    return sum(tone_share(f, frequency) > 0.8 for f in frames)


def hang_up(phone: SipClient, ok: Response) -> None:
    phone.in_dialog("BYE", ok)
    answer = phone.receive(5)
    assert answer is not None and answer.status == 200


def test_an_uploaded_greeting_is_what_the_caller_hears(pbx: Pbx) -> None:
    admin = pbx.admin_headers()
    url = f"{pbx.api}/voicemail/1003/greetings/unavailable"
    broken = httpx.put(url, headers=admin, content=b"RIFF" + bytes(60))
    assert broken.status_code == 422 and broken.json()["detail"], broken.text
    uploaded = httpx.put(url, headers=admin, content=tone_wav(GREETING_HZ, 1.5))
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json()["heard_now"] == {"unavailable": "unavailable", "busy": "default"}
    try:
        with (forwarded_to_voicemail(pbx, "1003"),
              answered_call(pbx, "1001", USERS["1001"], "1003") as call):
            phone, rtp, ok, _ = call
            heard = frames_until(rtp, GREETING_HZ, 60)  # the greeting: its tone
            assert toned(heard, BEEP_HZ) == 0  # before the beep
            after = frames_until(rtp, BEEP_HZ, 5)  # the options, then the beep
            assert 70 <= toned(heard, GREETING_HZ) + toned(after, GREETING_HZ) <= 78  # 1.5 s
            assert voiced_frames(np.concatenate(after)) > 100  # the options were said
            hang_up(phone, ok)
    finally:
        assert httpx.delete(url, headers=admin).status_code == 204
    listed = httpx.get(f"{pbx.api}/voicemail/1003/greetings", headers=admin).json()
    assert listed["items"] == [] and listed["heard_now"]["unavailable"] == "default"


def test_hash_skips_the_greeting_to_the_beep(pbx: Pbx) -> None:
    admin = pbx.admin_headers()
    url = f"{pbx.api}/voicemail/1003/greetings/unavailable"
    assert httpx.put(url, headers=admin, content=tone_wav(GREETING_HZ, 10)).status_code == 200
    try:
        with (forwarded_to_voicemail(pbx, "1003"),
              answered_call(pbx, "1001", USERS["1001"], "1003") as call):
            phone, rtp, ok, pbx_port = call
            frames_until(rtp, GREETING_HZ, 10)
            pressed = time.monotonic()
            key_in(rtp, pbx_port, "#", 100)
            after = frames_until(rtp, BEEP_HZ, 5, seconds=5)
            assert time.monotonic() - pressed < 2.0  # not the 10 s greeting and the options
            assert toned(after, GREETING_HZ) < 10  # cut short at once
            hang_up(phone, ok)
    finally:
        httpx.delete(url, headers=admin)


def test_zero_reaches_the_operator(pbx: Pbx) -> None:
    """[general] operator = 1004: its phone rings for the caller who pressed 0."""
    with SipClient(pbx.host, pbx.sip_port) as desk:
        registered = desk.register("1004", USERS["1004"])
        assert registered is not None and registered.status == 200
        try:
            with (forwarded_to_voicemail(pbx, "1003"),
                  answered_call(pbx, "1001", USERS["1001"], "1003") as call):
                phone, rtp, ok, pbx_port = call
                time.sleep(1.0)  # the greeting has begun
                key_in(rtp, pbx_port, "0", 100)
                invite = desk.receive_request(10, "INVITE")
                assert invite is not None, "the operator's phone never rang"
                assert invite.from_addr.uri.user == "1001"
                desk.respond(invite, 200, body=desk.sdp(41000))
                ack = desk.receive_request(5, "ACK")
                assert ack is not None
                hang_up(phone, ok)
                bye = desk.receive_request(5, "BYE")
                assert bye is not None
                desk.respond(bye, 200)
        finally:
            desk.register("1004", USERS["1004"], expires=0)


def test_a_call_back_number_keyed_in_lands_as_a_message(pbx: Pbx) -> None:
    admin = pbx.admin_headers()
    before = {m["id"] for m in messages(pbx, admin, 0)}
    with (forwarded_to_voicemail(pbx, "1003"),
          answered_call(pbx, "1002", USERS["1002"], "1003") as call):
        phone, rtp, _, pbx_port = call
        time.sleep(1.0)
        key_in(rtp, pbx_port, "2", 100)
        time.sleep(0.5)
        key_in(rtp, pbx_port, "0701234567#", 200)
        until_bye(phone, rtp)  # "thank you, we will call you back", then the PBX hangs up
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        new = [m for m in messages(pbx, admin, len(before) + 1) if m["id"] not in before]
        if new:
            break
        time.sleep(0.2)
    (message,) = new
    assert (message["mailbox"], message["caller"], message["callback_number"]) == (
        "1003", "1002", "0701234567")
    mine = user_of(pbx, "1003")
    audio = httpx.get(f"{pbx.api}/voicemail/{message['id']}/audio", headers=mine)
    assert audio.status_code == 200
    samples, rate = soundfile.read(io.BytesIO(audio.content), dtype="int16")
    assert rate == 8000 and voiced_frames(samples) > 200  # "call back on" and ten digits


def test_a_shared_mailbox_message_shows_for_both_members_and_lights_both_lamps(
        pbx: Pbx) -> None:
    """2000 is shared by 1002 (its phone SUBSCRIBEs) and 1003 (a desk phone
    without MWI subscription: mwi_unsolicited)."""
    admin = pbx.admin_headers()
    unsolicited = httpx.patch(f"{pbx.api}/extensions/1003", headers=admin,
                              json={"mwi_unsolicited": True})
    assert unsolicited.status_code == 200 and unsolicited.json()["mwi_unsolicited"] is True
    bob, cecilia, alice = user_of(pbx, "1002"), user_of(pbx, "1003"), user_of(pbx, "1001")
    with SipClient(pbx.host, pbx.sip_port) as lamp, SipClient(pbx.host, pbx.sip_port) as desk:
        lamp.call_id += "-shared-lamp"
        subscribed = lamp.subscribe("1002", USERS["1002"], "1002", "message-summary")
        assert subscribed is not None and subscribed.status == 200
        before = message_summary(lamp_until(lamp, summary_of(pbx, bob)))["Voice-Message"]
        registered = desk.register("1003", USERS["1003"])
        assert registered is not None and registered.status == 200
        first = lamp_until(desk, summary_of(pbx, cecilia))  # told at registration
        assert first.to_addr.tag is None  # outside any dialog
        assert first.headers.get("Event") == "message-summary"
        try:
            leave_message(pbx, "1001", USERS["1001"], "2000", seconds=1.5, frequency=800.0)
            new_bob = bump(before)
            lamp_until(lamp, new_bob)
            lamp_until(desk, bump(message_summary(first)["Voice-Message"]))
        finally:
            desk.register("1003", USERS["1003"], expires=0)
    shared = [m for m in messages(pbx, bob, 1) if m["mailbox"] == "2000"]
    assert len(shared) == 1 and shared[0]["caller"] == "1001"
    assert any(m["id"] == shared[0]["id"] for m in messages(pbx, cecilia, 1))
    assert all(m["mailbox"] != "2000" for m in messages(pbx, alice, 0))
    audio_url = f"{pbx.api}/voicemail/{shared[0]['id']}/audio"
    assert httpx.get(audio_url, headers=cecilia).status_code == 200
    assert httpx.get(audio_url, headers=alice).status_code == 403
    busy = httpx.delete(f"{pbx.api}/sharedmailboxes/2000", headers=admin)
    assert busy.status_code == 409 and "holds 1 messages" in busy.json()["detail"]


def summary_of(pbx: Pbx, headers: dict[str, str]) -> str:
    """The Voice-Message a member's lamp shows now: new/old of its mailboxes."""
    items = messages(pbx, headers, 0)
    new = sum(not m["heard"] for m in items)
    return f"{new}/{len(items) - new} (0/0)"


def bump(voice_message: str) -> str:
    new, rest = voice_message.split("/", 1)
    return f"{int(new) + 1}/{rest}"


def test_the_menu_from_another_phone_wants_the_pin(pbx: Pbx) -> None:
    admin = pbx.admin_headers()
    assert httpx.put(f"{pbx.api}/voicemail/1003/pin", headers=admin,
                     json={"pin": "4711"}).status_code == 204
    with answered_call(pbx, "1001", USERS["1001"], "*98") as call:
        phone, rtp, _, pbx_port = call
        time.sleep(0.5)
        key_in(rtp, pbx_port, "1003#4711#", 300)
        deadline = time.monotonic() + 10
        while "PIN of mailbox 1003 accepted" not in pbx.log():
            assert time.monotonic() < deadline, "the right PIN was not taken"
            time.sleep(0.2)
        assert phone.receive_request(2, "BYE") is None  # in, not thrown out
    with answered_call(pbx, "1001", USERS["1001"], "*98") as call:
        phone, rtp, _, pbx_port = call
        time.sleep(0.5)
        key_in(rtp, pbx_port, "1003#9999#1003#1234#1003#0000#", 400)
        heard = until_bye(phone, rtp)  # "that PIN is not correct. goodbye", then the BYE
    assert voiced_frames(heard) > 50
    assert pbx.log().count("wrong PIN for mailbox 1003 from 1001") == 3


def test_shared_mailboxes_are_services_of_the_plan(pbx: Pbx) -> None:
    small = organisation(pbx, "tiny", "free")  # one switchboard service
    for number in ("5001", "5002"):
        assert httpx.post(f"{pbx.api}/extensions", headers=small,
                          json={"number": number}).status_code == 201
    url = f"{pbx.api}/sharedmailboxes"
    unknown = httpx.post(url, headers=small, json={"number": "3000", "members": ["5009"]})
    assert unknown.status_code == 422 and "5009" in unknown.json()["detail"][0]["msg"]
    clash = httpx.post(url, headers=small, json={"number": "5001", "members": ["5002"]})
    assert clash.status_code == 409 and "extension 5001" in clash.json()["detail"]
    made = httpx.post(url, headers=small, json={"number": "3000", "name": "Office",
                                                 "members": ["5001", "5002"]})
    assert made.status_code == 201, made.text
    over = httpx.post(url, headers=small, json={"number": "3001", "members": ["5001"]})
    assert over.status_code == 402
    assert httpx.get(f"{pbx.api}/services", headers=small).json()["items"] == [
        {"kind": "sharedmailbox", "number": "3000", "name": "Office"}]
    patched = httpx.patch(f"{url}/3000", headers=small, json={"members": ["5002"]})
    assert patched.status_code == 200 and patched.json()["members"] == ["5002"]
    taken = httpx.post(f"{pbx.api}/extensions", headers=small, json={"number": "3000"})
    assert taken.status_code == 409 and "shared mailbox 3000" in taken.json()["detail"]
    assert httpx.delete(f"{url}/3000", headers=small).status_code == 204
    assert httpx.post(url, headers=small, json={"number": "3001"}).status_code == 201


def test_who_may_change_greetings_and_pins(pbx: Pbx) -> None:
    admin = pbx.admin_headers()
    bob, alice = user_of(pbx, "1002"), user_of(pbx, "1001")
    made = httpx.post(f"{pbx.api}/users", headers=admin, json={
        "username": "supervisor1", "password": "supervisor-Pass-1", "role": "supervisor"})
    assert made.status_code == 201, made.text
    supervisor = pbx.login("supervisor1", "supervisor-Pass-1")
    greeting = tone_wav(GREETING_HZ, 0.5)

    def put(who: dict[str, str], mailbox: str, what: str) -> int:
        if what == "pin":
            return httpx.put(f"{pbx.api}/voicemail/{mailbox}/pin", headers=who,
                             json={"pin": "8642"}).status_code
        return httpx.put(f"{pbx.api}/voicemail/{mailbox}/greetings/name", headers=who,
                         content=greeting).status_code

    assert put(bob, "1002", "pin") == 204  # the owner
    assert put(bob, "1003", "pin") == 403  # a colleague's
    assert put(bob, "2000", "greeting") == 200  # a member of the shared mailbox
    assert put(alice, "2000", "greeting") == 403  # not a member
    assert put(supervisor, "1003", "greeting") == 200
    assert put(supervisor, "1003", "pin") == 403
    assert put(admin, "4040", "pin") == 404
    settings = httpx.get(f"{pbx.api}/voicemail/1002/settings", headers=bob).json()
    assert settings == {"mailbox": "1002", "pin_set": True, "pin_from_own_device": False,
                        "operator": ""}
    for mailbox in ("2000", "1003"):
        assert httpx.delete(f"{pbx.api}/voicemail/{mailbox}/greetings/name",
                            headers=admin).status_code == 204
