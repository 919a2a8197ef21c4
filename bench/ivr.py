#!/usr/bin/env python3
"""IVR under load: callers sit in a menu, hear its greeting from the media
engine and press a key (RFC 4733); the PBX on one core.

For each number of callers a fresh ``pbx serve`` answers 500 with an IVR
made for the bench (:data:`TREE`: a spoken greeting of ~7 s, said again after
2 s of silence; key 1 puts the caller through to extension 1002).  All its
threads are pinned to core 0 with ``taskset``; everything that drives it runs
on core 1:

- sipp callers (``tests/integration/scenarios/ivr_caller.xml``), ``--rate``
  new calls a second until all are in: INVITE with digest auth, ACK, then
  each listens for ``--hold`` seconds, presses 1 (sipp plays
  ``/usr/share/sip-tester/dtmf_2833_1.pcap``: RFC 4733 events) and logs
  when, stays 3 s and hangs up;
- the phones: one UDP socket per caller on the port the caller's SDP gives
  (sipp's ``[auto_media_port+4]``, also the source port of the key sipp
  sends, so the PBX sees one media source per caller).  They count the
  packets the PBX sends (kernel receive timestamps) and echo each back, so
  the PBX receives 50 packets/s per caller as from a real phone;
- a sipp UAS registered as 1002 (``ivr_target.xml``): it logs when each
  INVITE arrives and for which caller, and answers 200 at once.

Printed per number of callers:

- the PBX's CPU over the steady window (every caller in the menu, nobody has
  pressed yet): its share of core 0, per caller, the time it waited for the
  core (runnable, not running) and what else kept core 0 busy (the machine is
  shared: figures taken while ``other`` is high are noisy);
- the engine's tick from ``/api/health`` polled twice a second in that
  window (``media_tick_ms``: the whole last tick, ``media_mix_ms``: its
  compute part), median and maximum of the samples;
- the greeting's RTP as the callers received it, all of it from answer to
  key: packets, lost (sequence numbers missing), unsent (20 ms slots in which
  the engine sent nothing: skipped ticks, invisible in sequence numbers),
  gaps of more than 60 ms between two packets (a phone's jitter buffer runs
  dry) and the longest gap;
- digit-to-action latency: from the key's release (the first RFC 4733 end
  packet, 140 ms into the pcap) to the INVITE reaching 1002 (the sipp logs'
  wall-clock timestamps), median, p95 and maximum.

    .venv/bin/python bench/ivr.py [--callers 50,100,200] [--rate 20] [--hold 25]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import selectors
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from bisect import bisect_left
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import (  # noqa: E402
    core_busy_seconds, cpu_seconds, our_version, udp_rcvbuf_errors, waited_seconds,
)
from tests.integration.peers import (  # noqa: E402
    SCENARIOS, Pbx, SippResult, free_ports, run_sipp, running_pbx,
)
from tests.integration.sipclient import SipClient  # noqa: E402

HOST = "127.0.0.1"
SERVER_CORE = "0"
SIPP_CORE = 1
IVR = "500"
TARGET = "1002"
KEY_PCAP = Path("/usr/share/sip-tester/dtmf_2833_1.pcap")
PTIME = 0.020
GAP = 0.060  # s without a packet: a phone's jitter buffer (40-60 ms) runs dry
HEALTH_EVERY = 0.5  # s between /api/health polls in the steady window
SETTLE = 2.0  # s after the last caller is sent before the window opens
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; Python names it from 3.13
TREE = """\
# bench/ivr.py: a menu that keeps its callers listening to the engine
name: bench
number: '500'
menus:
  main:
    greeting: {text: 'Thank you for calling the load test line. For the test desk, press 1.
      Please stay on the line to hear the choices again.'}
    options:
      '1': {extension: '1002'}
    timeout: 2
    retries: 9
"""
SECTIONS = f"""
[{IVR}]
type = ivr
tree = bench-ivr.yaml
"""


# ------------------------------------------------------------------ the phones


class Stream:
    """What one caller's phone received from the PBX (PCMU packets only): each
    packet's kernel receive time and its sequence number, wraps counted."""

    def __init__(self) -> None:
        self.at = array("d")
        self.seq = array("q")

    def add(self, seq: int, at: float) -> None:
        if self.seq:
            last = self.seq[-1]
            delta = (seq - last) & 0xFFFF
            seq = last + delta if delta < 0x8000 else last - (0x10000 - delta)
        self.seq.append(seq)
        self.at.append(at)

    def figures(self, start: float = 0.0, end: float = float("inf")) -> Figures:
        """Packets received between ``start`` and ``end`` (wall-clock s)."""
        lo, hi = bisect_left(self.at, start), bisect_left(self.at, end)
        if hi - lo < 2:
            return Figures()
        at, seq = self.at[lo:hi], self.seq[lo:hi]
        gaps = [b - a for a, b in zip(at, at[1:])]
        return Figures(packets=hi - lo, expected=max(seq) - min(seq) + 1,
                       slots=round((at[-1] - at[0]) / PTIME) + 1,
                       gaps=sum(gap > GAP for gap in gaps), max_gap=max(gaps))


@dataclass
class Figures:
    """A stream's (or many streams') packets over some time."""

    packets: int = 0
    expected: int = 0  # packets the sequence numbers say were sent
    slots: int = 0  # 20 ms slots from the first packet to the last: what a steady stream sends
    gaps: int = 0  # silences longer than GAP between two packets
    max_gap: float = 0.0  # s

    def __add__(self, other: Figures) -> Figures:
        return Figures(self.packets + other.packets, self.expected + other.expected,
                       self.slots + other.slots, self.gaps + other.gaps,
                       max(self.max_gap, other.max_gap))

    @property
    def lost(self) -> float:
        """Share of the packets sent that never arrived."""
        return (self.expected - self.packets) / self.expected if self.expected else 0.0

    @property
    def unsent(self) -> float:
        """Share of the 20 ms slots in which the engine sent nothing (a skipped tick
        leaves no gap in the sequence numbers)."""
        return max(0, self.slots - self.expected) / self.slots if self.slots else 0.0


def _phones(ports: list[int], control: Connection) -> None:
    """Child process: listen on ``ports``, count, echo; on a message from
    ``control`` send back the streams and stop."""
    os.sched_setaffinity(0, {SIPP_CORE})
    selector = selectors.DefaultSelector()
    sockets = []
    for index, port in enumerate(ports):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.bind((HOST, port))
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, index)
        sockets.append(sock)
    selector.register(control, selectors.EVENT_READ, -1)
    streams = [Stream() for _ in ports]
    timestamp = struct.Struct("@qq")
    ancillary = socket.CMSG_SPACE(timestamp.size)
    control.send("ready")
    while True:
        for key, _ in selector.select():
            if key.data == -1:
                control.recv()
                control.send(streams)
                return
            sock, stream = key.fileobj, streams[key.data]
            while True:
                try:
                    data, anc, _, source = sock.recvmsg(2048, ancillary)  # type: ignore[union-attr]
                except BlockingIOError:
                    break
                sock.sendto(data, source)  # type: ignore[union-attr]  # the caller's microphone
                if len(data) < 12 or data[1] & 0x7F != 0 or not anc:
                    continue
                seconds, nanoseconds = timestamp.unpack(anc[0][2])
                stream.add(data[2] << 8 | data[3], seconds + nanoseconds / 1e9)


