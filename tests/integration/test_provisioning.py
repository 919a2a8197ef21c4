"""Auto-provisioning against a running PBX: devices made through the API,
their files fetched over HTTP the way a phone fetches them, and a real SIP
peer (sipp) registering with the credentials it found in the file."""

from __future__ import annotations

import ssl
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session

from admin_api.security import hash_password
from pbx.models import ApiUser, Organisation
from pbx.store import make_engine
from tests.integration.peers import ADMIN_PASSWORD, Pbx, run_sipp, running_pbx

pytestmark = pytest.mark.integration

YEALINK_UA = "Yealink SIP-T46U 108.86.0.20 00:15:65:aa:bb:01"
SNOM_UA = "Mozilla/4.0 (compatible; snomD785-SIP 10.1.159.12 000413AABB02)"


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    with running_pbx(tmp_path_factory.mktemp("prov"), {"1001": "pw-1001-secret"},
                     admin_password=ADMIN_PASSWORD) as server:
        yield server




@pytest.fixture(scope="module")
def admin(pbx: Pbx) -> dict[str, str]:
    headers = pbx.admin_headers()
    created = httpx.post(f"{pbx.api}/extensions", headers=headers,
                         json={"number": "2001", "display_name": "Nora Nilsson"})
    assert created.status_code == 201, created.text
    return headers


def new_device(pbx: Pbx, headers: dict[str, str], **fields: object) -> dict:  # type: ignore[type-arg]
    response = httpx.post(f"{pbx.api}/devices", headers=headers, json=fields)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def fetch(pbx: Pbx, url: str, agent: str) -> httpx.Response:
    """As a phone does: over HTTPS, trusting the PBX's own (self-signed) certificate."""
    trust = ssl.create_default_context(cafile=str(pbx.data_dir / "tls" / "sip-cert.pem"))
    return httpx.get(url, headers={"User-Agent": agent}, verify=trust)


def cfg(text: str) -> dict[str, str]:
    lines = text.splitlines()
    assert lines[0] == "#!version:1.0.0.1"
    return dict(line.split(" = ", 1) for line in lines[1:] if line)  # type: ignore[misc]


def registers(pbx: Pbx, tmp: Path, user: str, password: str, auth_name: str) -> bool:
    """A real sipp REGISTER with digest auth: To/From user = the extension,
    authentication username = the device's own login."""
    result = run_sipp("register.xml", pbx, [(user, password, 300, auth_name)], tmp=tmp)
    return result.returncode == 0 and result.successful == 1


def test_a_yealink_phone_gets_its_file_and_registers_with_it(
    pbx: Pbx, admin: dict[str, str], tmp_path: Path,
) -> None:
    device = new_device(pbx, admin, extension="2001", vendor="yealink", model="T46U",
                        mac="00:15:65:AA:BB:01", label="Desk")
    assert device["mac"] == "001565aabb01"
    assert device["sip_username"].startswith("2001-") and len(device["sip_username"]) == 15
    assert len(device["secret"]) == 20
    assert device["provisioning_file"] == "001565aabb01.cfg"
    url = device["provisioning_url"] + device["provisioning_file"]
    assert url.startswith(f"https://{pbx.host}:{pbx.https_port}/provision/")  # secrets inside

    served = fetch(pbx, url, YEALINK_UA)
    assert served.status_code == 200 and served.headers["cache-control"] == "no-store"
    keys = cfg(served.text)
    assert keys["account.1.user_name"] == "2001"
    assert keys["account.1.auth_name"] == device["sip_username"]
    assert keys["account.1.password"] == device["secret"]
    assert keys["account.1.display_name"] == "Nora Nilsson"
    assert keys["account.1.sip_server.1.address"] == "pbx.test"  # the organisation's domain
    assert keys["account.1.outbound_proxy.1.address"] == pbx.host
    assert keys["account.1.outbound_proxy.1.port"] == str(pbx.sip_port)
    assert keys["account.1.sip_server.1.transport_type"] == "0"
    assert keys["voice_mail.number.1"] == "133"
    assert keys["linekey.2.value"] == "1001"  # the colleague's BLF
    assert keys["local_time.time_zone"] == "+1"  # Europe/Stockholm

    assert registers(pbx, tmp_path, keys["account.1.user_name"], keys["account.1.password"],
                     keys["account.1.auth_name"])


