#!/usr/bin/env python3
"""Call load through the B2BUA with RTP: sipp caller → PBX → sipp callee.

The caller plays a G.711 A-law pcap in every call; the callee (``-rtp_echo``)
sends it back, so the relay carries both directions (and transcodes: the
callee answers PCMU).  Prints calls set up per second, failed calls, peak
concurrent calls and the packet loss the relay measured (from the CDRs).
The PBX is pinned to CPU 0, the sipp processes to CPU 1.

    .venv/bin/python bench/calls.py [--rate 100] [--calls 2000] [--duration 3000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pbx.store import Store  # noqa: E402
from tests.integration.peers import run_sipp, running_pbx, sipp_callee  # noqa: E402


def pin(pid: int, cpu: int) -> None:
    if shutil.which("taskset"):
        subprocess.run(["taskset", "-pc", str(cpu), str(pid)], capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=100, help="new calls per second")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--duration", type=int, default=3000, help="call length in ms")
    args = parser.parse_args()
    users = {"1001": "bench-1001-pw", "1002": "bench-1002-pw"}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        with running_pbx(tmp, users, rtp_ports="30000-40000", log_level="WARNING",
                         auth_max_failures=1000000) as pbx:
            assert pbx.process is not None
            pin(pbx.process.pid, 0)
            with sipp_callee(tmp, pbx, "1002", users["1002"], ["-l", "5000"], pin_cpu=1):
                started = time.monotonic()
                result = run_sipp(
                    "call_uac.xml", pbx, [("1001", users["1001"], "1002")], tmp=tmp,
                    calls=args.calls, rate=args.rate, timeout=args.calls / args.rate + 60,
                    extra=["-d", str(args.duration), "-l", "5000"],
                )
                elapsed = time.monotonic() - started
            time.sleep(1.0)
            store = Store(f"sqlite:///{pbx.data_dir / 'pbx.sqlite3'}")
            records = store.cdrs(limit=args.calls + 10)
            store.close()
    answered = [r for r in records if r.disposition == "answered"]
    received = lost = 0
    for record in answered:
        for leg in json.loads(record.quality).values():
            received += leg["packets_in"]
            lost += leg["lost"]
    expected = received + lost
    overlap = args.duration / 1000 * args.rate
    print(f"calls                {result.successful} ok, {result.failed} failed (of {args.calls})")
    setup_window = max(elapsed - args.duration / 1000, 1e-3)  # the last calls still talk
    print(f"set-up rate          {args.rate} calls/s offered, "
          f"{result.successful / setup_window:.0f}/s set up and completed")
    print(f"concurrent calls     ~{overlap:.0f} (rate x duration)")
    print(f"RTP packets relayed  {received} in, loss {100 * lost / expected if expected else 0:.3f} %")
    print(f"CDRs                 {len(records)} ({len(answered)} answered)")
    return 0 if result.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
