#!/usr/bin/env python3
"""REGISTER load with digest auth: our PBX and Kamailio side by side, one run.

Each measurement starts a fresh server, offers it the same sipp scenario
(REGISTER → 401 → REGISTER with credentials → 200, MD5 with qop=auth) for the
same users at the same rate, and stops it.  The server is pinned to one core
with ``taskset`` (every thread, every child process), sipp to the other.
Printed per offered rate: authenticated registrations per second sustained,
failed registrations, sipp retransmissions, the server's CPU share of its one
core and per registration (µs), the share of that core busy with anything
else (the machine is shared: figures taken while "other" is high are not
comparable), and the ratios ours / Kamailio of the sustained rates and of the
CPU time per registration.

The peer is Kamailio 5.6 from Debian (``apt-get install -y kamailio``; htable
and the registrar are in that package, nothing else is needed).  Without it
only our half runs.  Its configuration is a plain registrar as in the stock
kamailio.cfg: stateless replies (sl), usrloc in memory (db_mode 0), passwords
in an htable filled at start-up (``event_route[htable:mod-init]``) and checked
with ``pv_auth_check`` (auth user must match the To user, nonce counts
tracked), ``-n`` workers per listening transport (default 4), all on the
server's core.

    .venv/bin/python bench/register.py [--users 1000] [--calls 20000] \\
        [--rates 1000,2000] [--repeat 1] [--children 4] [--transport u1]

``--profile FILE`` runs only ours, under cProfile (slower: its figures are
not comparable), writes the profile to FILE and prints where the time went
in our code, by cumulative time.
"""

from __future__ import annotations

import argparse
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.carrier import start_kamailio, stop_group  # noqa: E402
from bench.machine import core_busy_seconds, cpu_seconds, our_version  # noqa: E402
from tests.integration.peers import SCENARIOS, free_ports, running_pbx  # noqa: E402

REALM = "pbx.test"
SERVER_CORE = "0"
SIPP_CORE = "1"
KAMAILIO_MODULES = (
    "tm", "sl", "rr", "pv", "maxfwd", "textops", "siputils", "xlog", "sanity",
    "usrloc", "registrar", "auth", "htable",
)


@dataclass
class Server:
    """A registrar under test, listening on ``host:port``, its processes rooted at ``pid``."""

    name: str
    version: str
    host: str
    port: int
    pid: int
    health_url: str = ""  # ours: GET it for the node's own counts (overload shed)


@dataclass
class Result:
    """What one sipp run against one server gave."""

    ok: int
    failed: int
    retransmissions: int
    elapsed: float
    cpu_seconds: float
    core_busy_seconds: float

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed

    @property
    def cpu_share(self) -> float:
        """Fraction of the server's one core used while sipp ran."""
        return self.cpu_seconds / self.elapsed

    @property
    def cpu_per_registration(self) -> float:
        """Server CPU microseconds spent per successful registration (two transactions)."""
        return self.cpu_seconds / self.ok * 1e6 if self.ok else float("nan")

    @property
    def other_share(self) -> float:
        """Fraction of the server core busy with anything else: the machine is shared."""
        return max(0.0, self.core_busy_seconds - self.cpu_seconds) / self.elapsed


@contextmanager
def running_ours(tmp: Path, users: dict[str, str], **general: object) -> Iterator[Server]:
    """A fresh ``pbx serve`` (``general``: more of its settings), all its threads
    moved to the server core once it is up."""
    settings: dict[str, object] = {"log_level": "WARNING", "auth_max_failures": 1000000}
    with running_pbx(tmp, users, **(settings | general)) as pbx:
        assert pbx.process is not None
        if shutil.which("taskset"):
            subprocess.run(["taskset", "-a", "-pc", SERVER_CORE, str(pbx.process.pid)],
                           capture_output=True, check=True)
        yield Server("ours", our_version(), pbx.host, pbx.sip_port, pbx.process.pid,
                     f"http://{pbx.host}:{pbx.http_port}/api/health")


