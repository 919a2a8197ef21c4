#!/usr/bin/env python3
"""ACD queues under load: callers waiting with music on hold, agents freed
one after another, the wallboard's feed; the PBX on one core.

For each number of waiting callers a fresh ``pbx serve`` has ``--queues``
queues (700 …, rrmemory, wrap-up 0) of ``--agents`` agents in all: each
queue's own agents with penalty 0 and the next queue's with penalty 5, so an
agent serves two queues (as bench/queue_engine.py).  All the PBX's threads
are pinned to core 0 with ``taskset``; everything that drives it runs on
core 1:

- one sipp UAS is every agent's phone (``queue_agent.xml``; each agent
  registered with a contact on its port): it logs when an INVITE arrives and
  for which agent, answers at once, talks for the hold time and logs just
  before it sends the BYE that makes the agent available again;
- sipp callers (``queue_caller.xml``), spread over the queues: INVITE with
  digest auth, then silence until the agent's BYE.  First one per agent at
  ``--handoffs`` a second (each is answered at once, so the agents will hang
  up that far apart), then the callers who wait at ``--rate`` a second.  Each caller's SDP names a port of its own, where this
  script binds a socket with a tiny buffer that it never reads: the kernel
  counts the music arriving there as drops per socket (/proc/net/udp), so
  2,000 streams cost core 1 nothing;
- a WebSocket client on ``/api/queue-stats/feed`` (the wallboard's feed)
  stamps every update as it arrives.

The agents' hold time is chosen so that every caller is in before the first
agent hangs up.  Then, in order:

1. **steady window**: every caller in, every agent talking, nobody leaves:
   the PBX's CPU (every thread, /proc) as a share of core 0 and per waiting
   caller, the time it waited for the core (``wait``) and what else kept
   core 0 busy (``other``: the machine is shared), the media engine's tick
   (``/api/health``, twice a second), and the music's packets a second at the
   callers' ports divided by 50 (streams the callers actually receive);
2. **distribution round**: the agents hang up in the order they answered
   (``--handoffs`` a second), each is offered the longest-waiting caller of its
   queues.  Distribution latency: from the agent's BYE leaving its phone
   (sipp's log, wall clock) to the next INVITE arriving at that phone
   (sipp's log): "agent available" to "INVITE sent" plus two loopback hops
   and sipp's own scheduling on the busy core 1.  The PBX's CPU over the
   round is printed too.

Event → WebSocket latency: the client's receive time minus the event's
``at`` (the PBX's clock when it published it, the same host clock), over
every update of the run: callers joining, offers, answers, completions,
agents' states.

Goals of issue 11, printed beside the figures: distribution p99 < 50 ms,
event → WebSocket p99 < 200 ms.  Every process started is stopped when the
level has been measured (the callers still waiting are simply dropped with
the PBX).

    .venv/bin/python bench/queues.py [--callers 500,1000,2000] [--agents 500] \\
        [--queues 50] [--rate 50] [--handoffs 20] [--window 10]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ivr import free_udp_range  # noqa: E402
from bench.machine import (  # noqa: E402
    core_busy_seconds, cpu_seconds, our_version, waited_seconds,
)
from tests.integration.peers import (  # noqa: E402
    SCENARIOS, Pbx, free_ports, running_pbx, sipp_command,
)
from tests.integration.sipclient import SipClient  # noqa: E402

HOST = "127.0.0.1"
SERVER_CORE = "0"
DRIVER_CORE = 1
FIRST_QUEUE = 700
FIRST_AGENT = 3000
FIRST_CALLER = 20000
PACKETS = 50  # a second per stream (20 ms)
SETTLE = 3.0  # s after the last caller is sent before the window opens
SLACK = 1.3  # a loaded PBX takes the waiting callers in more slowly than sipp offers them
DIST_GOAL = 50.0  # ms, p99 (issue 11)
FEED_GOAL = 200.0
HEALTH_EVERY = 0.5
# the callers' media ports (the agents' first callers' and the waiting callers', two
# windows of 4 ports a caller), below the ephemeral range and the PBX's RTP ports
CALLER_PORTS = range(10000, 30000)


def queues_conf(queues: int, agents: int) -> str:
    """``queues`` rrmemory queues; agents dealt out in turn, each queue's own at
    penalty 0 and the next queue's at penalty 5."""
    own: list[list[str]] = [[] for _ in range(queues)]
    for n in range(agents):
        own[n % queues].append(str(FIRST_AGENT + n))
    sections = []
    for q in range(queues):
        members = own[q] + [f"{a}:5" for a in own[(q + 1) % queues]]
        sections.append(f"[{FIRST_QUEUE + q}]\ntype = queue\nstrategy = rrmemory\n"
                        f"members = {', '.join(members)}\n")
    return "\n" + "\n".join(sections)


