"""The address a PBX bound to a wildcard (0.0.0.0) tells phones (Via, Contact,
SDP c=) is looked up once at start, off the event loop, never per message:
the resolver call blocks, and the PBX would stall on every request."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

import pbx.server
from pbx.config import ConfigError, load_config
from pbx.server import SipServer
from pbx.store import Store
from tests.integration.peers import free_ports
from tests.integration.sipclient import SipClient

USERS = {"1001": "pw-1001-secret", "1002": "pw-1002-secret"}
OURS = "192.0.2.10"  # what the (counting) resolver says this host is


def server_on(tmp_path: Path, bind: str, general: str = "transports = udp\n") -> SipServer:
    """A SipServer on ``bind`` (ports chosen by the kernel); ``general``: more settings."""
    rtp = free_ports(8)
    conf = tmp_path / "sip.conf"
    conf.write_text(
        f"[general]\nbind = {bind}\nudp_port = 0\ntcp_port = 0\n{general}data_dir = {tmp_path}\n"
        f"rtp_port_min = {rtp}\nrtp_port_max = {rtp + 7}\nrealm = pbx.test\n"
        + "".join(f"[{n}]\nsecret = {pw}\n" for n, pw in USERS.items()))
    config = load_config(conf)
    store = Store("sqlite://")
    store.seed(config)
    return SipServer(config, store)


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every host name resolved, while the resolver answers OURS."""
    names: list[str] = []

    def resolve(name: str) -> str:
        names.append(name)
        return OURS

    monkeypatch.setattr(socket, "gethostbyname", resolve)
    monkeypatch.setattr(pbx.server, "build_prompts", lambda folder, languages=(): [])  # no espeak-ng here
    return names


def a_call(port: int) -> tuple[str, str, str]:
    """1002 registers, 1001 calls it, 1001 hangs up: the Via and SDP of the
    INVITE the phone got and the Contact of the 200 the caller got."""
    with SipClient("127.0.0.1", port) as phone, SipClient("127.0.0.1", port) as caller:
        registered = phone.register("1002", USERS["1002"],
                                    contacts=[f"<sip:1002@{phone.host_port()}>"])
        assert registered is not None and registered.status == 200
        invite, ok = caller.call("1001", USERS["1001"], "1002", phone)
        assert invite is not None and ok is not None and ok.status == 200
        caller.in_dialog("BYE", ok)
        bye = phone.receive_request(5, "BYE")
        assert bye is not None and caller.receive(5) is not None  # the PBX's 200 to the BYE
        phone.respond(bye, 200)
        sdp = invite.body.decode()
        return invite.vias[0].host, sdp.split("c=IN IP4 ")[1].split()[0], ok.contacts[0].uri.host


async def test_wildcard_bind_resolves_once_at_start(tmp_path: Path, lookups: list[str]) -> None:
    server = server_on(tmp_path, "0.0.0.0")
    await server.start()
    try:
        assert lookups == [socket.gethostname()]
        via, connection, contact = await asyncio.to_thread(
            a_call, server.transports["UDP"].local_port)
        assert (via, connection, contact) == (OURS, OURS, OURS)
        assert len(lookups) == 1  # a whole call's messages, and no lookup of their own
    finally:
        await server.stop()


async def test_a_bound_address_is_used_as_it_is(tmp_path: Path, lookups: list[str]) -> None:
    server = server_on(tmp_path, "127.0.0.1")
    await server.start()
    try:
        assert server.media_address() == "127.0.0.1" and lookups == []
    finally:
        await server.stop()


async def test_an_unresolvable_host_name_stops_the_start(
    tmp_path: Path, lookups: list[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fail(name: str) -> str:
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "gethostbyname", fail)
    server = server_on(tmp_path, "0.0.0.0")
    with pytest.raises(ConfigError, match=r"\[general\] external_address: needed"):
        await server.start()