@contextmanager
def running_kamailio(tmp: Path, users: dict[str, str], children: int) -> Iterator[Server]:
    """Kamailio in the foreground on a free loopback port, started on the server core.

    Its configuration and log live in ``tmp``; it is stopped (its whole process
    group) when the block ends.
    """
    host, port = "127.0.0.1", free_ports(1)
    config = tmp / "kamailio.cfg"
    config.write_text(_kamailio_config(host, port, users))
    process = start_kamailio(
        config, tmp / "kamailio.log", tmp, (host, port),
        options=["-m", "128", "-M", "16", "-n", str(children)],
        prefix=["taskset", "-c", SERVER_CORE] if shutil.which("taskset") else [])
    try:
        yield Server("kamailio", _kamailio_version(), host, port, process.pid)
    finally:
        stop_group(process)


def measure(server: Server, users_csv: Path, rate: int, calls: int, transport: str,
            tmp: Path, limit: int = 2000, scenario: str = "register.xml") -> Result:
    """Run the REGISTER ``scenario`` against ``server`` (at most ``limit``
    registrations under way at once) and read sipp's final counts."""
    stats = tmp / f"sipp-{server.name}-{rate}-{time.monotonic_ns()}.csv"
    command = [
        "sipp", f"{server.host}:{server.port}", "-sf", str(SCENARIOS / scenario),
        "-inf", str(users_csv), "-i", server.host, "-p", str(free_ports(1)),
        "-t", transport, "-m", str(calls), "-r", str(rate),
        # -nd: no BYE after a failed REGISTER (sipp's default aborts a call with
        # one; no phone does, and each cost the server a parse)
        "-l", str(limit), "-nostdin", "-nd", "-timeout", "120s", "-timeout_error",
        "-trace_stat", "-stf", str(stats), "-fd", "1",
    ]
    if shutil.which("taskset"):
        command = ["taskset", "-c", SIPP_CORE, *command]
    cpu_before, busy_before = cpu_seconds(server.pid), core_busy_seconds(SERVER_CORE)
    started = time.monotonic()
    proc = subprocess.run(command, capture_output=True, text=True, cwd=tmp)
    elapsed = time.monotonic() - started
    cpu = cpu_seconds(server.pid) - cpu_before
    busy = core_busy_seconds(SERVER_CORE) - busy_before
    if not stats.exists():
        raise RuntimeError(f"sipp wrote no statistics:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    counts = _last_stats(stats)
    return Result(int(counts["SuccessfulCall(C)"]), int(counts["FailedCall(C)"]),
                  int(counts["Retransmissions(C)"]), elapsed, cpu, busy)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=20000,
                        help="registrations to attempt per measurement")
    parser.add_argument("--rates", default="1000,2000",
                        help="offered registrations per second, comma-separated")
    parser.add_argument("--repeat", type=int, default=1, help="measurements per server and rate")
    parser.add_argument("--children", type=int, default=4,
                        help="Kamailio workers per transport (-n)")
    parser.add_argument("--transport", default="u1", help="sipp -t value: u1 (UDP) or t1 (TCP)")
    parser.add_argument("--profile", type=Path, help="profile ours with cProfile into this file")
    args = parser.parse_args()
    if shutil.which("sipp") is None:
        print("sipp is not installed (apt-get install -y sip-tester)", file=sys.stderr)
        return 2
    peer = shutil.which("kamailio") is not None and args.profile is None
    if not peer and args.profile is None:
        print("kamailio is not installed: measuring our PBX only "
              "(apt-get install -y kamailio for the side-by-side run)", file=sys.stderr)
    rates = [int(rate) for rate in args.rates.split(",")]
    users = {str(100000 + i): f"pw-{i}-x" for i in range(args.users)}
    profiling = ("-m", "cProfile", "-o", str(args.profile.resolve())) if args.profile else ()
    servers: list[Callable[[Path], AbstractContextManager[Server]]] = [
        partial(running_ours, users=users, python_options=profiling)]
    if peer:
        servers.append(partial(running_kamailio, users=users, children=args.children))

    failed = False
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        users_csv = _users_csv(tmp, users)
        print(f"{args.users} users, {args.calls} registrations per run, transport "
              f"{args.transport}, MD5 qop=auth; server on core {SERVER_CORE}, sipp on core "
              f"{SIPP_CORE}" + (f"; Kamailio with {args.children} workers (-n); ratios are ours / "
                             "Kamailio" if peer else ""))
        print(f"{'server':<26}{'offered/s':>10}{'reg/s':>8}{'failed':>8}{'retrans':>9}"
              f"{'cpu':>6}{'us/reg':>8}{'other':>7}{'ratio reg/s':>13}{'ratio us/reg':>14}")
        for rate in rates:
            for _ in range(args.repeat):
                results: dict[str, Result] = {}
                for start in servers:
                    workdir = Path(tempfile.mkdtemp(dir=tmp))
                    with start(workdir) as server:
                        result = measure(server, users_csv, rate, args.calls, args.transport,
                                         workdir)
                    results[server.name] = result
                    failed |= result.failed > 0
                    ours = results["ours"]
                    ratio = (f"{ours.rate / result.rate:>13.2f}"
                             f"{ours.cpu_per_registration / result.cpu_per_registration:>14.1f}"
                             if server.name == "kamailio" else "")
                    print(f"{server.name + ' ' + server.version:<26}{rate:>10}{result.rate:>8.0f}"
                          f"{result.failed:>8}{result.retransmissions:>9}"
                          f"{result.cpu_share:>6.0%}{result.cpu_per_registration:>8.0f}"
                          f"{result.other_share:>7.0%}{ratio}",
                          flush=True)
    if args.profile:
        pstats.Stats(str(args.profile)).sort_stats("cumulative").print_stats(r"/(pbx|media)/", 30)
    return 1 if failed else 0


