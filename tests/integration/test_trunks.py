"""SIP trunks with a real carrier: Kamailio as the operator's SBC
(tests/integration/carrier.py), the PBX on the demo dial plan.  The PBX
registers its trunk, a customer on the PSTN calls the demo number, goes
through the IVR with a key and talks to extension 1002; the registration
comes back after the carrier restarts."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.audio import RtpPhone, heard, level, tone_wav
from tests.integration.carrier import Carrier, customer_call, kamailio_carrier
from tests.integration.peers import Pbx, baresip_phone, running_demo
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
