"""Every RFC 4475 torture message sent to the running PBX over UDP (and the
stream-safe ones over TCP): each gets the answer its kind calls for, or none,
and the PBX keeps serving registrations afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pbx.sip.errors import ParseError
from pbx.sip.message import Request
from pbx.sip.parser import parse_message
from tests.integration.peers import Pbx, running_pbx
from tests.integration.sipclient import SipClient
from tests.unit.rfc4475 import VECTORS

pytestmark = pytest.mark.integration

# What this PBX answers to well-formed requests it cannot serve as they are:
# requests for example.com are not its domain (REGISTER 403), INVITEs and
# other requests need credentials (407) before anything else is looked at.
ACCEPTABLE = {
    "valid": {200, 403, 404, 405, 407, 481, 501, None},  # None: responses, ignored
    "lenient": {400, 407},
    "semantic 416": {416},
    "semantic 420": {420},
    "semantic 415": {415, 407},  # authentication comes first
    "semantic 401": {401, 403},
    "semantic 200": {200},
    "semantic 400": {400, 403},
}


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    with running_pbx(tmp_path_factory.mktemp("torture"), {"1001": "pw-1001-secret"},
                     auth_max_failures=1000) as server:
        yield server


def answer(pbx: Pbx, data: bytes, transport: str = "UDP") -> int | None:
    with SipClient(pbx.host, pbx.sip_port, transport) as client:
        client.send_raw(data)
        response = client.receive(timeout=0.7)
        return response.status if response is not None else None


def _transaction(data: bytes) -> tuple[object, ...] | None:
    """The server transaction key a request would get (branch, sent-by, method)."""
    try:
        message = parse_message(data)
    except ParseError:
        return None
    if not isinstance(message, Request):
        return None
    via = message.vias[0]
    return (via.branch, via.host, via.port, message.method)


# Some vectors share a branch, sent-by and method (novelsc and unkscm, escnull
# and regescrt): to a PBX that saw the first, the second is its retransmission
# and is rightly absorbed.  Those go to a PBX of their own.
_SEEN: set[object] = set()
SHARED = set()
for _name in sorted(VECTORS):
    _key = _transaction(VECTORS[_name][0])
    if _key is not None and _key in _SEEN:
        SHARED.add(_name)
    _SEEN.add(_key)


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_each_vector_gets_the_right_answer(pbx: Pbx, name: str, tmp_path: Path) -> None:
    data, expectation = VECTORS[name]
    if name in SHARED:
        with running_pbx(tmp_path, {"1001": "pw-1001-secret"}) as own:
            status = answer(own, data)
    else:
        status = answer(pbx, data)
    if expectation in ("400", "505"):
        assert status == int(expectation)
    elif expectation == "drop":
        assert status is None
    elif name in ("unreason", "noreason", "bcast"):
        assert status is None  # responses to nothing we sent: dropped
    else:
        assert status in ACCEPTABLE[expectation], (name, status)


def test_stream_transport_and_survival(pbx: Pbx, tmp_path: Path) -> None:
    for name in ("wsinv", "badinv01", "badvers", "multi01", "bext01", "unkscm"):
        data, expectation = VECTORS[name]
        status = answer(pbx, data, "TCP")
        if expectation in ("400", "505"):
            assert status == int(expectation), name
    # after all that, the PBX still answers and registers
    with SipClient(pbx.host, pbx.sip_port) as client:
        client.request("OPTIONS", "1001")
        assert client.receive().status == 200  # type: ignore[union-attr]
        assert client.register("1001", "pw-1001-secret").status == 200  # type: ignore[union-attr]
    assert pbx.process is not None and pbx.process.poll() is None


def test_a_datagram_without_the_empty_line_gets_its_400(pbx: Pbx) -> None:
    """RFC 4475 §3.1.2.15 "baddn" ending with ``l: 0`` CRLF and no empty line:
    the datagram's end ends the message, so the phone hears why (it used to be
    dropped: "No end of headers")."""
    data = VECTORS["baddn"][0]
    with SipClient(pbx.host, pbx.sip_port) as client:
        client.send_raw(data[:-2])
        response = client.receive(timeout=2)
    assert response is not None and response.status == 400
    assert response.reason.startswith("Bad Request - ")
    assert response.call_id == "baddn.31415@c.example.com"


def test_a_stream_broken_by_its_framing_hears_why(pbx: Pbx) -> None:
    """Over TCP a malformed Content-Length leaves no way to find the next
    message: the connection is closed, but the request gets its 400 first."""
    with SipClient(pbx.host, pbx.sip_port, "TCP") as client:
        client.send_raw(
            f"OPTIONS sip:1001@{pbx.host} SIP/2.0\r\n"
            f"Via: SIP/2.0/TCP {client.host_port()};branch=z9hG4bKbrokenframe\r\n"
            "From: <sip:1001@pbx.test>;tag=1\r\nTo: <sip:1001@pbx.test>\r\nCall-ID: broken-frame\r\n"
            "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 12x\r\n\r\n".encode())
        response = client.receive(timeout=2)
        assert response is not None and response.status == 400
        assert response.reason == "Bad Request - Malformed Content-Length"
        client.sock.settimeout(2)
        assert client.sock.recv(1) == b""  # and the connection is closed