@contextmanager
def phones(ports: list[int]) -> Iterator[Connection]:
    """The callers' media ends on ``ports``, in a process of their own on the
    sipp core; send anything on the connection to get the streams back."""
    ours, theirs = mp.Pipe()
    process = mp.Process(target=_phones, args=(ports, theirs), daemon=True)
    process.start()
    if not ours.poll(10) or ours.recv() != "ready":
        process.kill()
        raise RuntimeError("the phones did not start")
    try:
        yield ours
    finally:
        process.join(5)
        if process.is_alive():
            process.kill()


def free_udp_range(count: int, low: int = 20000, high: int = 30000) -> int:
    """The first of ``count`` UDP ports nobody holds between ``low`` and ``high``:
    below the ephemeral range (and below the PBX's RTP ports)."""
    base = random.randrange(low, high - count, 4)
    tried = 0
    while tried < high - low:  # from a random start, past each port in use: a wide
        port = base  # range needs one free window, not luck (others' tests hold ports)
        try:
            for port in range(base, base + count):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                    probe.bind((HOST, port))
        except OSError:
            skip = (port - base) // 4 * 4 + 4
            tried += skip
            base += skip
            if base > high - count:
                base = low
            continue
        return base
    raise RuntimeError(f"no {count} free UDP ports in a row for the phones")


