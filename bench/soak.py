#!/usr/bin/env python3
"""Soak: mixed load against one running PBX for ``--minutes``, memory and file
descriptors sampled every ``--interval`` seconds, to see whether anything grows.

The PBX (``pbx serve`` on a test config: extensions, a conference room 800 and
a queue 700 whose agents 1003 and 1004 answer at once, no wrap-up) carries at
the same time, each from its own sipp:

- registrations: ``--registrations``/s of REGISTER with digest, 200 users in turn;
- calls 1001 → 1002 (sipp's UAS, echoing RTP): ``--calls``/s, each ``--hold`` s
  with G.711 audio both ways;
- queue calls 1001 → 700: ``--queue-calls``/s, each ``--hold`` s (the queue's
  announcements, an agent answers, the caller hangs up);
- conference calls 1001 → 800: ``--conference-calls``/s, each staying
  ``--conference-hold`` s in the room (several in it at once).

Each sample row: minutes since the start, the PBX's resident memory (RSS, from
/proc) and open file descriptors, its live calls, registrations and free media
ports (from /api/health).  Then the least-squares trend of RSS (MB per hour)
and of descriptors (per hour) over the samples under load after the first
minute (warm-up: caches, prompts, first allocations), and the lost calls: calls sipp counted as
failed, plus calls still up once the load stopped.  Exit code 1 if a call was
lost.

    .venv/bin/python bench/soak.py [--minutes 30] [--interval 60] [--registrations 20] \\
        [--calls 2] [--queue-calls 0.5] [--conference-calls 0.2] [--hold 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import our_version  # noqa: E402
from tests.integration.peers import (  # noqa: E402
    Pbx, SippResult, run_sipp, running_pbx, sipp_callee,
)

USERS = {str(n): f"soak-{n}-pw" for n in [1001, 1002, 1003, 1004, *range(3000, 3200)]}
SECTIONS = """
[700]
type = queue
name = Soak
strategy = rrmemory
members = 1003, 1004
wrapuptime = 0

[800]
type = conference
name = Soak room
"""


@dataclass
class Sample:
    minute: float
    rss_mb: float
    fds: int
    calls: int
    registrations: int
    ports_free: int


def sample(pbx: Pbx, started: float) -> Sample:
    """The PBX process's RSS and descriptors (from /proc) and its health figures."""
    assert pbx.process is not None
    pid = pbx.process.pid
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    health = pbx.health()
    return Sample((time.monotonic() - started) / 60, rss_kb / 1024,
                  len(os.listdir(f"/proc/{pid}/fd")), health["calls"], health["registrations"],
                  health["media_ports_free"])


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (minute, value), per hour."""
    n = len(points)
    if n < 2:
        return float("nan")
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return float("nan")
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread * 60


def paced(rate: float) -> tuple[int, list[str]]:
    """sipp's ``-r`` (whole calls) and ``-rp`` (period, ms) for ``rate`` calls/s."""
    if rate >= 1:
        return round(rate), []
    return 1, ["-rp", str(round(1000 / rate))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between samples")
    parser.add_argument("--registrations", type=float, default=20.0, help="REGISTERs per second")
    parser.add_argument("--calls", type=float, default=2.0, help="calls 1001 → 1002 per second")
    parser.add_argument("--queue-calls", type=float, default=0.5,
                        help="calls to queue 700 per second")
    parser.add_argument("--conference-calls", type=float, default=0.2,
                        help="calls to conference 800 per second")
    parser.add_argument("--hold", type=float, default=10.0, help="seconds a call lasts")
    parser.add_argument("--conference-hold", type=float, default=30.0,
                        help="seconds a caller stays in the conference")
    args = parser.parse_args()
    if shutil.which("sipp") is None:
        print("sipp is not installed (apt-get install -y sip-tester)", file=sys.stderr)
        return 2
    seconds = args.minutes * 60
    caller = ("1001", USERS["1001"])
    loads = {  # name: (scenario, users, rate, hold in s)
        "registrations": ("register.xml", [(n, USERS[n], 300) for n in USERS if n >= "3000"],
                          args.registrations, 0.0),
        "calls": ("call_uac.xml", [(*caller, "1002")], args.calls, args.hold),
        "queue calls": ("call_uac.xml", [(*caller, "700")], args.queue_calls, args.hold),
        "conference calls": ("call_uac.xml", [(*caller, "800")], args.conference_calls,
                             args.conference_hold),
    }
    results: dict[str, SippResult] = {}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        with running_pbx(tmp, USERS, sections=SECTIONS, rtp_ports="30000-40000",
                         log_level="WARNING", auth_max_failures=1000000) as pbx, \
                sipp_callee(tmp, pbx, "1002", USERS["1002"]), \
                sipp_callee(tmp, pbx, "1003", USERS["1003"]), \
                sipp_callee(tmp, pbx, "1004", USERS["1004"]):

            def drive(kind: str) -> None:
                scenario, users, rate, hold = loads[kind]
                whole, period = paced(rate)
                calls = max(1, int(rate * seconds))
                extra = ["-l", "2000", *period, *(["-d", str(int(hold * 1000))] if hold else [])]
                results[kind] = run_sipp(scenario, pbx, users, tmp=tmp, calls=calls, rate=whole,
                                         timeout=seconds + hold + 120, extra=extra)

            print(f"ours {our_version()}: soak of {args.minutes:g} min: {args.registrations:g} "
                  f"REGISTER/s, {args.calls:g} calls/s to a phone, {args.queue_calls:g}/s to "
                  f"queue 700, {args.conference_calls:g}/s to conference 800; calls of "
                  f"{args.hold:g} s, {args.conference_hold:g} s in the conference", flush=True)
            print(f"{'minute':>7}{'RSS MB':>9}{'fds':>6}{'calls':>7}{'regs':>6}{'ports free':>12}",
                  flush=True)
            started = time.monotonic()
            workers = [threading.Thread(target=drive, args=(kind,), daemon=True) for kind in loads]
            for worker in workers:
                worker.start()
            samples = [sample(pbx, started)]
            report(samples[-1])
            while any(worker.is_alive() for worker in workers):
                due = started + len(samples) * args.interval
                while time.monotonic() < due and any(w.is_alive() for w in workers):
                    time.sleep(0.5)
                if time.monotonic() >= due:
                    samples.append(sample(pbx, started))
                    report(samples[-1])
            time.sleep(2.0)  # the last BYEs
            final = sample(pbx, started)
            report(final)
    steady = [s for s in samples if 1.0 <= s.minute <= args.minutes] or samples
    print(f"trend under load after the first minute ({len(steady)} samples): RSS "
          f"{slope_per_hour([(s.minute, s.rss_mb) for s in steady]):+.1f} MB/hour, fds "
          f"{slope_per_hour([(s.minute, s.fds) for s in steady]):+.1f}/hour; RSS "
          f"{samples[0].rss_mb:.1f} MB at the start, {final.rss_mb:.1f} MB at the end")
    lost = 0
    for kind, result in results.items():
        print(f"{kind:<18}{result.successful:>8} ok {result.failed:>6} failed")
        if kind != "registrations":
            lost += result.failed
    lost += final.calls
    print(f"lost calls: {lost} (failed, or still up after the load: {final.calls}); "
          f"registration failures: {results['registrations'].failed}")
    return 1 if lost else 0


def report(row: Sample) -> None:
    print(f"{row.minute:>7.1f}{row.rss_mb:>9.1f}{row.fds:>6}{row.calls:>7}{row.registrations:>6}"
          f"{row.ports_free:>12}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
