"""SIP trunks with a real carrier: Kamailio as the operator's SBC
(tests/integration/carrier.py), the PBX on the demo dial plan.  The PBX
registers its trunk, a customer on the PSTN calls the demo number, goes
through the IVR with a key and talks to extension 1002; the registration
comes back after the carrier restarts."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.audio import RtpPhone, heard, level, tone_wav
from tests.integration.carrier import Carrier, customer_call, kamailio_carrier, pstn_phone
from tests.integration.peers import Pbx, baresip_phone, running_demo, sipp_callee
from tests.integration.sipclient import SipClient

pytestmark = pytest.mark.skipif(shutil.which("kamailio") is None or shutil.which("sipp") is None,
                                reason="needs kamailio and sipp")
DID = "+4681234567"  # the demo number: it leads to the IVR on 500


@pytest.fixture(scope="module")
def carrier(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Carrier]:
    with kamailio_carrier(tmp_path_factory.mktemp("carrier"), dids=(DID,),
                          max_expires=60) as running:
        yield running


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory, carrier: Carrier) -> Iterator[Pbx]:
    with running_demo(tmp_path_factory.mktemp("trunked")) as server:
        trunk = {"name": "carrier", "host": f"{carrier.host}:{carrier.port}",
                 "username": carrier.username, "password": carrier.password, "expiry": 60}
        made = httpx.post(f"{server.api}/trunks", headers=server.admin_headers(), json=trunk)
        assert made.status_code == 201, made.text
        assert "password" not in made.json()["settings"] and made.json()["password_set"]
        carrier.wait_for_registration()
        opened = httpx.post(f"{server.api}/schedules/office-hours/override",
                            headers=server.admin_headers(), json={"action": "open"})
        assert opened.status_code == 200
        yield server


def test_the_trunk_registers_and_says_so(pbx: Pbx, carrier: Carrier) -> None:
    state = httpx.get(f"{pbx.api}/trunks/carrier/state", headers=pbx.admin_headers()).json()
    assert state["state"] == "registered" and state["code"] == 200
    assert [c.uri for c in carrier.contacts()][0].startswith(f"sip:{carrier.username}@")
    bad = httpx.post(f"{pbx.api}/trunks", headers=pbx.admin_headers(),
                     json={"name": "broken", "host": "carrier.test", "auth": "register"})
    assert bad.status_code == 422 and "username and password" in bad.text


def test_a_customer_reaches_bertil_through_the_ivr_and_they_hear_each_other(
        pbx: Pbx, carrier: Carrier, tmp_path: Path) -> None:
    """PSTN → Kamailio → the PBX's trunk → IVR 500 → key 2 → baresip 1002."""
    callee_tone = tone_wav(tmp_path / "b.wav", 1000, 30)
    with baresip_phone(tmp_path, pbx, "1002", "demo-1002-Pw", audio_file=callee_tone,
                       seconds=40) as bertil:
        time.sleep(1.5)
        with SipClient(carrier.host, carrier.pstn_port, source="127.0.0.1") as customer, \
                RtpPhone() as rtp:
            provisional, ok = customer.invite("+46701234567", "", DID,
                                              body=customer.sdp(rtp.port, "0 101"))
            assert ok is not None and ok.status == 200, (ok, carrier.log()[-2000:])
            assert ok.headers.get_all("Record-Route"), "the carrier's route set came back"
            customer.in_dialog("ACK", ok, cseq=ok.cseq.number)
            rtp.answered(ok.body)
            greeting = rtp.listen(2.0)
            assert len(greeting) > 8000 and max(abs(greeting)) > 1000  # the IVR speaks
            rtp.keys("2")
            rtp.send_tone(440, 6.0)
            answered = rtp.listen(3.0)
            assert level(answered, 1000) > 20 * max(level(answered, 440), 1e-3)
            customer.in_dialog("BYE", ok)
            assert (bye := customer.receive(5)) is not None and bye.status == 200
        deadline = time.monotonic() + 10
        while not list(bertil.directory.glob("dump-*-dec.wav")):
            assert time.monotonic() < deadline
            time.sleep(0.2)
    talk = heard(next(bertil.directory.glob("dump-*-dec.wav")))
    assert level(talk, 440) > 20 * max(level(talk, 1000), 1e-3)  # the customer's voice
    calls = httpx.get(f"{pbx.api}/cdrs", headers=pbx.admin_headers(), params={"limit": 5})
    record = next(c for c in calls.json()["items"] if c["caller"] == "+46701234567")
    assert record["trunk"] == "carrier" and record["answered_by"] == "1002"
    assert "ivr:500" in record["path"] and "redirect:1002" in record["path"]


