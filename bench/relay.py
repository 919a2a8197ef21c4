#!/usr/bin/env python3
"""RTP relay capacity: N bridged G.711 calls at 50 packets/s each way through one core,
our relay and rtpengine side by side in one run.

The same fake phones (2 UDP sockets per call, a sender process and a receiver
process pinned to the other CPUs, so generating and counting traffic is not
billed to the relay) drive two relays in turn, each pinned to the same single
CPU:

- ours: ``media.relay.MediaRelay`` (uvloop like ``pbx serve``) in a child process;
- rtpengine (Debian's ``rtpengine-daemon``) in userspace mode (``--table=-1``,
  no kernel module) under ``taskset``, its worker threads limited by
  ``--num-threads`` and ``--media-num-threads``, on a free loopback port range;
  calls are set up over its ng control protocol (``offer``/``answer`` with the
  phones' SDP, the relay ports read from the rewritten SDP, ``delete`` at the
  end) and the daemon is stopped after each point.

For each N and relay: packets/s relayed (as the phones counted them), loss
(sent by the phones vs. received by the phones), the relay process's CPU share
on its core (user + system time of all its threads over wall time, from
/proc, so both relays are measured the same way), how much of that the kernel
took, and CPU time per relayed packet; then ours/rtpengine ratios for CPU per
packet and for loss.  CPU and rates are taken over a steady-state window (1 s
after the phones start until 1 s before they stop).  A warning line follows a
point where the phones fell behind their schedule or the kernel dropped
datagrams (the host-wide UDP RcvbufErrors counter: other programs can raise it).

With ``--srtp`` every leg is SRTP (AES_CM_128_HMAC_SHA1_80, SDES-style keys
set on the legs): each phone protects what it sends with its own key, the
relay unprotects, rewrites and protects again per leg (pylibsrtp/libsrtp, one
call per packet each way).  Compare its CPU µs/pkt with a plain run to get
the cost of SRTP; libsrtp's own cost per call is printed first.  rtpengine
is left out of SRTP runs.

    .venv/bin/python bench/relay.py [--calls 100,200,300,500] [--seconds 15] [--transcode]
                                    [--srtp]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import re
import secrets
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Protocol

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bencode import Value, decode, encode  # noqa: E402
from bench.machine import CLOCK_TICK, udp_rcvbuf_errors, waited_seconds  # noqa: E402
from media.ports import PortPool  # noqa: E402
from media.relay import MediaRelay  # noqa: E402
from media.srtp import KEY_LENGTH, SrtpKey, receiver, sender  # noqa: E402

HOST = "127.0.0.1"
PACKET_INTERVAL = 0.020  # 20 ms ptime: 50 packets/s per direction
SLOTS = 10  # the phones' send times are spread over 10 slots of each 20 ms period
PAYLOAD_TYPES = {"PCMU": 0, "PCMA": 8}
SUITE = "AES_CM_128_HMAC_SHA1_80"


def phone_key(index: int) -> SrtpKey:
    """The key phone ``index`` protects its stream with (known to the relay's leg)."""
    return SrtpKey(SUITE, index.to_bytes(2, "big") * (KEY_LENGTH // 2))


def srtp_cost(packets: int = 20000) -> tuple[float, float]:
    """libsrtp's CPU µs per protect and per unprotect of one 172-byte G.711 packet."""
    key = phone_key(1)
    protect, unprotect = sender(key).protect, receiver(key).unprotect
    plain = [bytes((0x80, 0, s >> 8, s & 0xFF)) + (160 * s).to_bytes(4, "big")
             + b"\x01\x02\x03\x04" + bytes(160) for s in range(packets)]
    started = time.process_time()
    protected = [protect(p) for p in plain]
    middle = time.process_time()
    for p in protected:
        unprotect(p)
    ended = time.process_time()
    return 1e6 * (middle - started) / packets, 1e6 * (ended - middle) / packets
INSTALL_HINT = ("rtpengine not found: apt-get install rtpengine-daemon "
                "(not the rtpengine metapackage, which wants a kernel module)")


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


@dataclass(frozen=True)
class Sample:
    """The relay process's counters and the phones' at one instant."""

    at: float
    user: float  # CPU seconds of all the relay's threads, as the kernel billed them
    system: float
    waited: float  # seconds its threads sat runnable on a run queue, waiting for the CPU
    threads: int
    sent: int
    received: int


def sample(pid: int, sent: Synchronized, received: Synchronized) -> Sample:  # type: ignore[type-arg]
    """Read the relay's CPU and scheduler counters from /proc, and the phones' counts."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return Sample(at=time.monotonic(), user=int(fields[11]) / CLOCK_TICK,
                  system=int(fields[12]) / CLOCK_TICK, waited=waited_seconds(pid),
                  threads=len(list(Path(f"/proc/{pid}/task").iterdir())), sent=sent.value,
                  received=received.value)


# ------------------------------------------------------------------ relay set-ups


class Relay(Protocol):
    """A relay under test: bridges phone 2k with phone 2k+1 on one pinned CPU."""

    name: str
    pid: int

    def open(self, phone_ports: list[int], codecs: list[str]) -> list[int]:
        """Start the relay with one call per phone pair; the port each phone sends to."""

    def close(self) -> None:
        """Tear the calls down and stop every process :meth:`open` started."""


class OurRelay:
    """``media.relay.MediaRelay`` in a child process pinned to ``cpu``."""

    name = "ours"

    def __init__(self, cpu: int, loop_name: str, srtp: bool = False) -> None:
        self.cpu = cpu
        self.loop_name = loop_name
        self.srtp = srtp
        self.pid = 0
        self.process: mp.process.BaseProcess | None = None
        self.control: Connection | None = None

    def open(self, phone_ports: list[int], codecs: list[str]) -> list[int]:
        base_port = free_udp_range(2 * len(phone_ports) + 100)
        ctx = mp.get_context("fork")
        self.control, child = ctx.Pipe()
        self.process = ctx.Process(target=relay_main, args=(
            child, self.cpu, phone_ports, codecs, self.loop_name, base_port, self.srtp))
        self.process.start()
        child.close()  # so a relay that dies shows as EOFError here, not as a hang
        self.pid = self.process.pid or 0
        leg_ports: list[int] = self.control.recv()
        return leg_ports

    def close(self) -> None:
        if self.process is None or self.control is None:
            return
        if self.process.is_alive():
            self.control.send("close")
            self.process.join(5)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join()
        self.control.close()
        self.process = self.control = None


def relay_main(conn: Connection, cpu: int, phone_ports: list[int], codecs: list[str],
               loop_name: str, base_port: int, srtp: bool) -> None:
    os.sched_setaffinity(0, {cpu})
    if loop_name == "uvloop":
        import uvloop

        uvloop.run(serve_relay(conn, phone_ports, codecs, base_port, srtp))
    else:
        asyncio.run(serve_relay(conn, phone_ports, codecs, base_port, srtp))


async def serve_relay(conn: Connection, phone_ports: list[int], codecs: list[str],
                      base_port: int, srtp: bool) -> None:
    """Bridge the legs, tell the bench their ports, relay until the bench says close."""
    relay = MediaRelay(HOST, PortPool(base_port, base_port + 2 * len(phone_ports) + 99))
    legs = [await relay.open_leg(f"leg{i}") for i in range(len(phone_ports))]
    for i, (leg, port, codec) in enumerate(zip(legs, phone_ports, codecs)):
        leg.set_remote(HOST, port, payload_type=PAYLOAD_TYPES[codec], codec=codec, dtmf_pt=101)
        if srtp:
            leg.secure(SrtpKey.generate(SUITE), phone_key(i))
    for a, b in zip(legs[::2], legs[1::2]):
        relay.bridge(a, b)
    conn.send([leg.local_port for leg in legs])
    loop = asyncio.get_running_loop()
    closing = loop.create_future()

    def on_control() -> None:  # "close", or EOF if the bench died
        loop.remove_reader(conn.fileno())
        closing.set_result(None)

    loop.add_reader(conn.fileno(), on_control)
    await closing
    await relay.close()


class NgClient:
    """rtpengine's ng control protocol over UDP: ``<cookie> <bencoded dict>`` both ways."""

    def __init__(self, port: int) -> None:
        self.address = (HOST, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(1.0)

    def request(self, message: dict[str, Value], tries: int = 3) -> dict[str, Value]:
        """Send one command and return rtpengine's reply; RuntimeError if it is an error.

        A retry reuses the cookie: rtpengine answers a repeated cookie from its
        cache instead of running the command twice.
        """
        cookie = secrets.token_hex(8).encode()
        datagram = cookie + b" " + encode(message)
        for _ in range(tries):
            self.sock.sendto(datagram, self.address)
            try:
                while True:
                    answer_cookie, _, body = self.sock.recv(65535).partition(b" ")
                    if answer_cookie == cookie:  # a late reply to an earlier try is skipped
                        break
            except TimeoutError:
                continue
            reply = decode(body)
            if not isinstance(reply, dict):
                raise RuntimeError(f"rtpengine {message['command']}: reply is not a dictionary")
            if reply.get("result") not in ("ok", "pong"):
                raise RuntimeError(f"rtpengine {message['command']}: {reply.get('result')} "
                                   f"{reply.get('error-reason', '')}")
            return reply
        raise TimeoutError(f"rtpengine did not answer {message['command']} on {self.address}")

    def close(self) -> None:
        self.sock.close()


def sdp(port: int, codec: str) -> str:
    """The smallest SDP offer or answer for one G.711 audio stream on ``port``."""
    pt = PAYLOAD_TYPES[codec]
    return (f"v=0\r\no=- 1 1 IN IP4 {HOST}\r\ns=-\r\nc=IN IP4 {HOST}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP {pt}\r\na=rtpmap:{pt} {codec}/8000\r\na=sendrecv\r\n")


def media_port(reply: dict[str, Value]) -> int:
    """The RTP port in the SDP rtpengine rewrote: where the other phone must send."""
    match = re.search(r"^m=audio (\d+) ", str(reply.get("sdp", "")), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"rtpengine gave no audio port in its SDP: {reply!r}")
    return int(match.group(1))


class Rtpengine:
    """rtpengine in userspace mode, pinned to ``cpu`` with ``taskset``, driven over ng.

    Each call is an ``offer`` carrying phone 2k's address and an ``answer``
    carrying phone 2k+1's: the rewritten offer (what the callee would get)
    holds the port phone 2k+1 sends to, the rewritten answer the one for phone
    2k.  When the two phones chose different G.711 laws the offer asks
    rtpengine to transcode to the callee's.
    """

    name = "rtpengine"

    def __init__(self, cpu: int, threads: int) -> None:
        self.cpu = cpu
        self.threads = threads
        self.pid = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log = tempfile.TemporaryFile()
        self.ng: NgClient | None = None
        self.call_ids: list[str] = []

    def open(self, phone_ports: list[int], codecs: list[str]) -> list[int]:
        calls = len(phone_ports) // 2
        rtp_ports = 4 * calls + 200  # RTP and RTCP on each side of a call, and some slack
        base_port = free_udp_range(rtp_ports + 1)
        ng_port = base_port + rtp_ports
        self.start(base_port, ng_port)
        leg_ports = [0] * len(phone_ports)
        self.call_ids = []
        for call in range(calls):
            caller, callee = 2 * call, 2 * call + 1
            call_id = f"bench-{call}-{secrets.token_hex(4)}"
            self.call_ids.append(call_id)
            offer: dict[str, Value] = {
                "command": "offer", "call-id": call_id, "from-tag": f"caller{call}",
                "sdp": sdp(phone_ports[caller], codecs[caller])}
            if codecs[callee] != codecs[caller]:
                offer["codec"] = {"transcode": [codecs[callee]]}
            leg_ports[callee] = media_port(self.ng.request(offer))
            leg_ports[caller] = media_port(self.ng.request({
                "command": "answer", "call-id": call_id, "from-tag": f"caller{call}",
                "to-tag": f"callee{call}", "sdp": sdp(phone_ports[callee], codecs[callee])}))
        return leg_ports

    def start(self, base_port: int, ng_port: int, options: tuple[str, ...] = ()) -> None:
        """The daemon on media ports ``base_port`` … ``ng_port - 1``, ng on ``ng_port``,
        with more command-line ``options``."""
        self.log.seek(0)
        self.log.truncate()
        self.process = subprocess.Popen(
            ["taskset", "-c", str(self.cpu), "rtpengine", "--config-file=none", "--table=-1",
             f"--interface={HOST}", f"--listen-ng={HOST}:{ng_port}",
             f"--port-min={base_port}", f"--port-max={ng_port - 1}",
             f"--num-threads={self.threads}", f"--media-num-threads={self.threads}",
             "--foreground", "--log-stderr", "--log-level=4", *options],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log)
        self.pid = self.process.pid  # taskset execs rtpengine: the same process
        self.ng = NgClient(ng_port)
        self.wait_ready()

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Ping over ng until rtpengine answers; RuntimeError with its log if it died."""
        assert self.process is not None and self.ng is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"rtpengine exited {self.process.returncode}:\n{self.log_tail()}")
            try:
                self.ng.request({"command": "ping"}, tries=1)
                return
            except (TimeoutError, ConnectionRefusedError):
                time.sleep(0.1)
        raise RuntimeError(f"rtpengine did not answer ng pings in {timeout:g} s:\n{self.log_tail()}")

    def log_tail(self) -> str:
        self.log.seek(0)
        return b"".join(self.log.readlines()[-20:]).decode(errors="replace")

    def close(self) -> None:
        try:
            if self.ng is not None and self.process is not None and self.process.poll() is None:
                for call_id in self.call_ids:
                    self.ng.request({"command": "delete", "call-id": call_id})
        finally:
            if self.ng is not None:
                self.ng.close()
                self.ng = None
            if self.process is not None:
                self.process.terminate()
                try:
                    self.process.wait(5)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
                self.process = None


def rtpengine_version() -> str | None:
    """rtpengine's version as it prints it, or None if it is not installed."""
    if shutil.which("rtpengine") is None:
        return None
    run = subprocess.run(["rtpengine", "--version"], capture_output=True, text=True,
                         check=False)
    out = run.stdout + run.stderr
    return out.replace("Version:", "").strip() or "unknown version"


# ------------------------------------------------------------------- phone side


def sender_main(cpu: int, socks: list[socket.socket], leg_ports: list[int], seconds: float,
                codecs: list[str], sent: Synchronized, srtp: bool) -> None:  # type: ignore[type-arg]
    """Every phone sends one 160-byte frame per 20 ms, phones spread over the period
    (SRTP-protected with its own key when ``srtp``).

    It stops after ``seconds`` of wall time even if it fell behind, so a run
    stays bounded; ``sent`` is kept current for the bench's window.
    """
    os.sched_setaffinity(0, {cpu})
    protects = [sender(phone_key(i)).protect if srtp else bytes for i in range(len(socks))]
    headers = [(0x80, PAYLOAD_TYPES[codec], 0x10000 + i) for i, codec in enumerate(codecs)]
    payload = bytes(range(96, 256))
    seq = [0] * len(socks)
    groups = [list(range(g, len(socks), SLOTS)) for g in range(SLOTS)]
    start = time.monotonic() + 0.05
    total = 0
    tick = 0
    while time.monotonic() - start < seconds:
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
                socks[i].sendto(protects[i](packet), (HOST, leg_ports[i]))
                seq[i] = (s + 1) & 0xFFFF
                total += 1
            sent.value = total
        tick += 1


def receiver_main(cpu: int, socks: list[socket.socket], done: mp.synchronize.Event,
                  received: Synchronized) -> None:  # type: ignore[type-arg]
    """Count every RTP packet the relay delivers to any phone until the senders are done."""
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
                    if sock.recv(2048)[1] < 192:  # RTP, not a relay's RTCP reports
                        count += 1
            except BlockingIOError:
                pass
        received.value = count
        if done.is_set():
            if events:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > 0.5:
                break


# ---------------------------------------------------------------------- driver


@dataclass(frozen=True)
class Figures:
    """One relay at one load, over the steady-state window (loss over the whole run)."""

    offered_pps: float
    relayed_pps: float
    loss_pct: float
    cpu: float  # share of one core
    kernel_share: float  # of that CPU, the part spent in the kernel
    us_per_packet: float  # CPU µs per relayed packet
    waited: float  # share of the window the relay was runnable but another task had its CPU
    kernel_drops: int
    threads: int

    @classmethod
    def between(cls, start: Sample, end: Sample, sent: int, received: int,
                kernel_drops: int) -> Figures:
        wall = end.at - start.at
        user, system = end.user - start.user, end.system - start.system
        relayed = end.received - start.received
        return cls(
            offered_pps=(end.sent - start.sent) / wall, relayed_pps=relayed / wall,
            loss_pct=100 * (1 - received / sent) if sent else 100.0,
            cpu=(user + system) / wall,
            kernel_share=system / (user + system) if user + system else 0.0,
            us_per_packet=1e6 * (user + system) / relayed if relayed else float("inf"),
            waited=(end.waited - start.waited) / wall, kernel_drops=kernel_drops,
            threads=end.threads,
        )

    def notes(self, calls: int) -> list[str]:
        """What makes this point's figures other than the relay's own capacity."""
        expected = 100 * calls
        notes = []
        if self.offered_pps < 0.98 * expected:
            notes.append(f"the phones offered {self.offered_pps:.0f} of {expected} pkt/s "
                         "(their CPU fell behind)")
        if self.relayed_pps < 0.98 * self.offered_pps:
            notes.append(f"relayed {self.relayed_pps:.0f} of {self.offered_pps:.0f} pkt/s "
                         "offered: a backlog built up in the socket buffers")
        if self.waited > 0.05:
            notes.append(f"waited for the core {100 * self.waited:.0f}% of the time "
                         "(runnable, not running: other programs or its own threads)")
        if self.kernel_drops:
            notes.append(f"{self.kernel_drops} datagrams dropped by the kernel "
                         "(full socket buffers, host-wide)")
        return notes


def measure(relay: Relay, calls: int, seconds: float, transcode: bool,
            phone_cpus: list[int], srtp: bool = False) -> Figures:
    """Run ``calls`` bridged calls through ``relay`` for ``seconds`` and take its figures."""
    socks = []
    for _ in range(2 * calls):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 18)
        sock.bind((HOST, 0))
        sock.setblocking(False)
        socks.append(sock)
    codecs = ["PCMU" if not transcode or i % 2 == 0 else "PCMA" for i in range(2 * calls)]
    ctx = mp.get_context("fork")
    sent, received, done = ctx.Value("q", 0), ctx.Value("q", 0), ctx.Event()
    phones: list[mp.process.BaseProcess] = []
    try:
        leg_ports = relay.open([s.getsockname()[1] for s in socks], codecs)
        phones = [
            ctx.Process(target=receiver_main, args=(phone_cpus[-1], socks, done, received)),
            ctx.Process(target=sender_main,
                        args=(phone_cpus[0], socks, leg_ports, seconds, codecs, sent, srtp)),
        ]
        drops0 = udp_rcvbuf_errors()
        phones[0].start()
        time.sleep(0.2)
        phones[1].start()
        time.sleep(1.0)  # CPU and rates are measured in the steady state, not the ramp-up
        start = sample(relay.pid, sent, received)
        time.sleep(seconds - 2.0)
        end = sample(relay.pid, sent, received)
        phones[1].join()
        done.set()
        phones[0].join()
        drops = udp_rcvbuf_errors() - drops0
    finally:
        for phone in phones:
            if phone.is_alive():
                phone.terminate()
                phone.join()
        relay.close()
        for sock in socks:
            sock.close()
    return Figures.between(start, end, sent.value, received.value, drops)


def ratio(ours: float, theirs: float) -> str:
    """ours/theirs for the table; equal zeros read as 1."""
    if theirs:
        return f"{ours / theirs:.2f}"
    return "1" if not ours else "inf"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", default="100,200,300,500", help="comma-separated call counts")
    parser.add_argument("--seconds", type=float, default=15.0, help="per relay and point, >= 3")
    parser.add_argument("--transcode", action="store_true", help="one side PCMU, the other PCMA")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument("--rtpengine-threads", type=int, default=1,
                        help="rtpengine --num-threads and --media-num-threads")
    parser.add_argument("--srtp", action="store_true",
                        help="every leg SRTP (our relay only): compare CPU us/pkt with a plain run")
    args = parser.parse_args()
    if args.seconds < 3:
        parser.error("--seconds must be at least 3 (1 s ramp-up, 1 s wind-down)")
    cpus = sorted(os.sched_getaffinity(0))
    relay_cpu, phone_cpus = cpus[0], (cpus[1:] or cpus)[:2]
    if len(cpus) < 2:
        print("warning: one CPU only, the phones share the relays' core", file=sys.stderr)
    relays: list[Relay] = [OurRelay(relay_cpu, args.loop, args.srtp)]
    version = None if args.srtp else rtpengine_version()
    if args.srtp:
        protect, unprotect = srtp_cost()
        print(f"libsrtp (pylibsrtp) per 172-byte packet: protect {protect:.2f} us, "
              f"unprotect {unprotect:.2f} us; every leg SRTP, our relay only")
    elif version is None:
        print(f"{INSTALL_HINT}; measuring our relay only", file=sys.stderr)
    else:
        relays.append(Rtpengine(relay_cpu, args.rtpengine_threads))
    print(f"relays on CPU {relay_cpu}: ours ({args.loop})"
          + (f", rtpengine {version} userspace (--table=-1, --num-threads="
             f"{args.rtpengine_threads}, --media-num-threads={args.rtpengine_threads}, taskset)"
             if version else "")
          + f"; phones on CPUs {phone_cpus}; "
          f"{'PCMU<->PCMA transcoding' if args.transcode else 'G.711 pass-through'}; "
          f"{args.seconds:g} s per relay and point, 50 packets/s per direction per call")
    columns = ("relayed pkt/s", "loss %", "CPU %", "of it kernel", "CPU us/pkt")
    names = [relay.name for relay in relays]
    width = max(9, max(map(len, columns)) // len(names) + 1)  # of one relay's cell
    print(f"{'':>5} " + " ".join(f"{c:>{(width + 1) * len(names) - 1}}" for c in columns)
          + (f" {'ours/rtpengine':>17}" if len(relays) > 1 else ""))
    print(f"{'calls':>5} " + " ".join(" ".join(f"{n:>{width}}" for n in names) for _ in columns)
          + (f" {'us/pkt':>8} {'loss':>8}" if len(relays) > 1 else ""))
    for calls in (int(n) for n in args.calls.split(",")):
        figures = [measure(relay, calls, args.seconds, args.transcode, phone_cpus, args.srtp)
                   for relay in relays]
        cells = [
            [f"{f.relayed_pps:.0f}" for f in figures],
            [f"{f.loss_pct:.3f}" for f in figures],
            [f"{100 * f.cpu:.1f}" for f in figures],
            [f"{100 * f.kernel_share:.0f}%" for f in figures],
            [f"{f.us_per_packet:.1f}" for f in figures],
        ]
        line = f"{calls:>5} " + " ".join(" ".join(f"{c:>{width}}" for c in group) for group in cells)
        if len(figures) > 1:
            ours, theirs = figures
            line += (f" {ratio(ours.us_per_packet, theirs.us_per_packet):>8}"
                     f" {ratio(ours.loss_pct, theirs.loss_pct):>8}")
        print(line, flush=True)
        for name, f in zip(names, figures):
            for note in f.notes(calls):
                print(f"      {name}: {note}", flush=True)
        threads = {name: f.threads for name, f in zip(names, figures)}
    print("threads per relay process, all on CPU "
          f"{relay_cpu}: {', '.join(f'{n} {t}' for n, t in threads.items())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
