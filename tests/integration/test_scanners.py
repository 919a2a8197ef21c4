"""What a scanner gets from the running PBX: no software name, no answer at all
when it says it is one, nothing that tells an existing extension from an unknown
one, and after a flood silence for 300 s, while a phone on another address keeps
registering and calling.  The PBX runs on 127.0.0.1 (its own address: trusted);
scanners and phones come from other loopback addresses (all of 127/8 is ours)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pbx.sip.auth import build_authorization
from pbx.sip.message import Response
from tests.integration.peers import Pbx, running_pbx
from tests.integration.sipclient import SipClient

pytestmark = pytest.mark.integration

USERS = {"1001": "pw-1001-secret", "1002": "pw-1002-secret"}
UNKNOWN = "7777"


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    with running_pbx(tmp_path_factory.mktemp("scanners"), USERS) as server:
        yield server


def shape(response: Response | None) -> tuple[int, str, list[str]] | None:
    """What an enumerator compares: status, reason and which headers came."""
    if response is None:
        return None
    return response.status, response.reason, sorted(name for name, _ in response.headers)


def test_answers_name_no_software(pbx: Pbx, tmp_path: Path) -> None:
    with SipClient(pbx.host, pbx.sip_port, source="127.0.0.6") as scanner:
        scanner.request("OPTIONS", "1001")
        options = scanner.receive()
        scanner.invite_text = scanner.request("INVITE", "1001", to="1002")
        challenge = scanner.receive()
    assert options is not None and options.status == 200
    assert challenge is not None and challenge.status == 407
    for response in (options, challenge):
        assert "Server" not in response.headers and "User-Agent" not in response.headers
        assert "pbx/" not in bytes(response).decode(errors="replace").lower()
    # an operator who wants a name sets one
    with running_pbx(tmp_path, USERS, user_agent="Acme Switchboard") as named, \
            SipClient(named.host, named.sip_port) as phone:
        phone.request("OPTIONS", "1001")
        answer = phone.receive()
    assert answer is not None and answer.headers.get("Server") == "Acme Switchboard"


@pytest.mark.parametrize("agent", ["friendly-scanner", "sipvicious", "sipcli/v1.8",
                                   "VaxSIPUserAgent/3.1", "SIVuS"])
def test_a_known_scanner_hears_nothing(pbx: Pbx, agent: str) -> None:
    with SipClient(pbx.host, pbx.sip_port, source="127.0.0.4") as scanner:
        scanner.request("OPTIONS", "1001", headers={"User-Agent": agent})
        assert scanner.receive(1) is None
        scanner.request("REGISTER", "1001", headers={"User-Agent": agent})
        assert scanner.receive(1) is None
        scanner.request("OPTIONS", "1001", headers={"User-Agent": "Yealink SIP-T46S 66.86.0.15"})
        phone = scanner.receive()
    assert phone is not None and phone.status == 200  # the same address as a phone: served


def probe(pbx: Pbx, method: str, extension: str) -> tuple[int, str, list[str]] | None:
    """An svwar probe for ``extension`` (From and To it, as svwar does), from a fresh port."""
    with SipClient(pbx.host, pbx.sip_port, source="127.0.0.5") as scanner:
        headers = {"Event": "dialog"} if method == "SUBSCRIBE" else None
        scanner.invite_text = scanner.request(method, extension, to=extension, headers=headers)
        response = scanner.receive()
        if response is not None and method == "INVITE" and response.status >= 300:
            scanner.ack_failure(response)
    time.sleep(0.15)  # svwar's pace: under the flood limit
    return shape(response)


@pytest.mark.parametrize("method", ["REGISTER", "INVITE", "OPTIONS", "SUBSCRIBE", "MESSAGE"])
def test_extension_enumeration_learns_nothing(pbx: Pbx, method: str) -> None:
    existing, unknown = probe(pbx, method, "1001"), probe(pbx, method, UNKNOWN)
    assert existing is not None and existing[0] in (200, 401, 405, 407)
    assert existing == unknown


def test_password_guessing_learns_nothing_of_the_user(pbx: Pbx) -> None:
    """svcrack with a wrong password: 403 for an existing and an unknown user alike."""
    answers = []
    for extension in ("1001", UNKNOWN):
        with SipClient(pbx.host, pbx.sip_port, source="127.0.0.7") as scanner:
            scanner.request("REGISTER", extension)
            challenge = scanner.receive()
            assert challenge is not None and challenge.status == 401
            authorization = build_authorization(
                challenge.headers.get("WWW-Authenticate") or "", method="REGISTER",
                uri=scanner.uri(), username=extension, password="not-the-password")
            scanner.request("REGISTER", extension, authorization=authorization)
            answers.append(shape(scanner.receive()))
    assert answers[0] is not None and answers[0][0] == 403
    assert answers[0] == answers[1]


def test_a_flood_is_banned_while_a_phone_elsewhere_keeps_working(pbx: Pbx) -> None:
    """Kamailio pike's default: more than 16 requests in 2 s from 127.0.0.2 ban it
    for 300 s, unanswered; 1001 and 1002 on 127.0.0.3 register and call meanwhile."""
    answered: list[int] = []
    stop = threading.Event()

    def flood() -> None:
        with SipClient(pbx.host, pbx.sip_port, source="127.0.0.2") as flooder:
            while not stop.is_set():
                flooder.request("OPTIONS", "1001")
                if flooder.receive(0.05) is not None:
                    answered.append(1)

    flooder = threading.Thread(target=flood)
    flooder.start()
    try:
        time.sleep(0.5)
        with SipClient(pbx.host, pbx.sip_port, source="127.0.0.3") as caller, \
                SipClient(pbx.host, pbx.sip_port, source="127.0.0.3") as callee:
            for phone, number in ((caller, "1001"), (callee, "1002")):
                registered = phone.register(number, USERS[number],
                                            contacts=[f"<sip:{number}@{phone.host_port()}>"])
                assert registered is not None and registered.status == 200
            invite, ok = caller.call("1001", USERS["1001"], "1002", callee)
            assert invite is not None and ok is not None and ok.status == 200
            caller.in_dialog("BYE", ok)
            assert callee.hung_up()
    finally:
        stop.set()
        flooder.join()
    assert 0 < len(answered) <= 16  # then silence
    with SipClient(pbx.host, pbx.sip_port, source="127.0.0.2") as again:
        again.request("OPTIONS", "1001")
        assert again.receive(1) is None  # still banned
    assert "blocking 127.0.0.2 for 300 s after 17 requests" in pbx.log()


def closed_at_once(sock: socket.socket) -> bool:
    """The PBX closed this connection without a word (within 1 s)."""
    sock.settimeout(1)
    try:
        return sock.recv(1) == b""
    except (TimeoutError, socket.timeout):
        return False
    except ConnectionResetError:
        return True


def test_a_tcp_connection_flood_is_banned_while_a_phone_elsewhere_keeps_working(
        pbx: Pbx) -> None:
    """Connections count like requests: 127.0.0.4 opens TCP connections and
    sends nothing; the 17th within 2 s bans it, and its connections from then
    on are closed at once, while a TCP phone on 127.0.0.5 registers."""
    opened: list[socket.socket] = []
    try:
        for _ in range(20):
            sock = socket.create_connection((pbx.host, pbx.sip_port), timeout=3,
                                            source_address=("127.0.0.4", 0))
            opened.append(sock)
        assert not closed_at_once(opened[0])  # the first ones were let in
        assert closed_at_once(opened[-1])  # then the source was banned
        with SipClient(pbx.host, pbx.sip_port, "TCP", source="127.0.0.5") as phone:
            registered = phone.register("1001", USERS["1001"])
            assert registered is not None and registered.status == 200, registered
    finally:
        for sock in opened:
            sock.close()
    assert "blocking 127.0.0.4 for 300 s after 17 requests and connections" in pbx.log()