def test_a_sipp_customer_keys_through_the_ivr(pbx: Pbx, carrier: Carrier,
                                              tmp_path: Path) -> None:
    """sipp plays the customer (RFC 4733 from its pcaps) and gets an answer."""
    result = customer_call(tmp_path, carrier, DID, digits="0", digits_after_ms=1500,
                           hold_ms=2000)
    assert result.returncode == 0, result.output[-2000:]
    calls = httpx.get(f"{pbx.api}/cdrs", headers=pbx.admin_headers(), params={"limit": 3})
    assert any("ivr:500" in c["path"] for c in calls.json()["items"] if c["trunk"] == "carrier")


def test_a_customer_waits_in_the_support_queue_until_an_agent_answers(
        pbx: Pbx, carrier: Carrier, tmp_path: Path) -> None:
    """Key 3 of the demo IVR: the queue on 700 takes the customer and rings
    Bertil (a sipp phone answering), who talks to them; the record says so."""
    with sipp_callee(tmp_path, pbx, "1002", "demo-1002-Pw"):
        result = customer_call(tmp_path, carrier, DID, audio=False, digits="3",
                               digits_after_ms=1500, hold_ms=3000)
    assert result.returncode == 0, result.output[-2000:]
    calls = httpx.get(f"{pbx.api}/cdrs", headers=pbx.admin_headers(), params={"limit": 3})
    (record,) = [c for c in calls.json()["items"] if "queue:700" in c["path"]]
    assert record["trunk"] == "carrier" and record["caller"] == "+46701234567"
    assert "answer:1002" in record["path"] and record["disposition"] == "answered"


def test_a_stranger_cannot_call_our_number_without_credentials(pbx: Pbx) -> None:
    """Only the carrier's address is trusted: the same INVITE from elsewhere is a
    phone's, challenged and refused."""
    with SipClient(pbx.host, pbx.sip_port) as stranger:
        _, final = stranger.invite("+46701234567", "wrong", DID)  # answers the 407, wrongly
        assert final is not None and final.status == 403
    assert pbx.health()["calls"] == 0


def test_the_registration_comes_back_after_the_carrier_restarts(pbx: Pbx,
                                                                 carrier: Carrier) -> None:
    since = time.time()
    carrier.restart()
    assert carrier.contacts() == []
    carrier.wait_for_registration(timeout=70, since=since)
    state = httpx.get(f"{pbx.api}/trunks/carrier/state", headers=pbx.admin_headers()).json()
    assert state["state"] == "registered"


def route(pbx: Pbx, name: str, patterns: list[str], trunks: list[str]) -> None:
    """An outbound route (replaced if there is one by that name)."""
    url = f"{pbx.api}/outbound-routes"
    httpx.delete(f"{url}/{name}", headers=pbx.admin_headers())
    made = httpx.post(url, headers=pbx.admin_headers(), json={
        "name": name, "patterns": patterns, "trunks": trunks, "caller_id": DID})
    assert made.status_code == 201, made.text


def call_out(pbx: Pbx, number: str, rtp: RtpPhone, phone: SipClient):  # type: ignore[no-untyped-def]
    """Extension 1001 dials ``number``; its final answer."""
    _, final = phone.invite("1001", "demo-1001-Pw", number, body=phone.sdp(rtp.port, "0 101"),
                            wait=15)
    return final


