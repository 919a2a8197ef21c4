#!/usr/bin/env python3
"""The ACD engine alone (queues/engine.py, no SIP, no media): how long the
decision takes that sends an agent's phone an INVITE, with many callers
waiting.

50 queues of 10 agents each (500 agents, every one also a member of the next
queue with penalty 5, so agents serve two queues), ``--callers`` callers
spread over them, every agent on a call.  Then, ``--rounds`` times, the agent
whose call ends first completes it and the engine is asked for offers
(``completed`` + ``dispatch``: what runs between "agent available" and the
INVITE); the offered caller is answered at once, so every agent stays busy
and the queues stay long.  Also timed: one ``tick`` (wrap-ups, overflows,
position announcements every 30 s for every caller) with all callers waiting.

Prints p50/p99/max in milliseconds.  Run: ``PYTHONPATH=. python bench/queue_engine.py``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from pbx.queue_settings import QueueConfig
from queues.engine import Acd

QUEUES = 50
AGENTS_PER_QUEUE = 10


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (f"p50 {statistics.median(ordered) * 1000:.3f} ms, p99 {p99 * 1000:.3f} ms, "
            f"max {ordered[-1] * 1000:.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--callers", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=500)
    parser.add_argument("--strategy", default="rrmemory")
    args = parser.parse_args()

    clock = [1_000_000.0]
    events: list[object] = []
    acd = Acd(lambda: clock[0], events.append, random.Random(1))
    agents = [f"{1000 + n}" for n in range(QUEUES * AGENTS_PER_QUEUE)]
    configs = []
    for q in range(QUEUES):
        own = agents[q * AGENTS_PER_QUEUE:(q + 1) * AGENTS_PER_QUEUE]
        helpers = agents[((q + 1) % QUEUES) * AGENTS_PER_QUEUE:][:AGENTS_PER_QUEUE]
        configs.append(QueueConfig.model_validate({
            "number": str(700 + q), "strategy": args.strategy,
            "members": [*own, *(f"{a}:5" for a in helpers)],
            "announce-position": True, "announce-frequency": 30}))
    acd.configure(1, configs)
    # every agent on a call first, then the queue fills up
    talking = []
    for n, agent in enumerate(agents):
        caller = acd.join(1, str(700 + n % QUEUES), f"busy{n}", f"07{n}")
        acd.answered(caller, agent)
        talking.append(caller)
    for n in range(args.callers):
        clock[0] += 0.01
        acd.join(1, str(700 + n % QUEUES), f"call{n}", f"08{n}")

    started = time.perf_counter()
    acd.tick()
    tick = time.perf_counter() - started

    samples = []
    for _ in range(args.rounds):
        clock[0] += 1
        ending = talking.pop(0)
        started = time.perf_counter()
        acd.completed(ending, 60.0, "caller")
        offers = acd.dispatch()
        samples.append(time.perf_counter() - started)
        for offer in offers:  # the agent answers: still every agent busy
            acd.answered(offer.caller, offer.agents[0])
            talking.append(offer.caller)
    waiting = sum(len(q.callers) for q in acd.queues.values())
    print(f"{QUEUES} queues, {len(agents)} agents, {waiting} callers waiting, "
          f"strategy {args.strategy}")
    print(f"agent available → offer ({args.rounds} rounds): {percentiles(samples)}")
    print(f"one tick with every caller waiting: {tick * 1000:.1f} ms")


if __name__ == "__main__":
    main()