# ------------------------------------------------------------------ the peers


@contextmanager
def agent_phones(tmp: Path, pbx: Pbx, agents: dict[str, str], hold: float) -> Iterator[Path]:
    """One sipp UAS for every agent, each registered at its port; yields its log."""
    port = free_ports(1)
    log = tmp / "agents.log"
    uas = subprocess.Popen(
        ["sipp", "-sf", str(SCENARIOS / "queue_agent.xml"), "-i", HOST, "-p", str(port),
         "-mi", HOST, "-mp", str(free_udp_range(4, 10000, 30000)), "-d", str(int(hold * 1000)), "-nostdin",
         "-trace_logs", "-log_file", str(log)],
        cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        if uas.poll() is not None:
            raise RuntimeError(f"sipp as the agents exited at once ({uas.returncode})")
        with SipClient(pbx.host, pbx.sip_port) as registrar:
            for agent, password in agents.items():
                response = registrar.register(agent, password, expires=3600,
                                              contacts=[f"<sip:{agent}@{HOST}:{port}>"])
                if response is None or response.status != 200:
                    raise RuntimeError(f"agent {agent} did not register: {response}")
        yield log
    finally:
        stop(uas)


@contextmanager
def media_ports(count: int, ports: range) -> Iterator[tuple[int, list[int]]]:
    """For ``count`` sipp callers: a base within ``ports`` (sipp holds it
    itself) and a music sink on each caller's media port, held from now on,
    so that the PBX started after it cannot pick its own ports there."""
    for attempt in range(30):  # other programs' tests hold ports here for a while
        try:
            base = free_udp_range(4 * count + 8, ports.start, ports.stop)
            break
        except RuntimeError:
            if attempt == 29:
                raise
            time.sleep(2)
    media = [base + 4 * n for n in range(1, count + 1)]
    with music_sinks(media):
        yield base, media


@contextmanager
def callers(tmp: Path, pbx: Pbx, users: list[tuple[str, str, str]], rate: int,
            timeout: float, base: int) -> Iterator[None]:
    """Sipp callers, started now at ``rate`` a second, their media ports from
    ``base`` (see :func:`media_ports`); stopped on leaving."""
    cmd, _ = sipp_command("queue_caller.xml", pbx, users,  # type: ignore[arg-type]
                          calls=len(users), rate=rate, timeout=timeout, tmp=tmp,
                          extra=["-l", str(len(users)), "-mi", HOST, "-mp", str(base)])
    uac = subprocess.Popen(cmd, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        stop(uac)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def music_sinks(ports: list[int]) -> Iterator[None]:
    """A bound socket on each caller's media port with the smallest buffer,
    never read: what arrives there is counted by the kernel as drops."""
    sockets = []
    try:
        for port in ports:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
            sock.bind((HOST, port))
            sockets.append(sock)
        yield
    finally:
        for sock in sockets:
            sock.close()


def arrived_packets(ports: set[int]) -> tuple[int, int]:
    """(datagrams dropped at ``ports``, how many of the ports had any) from
    /proc/net/udp: the music the callers received, as none is ever read."""
    total = heard = 0
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        parts = line.split()
        address, port = parts[1].split(":")
        if address == "0100007F" and int(port, 16) in ports:
            drops = int(parts[-1])
            total += drops
            heard += drops > 0
    return total, heard


class Feed:
    """The wallboard's WebSocket, read in a thread: (received, event at, type)."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        json.loads(self.socket.recv(timeout=10))  # the snapshot
        self.arrivals: list[tuple[float, float, str]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            while True:
                text = self.socket.recv()
                now = time.time()
                event = json.loads(text)["event"]
                self.arrivals.append((now, event["at"], event["type"]))
        except (ConnectionClosed, OSError):
            pass

    def close(self) -> None:
        self.socket.close()
        self.thread.join(5)


# ------------------------------------------------------------------ one level


@dataclass
class Level:
    """What one number of waiting callers gave."""

    waiting: int
    agents: int
    queues: int
    in_queue: int = 0  # callers waiting when the window opened (the API's count)
    window: float = 0.0
    cpu: float = 0.0
    busy: float = 0.0
    waited: float = 0.0
    music: int = 0  # packets at the callers' ports in the window
    heard: int = 0  # callers' ports that got music at all
    health: list[dict] = field(default_factory=list)  # type: ignore[type-arg]
    round_window: float = 0.0
    round_cpu: float = 0.0
    latencies: list[float] = field(default_factory=list)  # s, BYE → next INVITE
    byes: int = 0
    feed: list[float] = field(default_factory=list)  # s, event → WebSocket
    error: str = ""

    @property
    def share(self) -> float:
        return self.cpu / self.window if self.window else float("nan")


def waiting_now(pbx: Pbx, headers: dict[str, str]) -> int:
    reply = httpx.get(f"{pbx.api}/queue-stats", headers=headers, timeout=10).json()
    return sum(q["waiting"] for q in reply["queues"])


def measure(waiting: int, agents: int, queues: int, rate: int, handoffs: int, window: float,
            tmp: Path) -> Level:
    """One fresh PBX: ``agents`` agents busy, ``waiting`` callers waiting."""
    level = Level(waiting, agents, queues)
    talking_in, waiting_in = agents / handoffs, waiting / rate
    hold = talking_in + SLACK * waiting_in + SETTLE + window + 1.0
    agent_users = {str(FIRST_AGENT + n): f"agent-{n}-pw" for n in range(agents)}
    caller_users = [(str(FIRST_CALLER + n), f"caller-{n}-pw", str(FIRST_QUEUE + n % queues))
                    for n in range(agents + waiting)]
    users = {**agent_users, **{c: pw for c, pw, _ in caller_users}}
    with media_ports(agents, CALLER_PORTS) as (talking_base, _), \
            media_ports(waiting, CALLER_PORTS) as (waiting_base, waiting_ports), \
            running_pbx(tmp, users, sections=queues_conf(queues, agents), rtp_ports="30000-40000",
                        log_level="WARNING", auth_max_failures=1000000) as pbx, ExitStack() as stack:
        assert pbx.process is not None
        pid = pbx.process.pid
        subprocess.run(["taskset", "-a", "-pc", SERVER_CORE, str(pid)], capture_output=True,
                       check=True)
        headers = pbx.admin_headers()
        agent_log = stack.enter_context(agent_phones(tmp, pbx, agent_users, hold))
        token = headers["Authorization"][7:]
        feed = Feed(stack.enter_context(connect(
            f"ws://{pbx.host}:{pbx.http_port}/api/queue-stats/feed?token={token}",
            max_size=None)))
        # the agents' first callers at the hand-off rate: their BYEs come as far apart
        started = time.monotonic()
        stack.enter_context(callers(tmp, pbx, caller_users[:agents], handoffs,
                                    timeout=3 * hold + 60, base=talking_base))
        time.sleep(talking_in + 0.5)
        stack.enter_context(callers(tmp, pbx, caller_users[agents:], rate,
                                    timeout=3 * hold + 60, base=waiting_base))
        sinks = set(waiting_ports)
        # 1. the steady window: every caller in, every agent talking
        opens, closes = started + talking_in + waiting_in + SETTLE, started + hold - 0.5
        while time.monotonic() < opens or waiting_now(pbx, headers) < waiting:
            if time.monotonic() > closes - 2:
                level.error = (f"only {waiting_now(pbx, headers)} of {waiting} callers waiting "
                               f"when the agents start hanging up: lower --rate or --callers")
                return level
            time.sleep(0.5)
        level.in_queue = waiting_now(pbx, headers)
        opened = time.monotonic()
        cpu, busy, waited = cpu_seconds(pid), core_busy_seconds(SERVER_CORE), waited_seconds(pid)
        music, _ = arrived_packets(sinks)
        while time.monotonic() + HEALTH_EVERY < closes:
            level.health.append(pbx.health())
            time.sleep(HEALTH_EVERY)
        level.window = time.monotonic() - opened
        level.cpu = cpu_seconds(pid) - cpu
        level.busy = core_busy_seconds(SERVER_CORE) - busy
        level.waited = waited_seconds(pid) - waited
        music_after, level.heard = arrived_packets(sinks)
        level.music = music_after - music
        # 2. the distribution round: the agents hang up at the hand-off rate
        time.sleep(max(0.0, started + hold - time.monotonic()))
        cpu, opened = cpu_seconds(pid), time.monotonic()
        time.sleep(talking_in + 3.0)
        level.round_window = time.monotonic() - opened
        level.round_cpu = cpu_seconds(pid) - cpu
        feed.close()
        level.latencies, level.byes = distribution(agent_log)
        level.feed = [received - at for received, at, _ in feed.arrivals]
    return level


def distribution(log: Path) -> tuple[list[float], int]:
    """From the agents' sipp log: per BYE, the seconds to that agent's next
    INVITE (if one came); and how many BYEs there were."""
    lines: dict[str, list[tuple[float, str]]] = {}
    for line in log.read_text().splitlines() if log.exists() else []:
        parts = line.split()
        if len(parts) >= 5 and parts[3] in ("invite", "bye"):
            lines.setdefault(parts[4].removeprefix("sip:"), []).append((float(parts[2]), parts[3]))
    latencies, byes = [], 0
    for marks in lines.values():
        marks.sort()
        for (at, what), (then, next_what) in zip(marks, marks[1:] + [(0.0, "")]):
            if what == "bye":
                byes += 1
                if next_what == "invite":
                    latencies.append(then - at)
    return latencies, byes


# ------------------------------------------------------------------ report


def quantiles(values: list[float]) -> tuple[float, float, float]:
    """p50, p99, max in ms."""
    if not values:
        return float("nan"), float("nan"), float("nan")
    ordered = sorted(1000 * v for v in values)
    return (statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
            ordered[-1])


def row(level: Level) -> str:
    if level.error:
        return f"{level.waiting:7d} {level.agents:6d} {level.queues:6d}  {level.error}"
    ticks = [h["media_tick_ms"] for h in level.health] or [float("nan")]
    other = max(0.0, level.busy - level.cpu) / level.window
    dist, feed = quantiles(level.latencies), quantiles(level.feed)
    return (f"{level.waiting:7d} {level.agents:6d} {level.queues:6d} {level.in_queue:7d}"
            f" {level.window:5.1f} {100 * level.share:6.1f} {100 * level.share / level.waiting:7.3f}"
            f" {100 * level.waited / level.window:6.1f} {100 * other:5.0f}"
            f" {statistics.median(ticks):6.2f} {max(ticks):6.2f}"
            f" {level.music / level.window / PACKETS:7.0f} {level.heard:6d}"
            f" {100 * level.round_cpu / level.round_window:6.1f}"
            f" {len(level.latencies):5d}/{level.byes:<5d}{dist[0]:7.1f} {dist[1]:7.1f} {dist[2]:7.1f}"
            f"  {'yes' if dist[1] < DIST_GOAL else 'NO':>4}"
            f" {len(level.feed):6d} {feed[0]:7.1f} {feed[1]:7.1f} {feed[2]:7.1f}"
            f"  {'yes' if feed[1] < FEED_GOAL else 'NO':>4}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callers", default="500,1000,2000",
                        help="callers waiting (besides those talking), comma-separated")
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--queues", type=int, default=50)
    parser.add_argument("--rate", type=int, default=50,
                        help="new calls a second of the callers who wait")
    parser.add_argument("--handoffs", type=int, default=20,
                        help="agents' first calls a second, and so agents freed a second "
                             "in the distribution round")
    parser.add_argument("--window", type=float, default=10.0,
                        help="seconds of the steady window (every caller waiting)")
    parser.add_argument("--nice", type=int, default=0,
                        help="niceness of the PBX, this script and sipp (root may go below 0: "
                             "on a shared machine they then take their cores before other work)")
    parser.add_argument("--realtime", action="store_true",
                        help="the PBX, this script and sipp in the round-robin real-time class "
                             "(root): other work on their cores waits for them, within the "
                             "kernel's real-time limit (95 %% of a core by default)")
    args = parser.parse_args()
    levels = [int(n) for n in args.callers.split(",")]
    if args.queues < 1 or args.agents < args.queues:
        parser.error("at least one agent per queue")
    if max(levels) > 2500 or args.agents > 1240:
        parser.error("at most 2,500 waiting callers (sipp's per-call media ports wrap at "
                     "10,000) and 1,240 agents")
    os.sched_setaffinity(0, {DRIVER_CORE})  # this script and every sipp it starts
    os.setpriority(os.PRIO_PROCESS, 0, args.nice)  # inherited by the PBX and sipp
    if args.realtime:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(1))
    print(f"ACD queues: {args.queues} queues (rrmemory, wrap-up 0, each agent in two), "
          f"{args.agents} agents (one sipp UAS) freed {args.handoffs}/s, waiting callers joining at "
          f"{args.rate}/s (sipp), music on hold; "
          f"our commit {our_version()}; PBX on core {SERVER_CORE}, sipp and this script on "
          f"core {DRIVER_CORE}{f', nice {args.nice}' if args.nice else ''}"
          f"{', real-time (SCHED_RR 1)' if args.realtime else ''}")
    print(f"{'':30}{'steady window: all waiting, all agents talking':^52}{'round':^7}"
          f"{'agent BYE -> next INVITE ms':^37}{'event -> WebSocket ms':^36}")
    print(f"{'waiting':>7} {'agents':>6} {'queues':>6} {'in q':>7} {'win s':>5} {'cpu %':>6}"
          f" {'%/callr':>7} {'wait %':>6} {'other':>5} {'tick':>6} {'max':>6} {'moh str':>7}"
          f" {'heard':>6} {'cpu %':>6} {'n/byes':>11} {'p50':>7} {'p99':>7} {'max':>7}"
          f"  {'<50':>4} {'n':>6} {'p50':>7} {'p99':>7} {'max':>7}  {'<200':>4}")
    green = True
    with tempfile.TemporaryDirectory() as name:
        for waiting in levels:
            work = Path(tempfile.mkdtemp(dir=name))
            level = measure(waiting, args.agents, args.queues, args.rate, args.handoffs,
                            args.window, work)
            print(row(level), flush=True)
            green &= not level.error and len(level.latencies) == level.byes == args.agents
    print("in q: callers waiting by the API when the window opened; cpu %: the PBX's share of "
          "core 0; %/callr: per waiting caller; wait %: runnable without the core; other: core 0 "
          "busy with anything else; tick: the media engine's tick, median/max ms; moh str: music "
          "packets a second at the callers / 50; heard: callers' ports that got music; round: "
          "the PBX's CPU while the agents hang up; n/byes: BYEs followed by an INVITE to that "
          f"agent; goals (issue 11): distribution p99 < {DIST_GOAL:.0f} ms, event -> WebSocket "
          f"p99 < {FEED_GOAL:.0f} ms")
    return 0 if green else 1


if __name__ == "__main__":
    sys.exit(main())
