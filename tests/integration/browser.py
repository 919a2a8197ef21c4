"""A real headless Chromium driven over the DevTools protocol (no WebDriver):
load a page, run JavaScript in it, wait for what a person would see."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

from tests.integration.peers import free_ports

CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns",
]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Page:
    """One browser tab."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.ids = itertools.count(1)

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self.ids)
        self.connection.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.connection.recv(timeout=30))
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def goto(self, url: str) -> None:
        self.send("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'")

    def eval(self, expression: str) -> Any:
        """The value of a JavaScript expression (promises awaited)."""
        result = self.send("Runtime.evaluate", expression=expression, awaitPromise=True,
                           returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"].get("text", "script error"))
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 10.0) -> Any:
        """Poll until ``expression`` is truthy; one that throws is not yet true
        (the element it reads may not be drawn yet), its error told at the timeout."""
        deadline = time.monotonic() + timeout
        while True:
            error = None
            try:
                value = self.eval(expression)
            except RuntimeError as exc:
                value, error = None, exc
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout}s for {expression}"
                                   + (f" (last: {error})" if error else ""))
            time.sleep(0.1)

    def log_in(self, url: str, username: str, password: str) -> None:
        """Open the admin pages at ``url`` and log in through the form."""
        self.goto(url)
        self.eval(f"""(() => {{
            const form = document.querySelector('#login');
            form.username.value = {username!r}; form.password.value = {password!r};
            form.requestSubmit(); }})()""")
        self.wait_for("!document.querySelector('#app').hidden")

    def screenshot(self, path: str) -> None:
        import base64

        data = self.send("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as handle:
            handle.write(base64.b64decode(data))


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a browser and every process of its group (it may have gone already)."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextmanager
def chromium_page(flags: tuple[str, ...] = ()) -> Iterator[Page]:
    """A headless Chromium with one tab (started with ``flags`` besides
    ours), stopped afterwards."""
    binary = chromium_path()
    if binary is None:
        raise RuntimeError("chromium is not installed (apt-get install chromium)")
    port = free_ports(1)
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        process = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, *flags, f"--remote-debugging-port={port}",
             "--remote-debugging-address=127.0.0.1", f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: every child is stopped with it
        )
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    tabs = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=1).json()
                    target = next(t for t in tabs if t["type"] == "page")
                    break
                except (httpx.HTTPError, StopIteration, ValueError):
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise RuntimeError("chromium did not start") from None
                    time.sleep(0.2)
            with connect(target["webSocketDebuggerUrl"], max_size=None) as connection:
                page = Page(connection)
                page.send("Page.enable")
                page.send("Runtime.enable")
                yield page
        finally:
            stop(process)


FIREFOX_PREFS = {
    "media.navigator.streams.fake": True,  # a 1 kHz tone as the microphone
    "media.navigator.permission.disabled": True,
    "media.autoplay.default": 0,  # the far end plays, WebAudio runs without a click
    "media.autoplay.blocking_policy": 0,
    "media.cubeb.force_mock_context": True,  # no sound card: else WebAudio stays suspended
    "media.peerconnection.ice.loopback": True,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    "browser.shell.checkDefaultBrowser": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "app.update.disabledForTesting": True,
}


def firefox_path() -> str | None:
    return shutil.which("firefox-esr") or shutil.which("firefox")


class FirefoxPage(Page):
    """A Firefox tab driven over Marionette (Mozilla's own remote protocol;
    no geckodriver needed): the same interface as a Chromium :class:`Page`."""

    def __init__(self, marionette: Any) -> None:
        self.marionette = marionette

    def goto(self, url: str) -> None:
        self.marionette.navigate(url)
        self.wait_for("document.readyState === 'complete'")

    def eval(self, expression: str) -> Any:
        """The value of a JavaScript expression (promises awaited), run in the
        page's own scope (no sandbox: the page's globals are visible)."""
        from marionette_driver.errors import JavascriptException

        try:
            return self.marionette.execute_async_script(
                "const [expression, done] = arguments;"
                "Promise.resolve(window.eval(expression)).then(done);",
                script_args=[expression], sandbox=None, script_timeout=30000)
        except JavascriptException as exc:
            raise RuntimeError(str(exc)) from None


@contextmanager
def firefox_page() -> Iterator[FirefoxPage]:
    """A headless Firefox (a fresh profile with fake media and loopback ICE
    allowed) with one tab, stopped afterwards."""
    from marionette_driver.marionette import Marionette

    binary = firefox_path()
    if binary is None:
        raise RuntimeError("firefox is not installed (apt-get install firefox-esr)")
    port = free_ports(1)
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        prefs = {**FIREFOX_PREFS, "marionette.port": port}
        with open(os.path.join(profile, "user.js"), "w") as handle:
            handle.writelines(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n"
                              for k, v in prefs.items())
        process = subprocess.Popen(
            [binary, "--headless", "--marionette", "--no-remote", "--profile", profile,
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            marionette = Marionette(host="127.0.0.1", port=port)
            marionette.start_session(timeout=60)
            try:
                yield FirefoxPage(marionette)
            finally:
                with suppress(Exception):  # the browser may have gone already
                    marionette.delete_session()
        finally:
            stop(process)
