#!/usr/bin/env python3
"""RTP relay capacity: N bridged G.711 calls at 50 packets/s each way through one core.

The relay (``media.relay.MediaRelay``, uvloop like ``pbx serve``) runs in its own
process pinned to one CPU; fake phones (2 UDP sockets per call) are driven by a
sender process and a receiver process pinned to the other CPUs, so generating
and counting traffic is not billed to the relay.  For each N the figures are
packets/s relayed, loss (sent by the phones vs. received by the phones) and the
relay process's CPU share (user + system time over wall time) on its core, and
how much of that the kernel took (recv/send syscalls, loopback delivery).
"kernel drops" is the host-wide UDP RcvbufErrors counter over the run: other
programs on the host can raise it; the loss column is this run's own.

    .venv/bin/python bench/relay.py [--calls 100,200,300] [--seconds 20] [--transcode]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import select
import socket
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from media.ports import PortPool  # noqa: E402
from media.relay import MediaRelay  # noqa: E402

HOST = "127.0.0.1"
PACKET_INTERVAL = 0.020  # 20 ms ptime: 50 packets/s per direction
SLOTS = 10  # the phones' send times are spread over 10 slots of each 20 ms period


def free_udp_range(count: int) -> int:
    """An even port starting ``count`` UDP ports nobody holds, below the ephemeral range."""
    for _ in range(100):
        base = random.randrange(20000, 32768 - count, 2)
        try:
            for port in range(base, base + count):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                    probe.bind((HOST, port))
        except OSError:
            continue
        return base
    raise RuntimeError(f"no {count} free UDP ports in a row for the relay")


def udp_rcvbuf_errors() -> int:
    """The kernel's count of datagrams dropped because a socket buffer was full."""
    lines = Path("/proc/net/snmp").read_text().splitlines()
    names, values = [line.split() for line in lines if line.startswith("Udp:")][:2]
    return int(values[names.index("RcvbufErrors")])


# ------------------------------------------------------------------- relay side


def relay_main(conn: Connection, cpu: int, phone_ports: list[int], codecs: list[str],
               loop_name: str, base_port: int) -> None:
    os.sched_setaffinity(0, {cpu})
    if loop_name == "uvloop":
        import uvloop

        uvloop.run(serve_relay(conn, phone_ports, codecs, base_port))
    else:
        asyncio.run(serve_relay(conn, phone_ports, codecs, base_port))


async def serve_relay(conn: Connection, phone_ports: list[int], codecs: list[str],
                      base_port: int) -> None:
    relay = MediaRelay(HOST, PortPool(base_port, base_port + 2 * len(phone_ports) + 99))
    legs = [await relay.open_leg(f"leg{i}") for i in range(len(phone_ports))]
    for leg, port, codec in zip(legs, phone_ports, codecs):
        leg.set_remote(HOST, port, payload_type=0 if codec == "PCMU" else 8, codec=codec,
                       dtmf_pt=101)
    for a, b in zip(legs[::2], legs[1::2]):
        relay.bridge(a, b)
    conn.send([leg.local_port for leg in legs])
    commands: asyncio.Queue[str] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    loop.add_reader(conn.fileno(), lambda: commands.put_nowait(conn.recv()))
    assert await commands.get() == "start"
    times0, wall0 = os.times(), time.monotonic()
    relayed0 = sum(leg.packets_out for leg in legs)
    assert await commands.get() == "stop"
    times, wall = os.times(), time.monotonic() - wall0
    user, system = times.user - times0.user, times.system - times0.system
    relayed = sum(leg.packets_out for leg in legs) - relayed0
    stats = [leg.stats() for leg in legs]
    conn.send({
        "cpu": (user + system) / wall, "kernel_share": system / max(user + system, 1e-9),
        "relayed_pps": relayed / wall,
        "packets_in": sum(s.packets_in for s in stats),
        "packets_out": sum(s.packets_out for s in stats),
        "lost_seen": sum(s.lost for s in stats),
        "rejected": sum(s.rejected for s in stats),
        "malformed": sum(s.malformed for s in stats),
        "mos_min": min(s.mos for s in stats),
    })
    assert await commands.get() == "close"  # once the phones have stopped
    loop.remove_reader(conn.fileno())
    await relay.close()


# ------------------------------------------------------------------- phone side


