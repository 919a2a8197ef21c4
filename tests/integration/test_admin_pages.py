"""The admin web pages in a real headless Chromium: log in, see the
extensions, add one through the form, and find it through the API."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.integration.browser import chromium_page, chromium_path
from tests.integration.peers import ADMIN_PASSWORD, running_pbx

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(chromium_path() is None, reason="chromium not installed"),
]

def test_log_in_list_and_add_an_extension(tmp_path: Path) -> None:
    with running_pbx(tmp_path, {"1001": "pw-1001-secret"}, admin_password=ADMIN_PASSWORD) as pbx, \
            chromium_page() as page:
        page.goto(f"http://{pbx.host}:{pbx.http_port}/")  # redirects to /admin/
        assert page.eval("document.title") == "PBX admin"
        page.eval("""(() => {
            const form = document.querySelector('#login');
            form.username.value = 'admin'; form.password.value = 'wrong-password-1';
            form.requestSubmit(); })()""")
        assert "wrong username or password" in page.wait_for(
            "document.querySelector('#login-error').textContent")
        page.eval(f"""(() => {{
            const form = document.querySelector('#login');
            form.password.value = {ADMIN_PASSWORD!r}; form.requestSubmit(); }})()""")
        page.wait_for("!document.querySelector('#app').hidden")
        assert page.eval("document.querySelector('#who').textContent") == "admin (admin)"
        assert page.eval("getComputedStyle(document.querySelector('#login')).display") == "none"
        page.wait_for("document.querySelector('#view-table tbody').textContent.includes('1001')")
        page.eval("""(() => {
            window.alert = (text) => { window.lastAlert = text; };
            const form = document.querySelector('#create');
            form.number.value = '2042'; form.display_name.value = 'Nils Holgersson';
            form.requestSubmit(); })()""")
        page.wait_for("document.querySelector('#view-table tbody').textContent.includes('Nils Holgersson')")
        assert page.eval("window.lastAlert").startswith("secret (shown once): ")
        page.eval("""(() => {
            const form = document.querySelector('#create');
            form.number.value = 'no spaces'; form.requestSubmit(); })()""")
        assert "number" in page.wait_for("document.querySelector('#view-error').textContent")
        page.screenshot(str(tmp_path / "admin.png"))
        # every page loads its list from the API without an error
        for view in page.eval("Object.keys(VIEWS)"):
            page.eval(f"show({view!r})")
            page.wait_for(f"document.querySelector('#view-title').textContent === VIEWS[{view!r}].title")
            page.wait_for("document.querySelector('#view-table thead').textContent !== ''")
            assert page.eval("document.querySelector('#view-error').textContent") == "", view
        page.eval("show('licenses')")
        page.eval("""(() => { const form = document.querySelector('#create');
            form.kind.value = 'mobile'; form.requestSubmit(); })()""")
        page.wait_for("document.querySelector('#view-table tbody').textContent.includes('mobile')")
        token = page.eval("sessionStorage.getItem('pbx-token')")
        listed = httpx.get(f"{pbx.api}/extensions/2042", headers={"Authorization": f"Bearer {token}"})
        assert listed.status_code == 200 and listed.json()["display_name"] == "Nils Holgersson"


def test_the_switchboard_page_closes_and_reopens_with_one_button(tmp_path: Path) -> None:
    every_day = "".join(f"{day} = 00:00-24:00\n" for day in ("mon", "tue", "wed", "thu", "fri",
                                                            "sat", "sun"))
    sections = f"\n[reception]\ntype = schedule\nholidays = none\n{every_day}"
    with running_pbx(tmp_path, {"1001": "pw-1001-secret"}, sections=sections,
                     admin_password=ADMIN_PASSWORD) as pbx, chromium_page() as page:
        page.log_in(f"http://{pbx.host}:{pbx.http_port}/admin/", "admin", ADMIN_PASSWORD)
        page.eval("show('switchboard')")
        row = "document.querySelector('#view-table tbody tr')"
        buttons = f"[...{row}.querySelectorAll('button')].map((b) => b.textContent)"
        page.wait_for(f"{row} && {row}.textContent.includes('reception')")
        assert page.eval(f"{row}.textContent").startswith("receptionopenschedule")
        assert page.eval(buttons) == ["Close now"]
        page.eval(f"{row}.querySelector('button').click()")
        page.wait_for(f"{row}.textContent.includes('override')")
        assert page.eval(f"{row}.textContent").startswith("receptionclosedoverride")
        assert page.eval(buttons) == ["Back to schedule"]
        page.screenshot(str(tmp_path / "switchboard.png"))
        state = httpx.get(f"{pbx.api}/schedules/reception/state",
                          headers=pbx.login("admin", ADMIN_PASSWORD)).json()
        assert (state["open"], state["reason"]) == (False, "override")
        page.eval(f"{row}.querySelector('button').click()")
        page.wait_for(f"{row}.textContent.startsWith('receptionopenschedule')")
        assert page.eval(buttons) == ["Close now"]
        # a list that answers late never draws over the view asked for after it
        page.eval("""(() => { const fetchNow = window.fetch;
            window.fetch = (path, init) => path.startsWith('/api/extensions')
                ? new Promise((done) => setTimeout(() => done(fetchNow(path, init)), 800))
                : fetchNow(path, init);
            show('extensions'); show('switchboard'); })()""")
        page.eval("new Promise((done) => setTimeout(done, 1500))")
        assert page.eval(f"{row}.textContent").startswith("receptionopenschedule")
        assert page.eval("document.querySelector('#view-title').textContent") == "Switchboard"


def test_outbound_routes_are_added_and_reordered_and_international_calls_blocked(
    tmp_path: Path,
) -> None:
    sections = "".join(f"\n[{name}]\ntype = trunk\nhost = 127.0.0.2\nauth = ip\n"
                       for name in ("carrier-a", "carrier-b"))
    sections += "\n[world]\ntype = route\npatterns = +.\ntrunks = carrier-a\n"
    with running_pbx(tmp_path, {"1001": "pw-1001-secret"}, sections=sections,
                     admin_password=ADMIN_PASSWORD) as pbx, chromium_page() as page:
        page.log_in(f"http://{pbx.host}:{pbx.http_port}/admin/", "admin", ADMIN_PASSWORD)
        page.eval("show('outbound')")
        rows = "[...document.querySelectorAll('#view-table tbody tr')]"
        names = f"{rows}.map((tr) => tr.children[1].textContent)"
        # the table of the view shown after login has one row too (1001): wait
        # for the routes' own row, and their form with it
        page.wait_for(f"JSON.stringify({names}) === '[\"world\"]'"
                      " && document.querySelector('#create').patterns !== undefined")
        page.eval("""(() => { const form = document.querySelector('#create');
            form.name.value = 'sweden'; form.patterns.value = '+46., 112';
            form.trunks.value = 'carrier-a, carrier-b'; form.caller_id.value = 'trunk';
            form.requestSubmit(); })()""")
        page.wait_for(f"{rows}.length === 2")
        assert page.eval(names) == ["world", "sweden"]
        assert page.eval(f"{rows}[1].textContent").startswith(
            "1sweden+46., 112carrier-a, carrier-b0")
        up = "[...{rows}[1].querySelectorAll('button')].find((b) => b.textContent === 'Up')"
        page.eval(f"{up.format(rows=rows)}.click()")
        page.wait_for(f"{names}[0] === 'sweden'")
        page.eval("""(() => { const form = document.querySelector('#create');
            form.name.value = 'broken'; form.patterns.value = '+46.X';
            form.trunks.value = 'carrier-a'; form.requestSubmit(); })()""")
        assert page.wait_for("document.querySelector('#view-error').textContent") == (
            "patterns.0: Value error, '.' at 4 must be the last character")
        page.screenshot(str(tmp_path / "outbound.png"))

        page.eval("show('callpolicy')")
        row = "document.querySelector('#view-table tbody tr')"
        page.wait_for(f"{row} && {row}.textContent.startsWith('SEallowed')")
        page.eval(f"{row}.querySelector('button').click()")
        page.wait_for(f"{row}.textContent.startsWith('SEblocked')")
        admin = pbx.login("admin", ADMIN_PASSWORD)
        assert httpx.get(f"{pbx.api}/call-policy", headers=admin).json()["international"] is False
        routes = httpx.get(f"{pbx.api}/outbound-routes", headers=admin)
        assert [r["name"] for r in routes.json()["items"]] == ["sweden", "world"]
