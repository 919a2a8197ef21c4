#!/usr/bin/env python3
"""Side by side with the engines operators trust, one table: our PBX against
Kamailio (registrar; stateful proxy with rtpengine) and rtpengine (relay).

Rows, each measured in this run on a fresh server pinned to core 0 (the
load generators on core 1), reusing the single benches:

- **REGISTER/s with digest at saturation** (bench/register.py): ``--register-calls``
  registrations offered at ``--register-rate``/s, more than either sustains here
  is not needed: the rate sustained is the figure; and the server's CPU µs per
  registration.
- **calls set up per second at 0 failed calls**: sipp calls (INVITE → 407 →
  INVITE with credentials → 200, G.711 audio both ways for ``--hold`` s, BYE)
  at each of ``--call-rates`` for ``--call-seconds``; the highest rate at which
  every call succeeded.  Ours: the B2BUA with its media relay (bench/calls.py's
  set-up).  Kamailio: a stateful proxy (tm, record-route, digest against the
  same users) with the rtpengine module driving rtpengine (userspace) for the
  media (``--delete-delay=0``: a call's ports are free at its BYE); the callee
  (sipp, ``pstn_phone.xml``, echoing RTP) registers at each.  A Kamailio run
  whose log shows rtpengine refusing a call (out of ports, no proxy) counts
  as failed: sipp's call succeeds without its media anchored.
- **relayed RTP streams at < 0.5 % loss** (bench/relay.py's phones and
  relays): ``--relay-calls`` bridged calls in turn, ``--relay-seconds`` each;
  the most streams (two per call) relayed with less than 0.5 % loss.
- **memory per registration and per active call** (ours): the PBX's RSS
  before and after ``--memory-registrations`` distinct phones register, then
  with ``--memory-calls`` calls up, divided by the count.

The column ``N workers`` is ``pbx serve --workers N`` (``--workers``, default
one per core) under the same sipp load, for REGISTER: an organisation lives
on one worker, so its registrations come from ``--organisations`` (2)
organisations of 500 extensions each (bench/workers.py's seeding), and
nothing is pinned (the workers need every core, sipp shares them).  Ratios
are ours / theirs (for CPU per registration, lower is better for us); the
row ``N workers / Kamailio`` compares the N-worker rate with Kamailio's.

    .venv/bin/python bench/compare.py [--register-rate 4000] [--register-calls 20000] \\
        [--call-rates 50,100,150,200] [--call-seconds 10] [--hold 2] \\
        [--relay-calls 200,400,600] [--relay-seconds 6] \\
        [--memory-registrations 5000] [--memory-calls 200] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import relay  # noqa: E402
from bench import workers as worker_bench  # noqa: E402
from bench.machine import our_version  # noqa: E402
from bench.register import (  # noqa: E402
    KAMAILIO_MODULES, REALM, SERVER_CORE, SIPP_CORE, _users_csv, kamailio_head, measure,
    running_kamailio, running_ours,
)
from tests.integration.carrier import start_kamailio, stop_group  # noqa: E402
from tests.integration.peers import (  # noqa: E402
    SippResult, free_ports, run_sipp, running_pbx, sipp_callee,
)

CALLER, CALLEE = "1001", "1002"
CALL_USERS = {CALLER: "bench-1001-pw", CALLEE: "bench-1002-pw"}
LOSS_LIMIT = 0.5  # %
MEDIA_REFUSED = ("no available proxies", "Ran out of ports")  # Kamailio's log, rtpengine module


@dataclass
class Endpoint:
    """Where sipp sends (a PBX, or Kamailio in front of the callee)."""

    host: str
    sip_port: int
    tls_port: int | None = None


@dataclass
class Row:
    measure: str
    ours: str
    workers: str
    theirs: str
    peer: str
    ratio: str


def pin(pid: int) -> None:
    """Every thread of ``pid`` onto the server core."""
    if shutil.which("taskset"):
        subprocess.run(["taskset", "-a", "-pc", SERVER_CORE, str(pid)], capture_output=True)


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines()
                if line.startswith("VmRSS:")) / 1024


# ------------------------------------------------------------------ REGISTER


def registrations(args: argparse.Namespace, tmp: Path, peer: bool) -> list[Row]:
    users = {str(100000 + i): f"pw-{i}-x" for i in range(1000)}
    csv = _users_csv(tmp, users)
    results = {}
    starts: list[tuple[str, Callable[[Path], object]]] = [
        ("ours", lambda d: running_ours(d, users))]
    if peer:
        starts.append(("kamailio", lambda d: running_kamailio(d, users, 4)))
    for name, start in starts:
        workdir = Path(tempfile.mkdtemp(dir=tmp))
        with start(workdir) as server:  # type: ignore[attr-defined]
            results[name] = measure(server, csv, args.register_rate, args.register_calls, "u1",
                                    workdir)
    ours, theirs = results["ours"], results.get("kamailio")
    spread = several_workers(args, tmp) if args.workers > 1 else None
    rows = [
        Row(f"REGISTER/s, digest, offered {args.register_rate}/s", f"{ours.rate:.0f}",
            f"{spread[0]:.0f}" if spread else "-",
            f"{theirs.rate:.0f}" if theirs else "-", "Kamailio registrar",
            f"{ours.rate / theirs.rate:.2f}" if theirs else "-"),
        Row("  CPU us per registration", f"{ours.cpu_per_registration:.0f}",
            f"{spread[1]:.0f}" if spread else "-",
            f"{theirs.cpu_per_registration:.0f}" if theirs else "-", "Kamailio registrar",
            f"{ours.cpu_per_registration / theirs.cpu_per_registration:.1f}" if theirs else "-"),
    ]
    if spread and theirs:
        rows.append(Row(f"  {args.workers} workers / Kamailio", "-", f"{spread[0]:.0f}",
                        f"{theirs.rate:.0f}", "Kamailio registrar",
                        f"{spread[0] / theirs.rate:.2f}"))
    return rows


def several_workers(args: argparse.Namespace, tmp: Path) -> tuple[float, float]:
    """REGISTER/s and CPU µs per registration of ``pbx serve --workers N``,
    the same sipp load (one socket) over the organisations' phones."""
    workdir = Path(tempfile.mkdtemp(dir=tmp))
    (workdir / "data").mkdir()
    csv = worker_bench.phones_csv(workdir / "phones.csv",
                                  worker_bench.seed(workdir / "data", args.organisations, 500))
    with running_pbx(workdir, {}, log_level="WARNING", auth_max_failures=1000000,
                     workers=args.workers, max_contacts=1000) as pbx:
        assert pbx.process is not None
        rate, _, _, us = worker_bench.measure(pbx.host, pbx.sip_port, pbx.process.pid, workdir,
                                              csv, args.register_rate, args.register_calls,
                                              "u1")
    return rate, us


