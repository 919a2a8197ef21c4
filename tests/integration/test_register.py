"""Phones register with the real PBX process: sipp and baresip as the phones,
plus a raw-socket client for the corner cases of RFC 3261 §10."""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.peers import Pbx, baresip_phone, run_sipp, running_pbx
from tests.integration.sipclient import SipClient

pytestmark = pytest.mark.integration

USERS = {
    "1001": "pw-1001-secret", "1002": "pw-1002-secret", "1003": "pw-1003-secret",
    "1005": "pw-1005-secret",
}
needs_sipp = pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed")


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    with running_pbx(tmp_path_factory.mktemp("pbx"), USERS, auth_max_failures=50) as server:
        yield server


def contacts_of(pbx: Pbx, user: str) -> list[str]:
    """Ask the registrar (a REGISTER without Contact, §10.2.3) which contacts it holds."""
    with SipClient(pbx.host, pbx.sip_port) as client:
        response = client.register(user, USERS[user], contacts=[], expires=None)
    assert response is not None and response.status == 200
    return [str(a.uri) for a in response.contacts]


@needs_sipp
@pytest.mark.parametrize("transport", ["u1", "t1"])
def test_sipp_registers_with_digest(pbx: Pbx, tmp_path: Path, transport: str) -> None:
    phones = [(user, USERS[user]) for user in ("1001", "1002", "1003")]
    result = run_sipp("register.xml", pbx, phones, transport=transport, tmp=tmp_path)
    assert result.returncode == 0, result.output
    assert result.successful == 3 and result.failed == 0
    for user, _ in phones:
        assert any(f"sip:{user}@127.0.0.1" in c for c in contacts_of(pbx, user))


@needs_sipp
def test_sipp_wrong_password_is_refused(pbx: Pbx, tmp_path: Path) -> None:
    result = run_sipp(
        "register_refused.xml", pbx, [("1002", "not-the-password")], tmp=tmp_path
    )
    assert result.returncode == 0, result.output  # the scenario expects 401 then 403


def test_unknown_user_gets_the_same_answer_as_a_wrong_password(pbx: Pbx) -> None:
    with SipClient(pbx.host, pbx.sip_port) as client:
        wrong = client.register("1001", "nope")
        unknown = client.register("7777", "nope")
    assert wrong is not None and unknown is not None
    assert (wrong.status, wrong.reason) == (unknown.status, unknown.reason) == (403, "Forbidden")


@pytest.mark.parametrize("transport", ["UDP", "TCP", "TLS"])
def test_register_over_each_transport(pbx: Pbx, transport: str) -> None:
    port = pbx.tls_port if transport == "TLS" else pbx.sip_port
    with SipClient(pbx.host, port, transport) as client:
        response = client.register("1003", USERS["1003"], expires=120)
        assert response is not None and response.status == 200
        mine = [c for c in response.contacts if c.uri.port == client.local_port]
        assert len(mine) == 1 and 110 <= int(mine[0].params["expires"]) <= 120
        assert "Server" not in response.headers  # no software name for scanners (user_agent)
        # Expires: 0 removes it again.
        response = client.register("1003", USERS["1003"], expires=0)
        assert response is not None and response.status == 200
        assert not [c for c in response.contacts if c.uri.port == client.local_port]


def test_several_devices_per_user_and_removal(pbx: Pbx) -> None:
    desk, dect, soft = (SipClient(pbx.host, pbx.sip_port) for _ in range(3))
    try:
        for client, expires in ((desk, 600), (dect, 300), (soft, 900)):
            assert client.register("1005", USERS["1005"], expires=expires).status == 200  # type: ignore[union-attr]
        response = soft.register("1005", USERS["1005"], contacts=[], expires=None)
        assert response is not None
        by_port = {a.uri.port: int(a.params["expires"]) for a in response.contacts}
        assert set(by_port) == {desk.local_port, dect.local_port, soft.local_port}
        assert by_port[dect.local_port] <= 300 < by_port[desk.local_port] <= 600
        # One device leaves, the others stay.
        assert dect.register("1005", USERS["1005"], expires=0).status == 200  # type: ignore[union-attr]
        assert len(contacts_of(pbx, "1005")) == 2
        # Contact: * with Expires: 0 clears the user (§10.2.2).
        response = desk.register("1005", USERS["1005"], contacts=["*"], expires=0)
        assert response is not None and response.status == 200 and response.contacts == []
        assert contacts_of(pbx, "1005") == []
    finally:
        for client in (desk, dect, soft):
            client.close()


def test_interval_too_brief_and_contact_star_rules(pbx: Pbx) -> None:
    with SipClient(pbx.host, pbx.sip_port) as client:
        response = client.register("1001", USERS["1001"], expires=5)
        assert response is not None and response.status == 423
        assert response.headers.get("Min-Expires") == "60"
        response = client.register("1001", USERS["1001"], contacts=["*"], expires=60)
        assert response is not None and response.status == 400


def test_register_to_a_foreign_domain_is_refused(pbx: Pbx) -> None:
    with SipClient(pbx.host, pbx.sip_port) as client:
        text = (
            "REGISTER sip:example.org SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {client.host_port()};branch=z9hG4bKforeign1\r\n"
            "From: <sip:1001@example.org>;tag=a\r\nTo: <sip:1001@example.org>\r\n"
            "Call-ID: foreign-1\r\nCSeq: 1 REGISTER\r\nMax-Forwards: 70\r\n"
            "Contact: <sip:1001@127.0.0.1:9>\r\nContent-Length: 0\r\n\r\n"
        )
        client.send_raw(text.encode())
        response = client.receive()
    assert response is not None and response.status == 403


