#!/usr/bin/env python3
"""The flood guard's cost (pbx/pike.py SourceGuard with the default 16 requests
in 2 s): memory per source IP when a spoofed flood fills all 65536 histories
with 16 requests each (the worst case: one short of a ban), and time per
request counted.  Prints one table.

    .venv/bin/python bench/pike.py [--sources 65536] [--requests 200000]
"""

from __future__ import annotations

import argparse
import logging
import time
import tracemalloc

from pbx.pike import SourceGuard


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", type=int, default=65536)
    parser.add_argument("--requests", type=int, default=200_000)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # one ban line per banned source otherwise
    tracemalloc.start()
    guard = SourceGuard(17, 2.0, 300.0, what="requests", max_sources=args.sources)
    for i in range(args.sources):
        source = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
        for k in range(16):
            guard.record(source, 1.0 + k * 0.001)
    memory, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    guard = SourceGuard(17, 2.0, 300.0, what="requests")
    started = time.perf_counter()
    for i in range(args.requests):  # 300 phones at 6.7 requests/s each: none banned
        guard.record(f"192.0.2.{i % 300}", i * 0.0005)
    per_request = (time.perf_counter() - started) / args.requests
    print(f"{'sources held':>14} {'memory MB':>10} {'bytes/source':>13} {'µs/request':>11}")
    assert not any(guard.is_blocked(f"192.0.2.{i}", args.requests * 0.0005) for i in range(300))
    print(f"{args.sources:>14} {memory / 1e6:>10.1f} "
          f"{memory / args.sources:>13.0f} {per_request * 1e6:>11.2f}")


if __name__ == "__main__":
    main()