# --------------------------------------------------------------------- calls


def kamailio_proxy_config(host: str, port: int, ng_port: int) -> str:
    """A stateful proxy: registrar and digest as bench/register.py's, INVITEs
    authenticated (407), record-routed, relayed to the callee's contact, their
    media anchored in rtpengine (offer on the INVITE, answer on the reply,
    delete on the BYE)."""
    modules = (*KAMAILIO_MODULES, "rtpengine")
    return kamailio_head(host, port, CALL_USERS, modules) + f"""
modparam("rtpengine", "rtpengine_sock", "udp:{host}:{ng_port}")

request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (has_totag()) {{
        if (loose_route()) {{
            if (is_method("BYE")) {{
                rtpengine_delete();
            }}
            t_relay();
            exit;
        }}
        if (is_method("ACK") && t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    t_check_trans();
    if (!has_credentials("{REALM}") || !pv_auth_check("{REALM}", "$sht(users=>$au)", "0", "1")) {{
        if (is_method("REGISTER")) {{
            www_challenge("{REALM}", "1");
        }} else {{
            proxy_challenge("{REALM}", "1");
        }}
        exit;
    }}
    consume_credentials();
    if (is_method("REGISTER")) {{
        save("location");
        exit;
    }}
    if (!is_method("INVITE")) {{
        sl_send_reply("405", "Method Not Allowed");
        exit;
    }}
    if (!lookup("location")) {{
        sl_send_reply("404", "Not Found");
        exit;
    }}
    record_route();
    rtpengine_offer();
    t_on_reply("MEDIA");
    t_relay();
}}

onreply_route[MEDIA] {{
    if (has_body("application/sdp")) {{
        rtpengine_answer();
    }}
}}
"""


