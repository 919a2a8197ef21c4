"""Call control over the API against a running PBX, with scripted SIP phones
and a webhook receiver started by the test: click-to-call rings the user's
phone, then the number; the live list shows the call; DELETE hangs it up
(both phones get BYE); a blind transfer and park/retrieve by API; the call
events arrive signed at a webhook, and at one that is down at first once
it comes up."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.integration.peers import (
    ADMIN_PASSWORD, Pbx, WebhookReceiver, free_ports, running_pbx,
)
from tests.integration.sipclient import SipClient

pytestmark = pytest.mark.integration

PHONES = {n: f"pw-{n}-secret" for n in ("1001", "1002", "1003")}
CALL_EVENTS = ["call.started", "call.ringing", "call.answered", "call.ended"]


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    with running_pbx(tmp_path_factory.mktemp("call-api"), PHONES, admin_password=ADMIN_PASSWORD,
                     webhooks_allow_http="yes", webhooks_first_retry=1) as server:
        yield server


@pytest.fixture(scope="module")
def admin(pbx: Pbx) -> dict[str, str]:
    return pbx.login("admin", ADMIN_PASSWORD)


@pytest.fixture
def phones(pbx: Pbx) -> Iterator[dict[str, SipClient]]:
    """Phones 1001-1003, registered."""
    clients = {n: SipClient(pbx.host, pbx.sip_port) for n in PHONES}
    try:
        for number, phone in clients.items():
            answer = phone.register(number, PHONES[number], contacts=[f"<sip:{number}@"
                                                                      f"{phone.host_port()}>"])
            assert answer is not None and answer.status == 200
        yield clients
    finally:
        for number, phone in clients.items():
            phone.register(number, PHONES[number], contacts=["*"], expires=0)
            phone.close()


def until(condition: Callable[[], object], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_click_to_call_live_list_hang_up_and_signed_webhooks(
        pbx: Pbx, admin: dict[str, str], phones: dict[str, SipClient]) -> None:
    with WebhookReceiver() as receiver:
        made = httpx.post(f"{pbx.api}/webhooks", headers=admin,
                          json={"url": receiver.url, "events": CALL_EVENTS})
        assert made.status_code == 201, made.text
        secret, hook = made.json()["secret"], made.json()["id"]
        assert "secret" not in httpx.get(f"{pbx.api}/webhooks/{hook}", headers=admin).json()

        placed = httpx.post(f"{pbx.api}/calls", headers=admin, json={"from": "1001", "to": "1002"})
        assert placed.status_code == 201, placed.text
        call_id = placed.json()["call_id"]
        mine = phones["1001"].pick_up(41000)
        assert (mine.from_addr.uri.user, mine.from_addr.display_name) == ("1002", "User 1002")
        theirs = phones["1002"].pick_up(41100)
        assert theirs.from_addr.uri.user == "1001"  # the one called sees the user

        (live,) = httpx.get(f"{pbx.api}/calls/live", headers=admin).json()
        assert (live["id"], live["state"], live["caller"], live["dialled"],
                live["answered_by"]) == (call_id, "answered", "1001", "1002", "1002")
        assert live["parties"] == ["1001", "1002"]

        assert httpx.delete(f"{pbx.api}/calls/{call_id}", headers=admin).status_code == 204
        assert phones["1001"].hung_up() and phones["1002"].hung_up()
        assert httpx.get(f"{pbx.api}/calls/live", headers=admin).json() == []
        assert httpx.delete(f"{pbx.api}/calls/{call_id}", headers=admin).status_code == 404

        until(lambda: "call.ended" in receiver.types())
        assert receiver.verified(secret)
        events = receiver.events()
        assert [e["type"] for e in events] == ["call.started", "call.ringing", "call.ringing",
                                               "call.answered", "call.ended"]
        assert {e["data"]["call_id"] for e in events} == {call_id}
        started, ring_user, ring_callee, _, ended = (e["data"] for e in events)
        assert (started["caller"], started["caller_name"], started["dialled"]) == (
            "1001", "User 1001", "1002")
        assert (ring_user["extension"], ring_user["caller"]) == ("1001", "1002")
        assert (ring_callee["extension"], ring_callee["caller"],
                ring_callee["caller_name"]) == ("1002", "1001", "User 1001")
        assert (ended["caller"], ended["dialled"], ended["answered_by"],
                ended["hangup_by"]) == ("1001", "1002", "1002", "api")
        until(lambda: httpx.get(f"{pbx.api}/webhooks/{hook}/deliveries", headers=admin,
                                params={"state": "delivered"}).json()["total"] == 5)
        assert httpx.delete(f"{pbx.api}/webhooks/{hook}", headers=admin).status_code == 204
    (record,) = [c for c in httpx.get(f"{pbx.api}/cdrs", headers=admin).json()["items"]
                 if c["call_id"] == call_id]
    assert (record["caller"], record["callee"], record["answered_by"], record["hangup_by"],
            record["disposition"]) == ("1001", "1002", "1002", "api", "answered")


def test_a_webhook_down_at_first_gets_the_events_once_it_is_up(
        pbx: Pbx, admin: dict[str, str], phones: dict[str, SipClient]) -> None:
    port = free_ports(1)
    made = httpx.post(f"{pbx.api}/webhooks", headers=admin, json={
        "url": f"http://127.0.0.1:{port}/late", "events": ["call.started", "call.ended"]})
    assert made.status_code == 201
    hook, secret = made.json()["id"], made.json()["secret"]
    with SipClient(pbx.host, pbx.sip_port) as caller:
        _, final = caller.invite("1003", PHONES["1003"], "4711")  # nobody: 404
        assert final is not None and final.status == 404

    def tries() -> list[list[int]]:
        page = httpx.get(f"{pbx.api}/webhooks/{hook}/deliveries", headers=admin).json()
        return [[t["status"] for t in item["tries"]] for item in reversed(page["items"])]

    until(lambda: len(tries()) == 2 and len(tries()[0]) >= 2)  # refused, and tried again
    assert tries()[1] == []  # the later event waits for the earlier one
    with WebhookReceiver(port) as receiver:
        until(lambda: len(receiver.got) == 2, seconds=20)  # at the next retry
        assert receiver.types() == ["call.started", "call.ended"] and receiver.verified(secret)
        assert receiver.events()[1]["data"]["status"] == 404
        until(lambda: httpx.get(f"{pbx.api}/webhooks/{hook}", headers=admin).json()["pending"] == 0)
    first, second = tries()
    assert set(first[:-1]) == {0} and first[-1] == 200 and second == [200]
    page = httpx.get(f"{pbx.api}/webhooks/{hook}/deliveries", headers=admin).json()
    assert {item["state"] for item in page["items"]} == {"delivered"}
    assert "ConnectError" in page["items"][-1]["tries"][0]["error"]
    assert httpx.delete(f"{pbx.api}/webhooks/{hook}", headers=admin).status_code == 204


def answered_call(pbx: Pbx, admin: dict[str, str], phones: dict[str, SipClient]) -> str:
    """1001 calls 1002, who answers: the call's id."""
    _, ok = phones["1001"].call("1001", PHONES["1001"], "1002", phones["1002"])
    assert ok is not None and ok.status == 200
    (live,) = httpx.get(f"{pbx.api}/calls/live", headers=admin).json()
    return live["id"]  # type: ignore[no-any-return]


