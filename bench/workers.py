#!/usr/bin/env python3
"""REGISTER and call rates of ``pbx serve --workers N`` against one worker, one run.

An organisation lives on one worker, so the load is spread over
``--organisations`` (default 2) organisations, each with its own domain and
``--users`` extensions, seeded into the store before the start.  sipp sends
every registration (REGISTER → 401 → REGISTER with MD5 digest → 200) from a
socket of its own (``-t un``), as real phones do from addresses of their own:
the kernel spreads them over the workers by source port, and a worker passes
on what belongs to another.  With ``--sources one`` sipp sends everything
from one socket (``-t u1``), as Kamailio or an SBC in front of the node
does: one worker receives it all and passes the other organisation's half
on, and sipp spends far less per registration (no socket each), which
leaves the PBX more of a 2-core machine.  Nothing is pinned: the PBX's workers and sipp
share the machine's cores.  Printed per worker count and offered rate:
registrations per second sustained, failed, retransmissions, the PBX's CPU
(all processes) per registration, and the gain over the first worker count.

Then calls with media: per organisation a sipp UAS (registered as 2001,
echoing RTP); one sipp UAC (a socket per call) calls them in turn as 2000 of
the same organisation, plays a G.711 A-law pcap and hangs up after
``--duration`` ms.  Printed per offered call rate: calls set up per second,
failed calls and the PBX's CPU per call.

    .venv/bin/python bench/workers.py [--workers 1,2] [--rates 1000,2000,3000] \\
        [--calls 20000] [--users 500] [--organisations 2] [--call-rates 50,100] \\
        [--call-count 2000] [--duration 3000] [--sources each|one] [--no-overload-control]

``--no-overload-control`` measures what the workers carry without the
governor's 503s (pbx/overload.py), which otherwise count as failed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlmodel import Session  # noqa: E402

from bench.machine import cpu_seconds  # noqa: E402
from pbx.models import Extension, Organisation  # noqa: E402
from pbx.store import Store  # noqa: E402
from tests.integration.peers import (  # noqa: E402
    SCENARIOS, Pbx, free_ports, running_pbx, sipp_callee,
)


def seed(data: Path, organisations: int, users: int) -> list[tuple[str, str, str]]:
    """Organisations ``org1.test``… with extensions 2000…; returns (user, secret, domain)."""
    store = Store(f"sqlite:///{data / 'pbx.sqlite3'}")
    phones = []
    with Session(store.engine) as session:
        for index in range(organisations):
            domain = f"org{index + 1}.test"
            org = Organisation(slug=f"org{index + 1}", name=domain, domain=domain)
            session.add(org)
            session.flush()
            for number in range(2000, 2000 + users):
                secret = f"pw-{index}-{number}"
                session.add(Extension(organisation_id=org.id, number=str(number), secret=secret))
                phones.append((str(number), secret, domain))
        session.commit()
    store.close()
    return phones


def phones_csv(path: Path, phones: list[tuple[str, str, str]]) -> Path:
    """sipp's injection file for register_domain.xml: user, credentials, expiry, domain."""
    path.write_text("SEQUENTIAL\n" + "".join(
        f"{user};[authentication username={user} password={secret}];3600;{domain}\n"
        for user, secret, domain in phones))
    return path


def scenario(tmp: Path) -> Path:
    """register.xml with the phone's domain (field 3) in Request-URI, From and To."""
    text = (SCENARIOS / "register.xml").read_text()
    text = text.replace("REGISTER sip:[remote_ip]:[remote_port]", "REGISTER sip:[field3]")
    text = text.replace("sip:[field0]@[remote_ip]", "sip:[field0]@[field3]")
    path = tmp / "register_domain.xml"
    path.write_text(text)
    return path


def call_scenario(tmp: Path) -> Path:
    """call_uac.xml calling from the organisation's domain (field 3)."""
    text = (SCENARIOS / "call_uac.xml").read_text()
    text = text.replace("From: <sip:[field0]@[remote_ip]>", "From: <sip:[field0]@[field3]>")
    path = tmp / "call_domain.xml"
    path.write_text(text)
    return path


def measure_calls(pbx: Pbx, tmp: Path, phones: list[tuple[str, str, str]], rate: int,
                  calls: int, duration: int, transport: str) -> tuple[float, int, float]:
    """Calls set up per second, failed calls, CPU ms per call."""
    assert pbx.process is not None
    callers = [(user, secret, domain) for user, secret, domain in phones if user == "2000"]
    csv = tmp / f"callers-{rate}.csv"
    csv.write_text("SEQUENTIAL\n" + "".join(
        f"{user};[authentication username={user} password={secret}];2001;{domain}\n"
        for user, secret, domain in callers))
    stats = tmp / f"calls-{rate}-{time.monotonic_ns()}.csv"
    with ExitStack() as stack:
        for user, secret, domain in phones:
            if user == "2001":
                stack.enter_context(sipp_callee(tmp, pbx, user, secret, ["-l", "5000"],
                                                domain=domain))
        command = ["sipp", f"{pbx.host}:{pbx.sip_port}", "-sf", str(call_scenario(tmp)),
                   "-inf", str(csv), "-i", pbx.host, "-p", str(free_ports(1)), "-t", transport,
                   "-m", str(calls), "-r", str(rate), "-d", str(duration), "-l", "5000",
                   "-nostdin", "-timeout", f"{calls / rate + 60:.0f}s", "-timeout_error",
                   "-trace_stat", "-stf", str(stats), "-fd", "1", "-max_socket", "6000"]
        before, started = cpu_seconds(pbx.process.pid), time.monotonic()
        subprocess.run(command, capture_output=True, cwd=tmp)
        elapsed, cpu = time.monotonic() - started, cpu_seconds(pbx.process.pid) - before
    counts = last_stats(stats)
    ok = int(counts["SuccessfulCall(C)"])
    window = max(elapsed - duration / 1000, 1e-3)  # the last calls still talk
    return ok / window, int(counts["FailedCall(C)"]), cpu / max(ok, 1) * 1e3


