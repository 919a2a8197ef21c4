#!/usr/bin/env python3
"""REGISTER load with digest auth: sipp against a fresh ``pbx serve``.

Prints registrations per second (each one a REGISTER → 401 → REGISTER with
credentials → 200 exchange) and failures.  The PBX process is pinned to one
core with ``taskset`` when available so the figure is per core; sipp runs on
the other.

    .venv/bin/python bench/register.py [--users 1000] [--calls 20000] [--rate 1500]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.peers import SCENARIOS, free_ports, running_pbx  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=20000, help="registrations to attempt")
    parser.add_argument("--rate", type=int, default=1500, help="new registrations per second")
    parser.add_argument("--transport", default="u1", help="sipp -t value: u1 (UDP) or t1 (TCP)")
    args = parser.parse_args()
    if shutil.which("sipp") is None:
        print("sipp is not installed (apt-get install sip-tester)", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        users = {str(100000 + i): f"pw-{i}-x" for i in range(args.users)}
        with running_pbx(tmp, users, log_level="WARNING", auth_max_failures=1000000) as pbx:
            assert pbx.process is not None
            if shutil.which("taskset"):
                subprocess.run(["taskset", "-pc", "0", str(pbx.process.pid)], capture_output=True)
            csv = tmp / "users.csv"
            csv.write_text(
                "SEQUENTIAL\n"
                + "".join(
                    f"{u};[authentication username={u} password={p}];3600\n"
                    for u, p in users.items()
                )
            )
            stats = tmp / "sipp.csv"
            cmd = [
                "sipp", f"{pbx.host}:{pbx.sip_port}", "-sf", str(SCENARIOS / "register.xml"),
                "-inf", str(csv), "-i", pbx.host, "-p", str(free_ports(1)),
                "-t", args.transport, "-m", str(args.calls), "-r", str(args.rate),
                "-l", "2000", "-nostdin", "-timeout", "120s", "-timeout_error",
                "-trace_stat", "-stf", str(stats), "-fd", "1",
            ]
            if shutil.which("taskset"):
                cmd = ["taskset", "-c", "1", *cmd]
            started = time.monotonic()
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
            elapsed = time.monotonic() - started
            ok, failed = _totals(stats)
            print(f"transport            {args.transport}")
            print(f"registrations        {ok} ok, {failed} failed (of {args.calls})")
            print(f"elapsed              {elapsed:.2f} s")
            print(f"rate                 {ok / elapsed:.0f} authenticated REGISTERs/s "
                  f"(offered {args.rate}/s)")
            print(f"pbx registrations    {pbx.health()['registrations']}")
            if proc.returncode != 0 and not ok:
                print(proc.stdout[-2000:], proc.stderr[-2000:], file=sys.stderr)
            return 0 if failed == 0 else 1


def _totals(stats: Path) -> tuple[int, int]:
    """Cumulative successful and failed calls from sipp's last statistics row."""
    lines = [line for line in stats.read_text().splitlines() if line.strip()]
    header = lines[0].split(";")
    last = lines[-1].split(";")
    column = {name: i for i, name in enumerate(header)}
    return int(last[column["SuccessfulCall(C)"]]), int(last[column["FailedCall(C)"]])


if __name__ == "__main__":
    sys.exit(main())