def test_blind_transfer_by_api(pbx: Pbx, admin: dict[str, str],
                               phones: dict[str, SipClient]) -> None:
    call_id = answered_call(pbx, admin, phones)
    with httpx.Client(timeout=30) as http:
        refused = http.post(f"{pbx.api}/calls/{call_id}/transfer", headers=admin,
                            json={"to": "4711"})
        assert refused.status_code == 404 and "4711" in refused.json()["detail"]
        answered: list[httpx.Response] = []
        asking = threading.Thread(target=lambda: answered.append(http.post(
            f"{pbx.api}/calls/{call_id}/transfer", headers=admin, json={"to": "1003"})))
        asking.start()
        ring = phones["1003"].pick_up(41200)
        asking.join(10)
    assert ring.from_addr.uri.user == "1001"
    assert answered[0].status_code == 200, answered[0].text
    assert answered[0].json() == {"call_id": call_id, "answered_by": "1003"}
    assert phones["1002"].hung_up()  # the one who had the call
    (live,) = httpx.get(f"{pbx.api}/calls/live", headers=admin).json()
    assert live["parties"] == ["1001", "1003"] and live["state"] == "answered"
    assert httpx.delete(f"{pbx.api}/calls/{call_id}", headers=admin).status_code == 204
    assert phones["1001"].hung_up() and phones["1003"].hung_up()


