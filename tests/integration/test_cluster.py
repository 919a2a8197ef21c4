"""A cluster on this machine: Kamailio with ``deploy/kamailio/kamailio.cfg`` as
the SIP edge in front of two PBX nodes on one PostgreSQL (one of them runs
the store-wide jobs).  Phones register and call through the edge only; each
organisation is hashed to a node.  Then the node of the default organisation
is killed: the other node knew its phones' registrations all along (from the
store, told by NOTIFY), so calls reach them at once; they re-register through
the edge, which now sends them to the other node, and call again; the voicemail, the recording and the call
records it made are all still in the store; the call under way on the other
node goes on and ends normally."""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select

from pbx.models import Voicemail
from pbx.store import Store
from tests.integration.carrier import kamailio_rpc, start_kamailio, stop_group
from tests.integration.test_admin_media import classes, tone_file
from tests.integration.peers import (
    ADMIN_PASSWORD, REPO, Pbx, free_ports, organisation, postgres_url, write_config,
)
from tests.integration.sipclient import SipClient, place_call, uas_dialog
from tests.integration.voicemail_calls import leave_message

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("kamailio") is None, reason="kamailio not installed"),
]

USERS = {"1001": "pw-1001-secret", "1002": "pw-1002-secret"}
SECTIONS = """
[1003]
secret = pw-1003-secret
voicemail = yes

[1004]
secret = pw-1004-secret
voicemail = no
record = yes
"""
DEFAULT = "pbx.test"
CANDIDATES = [f"org{n}" for n in range(1, 7)]  # some hash to the other node


@dataclass
class Edge:
    """Where phones send everything (what SipClient and the helpers call a PBX)."""

    host: str
    sip_port: int
    log: Path
    rpc: Path

    def inactive(self, node: Pbx) -> bool:
        """The edge's dispatcher has set ``node`` inactive (its pings unanswered)."""
        reply = kamailio_rpc(self.rpc, "dispatcher.list")
        targets = reply["result"]["RECORDS"][0]["SET"]["TARGETS"]
        uri = f"sip:{node.host}:{node.sip_port}"
        return any(t["DEST"]["URI"] == uri and "I" in t["DEST"]["FLAGS"] for t in targets)

    def phone(self, domain: str) -> SipClient:
        return SipClient(self.host, self.sip_port, domain=domain)


@contextmanager
def edge(tmp: Path, nodes: list[Pbx]) -> Iterator[Edge]:
    """Kamailio with the deployment's config, its three settings changed: this
    address, a free port and a dispatcher list naming ``nodes``."""
    port = free_ports(1)
    listing = tmp / "dispatcher.list"
    listing.write_text("".join(f"1 sip:{node.host}:{node.sip_port} 0 0\n" for node in nodes))
    text = (REPO / "deploy" / "kamailio" / "kamailio.cfg").read_text()
    rpc = tmp / "kamailio-rpc.sock"
    for name, value in (("EDGE_ADDR", "127.0.0.1"), ("EDGE_PORT", str(port)),
                        ("DISPATCHER_LIST", str(listing)), ("RPC_SOCKET", str(rpc))):
        text, count = re.subn(rf'#!substdef "!{name}![^!]*!g"',
                              f'#!substdef "!{name}!{value}!g"', text)
        assert count == 1, name
    config = tmp / "kamailio.cfg"
    config.write_text(text)
    log = tmp / "kamailio.log"
    process = start_kamailio(config, log, tmp, ("127.0.0.1", port))
    try:
        yield Edge("127.0.0.1", port, log, rpc)
    finally:
        stop_group(process)


def node(tmp: Path, name: str, url: str, jobs: bool) -> Pbx:
    folder = tmp / name
    folder.mkdir()
    config = write_config(folder / "sip.conf", USERS, SECTIONS, database_url=url,
                          jobs="yes" if jobs else "no", auth_max_failures=1000)
    sip = free_ports(100)  # SIP, TLS and the node's own RTP ports
    pbx = Pbx("127.0.0.1", sip, free_ports(1), tmp / "data", config,
              rtp_ports=f"{sip + 2}-{sip + 99}", admin_password=ADMIN_PASSWORD)
    pbx.start()
    return pbx