def test_a_snom_phone_follows_its_index_to_its_settings_and_registers(
    pbx: Pbx, admin: dict[str, str], tmp_path: Path,
) -> None:
    device = new_device(pbx, admin, extension="2001", vendor="snom", model="D785",
                        mac="0004-13aa-bb02")
    assert device["provisioning_file"] == "snomD785-000413AABB02.htm"
    index = fetch(pbx, device["provisioning_url"] + device["provisioning_file"], SNOM_UA)
    assert index.status_code == 200
    settings_url = ET.fromstring(index.content).find("file").get("url")  # type: ignore[union-attr]
    assert settings_url == device["provisioning_url"] + "000413AABB02.xml"
    settings = ET.fromstring(fetch(pbx, settings_url, SNOM_UA).content).find("phone-settings")
    assert settings is not None

    def value(tag: str) -> str:
        return settings.findtext(f"{tag}[@idx='1']") or ""  # type: ignore[union-attr]

    assert value("user_name") == "2001" and value("user_host") == "pbx.test"
    assert value("user_outbound") == f"{pbx.host}:{pbx.sip_port};transport=udp"
    assert value("user_pname") == device["sip_username"]
    assert value("user_pass") == device["secret"]
    assert registers(pbx, tmp_path, value("user_name"), value("user_pass"), value("user_pname"))


def test_files_only_for_the_right_token_and_mac(pbx: Pbx, admin: dict[str, str]) -> None:
    yealink = new_device(pbx, admin, extension="2001", vendor="yealink", mac="001565aabb03")
    grandstream = new_device(pbx, admin, extension="1001", vendor="grandstream",
                             mac="000b82aabb04")
    mine = yealink["provisioning_url"]
    theirs = grandstream["provisioning_url"]
    assert fetch(pbx, theirs + "cfg000b82aabb04.xml", "Grandstream GXP2170").status_code == 200
    # another device's token with this MAC, an unknown MAC, a file of another vendor
    assert fetch(pbx, theirs + "001565aabb03.cfg", YEALINK_UA).status_code == 404
    assert fetch(pbx, mine + "001565ffffff.cfg", "scanner/1.0").status_code == 404
    assert fetch(pbx, mine + "cfg001565aabb03.xml", YEALINK_UA).status_code == 404
    assert fetch(pbx, mine + "y000000000028.cfg", YEALINK_UA).status_code == 404
    assert fetch(pbx, mine.replace("/provision/", "/provision/x"), YEALINK_UA).status_code == 404
    log = pbx.log()
    assert "provisioning refused '001565ffffff.cfg': unknown MAC" in log
    assert "'scanner/1.0'" in log and "from 127.0.0.1" in log
    assert "provisioning refused '001565aabb03.cfg': the token is not this MAC's" in log
    assert "provisioning served 'cfg000b82aabb04.xml'" in log
    # a new secret reaches the phone with its next fetch; a deleted device gets nothing
    rotated = httpx.post(f"{pbx.api}/devices/{yealink['id']}/rotate-secret", headers=admin)
    assert rotated.status_code == 200 and rotated.json()["secret"] != yealink["secret"]
    keys = cfg(fetch(pbx, mine + "001565aabb03.cfg", YEALINK_UA).text)
    assert keys["account.1.password"] == rotated.json()["secret"]
    assert httpx.delete(f"{pbx.api}/devices/{yealink['id']}", headers=admin).status_code == 204
    assert fetch(pbx, mine + "001565aabb03.cfg", YEALINK_UA).status_code == 404