def test_park_and_retrieve_by_api(pbx: Pbx, admin: dict[str, str],
                                  phones: dict[str, SipClient]) -> None:
    call_id = answered_call(pbx, admin, phones)
    parked = httpx.post(f"{pbx.api}/calls/{call_id}/park", headers=admin)
    assert parked.status_code == 200 and parked.json() == {"slot": "701", "call_id": call_id}
    assert phones["1002"].hung_up()
    (lot,) = httpx.get(f"{pbx.api}/parked", headers=admin).json()
    assert (lot["slot"], lot["caller"], lot["parked_by"]) == ("701", "1001", "1002")
    (live,) = httpx.get(f"{pbx.api}/calls/live", headers=admin).json()
    assert (live["state"], live["service"]) == ("parked", "park:701")
    assert httpx.post(f"{pbx.api}/parked/702/retrieve", headers=admin,
                      json={"to": "1003"}).status_code == 404
    with httpx.Client(timeout=30) as http:
        answered: list[httpx.Response] = []
        asking = threading.Thread(target=lambda: answered.append(http.post(
            f"{pbx.api}/parked/701/retrieve", headers=admin, json={"to": "1003"})))
        asking.start()
        ring = phones["1003"].pick_up(41300)
        asking.join(10)
    assert ring.from_addr.uri.user == "1001"  # the retriever sees who was parked
    assert answered[0].json() == {"call_id": call_id, "answered_by": "1003"}
    assert httpx.get(f"{pbx.api}/parked", headers=admin).json() == []
    (live,) = httpx.get(f"{pbx.api}/calls/live", headers=admin).json()
    assert (live["id"], live["parties"]) == (call_id, ["1001", "1003"])
    assert httpx.delete(f"{pbx.api}/calls/{call_id}", headers=admin).status_code == 204
    assert phones["1001"].hung_up() and phones["1003"].hung_up()


def test_who_may_do_what(pbx: Pbx, admin: dict[str, str], phones: dict[str, SipClient]) -> None:
    made = httpx.post(f"{pbx.api}/users", headers=admin, json={
        "username": "ann", "password": "ann-pass-12345", "role": "agent", "extension": "1001"})
    assert made.status_code == 201
    assert httpx.post(f"{pbx.api}/licenses", headers=admin, json={
        "kind": "fixed", "user_id": made.json()["id"]}).status_code == 201
    ann = pbx.login("ann", "ann-pass-12345")
    for body, who, status in (({"from": "1002", "to": "1003"}, ann, 403),
                              ({"from": "9999", "to": "1003"}, admin, 404),
                              ({"from": "1001", "to": "no spaces"}, ann, 422),
                              ({"from": "1001", "to": "4711"}, ann, 404)):
        answer = httpx.post(f"{pbx.api}/calls", headers=who, json=body)
        assert answer.status_code == status, (body, answer.text)
    phones["1001"].register("1001", PHONES["1001"], contacts=["*"], expires=0)
    unregistered = httpx.post(f"{pbx.api}/calls", headers=ann, json={"from": "1001", "to": "1003"})
    assert unregistered.status_code == 409 and "no phone" in unregistered.json()["detail"]
    assert httpx.get(f"{pbx.api}/webhooks", headers=ann).status_code == 403
    bad = httpx.post(f"{pbx.api}/webhooks", headers=admin, json={"url": "ftp://crm.example/"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "url"]
    assert httpx.post(f"{pbx.api}/webhooks", headers=admin, json={
        "url": "https://crm.example/", "events": ["call.exploded"]}).status_code == 422
    # an agent sees and acts on their own calls only
    _, ok = phones["1002"].call("1002", PHONES["1002"], "1003", phones["1003"])
    assert ok is not None and ok.status == 200
    assert httpx.get(f"{pbx.api}/calls/live", headers=ann).json() == []
    (live,) = httpx.get(f"{pbx.api}/calls/live", headers=admin).json()
    assert httpx.delete(f"{pbx.api}/calls/{live['id']}", headers=ann).status_code == 403
    assert httpx.delete(f"{pbx.api}/calls/{live['id']}", headers=admin).status_code == 204
    assert phones["1002"].hung_up() and phones["1003"].hung_up()