@contextmanager
def running_kamailio_proxy(tmp: Path, concurrent: int) -> Iterator[tuple[Endpoint, Path]]:
    """rtpengine (userspace) and Kamailio in front of it, both on the server core;
    yields where sipp sends and Kamailio's log."""
    engine = relay.Rtpengine(int(SERVER_CORE), 1)
    ports = 4 * concurrent + 400
    base = relay.free_udp_range(ports + 1)
    engine.start(base, base + ports, ("--delete-delay=0",))
    host, port = "127.0.0.1", free_ports(1)
    config = tmp / "kamailio-proxy.cfg"
    config.write_text(kamailio_proxy_config(host, port, base + ports))
    try:
        process = start_kamailio(config, tmp / "kamailio-proxy.log", tmp, (host, port),
                                 options=["-m", "256", "-M", "32", "-n", "4"],
                                 prefix=["taskset", "-c", SERVER_CORE])
        try:
            yield Endpoint(host, port), tmp / "kamailio-proxy.log"
        finally:
            stop_group(process)
    finally:
        engine.close()


@contextmanager
def running_our_b2bua(tmp: Path) -> Iterator[tuple[Endpoint, Path]]:
    with running_pbx(tmp, CALL_USERS, rtp_ports="30000-40000", log_level="WARNING",
                     auth_max_failures=1000000) as pbx:
        assert pbx.process is not None
        pin(pbx.process.pid)
        yield Endpoint(pbx.host, pbx.sip_port), pbx.log_path


def call_burst(endpoint: Endpoint, tmp: Path, rate: int, args: argparse.Namespace,
               scenario: str | None) -> SippResult:
    """One rate: the callee registered at ``endpoint`` answers; the caller calls."""
    calls = int(rate * args.call_seconds)
    with sipp_callee(tmp, endpoint, CALLEE, CALL_USERS[CALLEE],  # type: ignore[arg-type]
                     ["-l", "10000"], pin_cpu=int(SIPP_CORE), scenario=scenario):
        return run_sipp("call_uac.xml", endpoint, [(CALLER, CALL_USERS[CALLER], CALLEE)],
                        tmp=tmp, calls=calls, rate=rate, timeout=args.call_seconds + 60,
                        extra=["-d", str(int(args.hold * 1000)), "-l", "10000"])


def call_setup(args: argparse.Namespace, tmp: Path, peer: bool) -> list[Row]:
    rates = [int(rate) for rate in args.call_rates.split(",")]
    concurrent = int(max(rates) * (args.hold + 2))
    best: dict[str, int] = {}
    paths: list[tuple[str, Callable[[Path], object], str | None]] = [
        ("ours", running_our_b2bua, None)]
    if peer:
        paths.append(("kamailio", lambda d: running_kamailio_proxy(d, concurrent),
                      "pstn_phone.xml"))
    for name, start, scenario in paths:
        best[name] = 0
        for rate in rates:
            workdir = Path(tempfile.mkdtemp(dir=tmp))
            with start(workdir) as (endpoint, log):  # type: ignore[attr-defined]
                result = call_burst(endpoint, workdir, rate, args, scenario)
                refused = sum(log.read_text(errors="replace").count(sign)
                              for sign in MEDIA_REFUSED)
            offered = int(rate * args.call_seconds)
            if result.failed or refused or result.successful < offered:
                print(f"    {name} at {rate}/s: {result.successful} ok, {result.failed} failed, "
                      f"{refused} without media", file=sys.stderr, flush=True)
                break
            best[name] = rate
    ours, theirs = best["ours"], best.get("kamailio")
    return [Row(f"calls/s set up, media, 0 failed ({args.hold:g} s calls)",
                f"{ours}", "-", f"{theirs}" if theirs is not None else "-",
                "Kamailio proxy + rtpengine",
                f"{ours / theirs:.2f}" if theirs else "-")]


# ---------------------------------------------------------------------- relay


def relayed_streams(args: argparse.Namespace) -> list[Row]:
    cpus = sorted(os.sched_getaffinity(0))
    relay_cpu, phone_cpus = cpus[0], (cpus[1:] or cpus)[:2]
    engines: list[relay.Relay] = [relay.OurRelay(relay_cpu, "uvloop")]
    if relay.rtpengine_version() is not None:
        engines.append(relay.Rtpengine(relay_cpu, 1))
    best = {engine.name: 0 for engine in engines}
    for engine in engines:
        for calls in (int(n) for n in args.relay_calls.split(",")):
            figures = relay.measure(engine, calls, args.relay_seconds, False, phone_cpus)
            if figures.loss_pct >= LOSS_LIMIT:
                break
            best[engine.name] = 2 * calls
    ours, theirs = best["ours"], best.get("rtpengine")
    return [Row(f"RTP streams relayed, loss < {LOSS_LIMIT} %", f"{ours}", "-",
                f"{theirs}" if theirs is not None else "-", "rtpengine (userspace)",
                f"{ours / theirs:.2f}" if theirs else "-")]


