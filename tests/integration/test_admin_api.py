"""The admin API over HTTP against a running PBX: login, roles, extensions
that take effect on the SIP side at once, call records, audit, tenants."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from media.languages import TEXTS
from tests.integration.peers import ADMIN_PASSWORD, Pbx, running_pbx
from tests.integration.sipclient import SipClient

pytestmark = pytest.mark.integration



@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    with running_pbx(tmp_path_factory.mktemp("api"), {"1001": "pw-1001-secret"},
                     admin_password=ADMIN_PASSWORD) as server:
        yield server




def test_login_and_tokens(pbx: Pbx) -> None:
    assert httpx.post(f"{pbx.api}/login", json={"username": "admin", "password": "nope"}).status_code == 401
    assert httpx.get(f"{pbx.api}/extensions").status_code == 401
    assert httpx.get(f"{pbx.api}/extensions", headers={"Authorization": "Bearer forged"}).status_code == 401
    headers = pbx.login("admin", ADMIN_PASSWORD)
    assert httpx.get(f"{pbx.api}/me", headers=headers).json()["role"] == "admin"


def test_a_new_extension_registers_at_once_and_secrets_stay_hidden(pbx: Pbx) -> None:
    headers = pbx.login("admin", ADMIN_PASSWORD)
    created = httpx.post(f"{pbx.api}/extensions", headers=headers,
                         json={"number": "2001", "display_name": "Nora Nilsson"})
    assert created.status_code == 201
    secret = created.json()["secret"]
    assert len(secret) == 20
    assert httpx.post(f"{pbx.api}/extensions", headers=headers, json={"number": "2001"}).status_code == 409
    reserved = httpx.post(f"{pbx.api}/extensions", headers=headers, json={"number": "133"})
    assert reserved.status_code == 409 and "voicemail" in reserved.json()["detail"]
    listing = httpx.get(f"{pbx.api}/extensions", headers=headers, params={"limit": 1, "offset": 1})
    assert listing.status_code == 200 and listing.json()["total"] == 2 and len(listing.json()["items"]) == 1
    assert "secret" not in listing.text and secret not in listing.text
    with SipClient(pbx.host, pbx.sip_port) as phone:
        assert phone.register("2001", secret).status == 200  # type: ignore[union-attr]
    # DND set through the API (and no mailbox to take over): the next call is refused as busy
    patched = httpx.patch(f"{pbx.api}/extensions/2001", headers=headers,
                          json={"dnd": True, "voicemail": False})
    assert patched.status_code == 200 and patched.json()["dnd"] is True
    assert patched.json()["voicemail"] is False
    with SipClient(pbx.host, pbx.sip_port) as caller:
        _, final = caller.invite("1001", "pw-1001-secret", "2001")
        assert final is not None and final.status == 486
    actions = [(e["action"], e["target"]) for e in httpx.get(f"{pbx.api}/audit", headers=headers).json()]
    assert ("extension.create", "2001") in actions and ("extension.update", "2001") in actions
    update = next(e for e in httpx.get(f"{pbx.api}/audit", headers=headers).json()
                  if e["action"] == "extension.update")
    assert '"dnd": false' in update["before"] and '"dnd": true' in update["after"]


def test_api_tokens_and_logout(pbx: Pbx) -> None:
    headers = pbx.login("admin", ADMIN_PASSWORD)
    made = httpx.post(f"{pbx.api}/tokens", headers=headers, json={"name": "crm", "expires_in_days": 30})
    assert made.status_code == 201 and made.json()["expires_at"] > time.time() + 29 * 86400
    crm = {"Authorization": f"Bearer {made.json()['token']}"}
    assert httpx.get(f"{pbx.api}/me", headers=crm).json()["username"] == "admin"
    listed = httpx.get(f"{pbx.api}/tokens", headers=headers).json()
    assert [t["name"] for t in listed] == ["crm"] and made.json()["token"] not in str(listed)
    assert httpx.delete(f"{pbx.api}/tokens/{made.json()['id']}", headers=headers).status_code == 204
    assert httpx.get(f"{pbx.api}/me", headers=crm).status_code == 401
    assert httpx.post(f"{pbx.api}/logout", headers=headers).status_code == 204
    assert httpx.get(f"{pbx.api}/me", headers=headers).status_code == 401


def test_two_factor_login(pbx: Pbx) -> None:
    import pyotp

    headers = pbx.login("admin", ADMIN_PASSWORD)
    assert httpx.post(f"{pbx.api}/users", headers=headers, json={
        "username": "careful", "password": "careful-pass-123", "role": "supervisor"}).status_code == 201
    mine = pbx.login("careful", "careful-pass-123")
    assert httpx.post(f"{pbx.api}/me/totp/confirm", headers=mine, json={"otp": "123456"}).status_code == 409
    enrolment = httpx.post(f"{pbx.api}/me/totp", headers=mine).json()
    assert enrolment["uri"].startswith("otpauth://totp/")
    totp = pyotp.TOTP(enrolment["secret"])
    wrong = str((int(totp.now()) + 1) % 1_000_000).zfill(6)
    assert httpx.post(f"{pbx.api}/me/totp/confirm", headers=mine, json={"otp": wrong}).status_code == 422
    assert httpx.post(f"{pbx.api}/me/totp/confirm", headers=mine,
                      json={"otp": totp.now()}).json() == {"enabled": True}
    body = {"username": "careful", "password": "careful-pass-123"}
    refused = httpx.post(f"{pbx.api}/login", json=body)
    assert refused.status_code == 401 and "one-time code" in refused.text
    assert httpx.post(f"{pbx.api}/login", json={**body, "otp": wrong}).status_code == 401
    # the code of the next time step (the confirmation used this one's)
    code = totp.at(time.time() + 30)
    assert httpx.post(f"{pbx.api}/login", json={**body, "otp": code}).status_code == 200
    assert httpx.post(f"{pbx.api}/login", json={**body, "otp": code}).status_code == 401  # replay


def test_validation_errors_name_the_field(pbx: Pbx) -> None:
    headers = pbx.login("admin", ADMIN_PASSWORD)
    bad = httpx.post(f"{pbx.api}/extensions", headers=headers, json={"number": "no spaces here"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][-1] == "number"
    weak = httpx.post(f"{pbx.api}/users", headers=headers,
                      json={"username": "weak", "password": "short", "role": "agent"})
    assert weak.status_code == 422 and "password" in weak.text
    assert httpx.patch(f"{pbx.api}/extensions/2001", headers=headers,
                       json={"ring_timeout": 1}).status_code == 422


def test_roles(pbx: Pbx) -> None:
    headers = pbx.login("admin", ADMIN_PASSWORD)
    created = httpx.post(f"{pbx.api}/users", headers=headers, json={
        "username": "agent1", "password": "agent-pass-12345", "role": "agent", "extension": "2001"})
    assert created.status_code == 201
    agent = pbx.login("agent1", "agent-pass-12345")
    assert httpx.post(f"{pbx.api}/extensions", headers=agent, json={"number": "2002"}).status_code == 403
    assert httpx.get(f"{pbx.api}/audit", headers=agent).status_code == 403
    assert httpx.get(f"{pbx.api}/extensions", headers=agent).status_code == 200


def test_call_records_and_csv(pbx: Pbx) -> None:
    with SipClient(pbx.host, pbx.sip_port) as caller:
        caller.call_id += "-cdr"
        _, final = caller.invite("1001", "pw-1001-secret", "9999")
        assert final is not None and final.status == 404
    time.sleep(0.5)
    headers = pbx.login("admin", ADMIN_PASSWORD)
    page = httpx.get(f"{pbx.api}/cdrs", headers=headers, params={"disposition": "failed"}).json()
    assert any(c["callee"] == "9999" and c["status"] == 404 for c in page["items"])
    csv_text = httpx.get(f"{pbx.api}/cdrs.csv", headers=headers).text
    assert csv_text.splitlines()[0].startswith("call_id,caller,callee") and ",9999," in csv_text


def test_one_organisation_cannot_see_another(pbx: Pbx) -> None:
    ours = pbx.login("admin", ADMIN_PASSWORD)
    other = {"slug": "other", "name": "Other AB", "domain": "other.test", "plan": "free",
             "admin": {"username": "other-admin", "password": "other-pass-1234"}}
    created = httpx.post(f"{pbx.api}/organisations", headers=ours, json=other)
    assert created.status_code == 201, created.text
    assert httpx.post(f"{pbx.api}/organisations", headers=ours, json=other).status_code == 409
    theirs = pbx.login("other-admin", "other-pass-1234")
    # their own organisation only; no creating others, no plan changes
    assert [o["slug"] for o in httpx.get(f"{pbx.api}/organisations", headers=theirs).json()["items"]] == ["other"]
    assert httpx.post(f"{pbx.api}/organisations", headers=theirs,
                      json={**other, "slug": "third", "domain": "third.test"}).status_code == 403
    assert httpx.patch(f"{pbx.api}/organisations/{created.json()['id']}", headers=theirs,
                       json={"plan": "unlimited"}).status_code == 403
    secrets = {}
    for number in ("3001", "1001"):  # 1001 exists in both organisations
        made = httpx.post(f"{pbx.api}/extensions", headers=theirs, json={"number": number})
        assert made.status_code == 201
        secrets[number] = made.json()["secret"]
    numbers = [e["number"] for e in httpx.get(f"{pbx.api}/extensions", headers=theirs).json()["items"]]
    assert numbers == ["1001", "3001"]
    assert httpx.get(f"{pbx.api}/extensions/2001", headers=theirs).status_code == 404
    assert httpx.patch(f"{pbx.api}/extensions/2001", headers=theirs, json={"dnd": True}).status_code == 404
    assert httpx.delete(f"{pbx.api}/extensions/2001", headers=theirs).status_code == 404
    assert not any(c["caller"] == "1001" for c in
                   httpx.get(f"{pbx.api}/cdrs", headers=theirs).json()["items"])
    assert httpx.get(f"{pbx.api}/extensions/3001", headers=ours).status_code == 404
    assert httpx.get(f"{pbx.api}/organisations/1", headers=theirs).status_code == 404
    # SIP: phones of the other organisation live in its own domain
    with SipClient(pbx.host, pbx.sip_port, domain="other.test") as phone, \
            SipClient(pbx.host, pbx.sip_port, domain="other.test") as caller:
        wrong = phone.register("1001", "pw-1001-secret")  # our 1001's password
        assert wrong is not None and wrong.status == 403
        phone.call_id += "-2"
        assert phone.register("1001", secrets["1001"],
                              contacts=[f"<sip:1001@{phone.host_port()}>"]).status == 200  # type: ignore[union-attr]
        assert httpx.patch(f"{pbx.api}/extensions/1001", headers=theirs,  # no mailbox to take it
                           json={"voicemail": False}).status_code == 200
        invite, busy = caller.call("3001", secrets["3001"], "1001", phone, 486)
        assert invite is not None and invite.from_addr.uri.host == "other.test"
        assert busy is not None and busy.status == 486  # their 1001 rang, not ours
    with SipClient(pbx.host, pbx.sip_port) as stranger:  # by IP: the default organisation
        assert stranger.register("3001", secrets["3001"]).status == 403  # type: ignore[union-attr]


def test_an_organisation_speaks_its_language_with_its_countrys_tones(pbx: Pbx) -> None:
    ours = pbx.login("admin", ADMIN_PASSWORD)
    default = httpx.get(f"{pbx.api}/organisations/1", headers=ours).json()
    assert (default["language"], default["tone_country"]) == ("en", "gb")  # [general] defaults
    body = {"slug": "suomi", "name": "Suomi Oy", "domain": "suomi.test",
            "admin": {"username": "suomi-admin", "password": "suomi-pass-1234"}}
    for field, value in (("language", "no"), ("language", "fr"), ("tone_country", "xx")):
        refused = httpx.post(f"{pbx.api}/organisations", headers=ours, json={**body, field: value})
        assert refused.status_code == 422, refused.text
        (error,) = refused.json()["detail"]
        assert error["loc"] == ["body", field]
        assert "nb" in error["msg"] if field == "language" else "dk" in error["msg"]

    made = httpx.post(f"{pbx.api}/organisations", headers=ours, json={**body, "language": "fi"})
    assert made.status_code == 201, made.text
    assert (made.json()["language"], made.json()["tone_country"]) == ("fi", "fi")
    finnish = pbx.data_dir / "prompts" / "fi"  # rendered before the first Finnish call
    assert {p.stem for p in finnish.glob("*.wav")} == set(TEXTS["fi"])

    theirs = pbx.login("suomi-admin", "suomi-pass-1234")
    url = f"{pbx.api}/organisations/{made.json()['id']}"
    refused = httpx.patch(url, headers=theirs, json={"language": "xx"})
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body", "language"]
    german = httpx.patch(url, headers=theirs, json={"language": "de"})
    assert german.status_code == 200
    assert (german.json()["language"], german.json()["tone_country"]) == ("de", "de")
    assert (pbx.data_dir / "prompts" / "de" / "until.wav").exists()
    swedish_tones = httpx.patch(url, headers=theirs, json={"tone_country": "se"}).json()
    assert (swedish_tones["language"], swedish_tones["tone_country"]) == ("de", "se")
    changes = [(json.loads(e["before"])["language"], json.loads(e["after"])["language"])
               for e in httpx.get(f"{pbx.api}/audit", headers=theirs).json()
               if e["action"] == "organisation.update"]
    assert changes == [("de", "de"), ("fi", "de")]  # newest first


def test_login_is_rate_limited(tmp_path: Path) -> None:
    with running_pbx(tmp_path, {"1001": "pw-1001-secret"}) as server:  # a generated password
        statuses = [httpx.post(f"{server.api}/login",
                               json={"username": "admin", "password": "guess"}).status_code
                    for _ in range(12)]
        assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429]
        assert (server.data_dir / "admin-password").stat().st_mode & 0o777 == 0o600


def test_schemathesis_finds_no_server_error(tmp_path: Path) -> None:
    """Property-based requests from the OpenAPI schema: no input may cause a 5xx."""
    import subprocess
    import sys

    with running_pbx(tmp_path, {"1001": "pw-1001-secret"}) as server:
        headers = server.admin_headers()
        tool = Path(sys.executable).with_name("schemathesis")
        result = subprocess.run(
            [str(tool), "run", f"http://{server.host}:{server.http_port}/openapi.json",
             "-H", f"Authorization: {headers['Authorization']}", "--checks", "not_a_server_error",
             "--max-examples", "20", "--seed", "4475"],
            capture_output=True, text=True, timeout=240, cwd=tmp_path,
        )
        assert result.returncode == 0, result.stdout[-3000:]
        assert "passed" in result.stdout and server.process is not None
        assert server.process.poll() is None


def test_deleting_an_extension_ends_its_calls_and_keeps_the_record(pbx: Pbx) -> None:
    headers = pbx.login("admin", ADMIN_PASSWORD)
    created = httpx.post(f"{pbx.api}/extensions", headers=headers, json={"number": "2005"})
    assert created.status_code == 201
    secret = created.json()["secret"]
    with SipClient(pbx.host, pbx.sip_port) as phone, SipClient(pbx.host, pbx.sip_port) as caller:
        assert phone.register("2005", secret, contacts=[f"<sip:2005@{phone.host_port()}>"]).status == 200  # type: ignore[union-attr]
        caller.call_id += "-removed"
        _, ok = caller.call("1001", "pw-1001-secret", "2005", phone)
        assert ok is not None and ok.status == 200
        assert httpx.delete(f"{pbx.api}/extensions/2005", headers=headers).status_code == 204
        assert caller.receive_request(5, "BYE") is not None  # both ends are hung up
        assert phone.receive_request(5, "BYE") is not None
    time.sleep(0.5)
    page = httpx.get(f"{pbx.api}/cdrs", headers=headers).json()["items"]
    assert any(c["callee"] == "2005" and c["disposition"] == "answered" for c in page)  # kept


def test_an_extension_something_leads_to_is_not_deleted(pbx: Pbx) -> None:
    headers = pbx.login("admin", ADMIN_PASSWORD)
    for number in ("2006", "2007"):
        assert httpx.post(f"{pbx.api}/extensions", headers=headers, json={"number": number}).status_code == 201
    assert httpx.post(f"{pbx.api}/ringgroups", headers=headers, json={
        "number": "650", "members": ["2006", "2007"]}).status_code == 201
    assert httpx.patch(f"{pbx.api}/extensions/2007", headers=headers,
                       json={"forward_noanswer": "2006"}).status_code == 200
    refused = httpx.delete(f"{pbx.api}/extensions/2006", headers=headers)
    assert refused.status_code == 409 and "extension 2007" in refused.json()["detail"]
    assert httpx.patch(f"{pbx.api}/extensions/2007", headers=headers,
                       json={"forward_noanswer": ""}).status_code == 200
    assert httpx.delete(f"{pbx.api}/extensions/2006", headers=headers).status_code == 204
    group = httpx.get(f"{pbx.api}/ringgroups/650", headers=headers).json()
    assert group["members"] == ["2007"]  # it left its ring group
