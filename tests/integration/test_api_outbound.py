"""Outbound routes, the call policy and license rights through the admin API
of a running PBX: routes seeded from sip.conf in order, created, moved,
changed and deleted by admins with an audit trail; bad patterns, trunk names
and caller IDs are 422s naming the field; the call policy follows [general]
until changed; a number cannot reach the extension of a free license."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.integration.peers import ADMIN_PASSWORD, Pbx, running_pbx

pytestmark = pytest.mark.integration

PHONES = {f"100{i}": f"pw-100{i}-secret" for i in range(1, 6)}
TRUNK_SECTIONS = "".join(f"""
[{name}]
type = trunk
host = 127.0.0.2
auth = ip
""" for name in ("carrier-a", "carrier-b", "cheap-intl"))
SECTIONS = TRUNK_SECTIONS + """
[+4681230000]
type = number
target = 1001

[sweden]
type = route
patterns = +46., 112
trunks = carrier-a, carrier-b
callerid = trunk

[world]
type = route
patterns = +.
trunks = cheap-intl
"""
KEYS = ["country", "outside_prefix", "max_outbound_calls", "max_outbound_per_extension",
        "max_calls_per_hour", "max_org_calls_per_hour", "international",
        "international_prefixes", "max_call_duration"]
GENERAL = {"country": "SE", "max_outbound_per_extension": 2, "max_calls_per_hour": 40,
           "international_prefixes": "+45, +47"}


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    with running_pbx(tmp_path_factory.mktemp("outbound"), PHONES, sections=SECTIONS,
                     admin_password=ADMIN_PASSWORD, **GENERAL) as server:
        yield server


@pytest.fixture(scope="module")
def admin(pbx: Pbx) -> dict[str, str]:
    return pbx.login("admin", ADMIN_PASSWORD)


def add_user(pbx: Pbx, admin: dict[str, str], username: str, role: str = "user",
             extension: str = "", license: str | None = None) -> int:
    created = httpx.post(f"{pbx.api}/users", headers=admin, json={
        "username": username, "password": f"{username}-pass-1234", "role": role,
        "extension": extension})
    assert created.status_code == 201, created.text
    user_id = int(created.json()["id"])
    if license is not None:
        given = httpx.post(f"{pbx.api}/licenses", headers=admin,
                           json={"kind": license, "user_id": user_id})
        assert given.status_code == 201, given.text
    return user_id


def names(pbx: Pbx, admin: dict[str, str]) -> list[str]:
    listed = httpx.get(f"{pbx.api}/outbound-routes", headers=admin)
    assert listed.status_code == 200
    return [r["name"] for r in listed.json()["items"]]


def error_at(response: httpx.Response) -> tuple[list[object], str]:
    """Where a 422 says the problem is, and what it says."""
    assert response.status_code == 422, response.text
    detail = response.json()["detail"][0]
    return detail["loc"], detail["msg"]


def test_routes_from_sip_conf_are_listed_in_order_and_changed_by_admins(
    pbx: Pbx, admin: dict[str, str],
) -> None:
    url = f"{pbx.api}/outbound-routes"
    listed = httpx.get(url, headers=admin).json()
    assert listed["total"] == 2
    assert listed["items"][0] == {"name": "sweden", "position": 0, "patterns": ["+46.", "112"],
                                  "trunks": ["carrier-a", "carrier-b"], "strip": 0,
                                  "prepend": "", "caller_id": "trunk"}

    made = httpx.post(url, headers=admin, json={
        "name": "mobiles", "patterns": ["+467[02369]XXXXXXX"], "trunks": ["carrier-b"],
        "position": 0, "strip": 3, "prepend": "0", "caller_id": "anonymous"})
    assert made.status_code == 201, made.text
    assert made.json() == {"name": "mobiles", "position": 0, "patterns": ["+467[02369]XXXXXXX"],
                           "trunks": ["carrier-b"], "strip": 3, "prepend": "0",
                           "caller_id": "anonymous"}
    assert names(pbx, admin) == ["mobiles", "sweden", "world"]
    assert httpx.post(url, headers=admin, json={
        "name": "mobiles", "patterns": ["+."], "trunks": ["carrier-a"]}).status_code == 409

    moved = httpx.patch(f"{url}/mobiles", headers=admin, json={"position": 5, "trunks": [
        "carrier-b", "carrier-a"]})
    assert moved.status_code == 200 and moved.json()["position"] == 2
    assert names(pbx, admin) == ["sweden", "world", "mobiles"]
    assert httpx.get(f"{url}/mobiles", headers=admin).json()["trunks"] == [
        "carrier-b", "carrier-a"]
    assert httpx.patch(f"{url}/mobiles", headers=admin, json={"position": 1}).status_code == 200
    assert names(pbx, admin) == ["sweden", "mobiles", "world"]

    assert httpx.delete(f"{url}/sweden", headers=admin).status_code == 204
    assert [(r["name"], r["position"]) for r in
            httpx.get(url, headers=admin).json()["items"]] == [("mobiles", 0), ("world", 1)]
    assert httpx.get(f"{url}/sweden", headers=admin).status_code == 404
    assert httpx.delete(f"{url}/sweden", headers=admin).status_code == 404

    trail = [e for e in httpx.get(f"{pbx.api}/audit", headers=admin).json()
             if e["action"].startswith("outboundroute.")]
    assert [e["action"] for e in trail][:4] == [
        "outboundroute.delete", "outboundroute.update", "outboundroute.update",
        "outboundroute.create"]
    assert '"name": "sweden"' in trail[0]["before"] and trail[0]["after"] == ""
    assert '"position": 0' in trail[3]["after"]  # created first in the order
    assert '"position": 0' in trail[2]["before"] and '"position": 2' in trail[2]["after"]
    assert '["carrier-b"]' in trail[2]["before"] and '"carrier-a"' in trail[2]["after"]


@pytest.mark.parametrize(("body", "loc", "message"), [
    ({"patterns": ["+46.", "+46.X"]}, ["body", "patterns", 1],
     "'.' at 4 must be the last character"),
    ({"patterns": ["+46[0-9"]}, ["body", "patterns", 0], "'[' at 4 is never closed"),
    ({"patterns": ["+"]}, ["body", "patterns", 0], "'+' alone matches nothing"),
    ({"patterns": []}, ["body", "patterns"], "at least 1 item"),
    ({"trunks": ["carrier a"]}, ["body", "trunks", 0], "should match pattern"),
    ({"trunks": ["carrier-a", "nowhere"]}, ["body", "trunks", 1],
     "no trunk nowhere (of the organisation, or shared by the operator)"),
    ({"caller_id": "me"}, ["body", "caller_id"], "use user, trunk, anonymous or an E.164"),
    ({"caller_id": "+46899999999"}, ["body", "caller_id"],
     "+46899999999 is not a number of the organisation"),
    ({"strip": 21}, ["body", "strip"], "less than or equal to 20"),
    ({"prepend": "0x"}, ["body", "prepend"], "should match pattern"),
    ({"name": "no spaces"}, ["body", "name"], "should match pattern"),
])
def test_bad_routes_are_422s_naming_the_field(pbx: Pbx, admin: dict[str, str],
                                              body: dict[str, object], loc: list[object],
                                              message: str) -> None:
    route = {"name": "checked", "patterns": ["+."], "trunks": ["carrier-a"], **body}
    where, said = error_at(httpx.post(f"{pbx.api}/outbound-routes", headers=admin, json=route))
    assert where == loc and message in said
    if "name" not in body:  # the same on a change
        where, said = error_at(httpx.patch(f"{pbx.api}/outbound-routes/world", headers=admin,
                                           json=body))
        assert where == loc and message in said


def test_a_fixed_caller_id_is_a_number_of_the_organisation_kept_while_in_use(
    pbx: Pbx, admin: dict[str, str],
) -> None:
    shown = httpx.post(f"{pbx.api}/outbound-routes", headers=admin, json={
        "name": "switchboard", "patterns": ["+4[57]."], "trunks": ["carrier-a"],
        "caller_id": "+4681230000"})
    assert shown.status_code == 201 and shown.json()["caller_id"] == "+4681230000"
    busy = httpx.delete(f"{pbx.api}/numbers/+4681230000", headers=admin)
    assert busy.status_code == 409
    assert "outbound route switchboard" in busy.json()["detail"]
    assert httpx.delete(f"{pbx.api}/outbound-routes/switchboard",
                        headers=admin).status_code == 204


def test_the_call_policy_follows_general_until_changed(pbx: Pbx, admin: dict[str, str]) -> None:
    url = f"{pbx.api}/call-policy"
    policy = httpx.get(url, headers=admin).json()
    assert policy == {"country": "SE", "outside_prefix": "", "max_outbound_calls": 0,
                      "max_outbound_per_extension": 2, "max_calls_per_hour": 40,
                      "max_org_calls_per_hour": 0, "international": True,
                      "international_prefixes": ["+45", "+47"], "max_call_duration": 0,
                      "defaults": KEYS}
    changed = httpx.patch(url, headers=admin, json={
        "country": "dk", "international": False, "international_prefixes": ["+46", " +358"],
        "max_calls_per_hour": 10, "max_call_duration": 3600})
    assert changed.status_code == 200, changed.text
    assert {key: changed.json()[key] for key in ("country", "international",
                                                 "international_prefixes",
                                                 "max_calls_per_hour", "max_call_duration",
                                                 "max_outbound_per_extension")} == {
        "country": "DK", "international": False, "international_prefixes": ["+46", "+358"],
        "max_calls_per_hour": 10, "max_call_duration": 3600, "max_outbound_per_extension": 2}
    assert "country" not in changed.json()["defaults"]
    assert "max_outbound_per_extension" in changed.json()["defaults"]
    back = httpx.patch(url, headers=admin, json={"max_calls_per_hour": None, "country": None})
    assert back.json()["max_calls_per_hour"] == 40 and back.json()["country"] == "SE"
    assert back.json()["international"] is False  # not reset: still its own
    assert httpx.get(url, headers=admin).json() == back.json()
    audit = next(e for e in httpx.get(f"{pbx.api}/audit", headers=admin).json()
                 if e["action"] == "callpolicy.update")
    assert '"max_calls_per_hour": 10' in audit["before"]
    assert '"max_calls_per_hour": 40' in audit["after"]


@pytest.mark.parametrize(("body", "key", "message"), [
    ({"country": "XX"}, "country", "no numbering plan for country 'XX'"),
    ({"outside_prefix": "9#"}, "outside_prefix", "should match pattern"),
    ({"max_calls_per_hour": -1}, "max_calls_per_hour", "greater than or equal to 0"),
    ({"max_outbound_calls": "many"}, "max_outbound_calls", "valid integer"),
    ({"international_prefixes": ["+45", "47"]}, "international_prefixes",
     "'47' is not an E.164 prefix"),
    ({"max_call_duration": 10**9}, "max_call_duration", "less than or equal to 604800"),
])
def test_bad_call_policy_values_are_422s_naming_the_key(pbx: Pbx, admin: dict[str, str],
                                                        body: dict[str, object], key: str,
                                                        message: str) -> None:
    before = httpx.get(f"{pbx.api}/call-policy", headers=admin).json()
    where, said = error_at(httpx.patch(f"{pbx.api}/call-policy", headers=admin, json=body))
    assert where == ["body", key] and message in said
    assert httpx.get(f"{pbx.api}/call-policy", headers=admin).json() == before  # nothing kept


def test_only_admins_see_or_change_routes_and_the_policy(pbx: Pbx, admin: dict[str, str]) -> None:
    add_user(pbx, admin, "sven", role="supervisor")
    add_user(pbx, admin, "agnes", role="agent", extension="1005")
    for who in ("sven", "agnes"):
        headers = pbx.login(who, f"{who}-pass-1234")
        for method, path, body in [
            ("GET", "/outbound-routes", None), ("GET", "/outbound-routes/world", None),
            ("POST", "/outbound-routes", {"name": "x", "patterns": ["+."], "trunks": ["a"]}),
            ("PATCH", "/outbound-routes/world", {"strip": 1}),
            ("DELETE", "/outbound-routes/world", None),
            ("GET", "/call-policy", None), ("PATCH", "/call-policy", {"international": True}),
        ]:
            refused = httpx.request(method, f"{pbx.api}{path}", headers=headers, json=body)
            assert refused.status_code == 403, (who, method, path)
    assert httpx.get(f"{pbx.api}/outbound-routes").status_code == 401
    assert "world" in names(pbx, admin)


def test_emergency_numbers_are_nothing_of_the_dial_plan(pbx: Pbx, admin: dict[str, str]) -> None:
    for path, body in [("/extensions", {"number": "112"}),
                       ("/ringgroups", {"number": "112", "members": ["1001"]}),
                       ("/numbers", {"number": "112", "target": "1001"})]:
        refused = httpx.post(f"{pbx.api}{path}", headers=admin, json=body)
        assert refused.status_code == 409, path
        assert refused.json()["detail"] == "number 112 is an emergency number in SE"


def test_a_free_license_comes_with_no_number(pbx: Pbx, admin: dict[str, str]) -> None:
    add_user(pbx, admin, "frida", extension="1003", license="free")
    add_user(pbx, admin, "fredrik", extension="1002", license="fixed")
    url = f"{pbx.api}/numbers"
    refused = httpx.post(url, headers=admin, json={"number": "+4681230003", "target": "1003"})
    assert refused.status_code == 409
    assert refused.json()["detail"] == (
        "extension 1003 cannot have a number: a free license comes with no number of its own "
        "(fixed and mobile licenses do)")
    assert httpx.post(url, headers=admin, json={"number": "+4681230002",
                                                "target": "1002"}).status_code == 201
    chained = httpx.patch(f"{url}/+4681230002", headers=admin, json={"target": "1003"})
    assert chained.status_code == 409  # moving a number to it is refused the same way
    via = httpx.post(url, headers=admin, json={"number": "+4681230009", "target": "+4681230002"})
    assert via.status_code == 201  # reaches 1002 (fixed) through another number
    assert httpx.get(f"{url}/+4681230002", headers=admin).json()["target"] == "1002"

    # the other way round: a free license is not given to a user a number reaches
    ida = add_user(pbx, admin, "ida", extension="1004")
    assert httpx.post(url, headers=admin, json={"number": "+4681230004",
                                                "target": "1004"}).status_code == 201
    refused = httpx.post(f"{pbx.api}/licenses", headers=admin, json={"kind": "free",
                                                                     "user_id": ida})
    assert refused.status_code == 409
    assert refused.json()["detail"] == (
        "number +4681230004 reaches extension 1004 of user ida, but a free license comes with "
        "no number of its own (fixed and mobile licenses do)")
    spare = httpx.post(f"{pbx.api}/licenses", headers=admin, json={"kind": "free"}).json()
    assert httpx.post(f"{pbx.api}/licenses/{spare['id']}/assign", headers=admin,
                      json={"user_id": ida}).status_code == 409
    assert httpx.post(f"{pbx.api}/licenses", headers=admin, json={
        "kind": "mobile", "user_id": ida}).status_code == 201
