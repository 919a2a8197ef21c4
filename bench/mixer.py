#!/usr/bin/env python3
"""Cost of one media-engine tick (decode, mix, encode, send) for typical loads.

Real relay legs on loopback UDP sockets send every mixed frame (to a socket
that never reads), so the figure includes the sendto system calls; the
input side is fed straight into the jitter buffers (no receive syscalls).
Prints the median tick in ms and as a share of the 20 ms budget.

    .venv/bin/python bench/mixer.py [--ticks 200]
"""

from __future__ import annotations

import argparse
import asyncio
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


async def measure(rooms: int, size: int, ticks: int) -> tuple[float, float]:
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
    return statistics.median(mixes[10:]), statistics.median(costs[10:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=200)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    loads = [
        ("2-party x 500 calls", 500, 2),
        ("10 rooms x 100 participants", 10, 100),
        ("one 100-party room", 1, 100),
        ("1000 channels (100 rooms x 10)", 100, 10),
    ]
    print(f"{'load':34} {'channels':>8} {'mix ms':>7} {'tick ms':>8} {'% of 20 ms':>10}")
    for name, rooms, size in loads:
        mix, tick = uvloop.run(measure(rooms, size, args.ticks))  # as pbx serve runs
        print(f"{name:34} {rooms * size:8d} {mix:7.2f} {tick:8.2f} {tick / 20 * 100:9.1f}%")
    print("mix = decode + jitter buffers + matrix + tones + encode; tick adds one sendto per channel")
    return 0


if __name__ == "__main__":
    sys.exit(main())