# ------------------------------------------------------------------ the target


@contextmanager
def target_phone(tmp: Path, pbx: Pbx, calls: int) -> Iterator[Path]:
    """sipp as extension 1002, taking ``calls`` calls; yields its log of INVITE
    arrivals, complete once the block has ended (sipp exits after the calls)."""
    port = free_ports(1)
    log = tmp / "target.log"
    uas = subprocess.Popen(
        ["sipp", "-sf", str(SCENARIOS / "ivr_target.xml"), "-i", HOST, "-p", str(port),
         "-mi", HOST, "-mp", str(free_ports(2)), "-m", str(calls), "-nostdin",
         "-trace_logs", "-log_file", str(log)],
        cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.2)
        if uas.poll() is not None:
            raise RuntimeError(f"sipp as 1002 exited at once ({uas.returncode})")
        with SipClient(pbx.host, pbx.sip_port) as registrar:
            response = registrar.register(TARGET, "bench-target-pw",
                                          contacts=[f"<sip:{TARGET}@{HOST}:{port}>"], expires=3600)
            if response is None or response.status != 200:
                raise RuntimeError(f"1002 did not register: {response}")
        yield log
    finally:
        try:
            uas.wait(15)  # its last calls' timewait
        except subprocess.TimeoutExpired:
            uas.terminate()
            uas.wait(5)


def key_release(pcap: Path) -> float:
    """Seconds from the first packet of the key's pcap to its first RFC 4733
    end packet (E bit): when the key is let go and a receiver may act."""
    data = pcap.read_bytes()
    offset, first = 24, None  # the pcap file header; Ethernet + IPv4 + UDP is 42 bytes
    while offset < len(data):
        seconds, micros, length, _ = struct.unpack_from("<IIII", data, offset)
        at = seconds + micros / 1e6
        first = at if first is None else first
        event = data[offset + 16 + 42 + 12:]
        if event[1] & 0x80:
            return at - first
        offset += 16 + length
    raise ValueError(f"{pcap}: no end packet")


def logged_times(log: Path, what: str) -> dict[str, float]:
    """``caller → epoch`` from sipp ``<log>`` lines ``DATE TIME EPOCH what [sip:]CALLER``."""
    times: dict[str, float] = {}
    for line in log.read_text().splitlines() if log.exists() else []:
        parts = line.split()
        if len(parts) == 5 and parts[3] == what:
            times[parts[4].removeprefix("sip:")] = float(parts[2])
    return times


# ------------------------------------------------------------------ one load


@dataclass
class Level:
    """What one number of callers gave."""

    callers: int
    sipp: SippResult | None = None
    opened: float = 0.0  # the steady window, wall-clock s
    closed: float = 0.0
    cpu: float = 0.0  # seconds
    busy: float = 0.0  # seconds core 0 was busy with anything
    waited: float = 0.0
    drops: int = 0
    health: list[dict] = field(default_factory=list)  # type: ignore[type-arg]
    streams: list[Stream] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)  # s
    unanswered_keys: int = 0

    @property
    def window(self) -> float:
        return self.closed - self.opened

    @property
    def share(self) -> float:
        """The PBX's share of its core."""
        return self.cpu / self.window if self.window else float("nan")

    @property
    def other(self) -> float:
        """The share of the PBX's core busy with anything else."""
        return max(0.0, self.busy - self.cpu) / self.window if self.window else float("nan")

    def received(self, start: float = 0.0, end: float = float("inf")) -> Figures:
        return sum((s.figures(start, end) for s in self.streams), Figures())