def test_options_and_unknown_methods(pbx: Pbx) -> None:
    with SipClient(pbx.host, pbx.sip_port) as client:
        client.request("OPTIONS", "1001")
        options = client.receive()
        assert options is not None and options.status == 200
        assert "REGISTER" in (options.headers.get("Allow") or "")
        client.request("FOOBAR", "1001")
        unknown = client.receive()
        assert unknown is not None and unknown.status == 501 and unknown.headers.get("Allow")
        client.request("PUBLISH", "1001")
        known = client.receive()
        assert known is not None and known.status == 405
        client.request("OPTIONS", "1001", headers={"Require": "fancy-ext"})
        require = client.receive()
        assert require is not None and require.status == 420
        assert require.headers.get("Unsupported") == "fancy-ext"


def test_garbage_never_hurts_other_registrations(pbx: Pbx) -> None:
    with SipClient(pbx.host, pbx.sip_port) as keeper:
        assert keeper.register("1001", USERS["1001"], expires=600).status == 200  # type: ignore[union-attr]
    junk = [
        b"\x00\xff" * 300,
        b"INVITE\r\n\r\n",
        b"REGISTER sip:x SIP/2.0\r\nVia: nonsense\r\n\r\n",
        b"SIP/2.0 200 OK\r\n\r\n",
        bytes(range(256)) * 20,
    ]
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for blob in junk:
        udp.sendto(blob, (pbx.host, pbx.sip_port))
    udp.close()
    for blob in junk:
        with socket.create_connection((pbx.host, pbx.sip_port), timeout=3) as tcp:
            tcp.sendall(blob + b"\r\n\r\n")
    # A malformed request whose headers can be read gets 400 with a reason.
    with SipClient(pbx.host, pbx.sip_port) as client:
        client.send_raw(
            (
                "OPTIONS sip:127.0.0.1 SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {client.host_port()};branch=z9hG4bKbadcseq\r\n"
                "From: <sip:1001@127.0.0.1>;tag=x\r\nTo: <sip:1001@127.0.0.1>\r\n"
                "Call-ID: bad-cseq\r\nCSeq: notanumber OPTIONS\r\nMax-Forwards: 70\r\n"
                "Content-Length: 0\r\n\r\n"
            ).encode()
        )
        response = client.receive()
        assert response is not None and response.status == 400
        assert response.reason.startswith("Bad Request")
    assert pbx.process is not None and pbx.process.poll() is None
    assert contacts_of(pbx, "1001")


@pytest.mark.skipif(shutil.which("baresip") is None, reason="baresip not installed")
def test_baresip_registers(pbx: Pbx, tmp_path: Path) -> None:
    with baresip_phone(tmp_path, pbx, "1003", USERS["1003"], seconds=20) as phone:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if any(f":{phone.port}" in c for c in contacts_of(pbx, "1003")):
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"baresip did not register:\n{phone.log()}\n{pbx.log()[-3000:]}")


@needs_sipp
def test_registration_survives_a_restart(tmp_path: Path) -> None:
    with running_pbx(tmp_path, {"1004": "pw-1004-secret"}) as server:
        result = run_sipp("register.xml", server, [("1004", "pw-1004-secret", 600)], tmp=tmp_path)
        assert result.returncode == 0, result.output
        time.sleep(0.5)  # the write-back interval (location_flush_ms) is 200 ms
        server.stop()
        server.start()
        assert server.health()["registrations"] == 1
        with SipClient(server.host, server.sip_port) as client:
            response = client.register("1004", "pw-1004-secret", contacts=[], expires=None)
        assert response is not None and [a.uri.user for a in response.contacts] == ["1004"]
        assert 550 < int(response.contacts[0].params["expires"]) <= 600


def test_failed_auth_blocks_the_source(tmp_path: Path) -> None:
    with running_pbx(
        tmp_path, {"1001": "pw-1001-secret"}, auth_max_failures=3, auth_block_time=60
    ) as server:
        with SipClient(server.host, server.sip_port, source="127.0.0.2") as attacker:
            for _ in range(3):
                assert attacker.register("1001", "guess").status == 403  # type: ignore[union-attr]
            attacker.request("OPTIONS", "1001")
            assert attacker.receive(timeout=1.0) is None  # blocked: dropped silently
        with SipClient(server.host, server.sip_port) as phone:
            assert phone.register("1001", "pw-1001-secret").status == 200  # type: ignore[union-attr]
        assert "blocking 127.0.0.2" in server.log()


def test_ipv6_registration(tmp_path: Path) -> None:
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    with running_pbx(tmp_path, {"1001": "pw-1001-secret"}, host="::1") as server:
        for transport in ("UDP", "TCP"):
            with SipClient("::1", server.sip_port, transport) as client:
                response = client.register("1001", "pw-1001-secret")
                assert response is not None and response.status == 200
                assert response.contacts[0].uri.host == "::1"


def test_sha256_digest_when_configured(tmp_path: Path) -> None:
    """With ``auth_algorithms = SHA-256, MD5`` a capable phone answers with SHA-256 (RFC 8760)."""
    with running_pbx(tmp_path, {"1001": "pw-1001-secret"}, auth_algorithms="SHA-256, MD5") as server:
        with SipClient(server.host, server.sip_port) as client:
            client.request("REGISTER", "1001", contacts=[f"<sip:1001@{client.host_port()}>"])
            challenge = client.receive()
            assert challenge is not None and challenge.status == 401
            offered = challenge.headers.get_all("WWW-Authenticate")
            assert ["SHA-256" in offered[0], "MD5" in offered[1]] == [True, True]
            response = client.register("1001", "pw-1001-secret")
            assert response is not None and response.status == 200
            wrong = client.register("1001", "not-it")
            assert wrong is not None and wrong.status == 403
