#!/usr/bin/env python3
"""Goodput beyond saturation: REGISTER load rising past what one core serves,
with overload control on and off.

The scenario, users, pinning and counting are bench/register.py's (REGISTER →
401 → REGISTER with MD5 digest → 200; the PBX on core 0, sipp on core 1).  For
each offered rate a fresh PBX gets ``--seconds`` of registrations, once with
overload control (``overload_control = yes``, the default: new REGISTERs get
503 + Retry-After while the node is behind) and once without.  sipp keeps up
to ``--limit`` registrations under way and gives each up after its
retransmissions (about 16 s).

sipp runs tests/integration/scenarios/register_until_503.xml: an attempt that
gets 503 ends there, as a phone going to its next server or waiting
Retry-After would (sipp's own handling, with -nd, ignores the 503 and
retransmits until its 401 comes, so a 503 would only delay).  sipp counts such
an attempt as a finished call; the node's /api/health tells how many it refused
(``overload.shed``), and the goodput counts the rest.

Printed per rate and mode: registrations that succeeded per second over the
whole run, until the last one ended (the goodput), how many got 503, how many
failed otherwise (timed out), sipp's retransmissions, how long the run took,
the PBX's CPU per successful registration and the share of core 0 other
programs took.  Beyond saturation the goodput with shedding should stay near
the peak with every answer on time; without it, late answers bring
retransmissions (and timeouts) and the same load takes longer and more CPU.

    .venv/bin/python bench/overload.py [--rates 1000,2000,3000,4000,6000] \\
        [--seconds 10] [--users 1000] [--limit 20000]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import our_version  # noqa: E402
from bench.register import SERVER_CORE, SIPP_CORE, _users_csv, measure, running_ours  # noqa: E402

MODES = {"shedding": "yes", "no shedding": "no"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="1000,2000,3000,4000,6000",
                        help="offered registrations per second, comma-separated")
    parser.add_argument("--seconds", type=float, default=10.0, help="offered load per point")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--limit", type=int, default=20000,
                        help="registrations sipp keeps under way at most (-l)")
    parser.add_argument("--modes", default=",".join(MODES),
                        help=f"comma-separated, of: {', '.join(MODES)}")
    args = parser.parse_args()
    if shutil.which("sipp") is None:
        print("sipp is not installed (apt-get install -y sip-tester)", file=sys.stderr)
        return 2
    rates = [int(rate) for rate in args.rates.split(",")]
    modes = [mode.strip() for mode in args.modes.split(",")]
    users = {str(100000 + i): f"pw-{i}-x" for i in range(args.users)}
    print(f"ours {our_version()}: {args.users} users, {args.seconds:g} s of REGISTER load per "
          f"point (MD5 digest, UDP), PBX on core {SERVER_CORE}, sipp on core {SIPP_CORE}; "
          f"goodput = registrations that succeeded per second until the last ended")
    print(f"{'mode':<13}{'offered/s':>10}{'goodput/s':>10}{'ok':>8}{'503':>8}{'timeout':>9}"
          f"{'retrans':>9}{'secs':>7}{'us/reg':>8}{'other':>7}")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        users_csv = _users_csv(tmp, users)
        for rate in rates:
            for mode in modes:
                workdir = Path(tempfile.mkdtemp(dir=tmp))
                with running_ours(workdir, users, overload_control=MODES[mode]) as server:
                    result = measure(server, users_csv, rate, int(rate * args.seconds), "u1",
                                     workdir, limit=args.limit,
                                     scenario="register_until_503.xml")
                    shed = int(httpx.get(server.health_url, timeout=5).json()
                               .get("overload", {}).get("shed", 0))
                ok = result.ok - shed  # sipp counts an attempt ended by a 503 as finished
                print(f"{mode:<13}{rate:>10}{ok / result.elapsed:>10.0f}{ok:>8}"
                      f"{shed:>8}{result.failed:>9}"
                      f"{result.retransmissions:>9}{result.elapsed:>7.1f}"
                      f"{result.cpu_seconds / max(ok, 1) * 1e6:>8.0f}"
                      f"{result.other_share:>7.0%}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