def measure(callers: int, rate: int, hold: float, tmp: Path) -> Level:
    """One fresh PBX, ``callers`` callers in its IVR; the figures of :class:`Level`."""
    (tmp / "bench-ivr.yaml").write_text(TREE)
    users = {TARGET: "bench-target-pw", **{str(20000 + i): f"bench-{i}-pw" for i in range(callers)}}
    level = Level(callers)
    with running_pbx(tmp, users, sections=SECTIONS, rtp_ports="30000-40000",
                     log_level="WARNING", auth_max_failures=1000000) as pbx:
        assert pbx.process is not None
        pid = pbx.process.pid
        subprocess.run(["taskset", "-a", "-pc", SERVER_CORE, str(pid)], capture_output=True,
                       check=True)
        base = free_udp_range(4 * callers + 8)  # sipp holds base (and base + 2) itself
        with phones([base + 4 * n for n in range(1, callers + 1)]) as control, \
                target_phone(tmp, pbx, callers) as target_log:
            started = time.monotonic()

            def call() -> None:
                level.sipp = run_sipp(
                    "ivr_caller.xml", pbx, [(caller, users[caller], IVR) for caller in users
                                            if caller != TARGET],  # type: ignore[misc]
                    tmp=tmp, calls=callers, rate=rate, timeout=callers / rate + hold + 60,
                    extra=["-l", str(callers), "-d", str(int(hold * 1000)), "-mi", HOST,
                           "-mp", str(base), "-trace_logs", "-log_file", str(tmp / "keys.log")],
                )

            callers_thread = threading.Thread(target=call)
            callers_thread.start()
            steady(pbx, pid, level, started + callers / rate + SETTLE, started + hold)
            callers_thread.join()
            control.send("stop")
            level.streams = control.recv()
        pressed = logged_times(tmp / "keys.log", "key")
        arrived = logged_times(target_log, "invite")
    release = key_release(KEY_PCAP)
    level.latencies = [arrived[c] - (at + release) for c, at in pressed.items() if c in arrived]
    level.unanswered_keys = len(pressed) - len(level.latencies)
    return level


def steady(pbx: Pbx, pid: int, level: Level, opens: float, closes: float) -> None:
    """CPU, scheduler and engine figures while every caller is in the menu:
    from ``opens`` (or once the engine has them all) until ``closes``."""
    while time.monotonic() < opens or pbx.health()["media_channels"] < level.callers:
        if time.monotonic() > closes - 3:
            raise RuntimeError(f"only {pbx.health()['media_channels']} of {level.callers} "
                               "callers reached the menu: lower --rate or raise --hold")
        time.sleep(0.2)
    level.opened, cpu, busy = time.time(), cpu_seconds(pid), core_busy_seconds(SERVER_CORE)
    waited, drops = waited_seconds(pid), udp_rcvbuf_errors()
    while time.monotonic() + HEALTH_EVERY < closes:
        level.health.append(pbx.health())
        time.sleep(HEALTH_EVERY)
    level.closed = time.time()
    level.cpu = cpu_seconds(pid) - cpu
    level.busy = core_busy_seconds(SERVER_CORE) - busy
    level.waited = waited_seconds(pid) - waited
    level.drops = udp_rcvbuf_errors() - drops


# ------------------------------------------------------------------ report


def median_max(values: list[float]) -> str:
    return f"{statistics.median(values):6.2f} {max(values):6.2f}" if values else f"{'-':>6} {'-':>6}"


