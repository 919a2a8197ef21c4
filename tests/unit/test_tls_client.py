"""TLS connections the PBX opens (to carriers): the peer's certificate and name
are verified, failures reach the owner with a reason an operator can act on,
and the transaction layer turns them into an immediate end of the requests."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from pbx.sip.flow import Flow
from pbx.sip.message import Request
from pbx.sip.parser import parse_message
from pbx.sip.transaction import TransactionLayer, TransportError
from pbx.transport.stream import StreamTransport, TlsPeer
from pbx.transport.tls import client_context, server_context
from tests.certs import Authority

OPTIONS = (b"OPTIONS sip:carrier SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bK-1\r\n"
           b"From: <sip:pbx@127.0.0.1>;tag=1\r\nTo: <sip:carrier>\r\nCall-ID: tls-1\r\n"
           b"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")


async def carrier(cert: Path, key: Path) -> tuple[asyncio.Server, asyncio.Queue[bytes]]:
    """A TLS listener on 127.0.0.1 that hands on what it receives."""
    got: asyncio.Queue[bytes] = asyncio.Queue()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            got.put_nowait(await reader.readuntil(b"\r\n\r\n"))
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_context(cert, key))
    return server, got


async def dial(tmp_path: Path, served_for: str, server_name: str, *, trusted: bool = True,
               verify: bool = True) -> tuple[bytes | None, list[str]]:
    """Send OPTIONS to a carrier whose certificate names ``served_for`` (from our
    CA, or a stranger's) while we expect ``server_name``: what arrived, the errors."""
    ours, stranger = Authority.create(tmp_path, "ours"), Authority.create(tmp_path, "stranger")
    server, got = await carrier(*(ours if trusted else stranger).issue(tmp_path, served_for))
    port = server.sockets[0].getsockname()[1]
    errors: list[str] = []
    transport = StreamTransport("TLS", lambda data, flow: None, ssl.create_default_context())
    transport.on_error = lambda flow, reason: errors.append(reason)
    flow = Flow("TLS", "127.0.0.1", port)
    transport.expect(flow, TlsPeer(client_context(str(ours.cert), verify), server_name))
    try:
        assert transport.send(OPTIONS, flow) and transport.send(OPTIONS, flow)  # 2nd waits
        try:
            arrived: bytes | None = await asyncio.wait_for(got.get(), 3)
        except asyncio.TimeoutError:
            arrived = None
        await asyncio.sleep(0.1)
        return arrived, errors
    finally:
        await transport.close()
        server.close()


async def test_a_carrier_with_a_valid_certificate_for_its_name_gets_our_request(
        tmp_path: Path) -> None:
    arrived, errors = await dial(tmp_path, "127.0.0.1", "127.0.0.1")
    assert arrived is not None and arrived.startswith(b"OPTIONS sip:carrier") and errors == []
    named, errors = await dial(tmp_path, "sip.carrier.test", "sip.carrier.test")
    assert named is not None and errors == []


@pytest.mark.parametrize(("served_for", "trusted", "why"), [
    ("other.carrier.test", True, "IP address mismatch, certificate is not valid for '127.0.0.1'."),
    ("127.0.0.1", False, "unable to get local issuer certificate"),
])
async def test_a_wrong_name_or_an_untrusted_ca_is_refused_with_the_reason(
        tmp_path: Path, served_for: str, trusted: bool, why: str) -> None:
    arrived, errors = await dial(tmp_path, served_for, "127.0.0.1", trusted=trusted)
    assert arrived is None and errors == [f"certificate verify failed: {why}"]


async def test_verification_off_connects_to_anyone(tmp_path: Path) -> None:
    arrived, errors = await dial(tmp_path, "other.carrier.test", "127.0.0.1", trusted=False,
                                 verify=False)
    assert arrived is not None and errors == []


def test_a_transport_error_ends_the_requests_to_that_flow_and_no_others() -> None:
    layer = TransactionLayer()
    down, up = Flow("TLS", "127.0.0.2", 5061), Flow("TLS", "127.0.0.3", 5061)
    request = parse_message(OPTIONS)
    assert isinstance(request, Request)
    other = parse_message(OPTIONS.replace(b"branch=z9hG4bK-1", b"branch=z9hG4bK-2"))
    assert isinstance(other, Request)
    failed = layer.send_request(request, down, True, 0.0)
    kept = layer.send_request(other, up, True, 0.0)
    layer.transport_error(down, "certificate verify failed: x")
    events = []
    while (event := layer.next_event()) is not None:
        events.append(event)
    assert TransportError(failed, "certificate verify failed: x") in events
    assert not any(getattr(e, "tx", None) is kept for e in events)
    assert len(layer) == 1


def test_trunk_tls_settings_are_checked(tmp_path: Path) -> None:
    from pbx.trunks.settings import TrunkSettings

    ca = Authority.create(tmp_path, "pinned").cert
    trunk = TrunkSettings(name="c", host="sip.carrier.test", transport="tls", auth="ip",
                          tls_ca_file=str(ca))
    assert trunk.tls_verify and trunk.next_hop == ("sip.carrier.test", 5061)
    with pytest.raises(ValueError, match="needs transport tls"):
        TrunkSettings(name="c", host="sip.carrier.test", auth="ip", tls_ca_file=str(ca))
    with pytest.raises(ValueError, match="not a readable file"):
        TrunkSettings(name="c", host="sip.carrier.test", transport="tls", auth="ip",
                      tls_ca_file=str(tmp_path / "missing.pem"))
