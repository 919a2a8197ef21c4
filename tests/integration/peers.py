"""Helpers that run real processes for integration tests: the PBX itself,
sipp and baresip, each on free loopback ports, each stopped afterwards; and
a webhook receiver (an HTTP server in a thread)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

import httpx

SCENARIOS = Path(__file__).parent / "scenarios"
ADMIN_PASSWORD = "admin-pass-1234"  # for PBXs started with admin_password=ADMIN_PASSWORD
REPO = Path(__file__).resolve().parents[2]


def free_ports(count: int, host: str = "127.0.0.1") -> int:
    """First of ``count`` consecutive ports free for both UDP and TCP on ``host``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(200):
        # below the kernel's ephemeral range (32768–60999 by default), where no
        # other test's outgoing connection can take the port before it is bound
        base = random.randrange(10000, 32768 - count)
        sockets = []
        try:
            for port in range(base, base + count):
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    s = socket.socket(family, kind)
                    sockets.append(s)
                    s.bind((host, port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no free port block found")


@dataclass
class Pbx:
    """A running ``pbx serve`` process."""

    host: str
    sip_port: int
    http_port: int
    data_dir: Path
    config: Path
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(default_factory=Path)
    rtp_ports: str = ""  # A-B; default: the 198 ports above the SIP port
    admin_password: str | None = None  # the bootstrap admin's; None: generated into a file
    https_port: int = field(default_factory=lambda: free_ports(1))
    log_level: str | None = None  # --log-level, over the config's (a bench's WARNING)
    workers: int = 1  # --workers: processes sharing the SIP port
    python_options: tuple[str, ...] = ()  # before ``-m pbx``: a bench's ``-m cProfile -o F``

    @property
    def tls_port(self) -> int:
        return self.sip_port + 1

    def start(self, timeout: float = 60.0) -> None:
        self.start_process()
        self.wait_ready(timeout)

    def start_process(self) -> None:
        """Start ``pbx serve``, not waiting for anything (see :meth:`wait_ready`)."""
        self.log_path = self.data_dir / f"pbx-{int(time.time() * 1000)}.log"
        log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [
                sys.executable, *self.python_options, "-m", "pbx", "serve",
                "--config", str(self.config),
                "--bind", self.host,
                "--sip-port", str(self.sip_port),
                "--http-port", str(self.http_port),
                "--https-port", str(self.https_port),
                "--data-dir", str(self.data_dir),
                "--rtp-ports", self.rtp_ports or f"{self.sip_port + 2}-{self.sip_port + 200}",
                *(["--log-level", self.log_level] if self.log_level else []),
                "--workers", str(self.workers),
            ],
            stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=self._env(),
        )
        log.close()

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the node is up: its HTTP side answers /api/health."""
        assert self.process is not None
        host = f"[{self.host}]" if ":" in self.host else self.host
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"pbx exited early:\n{self.log()}")
            try:
                if httpx.get(f"http://{host}:{self.http_port}/api/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()  # no process outlives its test, not even one that never came up
        raise RuntimeError(f"pbx did not come up:\n{self.log()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def health(self) -> dict:  # type: ignore[type-arg]
        host = f"[{self.host}]" if ":" in self.host else self.host
        return httpx.get(f"http://{host}:{self.http_port}/api/health", timeout=5).json()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def api(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.http_port}/api"

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "PBX_ADMIN_PASSWORD"}
        if self.admin_password is not None:
            env["PBX_ADMIN_PASSWORD"] = self.admin_password
        return env

    def login(self, username: str, password: str) -> dict[str, str]:
        """A bearer header for ``username``."""
        response = httpx.post(f"{self.api}/login", json={"username": username, "password": password})
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['token']}"}

    def admin_headers(self) -> dict[str, str]:
        """A bearer header of the bootstrap admin (its password given, or the one
        the PBX generated into its data directory)."""
        password = self.admin_password or (self.data_dir / "admin-password").read_text().strip()
        return self.login("admin", password)


_tokens: dict[tuple[int, str], dict[str, str]] = {}


def login_once(pbx: Pbx, username: str, password: str) -> dict[str, str]:
    """A bearer header, one login per user and PBX (logins are rate limited)."""
    key = (pbx.http_port, username)
    if key not in _tokens:
        _tokens[key] = pbx.login(username, password)
    return _tokens[key]


def user_of(pbx: Pbx, extension: str) -> dict[str, str]:
    """A login of role ``user`` owning ``extension`` (made and licensed once, by the
    admin of a PBX started with ``admin_password=ADMIN_PASSWORD``)."""
    name = f"user{extension}"
    if (pbx.http_port, name) in _tokens:
        return _tokens[(pbx.http_port, name)]
    admin = login_once(pbx, "admin", ADMIN_PASSWORD)
    created = httpx.post(f"{pbx.api}/users", headers=admin, json={
        "username": name, "password": f"{name}-Pass-12345", "role": "user",
        "extension": extension})
    assert created.status_code == 201, created.text
    licensed = httpx.post(f"{pbx.api}/licenses", headers=admin,  # no license, no calls
                          json={"user_id": created.json()["id"]})
    assert licensed.status_code == 201, licensed.text
    return login_once(pbx, name, f"{name}-Pass-12345")


def organisation(pbx: Pbx, slug: str, plan: str) -> dict[str, str]:
    """A second tenant on the plan under test (made by the operator), and its admin's token."""
    made = httpx.post(f"{pbx.api}/organisations", headers=pbx.login("admin", ADMIN_PASSWORD),
                      json={"slug": slug, "name": f"{slug} AB", "domain": f"{slug}.test",
                            "plan": plan, "admin": {"username": f"{slug}-admin",
                                                    "password": f"{slug}-pass-1234"}})
    assert made.status_code == 201, made.text
    return pbx.login(f"{slug}-admin", f"{slug}-pass-1234")


def write_config(
    path: Path, extensions: dict[str, str], sections: str = "", *, mailboxes: bool = False,
    **general: object,
) -> Path:
    """A sip.conf with ``extensions`` (number → secret); their calls go to voicemail
    when they cannot take them only with ``mailboxes`` (the product's default is yes:
    most tests assert the 480/486 a phone gets without it)."""
    # drain_time: a test that leaves a call up must not wait out the product's 15 s at stop
    settings: dict[str, object] = {"realm": "pbx.test", "domains": "pbx.test", "log_level": "DEBUG",
                                   "drain_time": 3}
    settings.update(general)
    lines = ["[general]"] + [f"{key} = {value}" for key, value in settings.items()]
    for number, secret in extensions.items():
        lines += ["", f"[{number}]", f"secret = {secret}", f'callerid = "User {number}" <{number}>',
                  f"voicemail = {'yes' if mailboxes else 'no'}"]
    path.write_text("\n".join(lines) + "\n" + textwrap.dedent(sections))
    return path


@contextmanager
def running_pbx(
    tmp: Path, extensions: dict[str, str], host: str = "127.0.0.1", sections: str = "",
    rtp_ports: str = "", admin_password: str | None = None, mailboxes: bool = False,
    workers: int = 1, python_options: tuple[str, ...] = (), **general: object,
) -> Iterator[Pbx]:
    config = write_config(tmp / "sip.conf", extensions, sections, mailboxes=mailboxes, **general)
    (tmp / "data").mkdir(exist_ok=True)
    for attempt in range(3):
        # a port found free can be taken before the PBX binds it: pick again then
        pbx = Pbx(host, free_ports(2, host), free_ports(1, host), tmp / "data", config,
                  rtp_ports=rtp_ports, admin_password=admin_password, workers=workers,
                  python_options=python_options)
        try:
            pbx.start()
            break
        except RuntimeError as exc:
            if "Address already in use" not in str(exc) or attempt == 2:
                raise
    try:
        yield pbx
    finally:
        pbx.stop()


@contextmanager
def running_demo(tmp: Path, admin_password: str | None = ADMIN_PASSWORD, rtp_ports: str = "",
                 log_level: str | None = None,
                 edit: Callable[[str], str] | None = None) -> Iterator[Pbx]:
    """The PBX on ``sip.conf.example`` (and its ``ivr-demo.yaml``) as a newcomer
    starts it, on free ports: the demo dial plan out of the box (a bench widens
    ``rtp_ports``, quietens ``log_level`` and may ``edit`` the config's text,
    e.g. to staff the demo queue for a load)."""
    for name in ("sip.conf.example", "ivr-demo.yaml"):
        shutil.copy(REPO / name, tmp / name)
    if edit is not None:
        config = tmp / "sip.conf.example"
        config.write_text(edit(config.read_text()))
    (tmp / "data").mkdir(exist_ok=True)
    pbx = Pbx("127.0.0.1", free_ports(2), free_ports(1), tmp / "data", tmp / "sip.conf.example",
              rtp_ports=rtp_ports, admin_password=admin_password, log_level=log_level)
    pbx.start()
    try:
        yield pbx
    finally:
        pbx.stop()


class SipServer(Protocol):
    """What sipp is pointed at: the PBX, or one side of the carrier stand-in (carrier.py)."""

    @property
    def host(self) -> str: ...
    @property
    def sip_port(self) -> int: ...
    @property
    def tls_port(self) -> int | None: ...


@dataclass
class SippResult:
    returncode: int
    successful: int
    failed: int
    output: str


def sipp_command(
    scenario: str,
    pbx: SipServer,
    users: list[tuple[str, str]] | list[tuple[str, str, int]] | list[tuple[str, str, int, str]],
    *,
    transport: str = "u1",
    calls: int | None = None,
    rate: int = 10,
    timeout: float = 30.0,
    extra: list[str] | None = None,
    tmp: Path,
) -> tuple[list[str], Path]:
    """The sipp command line of :func:`run_sipp` (its injection file written to
    ``tmp``) and where sipp writes its screen: for a bench that starts sipp
    itself and stops it when it has measured."""
    csv = tmp / f"users-{random.randrange(1 << 30)}.csv"
    rows = ["SEQUENTIAL"]
    for user in users:
        number, password = user[0], user[1]
        expires = user[2] if len(user) > 2 else 300  # type: ignore[misc]
        auth = user[3] if len(user) > 3 else number  # type: ignore[misc]
        rows.append(f"{number};[authentication username={auth} password={password}];{expires}")
    csv.write_text("\n".join(rows) + "\n")
    stats = tmp / f"sipp-{random.randrange(1 << 30)}.screen"
    local_port = free_ports(1, pbx.host)
    host = f"[{pbx.host}]" if ":" in pbx.host else pbx.host
    port = pbx.tls_port if transport.startswith("l") else pbx.sip_port
    if port is None:
        raise ValueError(f"{pbx} takes no TLS")
    return [
        "sipp", f"{host}:{port}",
        "-sf", str(SCENARIOS / scenario),
        "-inf", str(csv),
        "-i", pbx.host, "-p", str(local_port),
        "-t", transport,
        "-m", str(calls if calls is not None else len(users)),
        "-r", str(rate),
        "-timeout", f"{int(timeout)}s", "-timeout_error",
        "-nostdin", "-trace_screen", "-screen_file", str(stats),
        *(extra or []),
    ], stats


def run_sipp(
    scenario: str,
    pbx: SipServer,
    users: list[tuple[str, str]] | list[tuple[str, str, int]] | list[tuple[str, str, int, str]],
    *,
    tmp: Path,
    timeout: float = 30.0,
    **options: Any,
) -> SippResult:
    """Run a sipp scenario against the PBX (or the carrier); users are (number, password[, expires[,
    authentication username]]): a device's own login differs from its extension.  ``options``
    are :func:`sipp_command`'s (transport, calls, rate, extra)."""
    cmd, stats = sipp_command(scenario, pbx, users, tmp=tmp, timeout=timeout, **options)
    proc = subprocess.run(cmd, capture_output=True, timeout=timeout + 30, cwd=tmp)
    text = stats.read_text(errors="replace") if stats.exists() else ""
    return SippResult(
        proc.returncode,
        sipp_count(text, "Successful call"),
        sipp_count(text, "Failed call"),
        text + proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace"),
    )


def sipp_count(screen: str, label: str) -> int:
    for line in screen.splitlines():
        if line.strip().startswith(label):
            parts = [p.strip() for p in line.split("|") if p.strip()]
            try:
                return int(parts[-1])  # the cumulative column
            except (ValueError, IndexError):
                return 0
    return 0


@contextmanager
def sipp_callee(
    tmp: Path, pbx: Pbx, number: str, password: str, extra: list[str] | None = None,
    pin_cpu: int | None = None, scenario: str | None = None, domain: str | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """A sipp phone registered as extension ``number`` (of the organisation of
    ``domain``, default the PBX's own): the built-in UAS echoing RTP, or
    ``scenario`` from tests/integration/scenarios."""
    from tests.integration.sipclient import SipClient

    port = free_ports(1)
    script = ["-sf", str(SCENARIOS / scenario)] if scenario else ["-sn", "uas"]
    command = ["sipp", *script, "-i", "127.0.0.1", "-p", str(port), "-rtp_echo",
               "-nostdin", *(extra or [])]
    if pin_cpu is not None and shutil.which("taskset"):
        command = ["taskset", "-c", str(pin_cpu), *command]
    uas = subprocess.Popen(command, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with SipClient(pbx.host, pbx.sip_port, domain=domain) as registrar:
            response = registrar.register(
                number, password, contacts=[f"<sip:{number}@127.0.0.1:{port}>"], expires=3600
            )
            assert response is not None and response.status == 200, response
        yield uas
    finally:
        if uas.poll() is None:
            uas.terminate()
            try:
                uas.wait(5)
            except subprocess.TimeoutExpired:
                uas.kill()
                uas.wait()


@dataclass
class Baresip:
    """A headless baresip phone (see shared/TOOLING.md)."""

    directory: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    control_port: int = 0

    def command(self, name: str, params: str = "") -> None:
        """Run a menu command through the ctrl_tcp module (netstring JSON)."""
        body = json.dumps({"command": name, "params": params, "token": name}).encode()
        with socket.create_connection(("127.0.0.1", self.control_port), timeout=5) as conn:
            conn.sendall(str(len(body)).encode() + b":" + body + b",")
            conn.recv(4096)  # the response: the command was taken

    def log(self) -> str:
        path = self.directory / "baresip.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextmanager
def baresip_phone(
    tmp: Path, pbx: Pbx, number: str, password: str, *, transport: str = "udp",
    seconds: int = 30, extra_config: str = "", audio_file: Path | None = None,
    command: str | None = None, control: bool = False, apps: tuple[str, ...] = (),
    account_params: str = "",
) -> Iterator[Baresip]:
    """A baresip phone registered as ``number``; it auto-answers.  ``apps`` are
    application modules loaded before the account registers (``mwi.so``);
    ``account_params`` go on its account line (``;mediaenc=srtp-mand``).

    With ``audio_file`` (S16LE WAV, 8 kHz) it sends that file as its microphone
    and records what it hears to ``dump-*-dec.wav`` in its directory (the
    sndfile module).  ``command`` runs at start-up, e.g. ``/dial 1002``.
    """
    if shutil.which("baresip") is None:
        raise RuntimeError("baresip is not installed (apt-get install baresip-core)")
    directory = tmp / f"baresip-{number}-{random.randrange(1 << 20)}"
    directory.mkdir()
    port = free_ports(2, pbx.host)
    control_port = free_ports(1) if control else 0
    if control:
        extra_config += f"\nmodule_app ctrl_tcp.so\nctrl_tcp_listen 127.0.0.1:{control_port}\n"
    (directory / "config").write_text(textwrap.dedent(f"""\
        poll_method epoll
        sip_listen {pbx.host}:{port}
        net_interface {pbx.host}
        dns_server 127.0.0.1:53
        audio_player aubridge,nil
        audio_source {f"aufile,{audio_file}" if audio_file else "aubridge,nil"}
        module_path /usr/lib/baresip/modules
        module g711.so
        module aubridge.so
        module aufile.so
        {"module sndfile.so" if audio_file else ""}
        snd_path {directory}
        """) + "".join(f"module_app {app}\n" for app in (*apps, "account.so", "menu.so"))
        + extra_config + "\n")
    port_sip = pbx.tls_port if transport == "tls" else pbx.sip_port
    host = f"[{pbx.host}]" if ":" in pbx.host else pbx.host
    param = f";transport={transport}"  # without it libre tries a DNS lookup (ENOSYS)
    (directory / "accounts").write_text(
        f"<sip:{number}@{host}:{port_sip}{param}>;auth_pass={password};"
        f"answermode=auto;regint=60{account_params}\n"
    )
    log = open(directory / "baresip.log", "wb")
    phone = Baresip(directory, port, control_port=control_port)
    phone.process = subprocess.Popen(
        ["baresip", "-f", str(directory), "-t", str(seconds), *(["-e", command] if command else [])],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env={**os.environ, "HOME": str(directory)},
    )
    log.close()
    try:
        yield phone
    finally:
        if phone.process.poll() is None:
            phone.process.terminate()
            try:
                phone.process.wait(5)
            except subprocess.TimeoutExpired:
                phone.process.kill()
                phone.process.wait()


def start_mosquitto(tmp: Path, port: int) -> subprocess.Popen[bytes]:
    """A mosquitto of our own on 127.0.0.1:``port`` (no persistence), once it listens."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    config = tmp / f"mosquitto-{port}.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    broker = subprocess.Popen([binary, "-c", str(config)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return broker
        except OSError:
            if time.monotonic() > deadline or broker.poll() is not None:
                broker.kill()
                broker.wait()
                raise RuntimeError("mosquitto did not start") from None
            time.sleep(0.1)


@contextmanager
def mqtt_broker(tmp: Path) -> Iterator[tuple[str, int]]:
    """The machine's MQTT broker on 127.0.0.1:1883 when one runs, else a
    mosquitto of our own on a free loopback port, stopped afterwards."""
    try:
        socket.create_connection(("127.0.0.1", 1883), timeout=1).close()
        yield "127.0.0.1", 1883
        return
    except OSError:
        pass
    port = free_ports(1)
    broker = start_mosquitto(tmp, port)
    try:
        yield "127.0.0.1", port
    finally:
        broker.terminate()
        broker.wait(10)


class WebhookReceiver:
    """A webhook receiver on loopback (the stdlib's HTTP server in a thread):
    answers each POST with the next of ``statuses`` (then 200) and keeps what
    it got.  ``port`` 0 takes a free one."""

    def __init__(self, port: int = 0, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.got: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.got.append((dict(self.headers), body))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def events(self) -> list[dict]:  # type: ignore[type-arg]
        """The bodies received, parsed."""
        return [json.loads(body) for _, body in self.got]

    def types(self) -> list[str]:
        return [event["type"] for event in self.events()]

    def verified(self, secret: str, tolerance: float = 300.0) -> bool:
        """Every request carries a valid ``X-PBX-Signature`` (HMAC-SHA256 of
        ``t.body``, Stripe's scheme) made within ``tolerance`` seconds."""
        for headers, body in self.got:
            stamp, _, mac = headers["X-PBX-Signature"].removeprefix("t=").partition(",v1=")
            expected = hmac.new(secret.encode(), stamp.encode() + b"." + body,
                                hashlib.sha256).hexdigest()
            fresh = abs(time.time() - int(stamp)) <= tolerance
            if not (hmac.compare_digest(mac, expected) and fresh):
                return False
        return bool(self.got)


def _reachable(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


@contextmanager
def postgres_url(tmp: Path) -> Iterator[str]:
    """A fresh, empty PostgreSQL database: on the server at 127.0.0.1:5432 when
    one runs, else on a cluster of our own (initdb as the ``postgres`` user),
    dropped or stopped afterwards."""
    import getpass

    import psycopg

    name = f"pbx_test_{random.randrange(1 << 30)}"
    if _reachable("127.0.0.1", 5432):
        admin = "postgresql://postgres@127.0.0.1:5432/test"
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql://postgres@127.0.0.1:5432/{name}"
        finally:
            with psycopg.connect(admin, autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        return
    bindir = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None)
    if bindir is None:
        raise RuntimeError("no PostgreSQL server running and none installed")
    as_user = ["runuser", "-u", "postgres", "--"] if getpass.getuser() == "root" else []
    cluster = tmp / "pgdata"
    cluster.mkdir()
    if as_user:
        shutil.chown(cluster, "postgres")
        shutil.chown(tmp, "postgres")
    port = free_ports(1)
    subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(cluster), "-U", "postgres",
                    "-A", "trust"], check=True, capture_output=True)
    subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(cluster), "-w", "-l",
                    str(cluster / "server.log"), "-o", f"-p {port} -k {cluster} -h 127.0.0.1",
                    "start"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres",
                             autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql://postgres@127.0.0.1:{port}/{name}"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(cluster), "-m", "fast",
                        "stop"], capture_output=True)
