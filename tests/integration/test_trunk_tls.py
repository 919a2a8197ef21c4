"""SIP over TLS to carriers, verified: three stand-in carriers (TLS listeners
on their own loopback addresses, certificates from a CA made here) and one
PBX with a route over them.  The carrier whose certificate is valid for its
address and chains to the pinned CA gets the INVITE; one whose certificate
names another host, or comes from a CA nobody pinned, is refused with the
reason in the log, and the call fails over or is answered 503 at once.  A
fourth carrier's trunk requires SRTP: its INVITE offers SDES keys."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pbx.sip.message import Request, make_response
from pbx.sip.parser import StreamFramer, parse_message
from tests.certs import Authority
from tests.integration.peers import Pbx, free_ports, running_pbx
from tests.integration.sipclient import SipClient

pytestmark = pytest.mark.integration

USERS = {"1001": "pw-1001-secret"}


class TlsCarrier:
    """A carrier's SIP-over-TLS edge on ``host``: answers every INVITE 486 (so a
    test sees that it got through) and keeps the requests."""

    def __init__(self, host: str, cert: Path, key: Path) -> None:
        self.host = host
        self.port = free_ports(1, host)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.listener = context.wrap_socket(socket.create_server((host, self.port)),
                                            server_side=True)
        self.listener.settimeout(0.2)
        self.requests: list[Request] = []
        self.handshake_failures = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            except (ssl.SSLError, OSError):
                self.handshake_failures += 1
                continue
            threading.Thread(target=self._talk, args=(connection,), daemon=True).start()

    def _talk(self, connection: ssl.SSLSocket) -> None:
        framer = StreamFramer()
        connection.settimeout(0.2)
        with connection:
            while not self.stopped.is_set():
                try:
                    data = connection.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                for raw in framer.feed(data):
                    message = parse_message(raw)
                    if isinstance(message, Request):
                        self.requests.append(message)
                        if message.method == "INVITE":
                            busy = make_response(message, 486, to_tag="carrier")
                            connection.sendall(bytes(busy))

    def invites(self) -> list[Request]:
        return [r for r in self.requests if r.method == "INVITE"]

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(2)
        self.listener.close()


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    """The CA the carriers' certificates come from, pinned by every trunk."""
    return Authority.create(tmp_path_factory.mktemp("tls-ca"), "carrier-ca")


@pytest.fixture(scope="module")
def carriers(tmp_path_factory: pytest.TempPathFactory,
             authority: Authority) -> Iterator[dict[str, TlsCarrier]]:
    tmp = tmp_path_factory.mktemp("tls-carriers")
    stranger = Authority.create(tmp, "stranger")
    made = {
        "good": TlsCarrier("127.0.0.2", *authority.issue(tmp, "127.0.0.2")),
        "misnamed": TlsCarrier("127.0.0.3", *authority.issue(tmp, "sip.elsewhere.test")),
        "untrusted": TlsCarrier("127.0.0.4", *stranger.issue(tmp, "127.0.0.4")),
        "secure": TlsCarrier("127.0.0.5", *authority.issue(tmp, "127.0.0.5")),
    }
    try:
        yield made
    finally:
        for carrier in made.values():
            carrier.close()


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory, authority: Authority,
        carriers: dict[str, TlsCarrier]) -> Iterator[Pbx]:
    trunks = "".join(f"""
[{name}]
type = trunk
host = {carrier.host}:{carrier.port}
transport = tls
auth = ip
tls_ca_file = {authority.cert}
media_encryption = {"required" if name == "secure" else "off"}
""" for name, carrier in carriers.items())
    trunks += f"""
[registering]
type = trunk
host = {carriers["misnamed"].host}:{carriers["misnamed"].port}
transport = tls
username = pbx
password = pbx-secret
tls_ca_file = {authority.cert}
"""
    routes = """
[failover]
type = route
patterns = +4670.
trunks = misnamed, untrusted, good

[srtp]
type = route
patterns = +4672.
trunks = secure

[nowhere]
type = route
patterns = +4671.
trunks = untrusted
"""
    with running_pbx(tmp_path_factory.mktemp("tls-pbx"), USERS, sections=trunks + routes) as server:
        yield server


def call(pbx: Pbx, number: str) -> tuple[int, float]:
    """1001 dials ``number``: the final status and how long it took."""
    with SipClient(pbx.host, pbx.sip_port) as phone:
        started = time.monotonic()
        _, final = phone.invite("1001", USERS["1001"], number, wait=15)
    assert final is not None, pbx.log()[-3000:]
    return final.status, time.monotonic() - started


def test_a_call_fails_over_from_unverifiable_carriers_to_the_verified_one(
        pbx: Pbx, carriers: dict[str, TlsCarrier]) -> None:
    status, took = call(pbx, "0701234567")
    assert status == 486, pbx.log()[-3000:]  # the good carrier's answer came back
    assert took < 10  # no waiting out transaction timers on the refused ones
    [invite] = carriers["good"].invites()
    assert invite.uri.user == "+46701234567" and "TLS" in invite.headers.get("Via", "")
    assert b"RTP/AVP" in invite.body and b"a=crypto" not in invite.body  # its SRTP is off
    assert carriers["misnamed"].invites() == [] and carriers["untrusted"].invites() == []
    log = pbx.log()
    assert ("TLS to 127.0.0.3 (127.0.0.3:%d) refused: certificate verify failed: IP address "
            "mismatch, certificate is not valid for '127.0.0.3'." % carriers["misnamed"].port) in log
    assert ("TLS to 127.0.0.4 (127.0.0.4:%d) refused: certificate verify failed: unable to get "
            "local issuer certificate" % carriers["untrusted"].port) in log


def test_a_call_whose_only_carrier_cannot_be_verified_gets_503(
        pbx: Pbx, carriers: dict[str, TlsCarrier]) -> None:
    before = len(carriers["untrusted"].requests)
    status, took = call(pbx, "0711234567")
    assert status == 503 and took < 10, pbx.log()[-3000:]
    assert len(carriers["untrusted"].requests) == before


def test_a_registration_to_an_unverifiable_carrier_shows_why(pbx: Pbx) -> None:
    """The trunk's state says what the log says: 503 and the verification failure."""

    admin, deadline = pbx.admin_headers(), time.monotonic() + 10
    while True:
        state = httpx.get(f"{pbx.api}/trunks/registering/state", headers=admin).json()
        if state["state"] == "failed" or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert state["state"] == "failed" and state["code"] == 503, state
    assert "certificate verify failed: IP address mismatch" in state["reason"], state


def test_a_carrier_that_requires_srtp_is_offered_sdes_keys_over_tls(
        pbx: Pbx, carriers: dict[str, TlsCarrier]) -> None:
    """A trunk with media_encryption = required: the INVITE to the carrier offers
    RTP/SAVP with SDES keys (RFC 4568), over the verified TLS connection."""
    status, _ = call(pbx, "0721234567")
    assert status == 486, pbx.log()[-3000:]
    [invite] = carriers["secure"].invites()
    audio = next(line for line in invite.body.decode().splitlines() if line.startswith("m=audio"))
    assert audio.split()[2] == "RTP/SAVP", invite.body
    assert b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" in invite.body, invite.body