def test_an_extension_calls_out_through_the_carrier(pbx: Pbx, carrier: Carrier,
                                                     tmp_path: Path) -> None:
    """1001 → PBX → Kamailio (407, answered with the trunk's credentials) → a PSTN
    phone that echoes: the caller hears its own tone back, and the phone sees
    the organisation's number as the caller ID."""
    route(pbx, "sweden", ["+46.", "112"], ["carrier"])
    with pstn_phone(tmp_path) as pstn, SipClient(pbx.host, pbx.sip_port) as phone, \
            RtpPhone() as rtp:
        carrier.route_outbound_to(pstn.host, pstn.port)
        ok = call_out(pbx, "070-1234567", rtp, phone)
        assert ok is not None and ok.status == 200, (ok, carrier.log()[-2000:])
        phone.in_dialog("ACK", ok, cseq=ok.cseq.number)
        rtp.answered(ok.body)
        sender = threading.Thread(target=rtp.send_tone, args=(700, 3.0))
        sender.start()
        echoed = rtp.listen(3.0)
        sender.join()
        phone.in_dialog("BYE", ok)
        (invite,) = pstn.invites()
        assert invite.uri.user == "+46701234567"
        assert invite.from_addr.uri.user == DID
    assert level(echoed, 700) > 20 * max(level(echoed, 1000), 1e-3)  # there and back again
    calls = httpx.get(f"{pbx.api}/cdrs", headers=pbx.admin_headers(), params={"limit": 3})
    record = next(c for c in calls.json()["items"] if c["callee"] == "070-1234567")
    assert record["trunk"] == "carrier" and record["direction"] == "outbound"


def test_failover_to_the_next_trunk_on_503(pbx: Pbx, carrier: Carrier, tmp_path: Path) -> None:
    """A second carrier, IP-authenticated, answers 503: the route's next trunk carries it."""
    with kamailio_carrier(tmp_path, host="127.0.0.3", outbound_auth="none") as flaky, \
            pstn_phone(tmp_path) as pstn, SipClient(pbx.host, pbx.sip_port) as phone, \
            RtpPhone() as rtp:
        flaky.fail_outbound(503)
        made = httpx.post(f"{pbx.api}/trunks", headers=pbx.admin_headers(), json={
            "name": "flaky", "host": f"{flaky.host}:{flaky.port}", "auth": "ip"})
        assert made.status_code == 201, made.text
        try:
            route(pbx, "sweden", ["+46.", "112"], ["flaky", "carrier"])
            carrier.route_outbound_to(pstn.host, pstn.port)
            ok = call_out(pbx, "0701234568", rtp, phone)
            assert ok is not None and ok.status == 200, (ok, flaky.log()[-2000:])
            phone.in_dialog("ACK", ok, cseq=ok.cseq.number)
            phone.in_dialog("BYE", ok)
            assert "503" in flaky.log() and len(pstn.invites()) == 1
        finally:
            route(pbx, "sweden", ["+46.", "112"], ["carrier"])
            httpx.delete(f"{pbx.api}/trunks/flaky", headers=pbx.admin_headers())


def test_international_calls_refused_while_emergency_calls_go_out(
        pbx: Pbx, carrier: Carrier, tmp_path: Path) -> None:
    policy = f"{pbx.api}/call-policy"
    assert httpx.patch(policy, headers=pbx.admin_headers(), json={
        "international": False, "max_outbound_per_extension": 0}).status_code == 200
    try:
        route(pbx, "world", ["+."], ["carrier"])
        with pstn_phone(tmp_path) as pstn, SipClient(pbx.host, pbx.sip_port) as phone, \
                RtpPhone() as rtp:
            carrier.route_outbound_to(pstn.host, pstn.port)
            refused = call_out(pbx, "00442079460000", rtp, phone)
            assert refused is not None and refused.status == 403, refused
            assert "nternational" in refused.reason
            phone.call_id += "-112"
            ok = call_out(pbx, "112", rtp, phone)
            assert ok is not None and ok.status == 200, ok
            phone.in_dialog("ACK", ok, cseq=ok.cseq.number)
            phone.in_dialog("BYE", ok)
            assert [i.uri.user for i in pstn.invites()] == ["112"]
    finally:
        httpx.patch(policy, headers=pbx.admin_headers(),
                    json={"international": None, "max_outbound_per_extension": None})
        httpx.delete(f"{pbx.api}/outbound-routes/world", headers=pbx.admin_headers())


