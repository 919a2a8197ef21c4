"""The carrier stand-in alone, without the PBX: Kamailio as registrar-with-auth
and proxy, sipp and a scripted client on both sides of it.  The trunk tests
build on what these show: a trunk account registers with digest auth, a
customer's call to a DID reaches the registered contact record-routed with
audio both ways, the PBX's calls out are challenged and reach the PSTN phone
with their Caller ID, the failure modes fail, and a restart forgets the
registration."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.audio import RtpPhone
from tests.integration.carrier import (
    NEVER_ANSWER, Carrier, DidFrom, NumberFormat, PstnPhone, customer_call, kamailio_carrier, pstn_phone,
)
from tests.integration.peers import SCENARIOS, SippResult, free_ports, run_sipp
from tests.integration.sipclient import SipClient

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed"),
    pytest.mark.skipif(shutil.which("kamailio") is None, reason="kamailio not installed"),
]

DID = "+4681234567"
CUSTOMER = "+46701234567"
OFFICE = "+4687654321"  # the PBX's outward Caller ID
PBX = "127.0.0.1"  # where the PBX runs in the trunk tests: the carrier is on 127.0.0.2


@pytest.fixture
def carrier(tmp_path: Path) -> Iterator[Carrier]:
    with kamailio_carrier(tmp_path) as running:
        yield running


def register(carrier: Carrier, phone: PstnPhone) -> None:
    """The trunk account registers ``phone`` as its contact (a PBX stand-in)."""
    contact = f"<sip:{carrier.username}@{phone.host}:{phone.port}>"
    with SipClient(carrier.host, carrier.port, source=PBX) as client:
        response = client.register(carrier.username, carrier.password, expires=120,
                                   contacts=[contact])
    assert response is not None and response.status == 200, carrier.log()[-2000:]


def invite(client: SipClient, to: str, authorization: tuple[str, str] | None = None) -> int | None:
    """The final status an INVITE to ``to`` gets (None: none within 2 s)."""
    if authorization:
        response = client.start_invite(*authorization, to, wait=2)
    else:
        client.invite_text = client.request("INVITE", CUSTOMER, to=to, body=client.sdp(),
                                            headers={"Content-Type": "application/sdp"})
        response = client.receive(2)
    if response is not None and response.status >= 300:
        client.ack_failure(response)
    return None if response is None else response.status


@pytest.mark.parametrize("transport", ["u1", "t1"])
def test_the_trunk_account_registers_with_digest_auth(
    carrier: Carrier, tmp_path: Path, transport: str,
) -> None:
    result = run_sipp("register.xml", carrier.trunk, [(carrier.username, carrier.password, 120)],
                      transport=transport, tmp=tmp_path)
    assert result.returncode == 0 and result.successful == 1, result.output[-2000:]  # 401, 200
    [contact] = carrier.contacts()
    assert contact.uri.startswith(f"sip:{carrier.username}@{carrier.host}:")
    assert 100 < contact.expires <= 120 and contact.user_agent == "sipp"
    proto = {"u1": "udp", "t1": "tcp"}[transport]
    assert contact.socket == f"{proto}:{carrier.host}:{carrier.port}"
    wrong = run_sipp("register.xml", carrier.trunk, [(carrier.username, "wrong", 120)],
                     transport=transport, tmp=tmp_path, timeout=5)
    assert wrong.returncode != 0  # challenged again, never 200


def test_a_customer_call_to_the_did_reaches_the_registered_trunk(
    carrier: Carrier, tmp_path: Path,
) -> None:
    with pstn_phone(tmp_path) as pbx:
        register(carrier, pbx)
        call = customer_call(tmp_path, carrier, DID, caller=CUSTOMER, hold_ms=1500)
        assert call.returncode == 0 and call.successful == 1, call.output[-2000:] + carrier.log()
        assert pbx.stop().successful == 1
    [received] = pbx.invites()
    assert received.uri.user == DID and received.uri.port == pbx.port
    assert received.from_addr.uri.user == CUSTOMER
    routes = received.headers.get_all("Record-Route")
    assert len(routes) == 2 and str(carrier.pstn_port) in routes[1]  # double RR: both sides
    assert pbx.echoed > 25  # of ~50 (1.5 s of 30 ms packets): the audio reached the trunk


def test_the_customer_plays_audio_then_keys_digits(carrier: Carrier, tmp_path: Path) -> None:
    """What an IVR hears: PCMA from g711a.pcap, then RFC 4733 events of the digits keyed."""
    with SipClient(carrier.host, carrier.port, source=PBX) as pbx, RtpPhone() as media:
        response = pbx.register(carrier.username, carrier.password, expires=120)
        assert response is not None and response.status == 200
        calls: list[SippResult] = []
        customer = threading.Thread(target=lambda: calls.append(customer_call(
            tmp_path, carrier, DID, digits="2#", digits_after_ms=1000, hold_ms=500)))
        customer.start()
        invite = pbx.receive_request(10, "INVITE")
        assert invite is not None, carrier.log()[-2000:]
        pbx.respond(invite, 200, body=pbx.sdp(media.port),
                    headers={"Record-Route": ", ".join(invite.headers.get_all("Record-Route"))})
        packets = []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                packets.append(media.sock.recv(2048))
            except TimeoutError:
                continue
        bye = pbx.receive_request(10, "BYE")
        assert bye is not None
        pbx.respond(bye, 200)
        customer.join(15)
    assert calls and calls[0].returncode == 0, calls[0].output[-2000:] if calls else "no call"
    audio = [p for p in packets if p[1] & 0x7F == 8]
    events = [p[12] for p in packets if p[1] & 0x7F == 101]
    assert len(audio) > 20  # of ~33 (1 s of 30 ms packets) before the first digit
    assert sorted(set(events)) == [2, 11]  # "2" and "#" (RFC 4733 §3.2)
    assert events.index(11) > events.index(2)


@pytest.mark.parametrize(("did_from", "number_format", "delivered"), [
    ("ruri", "e164-noplus", "4681234567"),
    ("to", "national", "081234567"),
])
def test_the_did_as_the_carrier_delivers_it(
    tmp_path: Path, did_from: DidFrom, number_format: NumberFormat, delivered: str,
) -> None:
    with kamailio_carrier(tmp_path, did_from=did_from, number_format=number_format,
                          assert_identity=True) as carrier, pstn_phone(tmp_path) as pbx:
        register(carrier, pbx)
        call = customer_call(tmp_path, carrier, DID.removeprefix("+"), audio=False, hold_ms=200)
        assert call.returncode == 0, call.output[-2000:] + carrier.log()
    [received] = pbx.invites()
    user = received.uri.user if did_from == "ruri" else received.to_addr.uri.user
    assert user == delivered
    assert CUSTOMER in (received.headers.get("P-Asserted-Identity") or "")


def test_calls_to_other_numbers_or_an_unregistered_trunk_are_refused(carrier: Carrier) -> None:
    with SipClient(carrier.host, carrier.pstn_port) as customer:
        assert invite(customer, "+4611111111") == 404
    with SipClient(carrier.host, carrier.pstn_port) as customer:
        assert invite(customer, DID) == 480


def test_a_call_from_the_trunk_is_challenged_then_reaches_the_pstn_phone(
    carrier: Carrier, tmp_path: Path,
) -> None:
    with pstn_phone(tmp_path) as phone:
        carrier.route_outbound_to(phone.host, phone.port)
        call = run_sipp("call_uac.xml", carrier.trunk,
                        [(OFFICE, carrier.password, CUSTOMER, carrier.username)],
                        tmp=tmp_path, extra=["-d", "1500", "-mp", str(free_ports(4))])
        assert call.returncode == 0, call.output[-2000:] + carrier.log()  # 407, then 200
        assert phone.stop().successful == 1
    [received] = phone.invites()
    assert received.uri.user == CUSTOMER and received.from_addr.uri.user == OFFICE
    assert received.headers.get("Proxy-Authorization") is None  # the carrier consumed it
    assert len(received.headers.get_all("Record-Route")) == 2
    assert phone.echoed > 25  # of ~50 (1.5 s of 30 ms packets): the audio reached the phone


def test_an_ip_trunk_is_trusted_by_source_address(tmp_path: Path) -> None:
    with kamailio_carrier(tmp_path, outbound_auth="ip", trusted=[PBX]) as carrier, \
            SipClient(carrier.host, carrier.pstn_port) as phone:
        carrier.route_outbound_to(phone.local_host, phone.local_port)
        with SipClient(carrier.host, carrier.port, source=PBX) as pbx:
            rang, final = pbx.call(OFFICE, "", CUSTOMER, phone, status=486)  # no credentials
        assert rang is not None and rang.uri.user == CUSTOMER, carrier.log()[-2000:]
        assert final is not None and final.status == 486  # the phone's answer, not a 407
        with SipClient(carrier.host, carrier.port, source="127.0.0.3") as stranger:
            assert invite(stranger, CUSTOMER) == 403
        assert phone.receive_request(0.5, "INVITE") is None


def test_failure_modes_answer_503_or_nothing(carrier: Carrier, tmp_path: Path) -> None:
    with SipClient(carrier.host, carrier.port, source=PBX) as pbx:
        carrier.fail_registrations(503)
        refused = pbx.register(carrier.username, carrier.password)
        assert refused is not None and refused.status == 503  # before any challenge
        carrier.fail_registrations(None)
        registered = pbx.register(carrier.username, carrier.password)
        assert registered is not None and registered.status == 200
    trunk = (carrier.username, carrier.password)
    carrier.fail_outbound(503)
    scenario = tmp_path / "call_refused_503.xml"
    scenario.write_text((SCENARIOS / "call_refused.xml.in").read_text().replace("STATUS", "503"))
    call = run_sipp(str(scenario), carrier.trunk,
                    [(OFFICE, carrier.password, CUSTOMER, carrier.username)], tmp=tmp_path)
    assert call.returncode == 0, call.output[-2000:] + carrier.log()  # 407, then 503
    carrier.fail_outbound(NEVER_ANSWER)
    with SipClient(carrier.host, carrier.port, source=PBX) as pbx:
        assert invite(pbx, CUSTOMER, trunk) is None
    carrier.fail_outbound(None)
    with SipClient(carrier.host, carrier.port, source=PBX) as pbx:
        assert invite(pbx, CUSTOMER, trunk) == 480  # forwarded again: no PSTN phone set


def test_a_restart_forgets_the_registration(carrier: Carrier, tmp_path: Path) -> None:
    with pstn_phone(tmp_path) as pbx:
        register(carrier, pbx)
        assert carrier.contacts()
        carrier.route_outbound_to("127.0.0.1", 5060)
        carrier.restart()
        assert carrier.contacts() == []
        assert carrier.pstn_target == "127.0.0.1:5060" and "127.0.0.1:5060" in carrier.config()
        with SipClient(carrier.host, carrier.pstn_port) as customer:
            assert invite(customer, DID) == 480
        since = time.time()
        register(carrier, pbx)
        assert carrier.wait_for_registration(since=since)
