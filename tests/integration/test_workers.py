"""``pbx serve --workers 2``: two processes share the SIP port (SO_REUSEPORT);
an organisation lives on one of them.  Phones on fresh sockets land on either
worker (the kernel hashes their source port), so REGISTERs, INVITEs, in-dialog
requests and responses cross between the workers, over UDP and over TCP (where
a phone's connection belongs to the worker that accepted it)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest
from websockets.sync.client import connect

from tests.integration.peers import ADMIN_PASSWORD, Pbx, organisation, running_pbx
from tests.integration.sipclient import SipClient, place_call, uas_dialog

pytestmark = pytest.mark.integration

USERS = {"1001": "pw-1001-secret", "1002": "pw-1002-secret"}
PAIRS = 4  # phone pairs per organisation and transport: on both workers, almost surely


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    with running_pbx(tmp_path_factory.mktemp("workers"), USERS, workers=2,
                     admin_password=ADMIN_PASSWORD, rtp_ports="") as server:
        yield server


@pytest.fixture(scope="module")
def acme(pbx: Pbx) -> dict[str, str]:
    """A second organisation, made after start (so worker 1 learnt it from worker 0's
    reload): organisation 2 lives on worker 1.  Its extensions and their secrets."""
    admin = organisation(pbx, "acme", "business")
    secrets = {}
    for number in ("2001", "2002"):
        made = httpx.post(f"{pbx.api}/extensions", headers=admin, json={"number": number})
        assert made.status_code == 201, made.text
        secrets[number] = made.json()["secret"]
    return secrets


def calls(pbx: Pbx, transport: str, users: dict[str, str], domain: str | None,
          rtp: int) -> None:
    """PAIRS calls, each between two fresh phones: the callee registers, the
    caller dials it, one of them hangs up (in turn), both see the end; the
    callee unregisters."""
    (caller_number, caller_secret), (callee_number, callee_secret) = users.items()
    for turn in range(PAIRS):
        with SipClient(pbx.host, pbx.sip_port, transport, domain=domain) as callee, \
                SipClient(pbx.host, pbx.sip_port, transport, domain=domain) as caller:
            registered = callee.register(callee_number, callee_secret)
            assert registered is not None and registered.status == 200, registered
            ok, (invite, answer) = place_call(caller, caller_number, caller_secret, callee,
                                              callee_number, rtp + 2 * turn, f"t{turn}")
            assert ok.status == 200
            assert callee.receive_request(3, "ACK") is not None
            hanging, other = (caller, callee) if turn % 2 else (callee, caller)
            hanging.in_dialog("BYE", ok if hanging is caller else uas_dialog(invite, answer))
            bye = hanging.receive(5)
            assert bye is not None and bye.status == 200, bye
            assert other.hung_up(), f"turn {turn}: the other phone got no BYE"
            gone = callee.register(callee_number, callee_secret, expires=0)
            assert gone is not None and gone.status == 200, gone


@pytest.mark.parametrize("transport", ["UDP", "TCP"])
def test_calls_of_the_default_organisation(pbx: Pbx, transport: str) -> None:
    calls(pbx, transport, USERS, None, 41000)
    assert pbx.health()["calls"] == 0


@pytest.mark.parametrize("transport", ["UDP", "TCP"])
def test_calls_of_an_organisation_on_the_second_worker(pbx: Pbx, acme: dict[str, str],
                                                       transport: str) -> None:
    calls(pbx, transport, acme, "acme.test", 42000)
    log = pbx.log()
    assert " w1 pbx.calls: call " in log and " w0 pbx.calls: call " in log


def test_messages_crossed_between_the_workers(pbx: Pbx, acme: dict[str, str]) -> None:
    calls(pbx, "UDP", acme, "acme.test", 43000)
    calls(pbx, "UDP", USERS, None, 43100)
    log = pbx.log()
    for method in ("REGISTER", "INVITE"):  # each went to its organisation's worker
        for here, there in ((0, 1), (1, 0)):
            assert re.search(rf" w{here} pbx.steering: {method} from \S+ to worker {there}\n",
                             log), (method, here)


def test_health_answers_once_every_worker_is_up(pbx: Pbx) -> None:
    assert "2 workers running" in pbx.log()
    assert pbx.log().index("worker 1 of 2") < pbx.log().index("admin pages")


def test_the_api_of_an_organisation_on_the_second_worker_is_served_by_it(
        pbx: Pbx, acme: dict[str, str]) -> None:
    """Worker 0's HTTP port passes acme's requests (organisation 2, on worker 1)
    to worker 1, which holds its calls: the live calls, presence and event
    feed, a call hung up through the API; an extension acme's admin makes
    there registers on whichever worker a phone reaches."""
    admin = pbx.login("acme-admin", "acme-pass-1234")
    feed_url = f"ws://{pbx.host}:{pbx.http_port}/api/events?token={admin['Authorization'][7:]}"
    with connect(feed_url) as feed, \
            SipClient(pbx.host, pbx.sip_port, domain="acme.test") as callee, \
            SipClient(pbx.host, pbx.sip_port, domain="acme.test") as caller:
        registered = callee.register("2002", acme["2002"])
        assert registered is not None and registered.status == 200, registered
        ok, _ = place_call(caller, "2001", acme["2001"], callee, "2002", 44000, "live")
        assert ok.status == 200 and callee.receive_request(3, "ACK") is not None
        live = httpx.get(f"{pbx.api}/calls/live", headers=admin)
        assert live.status_code == 200, live.text
        assert [(c["caller"], c["answered_by"]) for c in live.json()] == [("2001", "2002")]
        presence = httpx.get(f"{pbx.api}/presence/2002", headers=admin)
        assert presence.status_code == 200 and presence.json()["line"] == "on_call", presence.text
        ended = httpx.delete(f"{pbx.api}/calls/{live.json()[0]['id']}", headers=admin)
        assert ended.status_code == 204, ended.text
        assert caller.hung_up() and callee.hung_up()
        seen: list[str] = []
        while "call.ended" not in seen:
            seen.append(json.loads(feed.recv(timeout=5))["type"])
        assert seen[:3] == ["registration", "call.started", "call.ringing"], seen
        assert "call.answered" in seen
    default = httpx.get(f"{pbx.api}/calls/live", headers=pbx.login("admin", ADMIN_PASSWORD))
    assert default.json() == []  # the default organisation's (worker 0) saw none of it
    assert httpx.get(f"{pbx.api}/calls/live",
                     headers={"Authorization": "Bearer forged"}).status_code == 401

    made = httpx.post(f"{pbx.api}/extensions", headers=admin, json={"number": "2003"})
    assert made.status_code == 201, made.text
    for _ in range(PAIRS):  # fresh sockets: either worker gets the REGISTER first
        with SipClient(pbx.host, pbx.sip_port, domain="acme.test") as phone:
            answer = phone.register("2003", made.json()["secret"], expires=0)
            assert answer is not None and answer.status == 200, answer