def row(level: Level) -> str:
    sipp = level.sipp
    ok, failed = (sipp.successful, sipp.failed) if sipp else (0, level.callers)
    rtp = level.received()
    heard = sum(1 for s in level.streams if s.seq)
    lat = sorted(1000 * x for x in level.latencies)
    latency = (f"{statistics.median(lat):7.0f} {lat[int(0.95 * (len(lat) - 1))]:6.0f} "
               f"{lat[-1]:6.0f}" if lat else f"{'-':>7} {'-':>6} {'-':>6}")
    return (f"{level.callers:7d} {ok:5d} {failed:4d} {level.window:6.1f} {100 * level.share:6.1f}"
            f" {100 * level.share / level.callers:7.3f} {100 * level.waited / level.window:6.1f}"
            f" {100 * level.other:5.1f}  "
            f"{median_max([h['media_tick_ms'] for h in level.health])} "
            f"{median_max([h['media_mix_ms'] for h in level.health])} "
            f"{rtp.packets:9d} {heard:4d} {100 * rtp.lost:6.3f} {100 * rtp.unsent:6.3f}"
            f" {rtp.gaps:5d} {1000 * rtp.max_gap:6.0f}  {latency}")


def notes(level: Level) -> list[str]:
    phases = [("arriving", level.received(end=level.opened)),
              ("steady", level.received(level.opened, level.closed)),
              ("pressing", level.received(start=level.closed))]
    out = ["unsent / gaps > 60 ms by phase: " + ", ".join(
        f"{name} {100 * rtp.unsent:.2f} % / {rtp.gaps}" for name, rtp in phases)]
    channels = [h["media_channels"] for h in level.health]
    if channels and min(channels) < level.callers:
        out.append(f"only {min(channels)} callers in the engine at one point of the window")
    if level.drops:
        out.append(f"{level.drops} datagrams dropped by the kernel (full socket buffers, "
                   "host-wide)")
    if level.unanswered_keys:
        out.append(f"{level.unanswered_keys} keys pressed led to no INVITE at 1002")
    if level.sipp and level.sipp.failed:
        out.append(f"sipp: {level.sipp.failed} failed calls")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callers", default="50,100,200", help="concurrent callers, comma-separated")
    parser.add_argument("--rate", type=int, default=20, help="new calls per second")
    parser.add_argument("--hold", type=float, default=25.0,
                        help="seconds each caller listens before pressing 1")
    args = parser.parse_args()
    levels = [int(n) for n in args.callers.split(",")]
    if min(args.hold - n / args.rate - SETTLE for n in levels) < 5:
        parser.error("--hold must leave 5 s after the last caller is in: raise it or --rate")
    os.sched_setaffinity(0, {SIPP_CORE})  # the bench and everything it starts but the PBX
    print(f"IVR on 500 (greeting from the media engine, key 1 → extension 1002), our commit "
          f"{our_version()}; PBX on core {SERVER_CORE}, sipp and the phones on core {SIPP_CORE}; "
          f"{args.rate} calls/s, each caller {args.hold:.0f} s in the menu, then 1 as RFC 4733")
    print(f"{'':31}{'PBX in the steady window':^24}{'engine tick, health':^28}"
          f"{'greeting RTP at the callers':^42}{'key -> INVITE ms':^22}")
    print(f"{'callers':>7} {'ok':>5} {'fail':>4} {'win s':>6} {'cpu %':>6} {'%/callr':>7}"
          f" {'wait %':>6} {'other':>5}  {'tick med':>6} {'max':>6} {'mix med':>6} {'max':>6}"
          f" {'packets':>9} {'rx':>4} {'lost %':>6} {'unsnt%':>6} {'gaps':>5} {'maxgap':>6}"
          f"  {'median':>7} {'p95':>6} {'max':>6}")
    green = True
    with tempfile.TemporaryDirectory() as name:
        for callers in levels:
            workdir = Path(tempfile.mkdtemp(dir=name))
            level = measure(callers, args.rate, args.hold, workdir)
            print(row(level), flush=True)
            for note in notes(level):
                print(f"        {note}", flush=True)
            green &= bool(level.sipp and level.sipp.failed == 0
                          and level.sipp.successful == callers and not level.unanswered_keys
                          and len(level.latencies) == callers)
    print("cpu % of core 0 over the window; %/callr per caller; wait %: runnable but not running;"
          " other: core 0 busy with anything else; lost: sequence gaps; unsnt: 20 ms slots without"
          " a packet; gaps: > 60 ms between packets; maxgap ms; latency from the key's release")
    return 0 if green else 1


if __name__ == "__main__":
    sys.exit(main())