def sender_main(cpu: int, socks: list[socket.socket], leg_ports: list[int], seconds: float,
                codecs: list[str], sent: mp.Value) -> None:  # type: ignore[type-arg]
    """Every phone sends one 160-byte frame per 20 ms, phones spread over the period."""
    os.sched_setaffinity(0, {cpu})
    headers = []
    for i, codec in enumerate(codecs):
        headers.append((0x80, 0 if codec == "PCMU" else 8, 0x10000 + i))
    payload = bytes(range(96, 256))
    seq = [0] * len(socks)
    groups = [list(range(g, len(socks), SLOTS)) for g in range(SLOTS)]
    start = time.monotonic() + 0.05
    total = 0
    tick = 0
    while True:
        for g, members in enumerate(groups):
            due = start + tick * PACKET_INTERVAL + g * PACKET_INTERVAL / SLOTS
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            for i in members:
                first, pt, ssrc = headers[i]
                s = seq[i]
                packet = bytes((first, pt, (s >> 8) & 0xFF, s & 0xFF)) + (
                    (160 * s) & 0xFFFFFFFF).to_bytes(4, "big") + ssrc.to_bytes(4, "big") + payload
                socks[i].sendto(packet, (HOST, leg_ports[i]))
                seq[i] = (s + 1) & 0xFFFF
                total += 1
        tick += 1
        if tick * PACKET_INTERVAL >= seconds:
            break
    sent.value = total


def receiver_main(cpu: int, socks: list[socket.socket], done: mp.Event,  # type: ignore[valid-type]
                  received: mp.Value) -> None:  # type: ignore[type-arg]
    """Count every packet the relay delivers to any phone until the senders are done."""
    os.sched_setaffinity(0, {cpu})
    poller = select.epoll()
    by_fd = {s.fileno(): s for s in socks}
    for fd in by_fd:
        poller.register(fd, select.EPOLLIN)
    count = 0
    quiet_since = None
    while True:
        events = poller.poll(0.1)
        for fd, _ in events:
            sock = by_fd[fd]
            try:
                while True:
                    if sock.recv(2048)[1] < 192:  # RTP, not the relay's RTCP reports
                        count += 1
            except BlockingIOError:
                pass
        if done.is_set():  # type: ignore[attr-defined]
            if events:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > 0.5:
                break
    received.value = count


# ---------------------------------------------------------------------- driver


def run(calls: int, seconds: float, transcode: bool, loop_name: str, relay_cpu: int,
        phone_cpus: list[int]) -> dict[str, float]:
    base_port = free_udp_range(4 * calls + 100)
    socks = []
    for _ in range(2 * calls):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 18)
        sock.bind((HOST, 0))
        sock.setblocking(False)
        socks.append(sock)
    codecs = ["PCMU" if not transcode or i % 2 == 0 else "PCMA" for i in range(2 * calls)]
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe()
    relay = ctx.Process(target=relay_main, args=(
        child, relay_cpu, [s.getsockname()[1] for s in socks], codecs, loop_name, base_port))
    relay.start()
    child.close()  # so a relay that dies shows as EOFError here, not as a hang
    leg_ports = parent.recv()
    sent, received, done = ctx.Value("q", 0), ctx.Value("q", 0), ctx.Event()
    receiver = ctx.Process(target=receiver_main,
                           args=(phone_cpus[-1], socks, done, received))
    sender = ctx.Process(target=sender_main,
                         args=(phone_cpus[0], socks, leg_ports, seconds, codecs, sent))
    drops0 = udp_rcvbuf_errors()
    receiver.start()
    time.sleep(0.2)
    sender.start()
    time.sleep(1.0)  # CPU and rate are measured in the steady state, not the ramp-up
    parent.send("start")
    time.sleep(seconds - 2.0)
    parent.send("stop")
    figures = parent.recv()
    sender.join()
    done.set()
    receiver.join()
    parent.send("close")
    relay.join()
    for sock in socks:
        sock.close()
    loss = 1 - received.value / sent.value if sent.value else 1.0
    figures.update(
        calls=calls, sent=sent.value, received=received.value, loss_pct=100 * loss,
        kernel_drops=udp_rcvbuf_errors() - drops0,
    )
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", default="100,200,300", help="comma-separated call counts")
    parser.add_argument("--seconds", type=float, default=20.0, help="per run, at least 3")
    parser.add_argument("--transcode", action="store_true", help="one side PCMU, the other PCMA")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    relay_cpu, phone_cpus = cpus[0], (cpus[1:] or cpus)[:2]
    if len(cpus) < 2:
        print("warning: one CPU only, the phones share the relay's core", file=sys.stderr)
    print(f"relay on CPU {relay_cpu} ({args.loop}), phones on CPUs {phone_cpus}; "
          f"{'PCMU<->PCMA transcoding' if args.transcode else 'G.711 pass-through'}; "
          f"{args.seconds:g} s per run, 50 packets/s per direction per call")
    print(f"{'calls':>6} {'relayed pkt/s':>14} {'loss %':>8} {'relay CPU %':>12} "
          f"{'of it kernel':>13} {'kernel drops':>13} {'min MOS':>8}")
    for calls in (int(n) for n in args.calls.split(",")):
        f = run(calls, args.seconds, args.transcode, args.loop, relay_cpu, phone_cpus)
        print(f"{calls:>6} {f['relayed_pps']:>14.0f} {f['loss_pct']:>8.3f} "
              f"{100 * f['cpu']:>12.1f} {100 * f['kernel_share']:>12.0f}% {f['kernel_drops']:>13} "
              f"{f['mos_min']:>8.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
