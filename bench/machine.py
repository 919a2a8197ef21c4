"""What the host says about a server under test, for the benches: its CPU time
and time spent waiting for a core (from /proc), how busy a core was with
anything, datagrams the kernel dropped, and which commit is measured."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

CLOCK_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(root: int) -> float:
    """User + system CPU time of ``root`` and every process descended from it
    (all their threads: /proc/<pid>/stat counts a process's threads)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        times[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICK
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        tree.update(children)
        frontier.extend(children)
    return sum(times.get(pid, 0.0) for pid in tree)


def core_busy_seconds(core: str) -> float:
    """Non-idle time of one CPU since boot (user, nice, system, irq, softirq, steal)."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{core} "):
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, line.split()[1:9])
            return (user + nice + system + irq + softirq + steal) / CLOCK_TICK
    raise RuntimeError(f"no cpu{core} in /proc/stat")


def waited_seconds(pid: int) -> float:
    """Seconds the threads of ``pid`` sat runnable on a run queue, waiting for a
    CPU another task had (schedstat's run-delay): a starved server shows here."""
    waited = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            waited += int((task / "schedstat").read_text().split()[1])
        except OSError:  # a thread that just ended
            pass
    return waited / 1e9


def udp_rcvbuf_errors() -> int:
    """The kernel's count of datagrams dropped because a socket buffer was full."""
    lines = Path("/proc/net/snmp").read_text().splitlines()
    names, values = [line.split() for line in lines if line.startswith("Udp:")][:2]
    return int(values[names.index("RcvbufErrors")])


def our_version() -> str:
    """Our commit, short: the figure belongs to this code."""
    described = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                               text=True, cwd=Path(__file__).parent)
    return described.stdout.strip() or "?"
