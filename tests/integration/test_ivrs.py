"""IVRs through the admin API of a running PBX: the demo tree seeded from
sip.conf, CRUD with roles and the audit log, 422s naming menu and key, 409
and 402 as for other services, YAML out and back in, the simulator, greeting
uploads checked on arrival, ``pbx ivr simulate`` on the same store, and the
admin page in a real Chromium."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import soundfile

from tests.integration.browser import chromium_page, chromium_path
from tests.integration.peers import ADMIN_PASSWORD, REPO, Pbx, organisation, running_pbx

pytestmark = pytest.mark.integration

PHONES = {n: f"pw-{n}-secret" for n in ("1001", "1002", "1003", "1004")}
SECTIONS = """
[600]
type = ringgroup
members = 1002, 1003, 1004

[800]
type = conference

[700]
type = queue
members = 1002, 1003

[office-hours]
type = schedule
mon = 08:00-17:00
tue = 08:00-17:00
wed = 08:00-17:00
thu = 08:00-17:00
fri = 08:00-17:00

[500]
type = ivr
tree = ivr-demo.yaml
"""
SALES = {  # a tree without a schedule: open at any time
    "name": "sales", "number": "510",
    "menus": {
        "main": {"greeting": {"text": "Sales. For orders press 1, for support press 2."},
                 "options": {"1": {"ringgroup": "600"}, "2": {"menu": "support"},
                             "0": {"extension": "1001"}},
                 "retries": 1, "on_timeout": {"voicemail": "1001"}},
        "support": {"greeting": {"text": "Support. Press 1 for the conference."},
                    "options": {"1": {"conference": "800"}, "#": "back"}},
    },
}


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    tmp = tmp_path_factory.mktemp("ivrs")
    (tmp / "ivr-demo.yaml").write_text((REPO / "ivr-demo.yaml").read_text())
    with running_pbx(tmp, PHONES, sections=SECTIONS, admin_password=ADMIN_PASSWORD) as server:
        yield server


@pytest.fixture(scope="module")
def admin(pbx: Pbx) -> dict[str, str]:
    return pbx.login("admin", ADMIN_PASSWORD)


def user(pbx: Pbx, admin: dict[str, str], role: str) -> dict[str, str]:
    name, password = f"ivr-{role}", f"{role}-pass-12345"
    made = httpx.post(f"{pbx.api}/users", headers=admin,
                      json={"username": name, "password": password, "role": role})
    assert made.status_code in (201, 409), made.text
    return pbx.login(name, password)


def test_the_demo_ivr_is_seeded_and_counted_as_a_service(pbx: Pbx, admin: dict[str, str]) -> None:
    listing = httpx.get(f"{pbx.api}/ivrs", headers=admin).json()
    assert listing["items"][0] == {"name": "reception", "number": "500", "language": "en",
                                   "schedule": "office-hours", "menus": ["main"]}
    tree = httpx.get(f"{pbx.api}/ivrs/reception", headers=admin).json()
    assert tree["menus"]["main"]["options"] == {"1": {"ringgroup": "600"},
                                                "2": {"extension": "1002"},
                                                "3": {"queue": "700"},
                                                "0": {"extension": "1001"}}
    services = httpx.get(f"{pbx.api}/services", headers=admin).json()["items"]
    assert {"kind": "ivr", "number": "500", "name": "reception"} in services


def test_create_read_replace_delete_with_roles_and_audit(pbx: Pbx, admin: dict[str, str]) -> None:
    url = f"{pbx.api}/ivrs"
    supervisor, agent = user(pbx, admin, "supervisor"), user(pbx, admin, "agent")
    assert httpx.post(url, headers=supervisor, json=SALES).status_code == 403
    made = httpx.post(url, headers=admin, json=SALES)
    assert made.status_code == 201, made.text
    assert made.json()["menus"]["main"]["options"]["2"] == {"menu": "support"}
    assert httpx.get(f"{url}/sales", headers=supervisor).json() == made.json()
    assert httpx.get(f"{url}/sales", headers=agent).status_code == 403
    assert httpx.get(url, headers=agent).status_code == 403

    changed = {**SALES, "menus": {**SALES["menus"], "main": {
        **SALES["menus"]["main"], "greeting": {"text": "Sales, welcome."}}}}
    assert httpx.put(f"{url}/sales", headers=supervisor, json=changed).status_code == 403
    replaced = httpx.put(f"{url}/sales", headers=admin, json=changed)
    assert replaced.status_code == 200
    assert httpx.get(f"{url}/sales", headers=admin).json()["menus"]["main"]["greeting"] == {
        "text": "Sales, welcome."}
    renumbered = httpx.put(f"{url}/sales", headers=admin, json={**changed, "number": "511"})
    assert renumbered.status_code == 422
    assert renumbered.json()["detail"][0]["msg"].startswith("number: 510 cannot change")
    assert httpx.post(url, headers=admin, json=SALES).status_code == 409  # its number is taken

    assert httpx.delete(f"{url}/sales", headers=supervisor).status_code == 403
    assert httpx.delete(f"{url}/sales", headers=admin).status_code == 204
    assert httpx.get(f"{url}/sales", headers=admin).status_code == 404
    audit = [(e["action"], e["target"]) for e in httpx.get(f"{pbx.api}/audit",
                                                             headers=admin).json()]
    assert [a for a in audit if a[1] == "sales"][:3] == [
        ("ivr.delete", "sales"), ("ivr.update", "sales"), ("ivr.create", "sales")]


def test_dangling_targets_and_loops_are_422_naming_menu_and_key(pbx: Pbx,
                                                                 admin: dict[str, str]) -> None:
    url = f"{pbx.api}/ivrs"
    dangling = {**SALES, "name": "bad", "number": "520", "menus": {
        **SALES["menus"],
        "main": {**SALES["menus"]["main"], "options": {
            "1": {"ringgroup": "601"}, "2": {"menu": "support"}, "3": {"extension": "1099"},
            "4": {"menu": "billing"}, "x": "hangup"}}}}
    refused = httpx.post(url, headers=admin, json=dangling)
    assert refused.status_code == 422
    assert refused.json()["detail"] == [{"loc": ["body", "menus", "main", "options", "x"],
                                         "msg": "menu main key x: String should match pattern "
                                                "'^[0-9*#]$'", "type": "ivr"}]
    del dangling["menus"]["main"]["options"]["x"]
    refused = httpx.post(url, headers=admin, json=dangling)
    assert refused.status_code == 422
    assert [d["msg"] for d in refused.json()["detail"]] == [
        "menu main key 1: no ring group 601", "menu main key 3: no extension 1099",
        "menu main key 4: no menu billing"]
    assert refused.json()["detail"][0]["loc"] == ["body", "menus", "main", "options", "1"]

    loop = {"name": "loop", "number": "521", "menus": {
        "main": {"greeting": {"text": "Hi"}, "options": {"1": {"menu": "a"}}},
        "a": {"greeting": {"text": "A"}, "on_timeout": {"menu": "b"}},
        "b": {"greeting": {"text": "B"}, "on_timeout": {"menu": "a"}}}}
    refused = httpx.post(url, headers=admin, json=loop)
    assert refused.status_code == 422
    assert [d["msg"] for d in refused.json()["detail"]] == [
        "menu a on_timeout: loops without caller input (a → b → a): end the silence "
        "somewhere with a destination or hangup"]
    assert httpx.post(url, headers=admin, content=b"[not json").status_code == 422
    assert httpx.get(url, headers=admin).json()["total"] == 1  # nothing stored


def test_one_number_one_meaning_and_the_plan(pbx: Pbx, admin: dict[str, str]) -> None:
    url = f"{pbx.api}/ivrs"
    taken = httpx.post(url, headers=admin, json={**SALES, "number": "600"})
    assert taken.status_code == 409
    assert taken.json()["detail"] == "number 600 is taken by ring group 600"
    ext = httpx.post(f"{pbx.api}/extensions", headers=admin, json={"number": "500"})
    assert ext.status_code == 409 and ext.json()["detail"] == "number 500 is taken by IVR 500"
    busy = httpx.delete(f"{pbx.api}/ringgroups/600", headers=admin)
    assert busy.status_code == 409
    assert "IVR reception (menu main key 1)" in busy.json()["detail"]

    small = organisation(pbx, "ivr-free", "free")
    assert httpx.post(f"{pbx.api}/extensions", headers=small,
                      json={"number": "1001"}).status_code == 201
    own = {"name": "front", "number": "700", "menus": {"main": {
        "greeting": {"text": "Hello"}, "options": {"1": {"extension": "1001"}}}}}
    assert httpx.post(url, headers=small, json=own).status_code == 201
    over = httpx.post(url, headers=small, json={**own, "name": "second", "number": "701"})
    assert over.status_code == 402
    assert over.json()["detail"] == "plan free allows 1 switchboard services; 1 in use"
    # the other organisation's extensions are not this one's
    foreign = httpx.post(url, headers=small, json={**own, "menus": {"main": {
        "greeting": {"text": "Hello"}, "options": {"2": {"extension": "1002"}}}}})
    assert foreign.status_code == 422
    assert httpx.get(url, headers=small).json()["items"][0]["name"] == "front"
    assert [i["name"] for i in httpx.get(url, headers=admin).json()["items"]] == ["reception"]


def test_yaml_export_and_import_round_trip(pbx: Pbx, admin: dict[str, str]) -> None:
    exported = httpx.get(f"{pbx.api}/ivrs/reception/yaml", headers=admin)
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("application/yaml")
    text = exported.text
    assert "'2': {extension: '1002'}" in text
    copy = text.replace("name: reception", "name: copy").replace("number: '500'",
                                                                  "number: '530'")
    made = httpx.post(f"{pbx.api}/ivrs/import", headers=admin, content=copy.encode())
    assert made.status_code == 201, made.text
    assert httpx.get(f"{pbx.api}/ivrs/copy/yaml", headers=admin).text == copy
    edited = copy.replace("{extension: '1002'}", "{extension: '1003'}")
    replaced = httpx.post(f"{pbx.api}/ivrs/import", headers=admin, content=edited.encode())
    assert replaced.status_code == 200
    assert httpx.get(f"{pbx.api}/ivrs/copy/yaml", headers=admin).text == edited
    broken = httpx.post(f"{pbx.api}/ivrs/import", headers=admin, content=b"menus: [")
    assert broken.status_code == 422 and broken.json()["detail"][0]["msg"].startswith("not YAML")
    dangling = edited.replace("{extension: '1003'}", "{extension: '1999'}")
    refused = httpx.post(f"{pbx.api}/ivrs/import", headers=admin, content=dangling.encode())
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["msg"] == "menu main key 2: no extension 1999"
    assert httpx.delete(f"{pbx.api}/ivrs/copy", headers=admin).status_code == 204


def test_simulate_over_the_api(pbx: Pbx, admin: dict[str, str]) -> None:
    assert httpx.post(f"{pbx.api}/ivrs", headers=admin,
                      json={**SALES, "name": "sim", "number": "540"}).status_code == 201
    supervisor = user(pbx, admin, "supervisor")
    url = f"{pbx.api}/ivrs/sim/simulate"
    walk = httpx.post(url, headers=supervisor, json={"digits": ["2", "#", "1"]}).json()
    assert walk["menus"] == ["main", "support", "main"]
    assert walk["outcome"] == "redirect" and walk["destination"] == "600"
    assert walk["said"][:2] == ['"Sales. For orders press 1, for support press 2."',
                                '"Support. Press 1 for the conference."']
    assert walk["steps"][-1] == {"what": "redirect", "detail": "ring group 600"}
    silent = httpx.post(url, headers=admin, json={"digits": ["timeout", "timeout", "1"]}).json()
    assert silent["destination"] == "voicemail:1001" and silent["unused"] == ["1"]
    assert httpx.post(url, headers=admin, json={}).json()["outcome"] == "waiting"
    bad = httpx.post(url, headers=admin, json={"digits": ["12"]})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][:2] == ["body", "digits"]
    # the demo at three on a Sunday morning: closed, a message for the operator
    night = httpx.post(f"{pbx.api}/ivrs/reception/simulate", headers=admin,
                       json={"digits": ["1"], "at": "2026-12-27T03:00"}).json()
    assert night["at"] == "2026-12-27T03:00:00+01:00"  # the organisation's time zone
    assert night["steps"][0] == {"what": "schedule", "detail": "office-hours closed"}
    assert night["destination"] == "voicemail:1001" and night["unused"] == ["1"]
    # a Monday morning: open, key 1 is the Sales group
    day = httpx.post(f"{pbx.api}/ivrs/reception/simulate", headers=admin,
                     json={"digits": ["1"], "at": "2026-12-21T10:00"}).json()
    assert day["steps"][:2] == [{"what": "schedule", "detail": "office-hours open"},
                                {"what": "menu", "detail": "main"}]
    assert day["destination"] == "600"
    assert httpx.post(f"{pbx.api}/ivrs/nope/simulate", headers=admin,
                      json={}).status_code == 404


def wav(seconds: float, rate: int = 16000) -> bytes:
    out = io.BytesIO()
    t = np.arange(int(rate * seconds)) / rate
    soundfile.write(out, 0.3 * np.sin(2 * np.pi * 440 * t), rate, format="WAV")
    return out.getvalue()


def test_greeting_uploads_are_checked(pbx: Pbx, admin: dict[str, str]) -> None:
    url = f"{pbx.api}/ivrs/reception/greetings/main"
    broken = httpx.post(url, headers=admin, content=b"RIFF\x00\x00 definitely not a wav")
    assert broken.status_code == 422 and "cannot read audio" in broken.json()["detail"]
    assert httpx.post(url, headers=admin, content=b"").status_code == 422
    assert httpx.post(f"{pbx.api}/ivrs/reception/greetings/nomenu", headers=admin,
                      content=wav(1.0)).status_code == 404
    assert httpx.post(url, headers=user(pbx, admin, "supervisor"),
                      content=wav(1.0)).status_code == 403
    stored = httpx.post(url, headers=admin, content=wav(1.5))
    assert stored.status_code == 200, stored.text
    body = stored.json()
    assert body["menu"] == "main" and body["seconds"] == 1.5
    assert body["recording"].startswith("main-") and body["recording"].endswith(".wav")
    greeting = httpx.get(f"{pbx.api}/ivrs/reception", headers=admin).json()["menus"]["main"][
        "greeting"]
    assert greeting["recording"] == body["recording"]
    assert greeting["text"].startswith("Welcome to Demo AB.")  # kept, should the file fail
    folder = pbx.data_dir / "ivr" / "1" / "reception"
    assert [p.name for p in folder.glob("*.wav")] == [body["recording"]]
    with soundfile.SoundFile(folder / body["recording"]) as f:
        assert (f.samplerate, f.channels, f.frames) == (8000, 1, 12000)
    again = httpx.post(url, headers=admin, content=wav(2.0)).json()
    assert [p.name for p in folder.glob("*.wav")] == [again["recording"]]  # the old one went
    # a tree naming a recording that was never uploaded is refused
    tree = httpx.get(f"{pbx.api}/ivrs/reception", headers=admin).json()
    tree["menus"]["main"]["invalid_prompt"] = {"recording": "never.wav"}
    refused = httpx.put(f"{pbx.api}/ivrs/reception", headers=admin, json=tree)
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["msg"] == (
        "menu main invalid_prompt: recording never.wav: no such file")


def test_the_command_line_simulates_from_the_same_store(pbx: Pbx) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pbx", "ivr", "simulate", "reception", "--digits", "1",
         "--config", str(pbx.config), "--data-dir", str(pbx.data_dir),
         "--at", "2026-12-27T03:00"],
        capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "IVR reception (500) at Sun 2026-12-27 03:00 CET",
        "schedule office-hours closed",
        '  says "Welcome to Demo AB. We are closed right now. Please leave a message after '
        'the tone."',
        "→ voicemail of 1001",
        "(not used: 1)",
    ]
    missing = subprocess.run(
        [sys.executable, "-m", "pbx", "ivr", "simulate", "nope", "--config", str(pbx.config),
         "--data-dir", str(pbx.data_dir)], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert missing.returncode == 1 and "no IVR nope" in missing.stderr


@pytest.mark.skipif(chromium_path() is None, reason="chromium not installed")
def test_the_ivr_page(pbx: Pbx) -> None:
    """In a real Chromium: the list, a YAML file imported, a tree viewed, a call simulated."""
    tree = ("name: page\nnumber: '550'\nmenus:\n  main:\n    greeting: {text: Hello}\n"
            "    options:\n      '1': {ringgroup: '600'}\n      '2': {extension: '1002'}\n")
    with chromium_page() as page:
        page.log_in(f"http://{pbx.host}:{pbx.http_port}/admin/", "admin", ADMIN_PASSWORD)
        page.wait_for("document.querySelector('#view-table tbody').textContent.includes('1001')")
        page.eval("show('ivrs')")
        page.wait_for("document.querySelector('#view-table tbody').textContent"
                      ".includes('reception')")
        page.eval(f"""(() => {{
            const data = new DataTransfer();
            data.items.add(new File([{tree!r}], 'page.yaml', {{type: 'application/yaml'}}));
            document.querySelector('#ivr-file').files = data.files;
            [...document.querySelectorAll('#view-tools button')]
                .find((b) => b.textContent === 'Import YAML').click(); }})()""")
        page.wait_for("document.querySelector('#view-table tbody').textContent.includes('page')")
        assert page.eval("document.querySelector('#view-detail').textContent") == (
            "Imported page (550).")
        row = "[...document.querySelectorAll('#view-table tbody tr')].find((r) => " \
              "r.textContent.startsWith('page'))"
        page.eval(f"[...{row}.querySelectorAll('button')].find((b) => b.textContent === 'View')"
                  ".click()")
        page.wait_for("document.querySelector('#view-detail').textContent.includes("
                      "\"'2': {extension: '1002'}\")")
        page.eval("document.querySelector('#ivr-digits').value = '2'")
        page.eval(f"[...{row}.querySelectorAll('button')].find((b) => b.textContent === "
                  "'Simulate').click()")
        page.wait_for("document.querySelector('#view-detail').textContent.includes("
                      "'→ extension 1002')")
        assert page.eval("document.querySelector('#view-error').textContent") == ""
        page.eval("document.querySelector('#ivr-digits').value = '1,x'")
        page.eval(f"[...{row}.querySelectorAll('button')].find((b) => b.textContent === "
                  "'Simulate').click()")
        assert "digits" in page.wait_for("document.querySelector('#view-error').textContent")
    assert httpx.get(f"{pbx.api}/ivrs/page", headers=pbx.login("admin", ADMIN_PASSWORD)
                     ).json()["menus"]["main"]["options"]["1"] == {"ringgroup": "600"}