def _users_csv(tmp: Path, users: dict[str, str]) -> Path:
    """sipp's injection file: user, the whole [authentication] keyword, expiry."""
    csv = tmp / "users.csv"
    csv.write_text("SEQUENTIAL\n" + "".join(
        f"{user};[authentication username={user} password={password}];3600\n"
        for user, password in users.items()))
    return csv


def kamailio_head(host: str, port: int, users: dict[str, str],
                  modules: tuple[str, ...] = KAMAILIO_MODULES) -> str:
    """The start of a Kamailio config: listening on ``host:port`` (UDP, TCP),
    ``modules`` loaded, usrloc in memory, digest auth (MD5, nonce counts)
    against the in-memory htable ``users`` filled at start-up."""
    loads = "\n".join(f'loadmodule "{name}.so"' for name in modules)
    passwords = "\n".join(f'    $sht(users=>{user}) = "{password}";'
                          for user, password in users.items())
    return f"""#!KAMAILIO
debug=1
log_stderror=yes
auto_aliases=no
listen=udp:{host}:{port}
listen=tcp:{host}:{port}

{loads}

modparam("usrloc", "db_mode", 0)
modparam("auth", "nonce_count", 1)
modparam("auth", "algorithm", "MD5")
modparam("htable", "htable", "users=>size=12;autoexpire=0")

event_route[htable:mod-init] {{
{passwords}
}}
"""


def _kamailio_config(host: str, port: int, users: dict[str, str]) -> str:
    """A plain registrar with digest auth (MD5, qop=auth) against an in-memory htable."""
    return kamailio_head(host, port, users) + f"""
request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (!sanity_check()) {{
        xlog("L_WARN", "malformed request from $si:$sp\\n");
        exit;
    }}
    if (!is_method("REGISTER")) {{
        sl_send_reply("405", "Method Not Allowed");
        exit;
    }}
    # has_credentials first: without them $sht(users=>$au) is $null and logs an error
    if (!has_credentials("{REALM}") || !pv_auth_check("{REALM}", "$sht(users=>$au)", "0", "1")) {{
        www_challenge("{REALM}", "1");
        exit;
    }}
    consume_credentials();
    if (!save("location")) {{
        sl_reply_error();
    }}
}}
"""




def _last_stats(stats: Path) -> dict[str, str]:
    """sipp's last statistics row (cumulative counts), by column name."""
    lines = [line for line in stats.read_text().splitlines() if line.strip()]
    return dict(zip(lines[0].split(";"), lines[-1].split(";")))


def _kamailio_version() -> str:
    """``5.6.3`` from the first line of ``kamailio -v``."""
    first = subprocess.run(["kamailio", "-v"], capture_output=True, text=True).stdout
    return first.split()[2] if first.startswith("version:") else "?"


if __name__ == "__main__":
    sys.exit(main())
