#!/usr/bin/env python3
"""Cost of one media-engine tick (decode, mix, encode, send) for typical loads.

Real relay legs on loopback UDP sockets send every mixed frame (to a socket
that never reads), so the figure includes the sendto system calls; the
input side is fed straight into the jitter buffers (no receive syscalls).
Prints, per load, the median compute part (jitter buffers, decode, mix,
tones, encode) and its 99th percentile, the median send part (one sendto
per channel), the whole tick, and the shares of the 20 ms budget.  Pin it
to one core to get the figure for one core:

    taskset -c 1 .venv/bin/python bench/mixer.py [--ticks 500]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from media.engine import FRAME, MediaEngine  # noqa: E402
from media.g711 import ulaw_encode  # noqa: E402
from media.ports import PortPool  # noqa: E402
from media.relay import MediaRelay  # noqa: E402


async def measure(rooms: int, size: int, ticks: int) -> tuple[list[float], list[float]]:
    relay = MediaRelay("127.0.0.1", PortPool(40000, 40000 + 4 * rooms * size + 100))
    engine = MediaEngine()
    payload = ulaw_encode((np.sin(np.arange(FRAME) / 3) * 3000).astype(np.int16)).tobytes()
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never read: no ICMP errors
    sink.bind(("127.0.0.1", 0))
    sink_port = sink.getsockname()[1]
    legs = []
    for r in range(rooms):
        for _ in range(size):
            leg = await relay.open_leg(f"r{r}")
            leg.set_remote("127.0.0.1", sink_port, payload_type=0, codec="PCMU", dtmf_pt=None)
            port = engine.join(f"room-{r}", leg)
            legs.append((leg, port))
    costs = []
    mixes = []
    for tick in range(ticks):
        for port in engine.ports:
            port.buffer[tick & 0xFFFF] = payload
            if port.next_seq is None:
                port.next_seq = tick & 0xFFFF
        started = time.perf_counter()
        engine.tick()
        costs.append((time.perf_counter() - started) * 1000)
        mixes.append(engine.mix_ms)
    for leg, _ in legs:
        engine.leave(leg)
        await relay.close_leg(leg)
    sink.close()
    return mixes[10:], costs[10:]  # the first ticks lay the rooms out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=500)
    args = parser.parse_args()
    loads = [
        ("2-party x 500 calls", 500, 2),
        ("10 rooms x 100 participants", 10, 100),
        ("one 100-party room", 1, 100),
        ("100 rooms x 10 participants", 100, 10),
    ]
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    print(f"median of {args.ticks - 10} ticks on cores {cores}; the budget is one 20 ms tick")
    print(f"{'load':31} {'chans':>5} {'mix ms':>7} {'p99':>5} {'send ms':>8} {'tick ms':>8}"
          f" {'mix %':>6} {'tick %':>7}")
    for name, rooms, size in loads:
        mixes, ticks = uvloop.run(measure(rooms, size, args.ticks))  # as pbx serve runs
        mix, tick = statistics.median(mixes), statistics.median(ticks)
        p99 = statistics.quantiles(mixes, n=100)[98]
        print(f"{name:31} {rooms * size:5d} {mix:7.2f} {p99:5.2f} {tick - mix:8.2f} {tick:8.2f}"
              f" {mix / 20 * 100:5.1f}% {tick / 20 * 100:6.1f}%")
    print("mix = jitter buffers + decode + mix + tones + encode; send = one sendto per channel")
    return 0


if __name__ == "__main__":
    sys.exit(main())