def test_devices_api_rules(pbx: Pbx, admin: dict[str, str]) -> None:
    bad = httpx.post(f"{pbx.api}/devices", headers=admin,
                     json={"extension": "2001", "mac": "00:15:65:AA:BB"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][-1] == "mac"
    unknown = httpx.post(f"{pbx.api}/devices", headers=admin, json={"extension": "9999"})
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"][-1] == "extension"
    first = new_device(pbx, admin, extension="2001", kind="softphone", label="Laptop")
    assert first["provisioning_url"] is None  # nothing to provision
    new_device(pbx, admin, extension="2001", vendor="polycom", mac="0004f2aabb05")
    taken = httpx.post(f"{pbx.api}/devices", headers=admin,
                       json={"extension": "1001", "mac": "00-04-F2-AA-BB-05"})
    assert taken.status_code == 409
    listing = httpx.get(f"{pbx.api}/devices", headers=admin, params={"extension": "2001"})
    assert listing.status_code == 200 and listing.json()["total"] >= 2
    assert first["secret"] not in listing.text and "sip_username" not in listing.text
    overview = httpx.get(f"{pbx.api}/extensions/2001/devices", headers=admin).json()
    assert {d["label"] for d in overview["items"]} >= {"Laptop"}
    patched = httpx.patch(f"{pbx.api}/devices/{first['id']}", headers=admin,
                          json={"label": "Old laptop", "mac": "bad"})
    assert patched.status_code == 422
    patched = httpx.patch(f"{pbx.api}/devices/{first['id']}", headers=admin,
                          json={"label": "Old laptop"})
    assert patched.status_code == 200 and patched.json()["label"] == "Old laptop"
    entries = httpx.get(f"{pbx.api}/audit", headers=admin).text
    assert "device.create" in entries and "device.update" in entries
    assert first["secret"] not in entries and "provisioning" not in entries


def test_dect_handsets_are_accounts_of_their_base(pbx: Pbx, admin: dict[str, str]) -> None:
    httpx.post(f"{pbx.api}/extensions", headers=admin,
               json={"number": "2010", "display_name": "Lager"})
    base = new_device(pbx, admin, extension="2001", kind="dect", vendor="yealink",
                      model="W70B", mac="805ec0aabb06")
    handset = new_device(pbx, admin, extension="2010", kind="dect", base_id=base["id"],
                         label="Lager 1")
    not_a_base = httpx.post(f"{pbx.api}/devices", headers=admin,
                            json={"extension": "2010", "kind": "dect", "base_id": handset["id"]})
    assert not_a_base.status_code == 422
    keys = cfg(fetch(pbx, base["provisioning_url"] + "805ec0aabb06.cfg", "Yealink W70B").text)
    assert keys["account.1.user_name"] == "2001"
    assert keys["account.2.user_name"] == "2010"
    assert keys["account.2.auth_name"] == handset["sip_username"]
    assert keys["account.2.password"] == handset["secret"]
    assert keys["handset.2.name"] == "Lager 1" and keys["handset.2.dial_out_default_line"] == "2"


def test_roles_and_tenants(pbx: Pbx, admin: dict[str, str]) -> None:
    created = httpx.post(f"{pbx.api}/users", headers=admin, json={
        "username": "prov-agent", "password": "agent-pass-12345", "role": "agent",
        "extension": "1001"})
    assert created.status_code == 201
    agent = pbx.login("prov-agent", "agent-pass-12345")
    assert httpx.post(f"{pbx.api}/devices", headers=agent,
                      json={"extension": "1001"}).status_code == 403
    ours = new_device(pbx, admin, extension="2001", vendor="yealink", mac="001565aabb07")
    assert httpx.get(f"{pbx.api}/devices/{ours['id']}", headers=agent).status_code == 404

    engine = make_engine(f"sqlite:///{pbx.data_dir / 'pbx.sqlite3'}")
    with Session(engine) as session:
        other = Organisation(slug="prov-other", name="Other AB", domain="other.test")
        session.add(other)
        session.commit()
        other_id = other.id
        assert other_id is not None
        session.add(ApiUser(organisation_id=other_id, username="prov-other-admin",
                            password_hash=hash_password("other-pass-1234"), role="admin"))
        session.commit()
    engine.dispose()
    theirs = pbx.login("prov-other-admin", "other-pass-1234")
    assert httpx.get(f"{pbx.api}/devices/{ours['id']}", headers=theirs).status_code == 404
    assert httpx.get(f"{pbx.api}/devices", headers=theirs).json()["total"] == 0
    assert httpx.get(f"{pbx.api}/extensions/2001/devices", headers=theirs).status_code == 404
    assert httpx.patch(f"{pbx.api}/devices/{ours['id']}", headers=theirs,
                       json={"label": "mine"}).status_code == 404
    assert httpx.delete(f"{pbx.api}/devices/{ours['id']}", headers=theirs).status_code == 404
    stolen = httpx.post(f"{pbx.api}/devices", headers=theirs, json={"extension": "2001"})
    assert stolen.status_code == 422  # no extension 2001 in their organisation
    # their phones register in their own SIP domain, and see only their colleagues
    for number in ("3001", "3002"):
        assert httpx.post(f"{pbx.api}/extensions", headers=theirs,
                          json={"number": number}).status_code == 201
    phone = new_device(pbx, theirs, extension="3001", vendor="yealink", mac="001565cccc01")
    keys = cfg(fetch(pbx, phone["provisioning_url"] + phone["provisioning_file"], YEALINK_UA).text)
    assert keys["account.1.sip_server.1.address"] == "other.test"
    assert keys["linekey.2.value"] == "3002" and "linekey.3.value" not in keys
    assert keys["lang.gui"] == "English"  # the node's [general] language
    # their organisation speaks German: its phones' menus follow
    assert httpx.patch(f"{pbx.api}/organisations/{other_id}", headers=theirs,
                       json={"language": "de"}).status_code == 200
    keys = cfg(fetch(pbx, phone["provisioning_url"] + phone["provisioning_file"], YEALINK_UA).text)
    assert keys["lang.gui"] == "German" and keys["lang.wui"] == "German"


def test_a_removed_or_rekeyed_device_stops_ringing_at_once(pbx: Pbx, admin: dict[str, str]) -> None:
    """A stolen phone: the admin deletes it and it must not ring for the hour
    its registration still had."""
    from tests.integration.sipclient import SipClient

    made = httpx.post(f"{pbx.api}/extensions", headers=admin, json={"number": "2077"})
    assert made.status_code == 201
    desk = new_device(pbx, admin, extension="2077", label="Desk")
    dect = new_device(pbx, admin, extension="2077", kind="dect", label="DECT")
    with SipClient(pbx.host, pbx.sip_port) as first, SipClient(pbx.host, pbx.sip_port) as second:
        for phone, device in ((first, desk), (second, dect)):
            answer = phone.register("2077", device["secret"], auth_user=device["sip_username"],
                                    expires=3600, contacts=[f"<sip:2077@{phone.host_port()}>"])
            assert answer is not None and answer.status == 200
        before = pbx.health()["registrations"]
        assert httpx.delete(f"{pbx.api}/devices/{desk['id']}", headers=admin).status_code == 204
        rekeyed = httpx.post(f"{pbx.api}/devices/{dect['id']}/rotate-secret", headers=admin)
        assert rekeyed.status_code == 200 and rekeyed.json()["secret"] != dect["secret"]
        time.sleep(0.3)
        assert pbx.health()["registrations"] == before - 2
        again = second.register("2077", dect["secret"], auth_user=dect["sip_username"])
        assert again is not None and again.status == 403  # the old secret is gone