def register(phone: SipClient, number: str, secret: str) -> None:
    response = phone.register(number, secret, expires=600)
    assert response is not None and response.status == 200, response


def talk_and_hang_up(caller: SipClient, number: str, secret: str, callee: SipClient,
                     dialled: str, rtp: int, label: str) -> None:
    ok, _ = place_call(caller, number, secret, callee, dialled, rtp, label)
    assert callee.receive_request(3, "ACK") is not None
    caller.in_dialog("BYE", ok)
    bye = caller.receive(5)
    assert bye is not None and bye.status == 200, bye
    assert callee.hung_up()


def homes(edge: Edge, nodes: list[Pbx], phones: dict[str, tuple[str, str]]) -> dict[str, Pbx]:
    """Which node each domain's REGISTER reached (the one that accepted it)."""
    found = {}
    for domain, (number, secret) in phones.items():
        before = [n.health()["registrations_accepted"] for n in nodes]
        with edge.phone(domain) as phone:
            register(phone, number, secret)
        after = [n.health()["registrations_accepted"] for n in nodes]
        (index,) = [i for i in range(len(nodes)) if after[i] > before[i]]
        found[domain] = nodes[index]
    return found


def stored(url: str) -> tuple[set[int], set[str], set[str]]:
    """The CDR ids, the recording files and the voicemail files in the shared store."""
    store = Store(url)
    try:
        cdrs = {c.id for c in store.cdrs(1000) if c.id is not None}
        recordings = {r.path for r in store.recordings(1000)}
        with Session(store.engine) as session:
            messages = {m.path for m in session.exec(select(Voicemail)).all()}
    finally:
        store.close()
    return cdrs, recordings, messages


@pytest.fixture
def database(tmp_path: Path) -> Iterator[str]:
    """A database on the local PostgreSQL, or on a private one (skipped without either)."""
    with ExitStack() as stack:
        try:
            url = stack.enter_context(postgres_url(tmp_path))
        except RuntimeError as exc:
            pytest.skip(f"no PostgreSQL: {exc}")
        yield url


