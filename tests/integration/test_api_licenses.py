"""Licenses and users through the admin API of a running PBX: licenses belong to
the organisation and move between users, a state machine with a final state,
only admins change them, and deleting a user leaves the license unassigned."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.peers import ADMIN_PASSWORD, Pbx, running_pbx
from tests.integration.sipclient import SipClient

pytestmark = pytest.mark.integration

PHONES = {f"100{i}": f"pw-100{i}-secret" for i in range(1, 8)}


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    with running_pbx(tmp_path_factory.mktemp("licenses"), PHONES,
                     admin_password=ADMIN_PASSWORD) as server:
        yield server


@pytest.fixture(scope="module")
def admin(pbx: Pbx) -> dict[str, str]:
    return pbx.login("admin", ADMIN_PASSWORD)


def add_user(pbx: Pbx, admin: dict[str, str], username: str, role: str = "user",
             extension: str = "") -> int:
    created = httpx.post(f"{pbx.api}/users", headers=admin, json={
        "username": username, "password": f"{username}-pass-1234", "role": role,
        "extension": extension})
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


def post(pbx: Pbx, headers: dict[str, str], path: str, body: object = None) -> httpx.Response:
    return httpx.post(f"{pbx.api}{path}", headers=headers, json=body)


def test_a_license_moves_between_users_who_hold_one_each(pbx: Pbx, admin: dict[str, str]) -> None:
    anna, bert = add_user(pbx, admin, "anna", extension="1001"), add_user(pbx, admin, "bert",
                                                                        extension="1002")
    first = post(pbx, admin, "/licenses", {"kind": "fixed", "user_id": anna})
    assert first.status_code == 201
    assert first.json() | {"created_at": 0, "changed_at": 0} == {
        "id": first.json()["id"], "kind": "fixed", "state": "active", "user_id": anna,
        "created_at": 0, "changed_at": 0}
    second = post(pbx, admin, "/licenses", {"kind": "mobile"}).json()
    assert second["user_id"] is None and second["state"] == "active"
    first_id = first.json()["id"]

    refused = post(pbx, admin, f"/licenses/{second['id']}/assign", {"user_id": anna})
    assert refused.status_code == 409
    assert f"user anna already holds license {first_id}" in refused.json()["detail"]
    assert post(pbx, admin, "/licenses", {"user_id": anna}).status_code == 409
    assert post(pbx, admin, f"/licenses/{second['id']}/assign",
                {"user_id": 999999}).json()["detail"][0]["loc"] == ["body", "user_id"]

    given = post(pbx, admin, f"/licenses/{second['id']}/assign", {"user_id": bert})
    assert given.status_code == 200
    assert post(pbx, admin, f"/licenses/{second['id']}/unassign").json()["user_id"] is None
    moved = post(pbx, admin, f"/licenses/{first_id}/assign", {"user_id": bert})
    assert moved.status_code == 200 and moved.json()["user_id"] == bert

    users = {u["username"]: u for u in
             httpx.get(f"{pbx.api}/users", headers=admin).json()["items"]}
    assert users["anna"]["license"] is None  # the old holder lost it
    assert users["bert"]["license"] == {"id": first_id, "kind": "fixed", "state": "active"}
    held = httpx.get(f"{pbx.api}/licenses", headers=admin, params={"user_id": bert}).json()
    assert held["total"] == 1 and held["items"][0]["id"] == first_id
    unassigned = httpx.get(f"{pbx.api}/licenses", headers=admin,
                           params={"kind": "mobile", "state": "active"}).json()["items"]
    assert [lic["user_id"] for lic in unassigned if lic["id"] == second["id"]] == [None]

    move = next(e for e in httpx.get(f"{pbx.api}/audit", headers=admin).json()
                if e["action"] == "license.move")
    assert move["target"] == str(first_id)
    assert f'"user_id": {anna}' in move["before"] and f'"user_id": {bert}' in move["after"]


def test_freeze_upgrade_and_terminate_follow_the_state_table(
    pbx: Pbx, admin: dict[str, str],
) -> None:
    cleo = add_user(pbx, admin, "cleo", extension="1003")
    lic = post(pbx, admin, "/licenses", {"kind": "fixed", "user_id": cleo}).json()
    path = f"/licenses/{lic['id']}"
    assert post(pbx, admin, f"{path}/freeze").json()["state"] == "frozen"
    again = post(pbx, admin, f"{path}/freeze")
    assert again.status_code == 409 and again.json()["detail"] == (
        f"license {lic['id']} is frozen; it cannot freeze")
    assert post(pbx, admin, f"{path}/unfreeze").json()["state"] == "active"
    assert post(pbx, admin, f"{path}/unfreeze").status_code == 409

    assert post(pbx, admin, f"{path}/upgrade").json()["kind"] == "mobile"
    assert "only a fixed license upgrades" in post(pbx, admin, f"{path}/upgrade").json()["detail"]
    free = post(pbx, admin, "/licenses", {"kind": "free"}).json()
    assert post(pbx, admin, f"/licenses/{free['id']}/upgrade").status_code == 409

    ended = post(pbx, admin, f"{path}/terminate")
    assert ended.status_code == 200 and ended.json()["state"] == "terminated"
    assert ended.json()["user_id"] is None
    for action, body in [("assign", {"user_id": cleo}), ("unassign", None), ("freeze", None),
                         ("unfreeze", None), ("upgrade", None), ("terminate", None)]:
        refused = post(pbx, admin, f"{path}/{action}", body)
        assert refused.status_code == 409, action
        assert "terminated" in refused.json()["detail"]
    # cleo holds nothing now: a new license can go to her
    assert post(pbx, admin, "/licenses", {"kind": "mobile", "user_id": cleo}).status_code == 201
    assert post(pbx, admin, "/licenses", {"kind": "premium"}).status_code == 422
    assert post(pbx, admin, "/licenses/999999/freeze").status_code == 404


def test_only_admins_change_licenses(pbx: Pbx, admin: dict[str, str]) -> None:
    dana = add_user(pbx, admin, "dana", role="agent", extension="1004")
    add_user(pbx, admin, "erik", role="supervisor")
    mine = post(pbx, admin, "/licenses", {"kind": "fixed", "user_id": dana}).json()
    agent, supervisor = pbx.login("dana", "dana-pass-1234"), pbx.login("erik", "erik-pass-1234")
    for headers in (agent, supervisor):
        for path, body in [("/licenses", {"kind": "fixed"}),
                           (f"/licenses/{mine['id']}/freeze", None),
                           (f"/licenses/{mine['id']}/assign", {"user_id": dana}),
                           (f"/licenses/{mine['id']}/terminate", None)]:
            refused = post(pbx, headers, path, body)
            assert refused.status_code == 403 and "may not" in refused.json()["detail"], path
    assert [lic["id"] for lic in
            httpx.get(f"{pbx.api}/licenses", headers=agent).json()["items"]] == [mine["id"]]
    everyone = httpx.get(f"{pbx.api}/licenses", headers=supervisor).json()
    assert everyone["total"] > 1
    assert httpx.get(f"{pbx.api}/users", headers=agent).status_code == 403
    assert httpx.get(f"{pbx.api}/me", headers=agent).json()["license"]["id"] == mine["id"]


def test_users_are_changed_by_admins_with_the_same_rules(pbx: Pbx, admin: dict[str, str]) -> None:
    fred = add_user(pbx, admin, "fred")
    url = f"{pbx.api}/users/{fred}"
    page = httpx.get(f"{pbx.api}/users", headers=admin, params={"limit": 2, "offset": 1}).json()
    assert page["total"] >= 2 and len(page["items"]) == 2
    changed = httpx.patch(url, headers=admin, json={
        "role": "supervisor", "display_name": "Fred Fransson", "email": "fred@example.se"})
    assert changed.status_code == 200
    assert changed.json() | {"id": 0} == {
        "id": 0, "username": "fred", "role": "supervisor", "extension": "",
        "display_name": "Fred Fransson", "email": "fred@example.se", "license": None}

    unknown = httpx.patch(url, headers=admin, json={"extension": "7777"})
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["loc"] == ["body", "extension"]
    taken = httpx.patch(url, headers=admin, json={"extension": "1001"})
    assert taken.status_code == 409 and "belongs to user anna" in taken.json()["detail"]
    assert httpx.patch(url, headers=admin, json={"email": "not an address"}).status_code == 422
    weak = httpx.patch(url, headers=admin, json={"password": "short"})
    assert weak.status_code == 422 and weak.json()["detail"][0]["loc"] == ["body", "password"]

    session = pbx.login("fred", "fred-pass-1234")
    integration = post(pbx, session, "/tokens", {"name": "crm"}).json()["token"]
    assert httpx.patch(url, headers=admin, json={"password": "fresh-pass-5678"}).status_code == 200
    assert httpx.get(f"{pbx.api}/me", headers=session).status_code == 401  # logins end
    crm = {"Authorization": f"Bearer {integration}"}
    assert httpx.get(f"{pbx.api}/me", headers=crm).status_code == 200  # integrations stay
    pbx.login("fred", "fresh-pass-5678")
    assert httpx.patch(url, headers=session, json={"role": "admin"}).status_code == 401

    me = httpx.get(f"{pbx.api}/me", headers=admin).json()
    last = httpx.patch(f"{pbx.api}/users/{me['id']}", headers=admin, json={"role": "user"})
    assert last.status_code == 409 and "last admin" in last.json()["detail"]
    assert httpx.delete(f"{pbx.api}/users/{me['id']}", headers=admin).status_code == 409
    assert httpx.get(f"{pbx.api}/users/999999", headers=admin).status_code == 404
    actions = [e["action"] for e in httpx.get(f"{pbx.api}/audit", headers=admin).json()]
    assert "user.update" in actions
    assert "hash" not in httpx.get(f"{pbx.api}/audit", headers=admin).text


def test_deleting_a_user_ends_their_calls_and_frees_their_license(
    pbx: Pbx, admin: dict[str, str],
) -> None:
    gus = add_user(pbx, admin, "gus", extension="1005")
    lic = post(pbx, admin, "/licenses", {"kind": "fixed", "user_id": gus}).json()
    session = pbx.login("gus", "gus-pass-1234")
    with SipClient(pbx.host, pbx.sip_port) as phone, SipClient(pbx.host, pbx.sip_port) as caller:
        contact = f"<sip:1005@{phone.host_port()}>"
        assert phone.register("1005", PHONES["1005"], contacts=[contact]).status == 200  # type: ignore[union-attr]
        caller.call_id += "-user-gone"
        _, ok = caller.call("1003", PHONES["1003"], "1005", phone)
        assert ok is not None and ok.status == 200
        assert httpx.delete(f"{pbx.api}/users/{gus}", headers=admin).status_code == 204
        assert caller.receive_request(5, "BYE") is not None  # both ends hung up cleanly
        assert phone.receive_request(5, "BYE") is not None
    assert httpx.get(f"{pbx.api}/me", headers=session).status_code == 401  # tokens went too
    assert httpx.get(f"{pbx.api}/users/{gus}", headers=admin).status_code == 404
    kept = httpx.get(f"{pbx.api}/licenses/{lic['id']}", headers=admin).json()
    assert kept["user_id"] is None and kept["state"] == "active"
    time.sleep(0.5)
    calls = httpx.get(f"{pbx.api}/cdrs", headers=admin).json()["items"]
    assert any(c["callee"] == "1005" and c["disposition"] == "answered" for c in calls)


def test_a_frozen_license_stops_register_and_calls_until_unfrozen(
    pbx: Pbx, admin: dict[str, str],
) -> None:
    hal = add_user(pbx, admin, "hal", extension="1006")
    lic = post(pbx, admin, "/licenses", {"kind": "fixed", "user_id": hal}).json()
    with SipClient(pbx.host, pbx.sip_port) as phone, SipClient(pbx.host, pbx.sip_port) as callee:
        contact = f"<sip:1007@{callee.host_port()}>"
        assert callee.register("1007", PHONES["1007"], contacts=[contact]).status == 200  # type: ignore[union-attr]
        assert phone.register("1006", PHONES["1006"]).status == 200  # type: ignore[union-attr]

        assert post(pbx, admin, f"/licenses/{lic['id']}/freeze").status_code == 200
        refused = phone.register("1006", PHONES["1006"])
        assert refused is not None and refused.status == 403
        _, final = phone.invite("1006", PHONES["1006"], "1007")
        assert final is not None and final.status == 403

        assert post(pbx, admin, f"/licenses/{lic['id']}/unfreeze").status_code == 200
        assert phone.register("1006", PHONES["1006"]).status == 200  # type: ignore[union-attr]
        _, ok = phone.call("1006", PHONES["1006"], "1007", callee)
        assert ok is not None and ok.status == 200
        phone.in_dialog("BYE", ok)
        assert phone.receive(5) is not None

        # an unassigned license is no license either
        assert post(pbx, admin, f"/licenses/{lic['id']}/unassign").status_code == 200
        refused = phone.register("1006", PHONES["1006"])
        assert refused is not None and refused.status == 403
