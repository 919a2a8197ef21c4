#!/usr/bin/env python3
"""Inbound SIP trunk calls under load, beside Kamailio alone as the ceiling.

PSTN customers (sipp, ``pstn_customer.xml.in`` from tests/integration/carrier.py)
call the demo number +4681234567 through the carrier stand-in (Kamailio 5.6,
``carrier.cfg.in``: the SBC the trunk tests use, record-routing, logging each
routing decision).  Up to three paths, offered the same calls at the same
rates in one run, rate by rate:

- **queue**: Kamailio → the PBX on the demo dial plan (``sip.conf.example``),
  its trunk registered to Kamailio with digest auth → the demo IVR on 500
  (answers, speaks its greeting from the media engine) → the customer keys 3
  a second after the answer (RFC 4733: sipp plays ``dtmf_2833_3.pcap``, which
  needs root) → the Support queue 700 (it says the caller's place and offers
  a callback, then music on hold) → an agent's phone answers at once and
  echoes RTP.  The demo queue has three agents (1002–1004) and a 10 s
  wrap-up: a third of a call a second.  For a load the bench staffs it (the
  config's text edited before the start, nothing else): ``--agents`` agents
  (1002–1004 and 3000 …, all on the one sipp phone) and no wrap-up;
- **ringgroup** (not by default): the same, key 1 → the Sales ring group 600
  (its member 1001 is not registered) → the sipp phone as 1002;
- **kamailio**: Kamailio → the same sipp phone directly (``route_inbound_to``),
  nothing else in between: what the carrier and the phones carry without the
  PBX, the ceiling.

The phone is ``pstn_phone.xml`` without its 180 (see :func:`answering_scenario`).
The customers send no audio, only the key; each hangs up ``--hold`` seconds
after it.  The PBX's threads are pinned to core 0 with ``taskset``; Kamailio,
every sipp and this script run on core 1.  A rate is ``--seconds`` of new
calls; a path stops climbing at its first rate not sustained in ``--tries``
runs (every run printed): a call failed, a call did not get through (its
record lacks IVR → queue 700 → an agent, or IVR → ring group → 1002), or the
answers came slower than 95 % of the offer.

Printed per rate and path: calls answered and failed; answers per second
from the first to the last; set-up latency INVITE → 200 at the customer, p50
and p99 (sipp's ``-trace_rtt``, in the 4 ms ticks of sipp's clock here; on the
PBX's paths the IVR's answer through Kamailio); CPU per answered call of the PBX
and of Kamailio (every thread and process, from /proc); the PBX's share of
core 0, the time it was runnable without a core (``wait``) and what else kept
core 0 busy (``other``: the machine is shared); the calls whose record went
through (IVR → queue → agent, IVR → ring group → 1002); on Kamailio's line the
ratio of the answer rates, queue / kamailio.  Then per path the highest rate
sustained and their ratios.  Exit code 0 when the PBX sustained at least the
first rate on each of its paths.

    .venv/bin/python bench/trunk.py [--rates 50,100,150,200,300,400,600] \\
        [--seconds 4] [--hold 2] [--tries 2] [--paths queue,kamailio] [--agents 600]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import (  # noqa: E402
    core_busy_seconds, cpu_seconds, our_version, waited_seconds,
)
from pbx.models import Cdr  # noqa: E402
from pbx.store import Store  # noqa: E402
from tests.integration.carrier import Carrier, customer_scenario, kamailio_carrier  # noqa: E402
from tests.integration.peers import SCENARIOS, Pbx, free_ports, run_sipp, running_demo  # noqa: E402
from tests.integration.sipclient import SipClient  # noqa: E402

HOST = "127.0.0.1"
SERVER_CORE = "0"
DRIVER_CORE = 1
DID = "+4681234567"  # the demo number: the IVR on 500
KEYS = {"queue": "3", "ringgroup": "1"}  # the demo IVR's keys: Support queue 700, Sales 600
PBX_PATHS = tuple(KEYS)
PATHS = (*PBX_PATHS, "kamailio")
CALLEE = ("1002", "demo-1002-Pw")  # in the ring group 600 and an agent of queue 700
DEMO_AGENTS = {"1002": "demo-1002-Pw", "1003": "demo-1003-Pw", "1004": "demo-1004-Pw"}
FIRST_AGENT = 3000  # the bench's further agents of queue 700
KEY_AFTER_MS = 1000  # after the IVR answers
KEPT_UP = 0.95  # a rate is sustained when the answers come at least this fast


@dataclass
class Step:
    """One path at one offered rate."""

    path: str
    rate: int
    calls: int
    ok: int = 0
    failed: int = 0
    answers: list[tuple[float, float]] = field(default_factory=list)  # (at, INVITE → 200) ms
    window: float = 0.0  # s the sipp run took
    pbx_cpu: float | None = None  # s
    pbx_waited: float = 0.0  # s the PBX's threads were runnable but had no core
    carrier_cpu: float = 0.0
    core_busy: float = 0.0  # s core 0 was busy with anything
    reached: int | None = None  # calls recorded as through (:func:`through`)
    elsewhere: Counter[str] = field(default_factory=Counter)  # other records' paths
    unrecorded: int = 0  # answered calls without a record 2 s after the last came

    @property
    def green(self) -> bool:
        """Every call answered and through, and the answers kept up with the offer."""
        return (self.failed == 0 and self.ok == self.calls and self.reached in (None, self.calls)
                and self.sustained >= KEPT_UP * self.rate)

    @property
    def sustained(self) -> float:
        """200s per second between the first and the last answer."""
        stamps = sorted(at for at, _ in self.answers)
        if len(stamps) < 2 or stamps[-1] == stamps[0]:
            return float("nan")
        return (len(stamps) - 1) / ((stamps[-1] - stamps[0]) / 1000)

    def latency(self, quantile: float) -> float:
        """INVITE → 200 at the customer, ms."""
        delays = sorted(delay for _, delay in self.answers)
        if not delays:
            return float("nan")
        return delays[min(len(delays) - 1, int(quantile * len(delays)))]

    def per_call(self, seconds: float | None) -> float:
        """CPU ms per answered call."""
        return seconds / self.ok * 1000 if seconds is not None and self.ok else float("nan")

    @property
    def pbx_share(self) -> float:
        return self.pbx_cpu / self.window if self.pbx_cpu is not None and self.window else 0.0

    @property
    def pbx_wait(self) -> float:
        return self.pbx_waited / self.window if self.window else 0.0

    @property
    def other(self) -> float:
        """Share of core 0 busy with anything but the PBX."""
        if not self.window:
            return 0.0
        return max(0.0, self.core_busy - (self.pbx_cpu or 0.0)) / self.window


@contextmanager
def phone(tmp: Path) -> Iterator[int]:
    """A sipp phone on a free port that answers at once with 200 and no 180
    (:func:`answering_scenario`) and echoes RTP; yields the port."""
    port = free_ports(1)
    uas = subprocess.Popen(
        ["sipp", "-sf", str(answering_scenario(tmp)), "-i", HOST, "-p", str(port), "-mi", HOST,
         "-mp", str(free_ports(4)), "-rtp_echo", "-nostdin"],
        cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        if uas.poll() is not None:
            raise RuntimeError(f"sipp phone exited at once ({uas.returncode})")
        yield port
    finally:
        uas.terminate()
        try:
            uas.wait(5)
        except subprocess.TimeoutExpired:
            uas.kill()
            uas.wait()


def answering_scenario(tmp: Path) -> Path:
    """``pstn_phone.xml`` (it copies Record-Route, as sipp's built-in UAS does not)
    without its 180: Kamailio's workers pass a 180 and the 200 right behind it
    on in either order under load, and a customer's sipp fails a call on a 180
    after the 200, a failure of the rig, not of the path."""
    text = (SCENARIOS / "pstn_phone.xml").read_text()
    ringing = text.index("  <send>\n    <![CDATA[\n      SIP/2.0 180 Ringing")
    path = tmp / "answering_phone.xml"
    path.write_text(text[:ringing] + text[text.index("  </send>\n", ringing) + len("  </send>\n"):])
    return path


def staffed(agents: dict[str, str]) -> Callable[[str], str]:
    """An edit of ``sip.conf.example``: queue 700 with ``agents`` as members and
    no wrap-up, the agents not in the demo added as extensions."""
    def edit(text: str) -> str:
        section = text.index("\n[700]\n")
        end = text.index("\n[", section + 1)
        queue = (text[section:end].replace("members = 1002, 1003, 1004",
                                            f"members = {', '.join(agents)}")
                 .replace("wrapuptime = 10", "wrapuptime = 0"))
        if "wrapuptime = 0" not in queue or "3000" not in queue and len(agents) > 3:
            raise RuntimeError("sip.conf.example's queue 700 changed: update bench/trunk.py")
        extra = "".join(f"\n[{number}]\nsecret = {secret}\n" for number, secret in agents.items()
                        if number not in DEMO_AGENTS)
        return text[:section] + queue + text[end:] + extra
    return edit


def agents_of(count: int) -> dict[str, str]:
    """Queue 700's agents for the bench: the demo's three, then 3000 …"""
    extra = {str(FIRST_AGENT + n): f"bench-agent-{n}-Pw" for n in range(max(0, count - 3))}
    return {**DEMO_AGENTS, **extra}


def connect_trunk(pbx: Pbx, carrier: Carrier, phone_port: int, agents: dict[str, str]) -> None:
    """The demo PBX as the trunk tests set it up: its trunk registered to the
    carrier, the office open (the IVR's schedule), 1002 and the queue's agents
    registered at the phone."""
    headers = pbx.admin_headers()
    made = httpx.post(f"{pbx.api}/trunks", headers=headers, json={
        "name": "carrier", "host": f"{carrier.host}:{carrier.port}",
        "username": carrier.username, "password": carrier.password, "expiry": 3600})
    if made.status_code != 201:
        raise RuntimeError(f"the trunk was refused: {made.text}")
    carrier.wait_for_registration()
    opened = httpx.post(f"{pbx.api}/schedules/office-hours/override", headers=headers,
                        json={"action": "open"})
    if opened.status_code != 200:
        raise RuntimeError(f"the office did not open: {opened.text}")
    with SipClient(pbx.host, pbx.sip_port) as registrar:
        for number, password in {CALLEE[0]: CALLEE[1], **agents}.items():
            response = registrar.register(number, password, expires=3600,
                                          contacts=[f"<sip:{number}@{HOST}:{phone_port}>"])
            if response is None or response.status != 200:
                raise RuntimeError(f"{number} did not register: {response}")


def measure(step: Step, carrier: Carrier, pbx: Pbx, scenario: Path, hold: float,
            tmp: Path) -> Step:
    """Offer ``step.calls`` customer calls at ``step.rate`` and read what happened."""
    work = Path(tempfile.mkdtemp(prefix=f"{step.path}-{step.rate}-", dir=tmp))
    customers = [(f"+4670{step.rate:03d}{n:04d}", "", DID) for n in range(step.calls)]
    pid = pbx.process.pid if pbx.process else 0
    assert carrier.process is not None
    ours = step.path in PBX_PATHS
    cpu_before = cpu_seconds(pid) if ours else None
    waited_before = waited_seconds(pid) if ours else 0.0
    carrier_before, busy_before = cpu_seconds(carrier.process.pid), core_busy_seconds(SERVER_CORE)
    since, started = time.time(), time.monotonic()
    result = run_sipp(
        str(scenario), carrier.pstn, customers, calls=step.calls, rate=step.rate, tmp=work,
        timeout=step.calls / step.rate + KEY_AFTER_MS / 1000 + hold + 30,
        extra=["-mi", "127.0.0.2", "-mp", str(free_ports(4, "127.0.0.2")),
               "-l", str(step.calls), "-trace_rtt", "-rtt_freq", "1"])
    step.window = time.monotonic() - started
    step.carrier_cpu = cpu_seconds(carrier.process.pid) - carrier_before
    step.core_busy = core_busy_seconds(SERVER_CORE) - busy_before
    if cpu_before is not None:
        step.pbx_cpu = cpu_seconds(pid) - cpu_before
        step.pbx_waited = waited_seconds(pid) - waited_before
    step.ok, step.failed = result.successful, result.failed
    step.answers = response_times(work)
    if step.ok + step.failed < step.calls:
        step.failed = step.calls - step.ok  # sipp timed out with calls still open
    if ours:
        got = settled_records(pbx, since, step.ok)
        step.elsewhere = Counter(" ".join(json.loads(r.path or "[]")[-4:])
                                 for r in got if not through(r, step.path))
        step.reached = len(got) - step.elsewhere.total()
        step.unrecorded = max(0, step.ok - len(got))
    return step


def settled_records(pbx: Pbx, since: float, expected: int, quiet: float = 2.0,
                    limit: float = 20.0) -> list[Cdr]:
    """:func:`records` once there are ``expected`` or no more came for ``quiet``
    s: a loaded PBX writes its last call records some time after the BYEs."""
    deadline, count, changed = time.monotonic() + limit, -1, time.monotonic()
    while True:
        now, got = time.monotonic(), records(pbx, since)
        if len(got) != count:
            count, changed = len(got), now
        if count >= expected or now - changed >= quiet or now >= deadline:
            return got
        time.sleep(0.5)


def response_times(work: Path) -> list[tuple[float, float]]:
    """(ms since sipp started, INVITE → 200 ms) of each answered call, from
    sipp's ``-trace_rtt`` file."""
    answers = []
    for path in work.glob("*_rtt.csv"):
        for line in path.read_text().splitlines()[1:]:
            parts = line.split(";")
            if len(parts) >= 2 and parts[0].strip():
                answers.append((float(parts[0]), float(parts[1])))
    return answers


def records(pbx: Pbx, since: float) -> list[Cdr]:
    """The PBX's call records of calls begun since ``since`` (Unix time)."""
    store = Store(f"sqlite:///{pbx.data_dir / 'pbx.sqlite3'}")
    try:
        return [r for r in store.cdrs(limit=100000) if r.started_at >= since]
    finally:
        store.close()


def through(record: Cdr, path_name: str) -> bool:
    """The call came in by the trunk and, after the IVR, an agent of queue 700
    (path ``queue``) or 1002 after the ring group (``ringgroup``) answered it."""
    path = json.loads(record.path or "[]")
    if record.trunk != "carrier" or record.disposition != "answered" or "ivr:500" not in path:
        return False
    if path_name == "queue":
        agent = record.answered_by or ""
        return "queue:700" in path and (agent in DEMO_AGENTS
                                        or agent.isdigit() and int(agent) >= FIRST_AGENT)
    return record.answered_by == CALLEE[0] and "redirect:600" in path


def row(step: Step, ours: Step | None = None) -> str:
    """One line of the table; on Kamailio's line the ratio of ``ours`` (the
    first of the PBX's paths at the same rate) to it."""
    reached_text = f"{'':>8}" if step.reached is None else f"{step.reached:>8}"
    if ours is not None:
        reached_text += f"{ours.sustained / step.sustained:>7.2f}"
    other = f"{step.other:>6.0%}" if step.pbx_cpu is not None else f"{'-':>6}"
    pbx_text = (f"{step.per_call(step.pbx_cpu):>8.1f}{step.pbx_share:>6.0%}{step.pbx_wait:>6.0%}"
                if step.pbx_cpu is not None else f"{'-':>8}{'-':>6}{'-':>6}")
    return (f"{step.path:<9}{step.rate:>8}{step.ok:>6}{step.failed:>6}{step.sustained:>9.1f}"
            f"{step.latency(0.5):>8.1f}{step.latency(0.99):>8.1f}"
            f"{pbx_text}{step.per_call(step.carrier_cpu):>8.1f}{other}{reached_text}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="50,100,150,200,300,400,600",
                        help="offered new calls per second, comma-separated, rising")
    parser.add_argument("--seconds", type=float, default=4.0,
                        help="seconds of new calls per rate (calls = rate x seconds)")
    parser.add_argument("--hold", type=float, default=2.0,
                        help="seconds the customer stays after the key (talking to the agent)")
    parser.add_argument("--tries", type=int, default=2,
                        help="runs of a rate before a path stops climbing (a shared machine: "
                             "another program can take the core for a while)")
    parser.add_argument("--paths", default="queue,kamailio",
                        help=f"some of {', '.join(PATHS)}: kamailio alone looks for the ceiling")
    parser.add_argument("--agents", type=int, default=600,
                        help="queue 700's agents (the demo's 1002-1004, then 3000 ...): a rate "
                             "needs about rate x (hold + 0.5 s) of them")
    args = parser.parse_args()
    paths = [path for path in PATHS if path in args.paths.split(",")]
    if not paths or args.tries < 1 or args.agents < 1:
        parser.error(f"--paths names some of {', '.join(PATHS)}; --tries and --agents are 1 "
                     "or more")
    missing = [tool for tool in ("sipp", "kamailio") if shutil.which(tool) is None]
    if missing:
        print(f"needs {' and '.join(missing)} (apt-get install -y sip-tester kamailio)",
              file=sys.stderr)
        return 2
    rates = [int(rate) for rate in args.rates.split(",")]
    agents = dict(list(agents_of(args.agents).items())[:args.agents])
    pinned = len(os.sched_getaffinity(0)) > 1 and shutil.which("taskset") is not None
    if pinned:
        os.sched_setaffinity(0, {DRIVER_CORE})  # Kamailio and every sipp inherit it
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        (tmp / "pbx").mkdir()
        scenarios = {path: customer_scenario(tmp, audio=False, digits=key,
                                             digits_after_ms=KEY_AFTER_MS,
                                             hold_ms=int(args.hold * 1000))
                     for path, key in KEYS.items()}
        with kamailio_carrier(tmp, dids=(DID,)) as carrier, \
                running_demo(tmp / "pbx", rtp_ports="30000-40000", log_level="WARNING",
                             edit=staffed(agents)) as pbx, \
                phone(tmp) as phone_port:
            assert pbx.process is not None
            if pinned:
                subprocess.run(["taskset", "-a", "-pc", SERVER_CORE, str(pbx.process.pid)],
                               capture_output=True, check=True)
            connect_trunk(pbx, carrier, phone_port, agents)
            print(f"inbound trunk calls to {DID} through Kamailio to our PBX {our_version()}: "
                  f"queue = IVR 500, key 3, queue 700 ({len(agents)} agents, wrap-up 0) → "
                  f"sipp agent; ringgroup = IVR 500, key 1, ring group 600 → sipp 1002; "
                  f"kamailio = Kamailio → sipp directly; {args.seconds:.0f} s of calls per rate, "
                  f"{args.hold:.0f} s talk; PBX on core {SERVER_CORE}, Kamailio and sipp on "
                  f"core {DRIVER_CORE}")
            print(f"{'path':<9}{'offered':>8}{'ok':>6}{'fail':>6}{'200/s':>9}{'p50 ms':>8}"
                  f"{'p99 ms':>8}{'pbx ms':>8}{'core0':>6}{'wait':>6}{'kam ms':>8}{'other':>6}"
                  f"{'reached':>8}{'ratio':>7}")

            def run(path: str, rate: int) -> Step:
                if path == "kamailio":
                    carrier.route_inbound_to(HOST, phone_port)
                elif carrier.pbx_target is not None:
                    carrier.route_inbound_to(None)  # to the trunk's registered contact
                return measure(Step(path, rate, max(1, round(rate * args.seconds))),
                               carrier, pbx, scenarios.get(path, scenarios["queue"]), args.hold,
                               tmp)

            best = climb(rates, paths, args.tries, run)
    print(summary(best))
    print("200/s: answers per second, first to last; p50/p99: INVITE → 200 at the customer; "
          "pbx ms, kam ms: CPU per answered call; core0: the PBX's share of its core; wait: "
          "the PBX runnable without a core; other: core 0 busy with anything else; reached: "
          "records IVR → queue 700 → an agent (queue), IVR → ring group 600 → 1002 (ringgroup); "
          "ratio: 200/s of the PBX's first path / kamailio at that rate")
    return 0 if all(rate for path, (rate, _) in best.items() if path in PBX_PATHS) else 1


def climb(rates: list[int], paths: list[str], tries: int,
          run: Callable[[str, int], Step]) -> dict[str, tuple[int, bool]]:
    """Each path up the rates, printing every run, until a rate is not sustained
    in ``tries`` runs; per path the highest rate sustained and whether it
    sustained every rate offered."""
    best = {path: (0, True) for path in paths}
    for rate in rates:
        steps: dict[str, Step] = {}
        for path in paths:
            if not best[path][1]:
                continue
            for _ in range(tries):
                step = steps[path] = run(path, rate)
                ours = next((steps[p] for p in PBX_PATHS if p in steps), None)
                print(row(step, ours if path == "kamailio" else None), flush=True)
                for note in notes(step):
                    print(f"        {note}", flush=True)
                if step.green:
                    break
            best[path] = (rate, True) if step.green else (best[path][0], False)
    return best


def notes(step: Step) -> list[str]:
    """Why calls of the PBX's paths did not count as through."""
    found = [f"{count} not through, their records end: {hops}"
             for hops, count in step.elsewhere.most_common(3)]
    if step.unrecorded:
        found.append(f"{step.unrecorded} answered calls without a record")
    return found


def summary(best: dict[str, tuple[int, bool]]) -> str:
    """The highest rates sustained and their ratios to Kamailio's."""
    parts = [f"{path} {rate}/s{'+' if every else ''}" for path, (rate, every) in best.items()]
    text = (f"sustained with 0 failed calls (every call answered and through, answers at "
            f"{KEPT_UP:.0%} of the offered rate or more): {', '.join(parts)}")
    ceiling, every = best.get("kamailio", (0, False))
    if ceiling:
        text += "; " + ", ".join(f"{path} / kamailio {best[path][0] / ceiling:.2f}"
                                 for path in PBX_PATHS if path in best)
        if every:
            text += " (Kamailio kept up at every rate offered: its ceiling is higher)"
    return text


if __name__ == "__main__":
    sys.exit(main())