def test_an_ip_trunk_is_trusted_by_its_address(pbx: Pbx, tmp_path: Path) -> None:
    """A carrier without registration: its calls come in without credentials."""
    with kamailio_carrier(tmp_path, host="127.0.0.3", dids=(DID,)) as ip_carrier:
        made = httpx.post(f"{pbx.api}/trunks", headers=pbx.admin_headers(), json={
            "name": "ipcarrier", "host": f"{ip_carrier.host}:{ip_carrier.port}", "auth": "ip"})
        assert made.status_code == 201
        try:
            ip_carrier.route_inbound_to(pbx.host, pbx.sip_port)
            time.sleep(0.5)  # the node resolves the new trunk's address
            result = customer_call(tmp_path, ip_carrier, DID, audio=False, hold_ms=1000)
            assert result.returncode == 0, result.output[-2000:] + ip_carrier.log()[-2000:]
        finally:
            httpx.delete(f"{pbx.api}/trunks/ipcarrier", headers=pbx.admin_headers())


def test_click_to_call_rings_the_user_then_the_pstn_phone(pbx: Pbx, carrier: Carrier,
                                                          tmp_path: Path) -> None:
    """``POST /api/calls``: 1001's phone rings and answers, then the number rings on
    the PSTN through the carrier; the live list shows the call; DELETE ends it."""
    route(pbx, "sweden", ["+46.", "112"], ["carrier"])
    with pstn_phone(tmp_path) as pstn, SipClient(pbx.host, pbx.sip_port) as desk:
        carrier.route_outbound_to(pstn.host, pstn.port)
        contact = [f"<sip:1001@{desk.host_port()}>"]
        assert desk.register("1001", "demo-1001-Pw", contacts=contact).status == 200  # type: ignore[union-attr]
        try:
            placed = httpx.post(f"{pbx.api}/calls", headers=pbx.admin_headers(),
                                json={"from": "1001", "to": "0701234570"})
            assert placed.status_code == 201, placed.text
            desk.pick_up(41500)
            deadline = time.monotonic() + 10
            while not pstn.invites():
                assert time.monotonic() < deadline, carrier.log()[-2000:]
                time.sleep(0.2)
            assert pstn.invites()[0].uri.user == "+46701234570"
            time.sleep(0.5)
            (live,) = [c for c in httpx.get(f"{pbx.api}/calls/live",
                                            headers=pbx.admin_headers()).json()
                       if c["id"] == placed.json()["call_id"]]
            assert live["state"] == "answered"
            assert httpx.delete(f"{pbx.api}/calls/{live['id']}",
                                headers=pbx.admin_headers()).status_code == 204
            assert desk.hung_up()
        finally:
            desk.register("1001", "demo-1001-Pw", contacts=contact, expires=0)


def test_a_carrier_that_refuses_ends_the_call_with_a_clear_record(
        pbx: Pbx, carrier: Carrier, tmp_path: Path) -> None:
    route(pbx, "sweden", ["+46.", "112"], ["carrier"])
    carrier.fail_outbound(503)
    try:
        with SipClient(pbx.host, pbx.sip_port) as phone, RtpPhone() as rtp:
            final = call_out(pbx, "0701234571", rtp, phone)
            assert final is not None and final.status == 503
    finally:
        carrier.fail_outbound(None)
    calls = httpx.get(f"{pbx.api}/cdrs", headers=pbx.admin_headers(), params={"limit": 3})
    record = next(c for c in calls.json()["items"] if c["callee"] == "0701234571")
    assert (record["disposition"], record["status"], record["trunk"]) == ("failed", 503, "carrier")
    assert pbx.health()["calls"] == 0