# --------------------------------------------------------------------- memory


def memory(args: argparse.Namespace, tmp: Path) -> list[Row]:
    """Our RSS per registration and per active call (deltas over idle)."""
    phones = {str(200000 + i): f"pw-{i}-m" for i in range(args.memory_registrations)}
    users = {**CALL_USERS, **phones}
    with running_pbx(tmp, users, rtp_ports="30000-40000", log_level="WARNING",
                     auth_max_failures=1000000) as pbx:
        assert pbx.process is not None
        pid = pbx.process.pid
        time.sleep(2.0)
        idle = rss_mb(pid)
        run_sipp("register.xml", pbx, [(n, p, 3600) for n, p in phones.items()], tmp=tmp,
                 calls=len(phones), rate=500, timeout=len(phones) / 500 + 60,
                 extra=["-l", "5000"])
        registered = pbx.health()["registrations"]
        time.sleep(1.0)
        per_registration = (rss_mb(pid) - idle) * 1024 / max(registered, 1)
        before_calls = rss_mb(pid)
        hold = args.memory_calls / 50 + 20  # all up at once for a while
        with sipp_callee(tmp, pbx, CALLEE, CALL_USERS[CALLEE], ["-l", "10000"]):
            results: list[SippResult] = []
            caller = threading.Thread(target=lambda: results.append(run_sipp(
                "call_uac.xml", pbx, [(CALLER, CALL_USERS[CALLER], CALLEE)], tmp=tmp,
                calls=args.memory_calls, rate=50, timeout=hold + 60,
                extra=["-d", str(int(hold * 1000)), "-l", "10000"])))
            caller.start()
            deadline = time.monotonic() + hold
            peak, up = before_calls, 0
            while time.monotonic() < deadline and caller.is_alive():
                time.sleep(1.0)
                calls = pbx.health()["calls"]
                if calls >= up:
                    up, peak = calls, max(peak, rss_mb(pid))
            caller.join()
    per_call = (peak - before_calls) * 1024 / max(up, 1)
    return [Row(f"memory per registration ({registered} phones), kB", f"{per_registration:.1f}",
                "-", "-", "", ""),
            Row(f"memory per active call ({up} up), kB", f"{per_call:.0f}", "-", "-", "", "")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--register-rate", type=int, default=4000)
    parser.add_argument("--register-calls", type=int, default=20000)
    parser.add_argument("--call-rates", default="50,100,150,200")
    parser.add_argument("--call-seconds", type=float, default=10.0)
    parser.add_argument("--hold", type=float, default=2.0, help="seconds a call lasts")
    parser.add_argument("--relay-calls", default="200,400,600")
    parser.add_argument("--relay-seconds", type=float, default=6.0)
    parser.add_argument("--memory-registrations", type=int, default=5000)
    parser.add_argument("--memory-calls", type=int, default=200)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="the N of the N-workers column (1: not measured)")
    parser.add_argument("--organisations", type=int, default=2,
                        help="organisations the N-workers registrations come from")
    parser.add_argument("--only", default="register,calls,relay,memory",
                        help="comma-separated parts to run")
    args = parser.parse_args()
    if shutil.which("sipp") is None:
        print("sipp is not installed (apt-get install -y sip-tester)", file=sys.stderr)
        return 2
    peer = shutil.which("kamailio") is not None and relay.rtpengine_version() is not None
    if not peer:
        print("kamailio or rtpengine missing (apt-get install -y kamailio rtpengine-daemon): "
              "measuring ours only", file=sys.stderr)
    parts = args.only.split(",")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        for part, run in (("register", lambda: registrations(args, tmp, peer)),
                          ("calls", lambda: call_setup(args, tmp, peer)),
                          ("relay", lambda: relayed_streams(args)),
                          ("memory", lambda: memory(args, Path(tempfile.mkdtemp(dir=tmp))))):
            if part in parts:
                rows.extend(run())
                print(f"... {part} measured", file=sys.stderr, flush=True)
    print(f"ours {our_version()} (1 worker), servers on core {SERVER_CORE}, load on core "
          f"{SIPP_CORE}; N workers: {args.workers} over {args.organisations} organisations, "
          f"nothing pinned")
    print(f"{'measure':<50}{'ours':>9}{'N workers':>11}{'theirs':>9}  {'ratio':>6}  peer")
    for row in rows:
        print(f"{row.measure:<50}{row.ours:>9}{row.workers:>11}{row.theirs:>9}  {row.ratio:>6}"
              f"  {row.peer}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