def last_stats(stats: Path) -> dict[str, str]:
    if not stats.exists():
        raise RuntimeError("sipp wrote no statistics")
    lines = stats.read_text().splitlines()
    return dict(zip(lines[0].split(";"), lines[-1].split(";")))


def measure(host: str, port: int, pid: int, tmp: Path, phones: Path, rate: int,
            calls: int, transport: str) -> tuple[float, int, int, float]:
    """Registrations per second, failed, retransmissions, CPU µs per registration."""
    stats = tmp / f"sipp-{rate}-{time.monotonic_ns()}.csv"
    command = ["sipp", f"{host}:{port}", "-sf", str(scenario(tmp)), "-inf", str(phones),
               "-i", host, "-p", str(free_ports(1)), "-t", transport, "-m", str(calls),
               "-r", str(rate), "-l", "3000", "-nostdin", "-timeout", "120s", "-timeout_error",
               "-trace_stat", "-stf", str(stats), "-fd", "1", "-max_socket", "4000"]
    before, started = cpu_seconds(pid), time.monotonic()
    proc = subprocess.run(command, capture_output=True, text=True, errors="replace", cwd=tmp)
    elapsed, cpu = time.monotonic() - started, cpu_seconds(pid) - before
    if not stats.exists():
        raise RuntimeError(f"sipp wrote no statistics:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    counts = last_stats(stats)
    ok = int(counts["SuccessfulCall(C)"])
    return (ok / elapsed, int(counts["FailedCall(C)"]), int(counts["Retransmissions(C)"]),
            cpu / max(ok, 1) * 1e6)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated")
    parser.add_argument("--rates", default="1000,2000,3000",
                        help="offered registrations per second, comma-separated")
    parser.add_argument("--calls", type=int, default=20000, help="registrations per run")
    parser.add_argument("--users", type=int, default=500, help="extensions per organisation")
    parser.add_argument("--organisations", type=int, default=2)
    parser.add_argument("--call-rates", default="50,100", help="offered calls per second")
    parser.add_argument("--call-count", type=int, default=2000, help="calls per run")
    parser.add_argument("--duration", type=int, default=3000, help="call length in ms")
    parser.add_argument("--no-overload-control", action="store_true",
                        help="overload_control = no: nothing shed")
    parser.add_argument("--sources", choices=("each", "one"), default="each",
                        help="a socket per registration and call (phones), or one (an edge proxy)")
    args = parser.parse_args()
    if shutil.which("sipp") is None:
        print("sipp is not installed (apt-get install -y sip-tester)", file=sys.stderr)
        return 2
    transport = "un" if args.sources == "each" else "u1"
    counts = [int(n) for n in args.workers.split(",")]
    rates = [int(rate) for rate in args.rates.split(",") if rate]
    print(f"{args.organisations} organisations x {args.users} users, {args.calls} "
          f"registrations per run, UDP ("
          f"{'a socket per registration' if args.sources == 'each' else 'one socket'}), "
          f"MD5 qop=auth, overload control "
          f"{'off' if args.no_overload_control else 'on'}, "
          f"nothing pinned; load average {os.getloadavg()[0]:.1f} at start")
    print(f"{'workers':>8}{'offered/s':>10}{'reg/s':>8}{'failed':>8}{'retrans':>9}"
          f"{'us/reg':>8}{'gain':>7}")
    first: dict[int, float] = {}
    call_rates = [int(rate) for rate in args.call_rates.split(",") if rate]
    calls_seen: list[str] = []
    failed = False
    with tempfile.TemporaryDirectory() as name:
        for workers in counts:
            tmp = Path(tempfile.mkdtemp(dir=name))
            (tmp / "data").mkdir()
            phones = seed(tmp / "data", args.organisations, args.users)
            csv = phones_csv(tmp / "phones.csv", phones)
            with running_pbx(tmp, {}, log_level="WARNING", auth_max_failures=1000000,
                             rtp_ports="20000-29999", workers=workers, max_contacts=1000,
                             overload_control="no" if args.no_overload_control else "yes"
                             ) as pbx:
                assert pbx.process is not None
                for rate in rates:
                    rate_ok, bad, retrans, us = measure(pbx.host, pbx.sip_port, pbx.process.pid,
                                                        tmp, csv, rate, args.calls, transport)
                    failed |= bad > 0
                    first.setdefault(rate, rate_ok)
                    print(f"{workers:>8}{rate:>10}{rate_ok:>8.0f}{bad:>8}{retrans:>9}{us:>8.0f}"
                          f"{rate_ok / first[rate]:>7.2f}", flush=True)
                for rate in call_rates:
                    setup, bad, ms = measure_calls(pbx, tmp, phones, rate, args.call_count,
                                                   args.duration, transport)
                    failed |= bad > 0
                    first.setdefault(-rate, setup)
                    calls_seen.append(f"{workers:>8}{rate:>10}{setup:>9.0f}{bad:>8}{ms:>9.1f}"
                                      f"{setup / first[-rate]:>7.2f}")
    print(f"load average {os.getloadavg()[0]:.1f} at the end (the machine is shared)")
    if calls_seen:
        print(f"calls with RTP (G.711 pcap, echoed), {args.call_count} per run, "
              f"{args.duration} ms each")
        print(f"{'workers':>8}{'offered/s':>10}{'calls/s':>9}{'failed':>8}{'ms/call':>9}"
              f"{'gain':>7}")
        for line in calls_seen:
            print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