def test_phones_move_to_the_other_node_when_theirs_dies(tmp_path: Path, database: str) -> None:
    url = database
    nodes: list[Pbx] = []
    try:
        (tmp_path / "data").mkdir()  # shared by the nodes: voicemail and recordings
        nodes.append(node(tmp_path, "a", url, jobs=True))
        secrets = {DEFAULT: {"1002": USERS["1002"]}}  # domain → extension → SIP password
        for slug in CANDIDATES:
            admin = organisation(nodes[0], slug, "business")
            secrets[f"{slug}.test"] = {}
            for number in ("2001", "2002"):
                made = httpx.post(f"{nodes[0].api}/extensions", headers=admin,
                                  json={"number": number})
                assert made.status_code == 201, made.text
                secrets[f"{slug}.test"][number] = made.json()["secret"]
        nodes.append(node(tmp_path, "b", url, jobs=False))
        with edge(tmp_path, nodes) as front:
            where = homes(front, nodes, {domain: next(iter(phones.items()))
                                         for domain, phones in secrets.items()})
            doomed = where[DEFAULT]
            survivor = next(n for n in nodes if n is not doomed)
            other = next((d for d in secrets if where[d] is survivor), None)
            assert other is not None, f"every organisation hashed to one node: {where}"

            # the default organisation on the node that will die: a call, a recorded
            # call, a voicemail; the other organisation: a call that stays up
            with front.phone(DEFAULT) as alice, front.phone(DEFAULT) as bob, \
                    front.phone(DEFAULT) as dave, front.phone(other) as carol, \
                    front.phone(other) as erin:
                register(bob, "1002", USERS["1002"])
                register(dave, "1004", "pw-1004-secret")
                talk_and_hang_up(alice, "1001", USERS["1001"], bob, "1002", 41000, "first")
                talk_and_hang_up(alice, "1001", USERS["1001"], dave, "1004", 41002, "record")
                leave_message(front, "1001", USERS["1001"], "1003", 1.0, 700.0,  # type: ignore[arg-type]
                              domain=DEFAULT)
                register(erin, "2002", secrets[other]["2002"])
                ok, (invite, answer) = place_call(carol, "2001", secrets[other]["2001"], erin,
                                                  "2002", 41004, "stays")
                assert erin.receive_request(3, "ACK") is not None
                assert survivor.health()["calls"] == 1

                deadline = time.monotonic() + 15
                while time.monotonic() < deadline:
                    cdrs, recordings, messages = stored(url)
                    if len(cdrs) >= 2 and recordings and messages:
                        break
                    time.sleep(0.5)
                assert len(cdrs) >= 3 and recordings and messages, (cdrs, recordings, messages)

                deadline = time.monotonic() + 10  # each node reads what the other saved
                while survivor.health()["registrations"] != doomed.health()["registrations"]:
                    assert time.monotonic() < deadline, "the nodes never shared registrations"
                    time.sleep(0.2)

                assert doomed.process is not None
                os.kill(doomed.process.pid, signal.SIGKILL)
                doomed.process.wait()
                deadline = time.monotonic() + 30  # pinged every 5 s, 3 s to answer
                while not front.inactive(doomed):
                    assert time.monotonic() < deadline, "the edge never noticed the node died"
                    time.sleep(0.5)

                # the survivor knows their registrations: calls reach them at once
                alice.call_id += "-after"
                talk_and_hang_up(alice, "1001", USERS["1001"], bob, "1002", 41006, "again")
                known, accepted = (survivor.health()[k] for k in ("registrations",
                                                                    "registrations_accepted"))
                register(bob, "1002", USERS["1002"])  # their refresh, now on the other node
                register(dave, "1004", "pw-1004-secret")
                health = survivor.health()
                assert (health["registrations"], health["registrations_accepted"]) == (
                    known, accepted + 2)  # refreshed there, none added
                alice.call_id += "-refreshed"
                talk_and_hang_up(alice, "1001", USERS["1001"], dave, "1004", 41008, "refreshed")

                # the call on the surviving node went on all along: its callee hangs up
                assert survivor.health()["calls"] == 1
                erin.in_dialog("BYE", uas_dialog(invite, answer))
                bye = erin.receive(5)
                assert bye is not None and bye.status == 200, bye
                assert carol.hung_up()

            after_cdrs, after_recordings, after_messages = stored(url)
            assert cdrs < after_cdrs  # nothing lost, the new calls' records added
            assert recordings <= after_recordings and messages <= after_messages
            for path in recordings | messages:
                assert Path(path).exists() or (tmp_path / "data" / path).exists(), path
    finally:
        for pbx in nodes:
            pbx.stop()


def test_a_change_made_on_one_node_is_served_by_the_other(tmp_path: Path, database: str) -> None:
    """The directory follows over PostgreSQL (LISTEN/NOTIFY): an extension made
    through one node's API registers on the other at once; music on hold
    uploaded through one node's API plays on the other (its engine lists it)."""
    (tmp_path / "data").mkdir()
    nodes = [node(tmp_path, "a", database, jobs=True)]
    try:
        nodes.append(node(tmp_path, "b", database, jobs=False))
        made = httpx.post(f"{nodes[0].api}/extensions", headers=nodes[0].admin_headers(),
                          json={"number": "2001"})
        assert made.status_code == 201, made.text
        deadline = time.monotonic() + 10
        with SipClient(nodes[1].host, nodes[1].sip_port, domain=DEFAULT) as phone:
            while True:
                answer = phone.register("2001", made.json()["secret"])
                assert answer is not None
                if answer.status == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
        assert answer.status == 200, answer
        assert "changed the store: reloading" in nodes[1].log()

        put = httpx.put(f"{nodes[0].api}/moh/default/1-tone.wav",
                        headers=nodes[0].admin_headers(), content=tone_file(1000, 2.0))
        assert put.status_code == 200, put.text
        deadline = time.monotonic() + 10
        while classes(nodes[1], nodes[1].admin_headers())["default"]["seconds"] != 2.0:
            assert time.monotonic() < deadline, "the other node never read the music again"
            time.sleep(0.3)
    finally:
        for pbx in nodes:
            pbx.stop()
