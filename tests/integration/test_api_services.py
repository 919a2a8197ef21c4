"""Switchboard services through the admin API of a running PBX: the plan counts
ring groups and conference rooms, a ring group made by API rings its members
on the next call, numbers (DIDs) reach what they point at."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.integration.peers import ADMIN_PASSWORD, Pbx, organisation, running_pbx
from tests.integration.sipclient import SipClient

pytestmark = pytest.mark.integration

PHONES = {n: f"pw-{n}-secret" for n in ("1001", "1002", "1003")}
SECTIONS = """
[600]
type = ringgroup
members = 1001, 1002
"""


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    with running_pbx(tmp_path_factory.mktemp("services"), PHONES, sections=SECTIONS,
                     admin_password=ADMIN_PASSWORD) as server:
        yield server


@pytest.fixture(scope="module")
def admin(pbx: Pbx) -> dict[str, str]:
    return pbx.login("admin", ADMIN_PASSWORD)


def test_the_plan_counts_ring_groups_and_rooms(pbx: Pbx) -> None:
    small = organisation(pbx, "small", "business")
    for number in ("5001", "5002"):
        assert httpx.post(f"{pbx.api}/extensions", headers=small,
                          json={"number": number}).status_code == 201
    made = [
        httpx.post(f"{pbx.api}/ringgroups", headers=small,
                   json={"number": "700", "name": "Sales", "members": ["5001", "5002"]}),
        httpx.post(f"{pbx.api}/ringgroups", headers=small,
                   json={"number": "701", "name": "Support", "members": ["5002"]}),
        httpx.post(f"{pbx.api}/conferences/rooms", headers=small,
                   json={"number": "800", "name": "Board", "pin": "1234"}),
    ]
    assert [r.status_code for r in made] == [201, 201, 201], [r.text for r in made]
    over = httpx.post(f"{pbx.api}/conferences/rooms", headers=small, json={"number": "801"})
    assert over.status_code == 402
    assert over.json()["detail"] == "plan business allows 3 switchboard services; 3 in use"
    assert httpx.post(f"{pbx.api}/ringgroups", headers=small,
                      json={"number": "702"}).status_code == 402

    listing = httpx.get(f"{pbx.api}/services", headers=small).json()
    assert listing["plan"] == {"plan": "business", "allowed": 3, "used": 3}
    assert [(s["kind"], s["number"], s["name"]) for s in listing["items"]] == [
        ("ringgroup", "700", "Sales"), ("ringgroup", "701", "Support"),
        ("conference", "800", "Board")]
    assert httpx.delete(f"{pbx.api}/ringgroups/701", headers=small).status_code == 204
    assert httpx.post(f"{pbx.api}/conferences/rooms", headers=small,
                      json={"number": "801"}).status_code == 201
    # the default organisation (unlimited) sees only its own seeded group
    ours = httpx.get(f"{pbx.api}/services", headers=pbx.login("admin", ADMIN_PASSWORD)).json()
    assert ours["plan"]["allowed"] is None
    assert [s["number"] for s in ours["items"]] == ["600"]


def test_ring_group_rules(pbx: Pbx, admin: dict[str, str]) -> None:
    url = f"{pbx.api}/ringgroups"
    unknown = httpx.post(url, headers=admin, json={"number": "610", "members": ["1001", "4444",
                                                                              "5001"]})
    assert unknown.status_code == 422  # 5001 is an extension, of another organisation
    assert unknown.json()["detail"][0]["loc"] == ["body", "members"]
    assert unknown.json()["detail"][0]["msg"] == ("neither extensions nor external numbers: "
                                                  "4444, 5001")
    taken = httpx.post(url, headers=admin, json={"number": "1001"})
    assert taken.status_code == 409 and taken.json()["detail"] == (
        "number 1001 is taken by extension 1001")
    assert httpx.post(url, headers=admin, json={"number": "610", "strategy": "loudest"}
                      ).json()["detail"][0]["loc"] == ["body", "strategy"]
    assert httpx.post(url, headers=admin, json={"number": "610", "fallback": "9999"}
                      ).json()["detail"][0]["loc"] == ["body", "fallback"]
    made = httpx.post(url, headers=admin, json={
        "number": "610", "strategy": "linear", "members": ["1002", "1001"], "member_timeout": 5,
        "fallback": "1003"})
    assert made.status_code == 201 and made.json()["members"] == ["1002", "1001"]
    changed = httpx.patch(f"{url}/610", headers=admin, json={"name": "Växel"})
    assert changed.json()["name"] == "Växel" and changed.json()["strategy"] == "linear"
    assert httpx.get(f"{url}/610", headers=admin).json()["fallback"] == "1003"
    in_use = httpx.patch(f"{url}/600", headers=admin, json={"fallback": "610"})
    assert in_use.status_code == 200
    refused = httpx.delete(f"{url}/610", headers=admin)
    assert refused.status_code == 409 and "in use by ring group 600" in refused.json()["detail"]
    agent_pass = "agent-pass-12345"
    assert httpx.post(f"{pbx.api}/users", headers=admin, json={
        "username": "svc-agent", "password": agent_pass, "role": "agent"}).status_code == 201
    agent = pbx.login("svc-agent", agent_pass)
    assert httpx.patch(f"{url}/610", headers=agent, json={"name": "x"}).status_code == 403
    assert httpx.get(url, headers=agent).json()["total"] == 2
    audit = [(e["action"], e["target"])
             for e in httpx.get(f"{pbx.api}/audit", headers=admin).json()]
    assert ("ringgroup.create", "610") in audit and ("ringgroup.update", "600") in audit


def test_conference_room_rules(pbx: Pbx, admin: dict[str, str]) -> None:
    url = f"{pbx.api}/conferences/rooms"
    same = httpx.post(url, headers=admin,
                      json={"number": "820", "pin": "11", "moderator_pin": "11"})
    assert same.status_code == 422 and same.json()["detail"][0]["loc"][-1] == "moderator_pin"
    assert httpx.post(url, headers=admin, json={"number": "820", "pin": "abc"}).status_code == 422
    made = httpx.post(url, headers=admin, json={"number": "820", "name": "Weekly", "pin": "4321",
                                                "moderator_pin": "9876", "record": True})
    assert made.status_code == 201
    assert httpx.post(url, headers=admin, json={"number": "820"}).status_code == 409
    assert httpx.patch(f"{url}/820", headers=admin,
                       json={"moderator_pin": "4321"}).status_code == 422
    assert httpx.patch(f"{url}/820", headers=admin, json={"pin": ""}).json() == {
        "number": "820", "name": "Weekly", "pin": "", "moderator_pin": "9876", "record": True}
    assert httpx.get(url, headers=admin).json()["items"][0]["number"] == "820"
    assert httpx.get(f"{pbx.api}/conferences", headers=admin).status_code == 200  # live rooms
    assert httpx.delete(f"{url}/820", headers=admin).status_code == 204
    assert httpx.get(f"{url}/820", headers=admin).status_code == 404


def test_a_ring_group_made_by_api_rings_its_member(pbx: Pbx, admin: dict[str, str]) -> None:
    made = httpx.post(f"{pbx.api}/ringgroups", headers=admin,
                      json={"number": "630", "name": "Night", "members": ["1003"]})
    assert made.status_code == 201
    with SipClient(pbx.host, pbx.sip_port) as member, SipClient(pbx.host, pbx.sip_port) as caller:
        contact = f"<sip:1003@{member.host_port()}>"
        assert member.register("1003", PHONES["1003"], contacts=[contact]).status == 200  # type: ignore[union-attr]
        invite, final = caller.call("1001", PHONES["1001"], "630", member, 486)
        assert invite is not None and invite.uri.user == "1003"  # the member's phone rang
        assert final is not None and final.status >= 400


def test_numbers_reach_their_target_and_serve_as_caller_id(pbx: Pbx, admin: dict[str, str]) -> None:
    url = f"{pbx.api}/numbers"
    made = httpx.post(url, headers=admin, json={"number": "+46812345678", "target": "1002"})
    assert made.status_code == 201
    assert made.json() == {"number": "+46812345678", "target": "1002", "target_kind": "extension"}
    assert httpx.post(url, headers=admin, json={"number": "+46812345678", "target": "1001"}
                      ).status_code == 409
    assert httpx.post(f"{pbx.api}/ringgroups", headers=admin,
                      json={"number": "+46812345678"}).status_code == 409
    unknown = httpx.post(url, headers=admin, json={"number": "+46700000000", "target": "4444"})
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["body", "target"]
    assert httpx.post(url, headers=admin, json={"number": "46-8-123", "target": "1002"}
                      ).json()["detail"][0]["loc"] == ["body", "number"]
    chained = httpx.post(url, headers=admin, json={"number": "+46811111111",
                                                   "target": "+46812345678"})
    assert chained.json()["target_kind"] == "number"
    loop = httpx.patch(f"{url}/+46812345678", headers=admin, json={"target": "+46811111111"})
    assert loop.status_code == 422 and "loop" in loop.json()["detail"][0]["msg"]
    national = httpx.post(url, headers=admin, json={"number": "0812345", "target": "600"})
    assert national.json()["target_kind"] == "ringgroup"

    shows = httpx.patch(f"{pbx.api}/extensions/1001", headers=admin,
                        json={"caller_id_number": "+46812345678"})
    assert shows.status_code == 200 and shows.json()["caller_id_number"] == "+46812345678"
    foreign = httpx.patch(f"{pbx.api}/extensions/1001", headers=admin,
                          json={"caller_id_number": "+46999999999"})
    assert foreign.status_code == 422
    assert foreign.json()["detail"][0]["loc"] == ["body", "caller_id_number"]
    assert httpx.patch(f"{pbx.api}/extensions/1001", headers=admin,
                       json={"caller_id_number": "1002"}).status_code == 422  # not a number
    busy = httpx.delete(f"{url}/+46812345678", headers=admin)
    assert busy.status_code == 409
    assert busy.json()["detail"] == ("number +46812345678 is in use by number +46811111111, "
                                     "extension 1001")
    assert httpx.delete(f"{url}/0812345", headers=admin).status_code == 204
    assert [n["number"] for n in httpx.get(url, headers=admin).json()["items"]] == [
        "+46811111111", "+46812345678"]

    with SipClient(pbx.host, pbx.sip_port) as callee, SipClient(pbx.host, pbx.sip_port) as caller:
        contact = f"<sip:1002@{callee.host_port()}>"
        assert callee.register("1002", PHONES["1002"], contacts=[contact]).status == 200  # type: ignore[union-attr]
        invite, final = caller.call("1003", PHONES["1003"], "+46811111111", callee, 486)
        assert invite is not None and invite.uri.user == "1002"  # reached through the other number
        assert final is not None and final.status == 486


def test_a_room_made_by_api_answers_a_call(pbx: Pbx, admin: dict[str, str]) -> None:
    made = httpx.post(f"{pbx.api}/conferences/rooms", headers=admin,
                      json={"number": "850", "name": "Daily stand-up"})
    assert made.status_code == 201
    with SipClient(pbx.host, pbx.sip_port) as caller:
        _, ok = caller.invite("1001", PHONES["1001"], "850")
        assert ok is not None and ok.status == 200
        assert ok.headers.get("Content-Type") == "application/sdp" and b"m=audio" in ok.body
        caller.in_dialog("ACK", ok, cseq=ok.cseq.number)
        caller.in_dialog("BYE", ok)
        assert caller.receive(5) is not None
