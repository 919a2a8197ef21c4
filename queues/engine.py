"""The ACD engine (pure: no I/O, time passed in): who waits where, which agent
is offered which caller, and what every change publishes.

The model follows Asterisk's app_queue with FreeSWITCH's tiers:

* A queue holds callers in order: priority callers first, then by the time
  they joined.  A caller who asked for a callback keeps their entry (without a
  channel), so they are neither ahead of nor behind those who stayed.
* An agent (an extension) is a member of one or more queues with a penalty
  each; they take one call at a time.  Their state is derived from a few
  facts (logged in, paused, ringing, on a call, wrap-up) and every change is an
  :class:`~pbx.events.AgentStateChanged`.
* :meth:`Acd.dispatch` walks the callers of all queues, heavier queues first
  (``weight``), then priority, then longest waiting, and hands each the free
  agents its strategy picks.  Lower penalties go first; with
  ``penalty_wait`` a further tier joins after each such wait.
* The service (``queues/service.py``) rings the agents an :class:`Offer`
  names and reports back (:meth:`Acd.ring_failed`, :meth:`Acd.answered`,
  :meth:`Acd.completed`); :meth:`Acd.tick` (about once a second) ends
  wrap-ups, overflows callers who waited too long, says positions and asks
  for the next offers.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from pbx.events import (
    AgentStateChanged, QueueAbandoned, QueueAnswered, QueueCallback, QueueCompleted, QueueEvent,
    QueueJoined, QueueOffered, QueueOverflowed,
)
from pbx.queue_settings import QueueConfig

AGENT_STATES = ("logged_out", "available", "ringing", "on_queue_call", "on_direct_call",
                "wrap_up", "paused")
HOLDTIME_SMOOTHING = 0.25  # Asterisk: holdtime = (3 * holdtime + latest wait) / 4


class QueueError(Exception):
    """A request the engine refuses; ``status`` is the HTTP answer it deserves."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(eq=False)
class Agent:
    """An extension that answers queue calls (the facts; :meth:`state` derives)."""

    organisation: int
    extension: str
    logged_in: bool = True
    pause_reason: str | None = None  # None: not paused
    ringing: Caller | None = None  # rung for (or, for a callback, held for) this caller
    on_call: str = ""  # the queue whose caller they talk to
    direct_calls: int = 0  # calls of their own (not from a queue)
    wrap_until: float = 0.0
    last_call: float = 0.0  # when their last queue call ended (leastrecent)
    published: str = ""  # the state last told

    def state(self, now: float) -> str:
        if self.on_call:
            return "on_queue_call"
        if self.ringing is not None:
            return "ringing"
        if self.direct_calls:
            return "on_direct_call"
        if not self.logged_in:
            return "logged_out"
        if now < self.wrap_until:
            return "wrap_up"
        if self.pause_reason is not None:
            return "paused"
        return "available"


@dataclass(eq=False)
class Caller:
    """A caller waiting in a queue (or, with ``callback`` set, waiting on hook)."""

    organisation: int
    queue: str
    call_id: str
    number: str
    joined_at: float
    priority: int
    seq: int
    ringing: set[str] = field(default_factory=set)  # agents rung for them now
    tried: set[str] = field(default_factory=set)  # agents tried this round
    retry_at: float = 0.0
    last_ring: float = 0.0  # when an agent was last added (ring-progressively)
    callback: str = ""  # the number to call back ("": the caller is on the line)
    callback_attempts: int = 0
    dialling: bool = False  # the callback is being dialled
    called_back: bool = False  # they answered their callback and wait on the line again
    agent: str = ""  # the agent who took the call
    announced: int = 0  # the position last said (0: none yet)
    next_announce: float = 0.0
    next_periodic: float = 0.0

    @property
    def key(self) -> tuple[int, float, int]:
        return (-self.priority, self.joined_at, self.seq)


@dataclass(frozen=True)
class Offer:
    """Ring ``agents`` for ``caller`` (a callback: ``agents`` holds the one agent
    reserved, and the caller is to be dialled first)."""

    caller: Caller
    agents: tuple[str, ...]

    @property
    def callback(self) -> bool:
        return bool(self.caller.callback)


@dataclass(frozen=True)
class Announcement:
    """What a waiting caller is told now: their place (``position``, 0: not said),
    the estimated wait in minutes (0: not said), and/or the periodic prompt."""

    caller: Caller
    position: int = 0
    minutes: int = 0
    periodic: str = ""


@dataclass(frozen=True)
class Overflow:
    caller: Caller
    destination: str
    reason: str


@dataclass(frozen=True)
class Tick:
    """What :meth:`Acd.tick` found to do."""

    offers: list[Offer]
    overflows: list[Overflow]
    announcements: list[Announcement]


@dataclass(eq=False)
class Queue:
    organisation: int
    settings: QueueConfig
    callers: list[Caller] = field(default_factory=list)  # in order
    rr_last: str = ""  # rrmemory: the member rung last
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    talk: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    holdtime: float = 0.0  # smoothed wait of answered callers
    abandoned: dict[str, tuple[float, int, float]] = field(default_factory=dict)

    @property
    def number(self) -> str:
        return self.settings.number

    def position(self, caller: Caller) -> int:
        return self.callers.index(caller) + 1


class Acd:
    """The queues and agents of a node.  ``now`` gives the time, ``publish``
    takes every event, ``eligible(organisation, extension)`` says whether an
    agent's presence profile takes queue calls now."""

    def __init__(self, now: Callable[[], float], publish: Callable[[QueueEvent], None],
                 rng: random.Random | None = None,
                 eligible: Callable[[int, str], bool] = lambda organisation, extension: True
                 ) -> None:
        self.now = now
        self.publish = publish
        self.rng = rng or random.Random()
        self.eligible = eligible
        self.queues: dict[tuple[int, str], Queue] = {}
        self.agents: dict[tuple[int, str], Agent] = {}
        self._seq = 0

    # ------------------------------------------------------------ configuration

    def configure(self, organisation: int, settings: Iterable[QueueConfig]) -> None:
        """The organisation's queues as configured now: new ones start empty,
        changed ones keep their callers and figures, members become agents
        (logged in, as Asterisk's static members are)."""
        wanted = {s.number: s for s in settings}
        for (org, number), queue in list(self.queues.items()):
            if org == organisation and number not in wanted and not queue.callers:
                del self.queues[org, number]
        for number, config in wanted.items():
            queue = self.queues.get((organisation, number))
            if queue is None:
                self.queues[organisation, number] = Queue(organisation, config)
            else:
                queue.settings = config
            for extension in config.penalties:
                self.agents.setdefault((organisation, extension),
                                       Agent(organisation, extension))

    def queue(self, organisation: int, number: str) -> Queue:
        queue = self.queues.get((organisation, number))
        if queue is None:
            raise QueueError(404, f"no queue {number}")
        return queue

    def agent(self, organisation: int, extension: str) -> Agent:
        agent = self.agents.get((organisation, extension))
        if agent is None or not self.queues_of(agent):
            raise QueueError(404, f"{extension} is no agent of any queue")
        return agent

    def queues_of(self, agent: Agent) -> tuple[str, ...]:
        return tuple(sorted(q.number for (org, _), q in self.queues.items()
                            if org == agent.organisation
                            and agent.extension in q.settings.penalties))

    def agents_of(self, queue: Queue) -> list[Agent]:
        return [self.agents[queue.organisation, ext] for ext in queue.settings.penalties
                if (queue.organisation, ext) in self.agents]

    # ------------------------------------------------------------ agents

    def announce(self) -> None:
        """Publish the state of every agent not told yet (new members, and all
        of them at start), so statistics and wallboards know them before their
        first call."""
        for agent in self.agents.values():
            self._told(agent)

    def _told(self, agent: Agent) -> None:
        """Publish the agent's state if it changed."""
        now = self.now()
        state = agent.state(now)
        if state != agent.published:
            agent.published = state
            reason = (agent.pause_reason or "") if state == "paused" else \
                "callback" if state == "ringing" and agent.ringing is not None \
                and agent.ringing.callback else ""
            self.publish(AgentStateChanged(agent.organisation, agent.extension, state, reason,
                                           self.queues_of(agent), now))

    def login(self, organisation: int, extension: str) -> Agent:
        agent = self.agent(organisation, extension)
        if agent.logged_in:
            raise QueueError(409, f"agent {extension} is logged in already")
        agent.logged_in = True
        self._told(agent)
        return agent

    def logout(self, organisation: int, extension: str) -> Agent:
        """Out of distribution; a call in progress goes on."""
        agent = self.agent(organisation, extension)
        if not agent.logged_in:
            raise QueueError(409, f"agent {extension} is logged out already")
        agent.logged_in = False
        agent.pause_reason = None
        self._told(agent)
        return agent

    def pause(self, organisation: int, extension: str, reason: str = "") -> Agent:
        agent = self.agent(organisation, extension)
        if not agent.logged_in:
            raise QueueError(409, f"agent {extension} is logged out: log in first")
        if agent.pause_reason is not None:
            raise QueueError(409, f"agent {extension} is paused already")
        agent.pause_reason = reason
        self._told(agent)
        return agent

    def unpause(self, organisation: int, extension: str) -> Agent:
        agent = self.agent(organisation, extension)
        if agent.pause_reason is None:
            raise QueueError(409, f"agent {extension} is not paused")
        agent.pause_reason = None
        self._told(agent)
        return agent

    def direct_call(self, organisation: int, extension: str, started: bool) -> None:
        """An agent's own call (not from a queue) began or ended."""
        agent = self.agents.get((organisation, extension))
        if agent is None:
            return
        agent.direct_calls = max(0, agent.direct_calls + (1 if started else -1))
        self._told(agent)

    def _free(self, agent: Agent, queue: Queue, now: float) -> bool:
        return (agent.logged_in and agent.pause_reason is None and agent.ringing is None
                and not agent.on_call and now >= agent.wrap_until
                and (not agent.direct_calls or queue.settings.ringinuse)
                and self.eligible(agent.organisation, agent.extension))

    def staffed(self, queue: Queue) -> bool:
        """Is any member logged in and not paused (joinempty, leavewhenempty)?"""
        return any(a.logged_in and a.pause_reason is None for a in self.agents_of(queue))

    # ------------------------------------------------------------ callers

    def join(self, organisation: int, number: str, call_id: str, caller: str,
             did: str = "") -> Caller:
        """A caller enters queue ``number``; QueueError 404 (no such queue) or
        503 with the reason (full, no agents) when they may not."""
        queue = self.queue(organisation, number)
        settings = queue.settings
        if settings.maxlen and len(queue.callers) >= settings.maxlen:
            raise QueueError(503, "full")
        if not settings.joinempty and not self.staffed(queue):
            raise QueueError(503, "joinempty")
        now = self.now()
        priority = int(bool({caller, did} & set(settings.priority_callers)))
        self._seq += 1
        entry = Caller(organisation, number, call_id, caller, now, priority, self._seq,
                       next_announce=now, next_periodic=now + settings.periodic_announce_frequency)
        kept = queue.abandoned.pop(caller, None)
        if kept is not None and now - kept[2] <= settings.abandoned_resume:
            entry.joined_at, entry.seq = kept[0], kept[1]
        self._insert(queue, entry)
        self.publish(QueueJoined(organisation, number, call_id, caller, queue.position(entry),
                                 priority, now))
        return entry

    def _insert(self, queue: Queue, caller: Caller) -> None:
        keys = [c.key for c in queue.callers]
        queue.callers.insert(bisect.bisect(keys, caller.key), caller)

    def _remove(self, caller: Caller) -> tuple[Queue, int, list[str]]:
        """Take ``caller`` out of their queue; returns the queue, the position
        they had and the agents that rang for them (now free: cancel their rings)."""
        queue = self.queues[caller.organisation, caller.queue]
        position = queue.position(caller) if caller in queue.callers else 0
        if position:
            queue.callers.remove(caller)
        return queue, position, self._release(caller)

    def _release(self, caller: Caller) -> list[str]:
        released = sorted(caller.ringing)
        caller.ringing.clear()
        for extension in released:
            agent = self.agents[caller.organisation, extension]
            if agent.ringing is caller:
                agent.ringing = None
                self._told(agent)
        return released

    def abandon(self, caller: Caller) -> list[str]:
        """The caller hung up while waiting or while agents rang; returns the
        agents whose ringing is to be cancelled."""
        queue, position, released = self._remove(caller)
        now = self.now()
        if queue.settings.abandoned_resume:
            queue.abandoned[caller.number] = (caller.joined_at, caller.seq, now)
        self.publish(QueueAbandoned(caller.organisation, caller.queue, caller.call_id, position,
                                    now - caller.joined_at, now))
        return released

    def overflow(self, caller: Caller, reason: str) -> Overflow:
        """Send the caller on to the queue's overflow destination."""
        queue, _, _ = self._remove(caller)
        now = self.now()
        destination = queue.settings.overflow
        self.publish(QueueOverflowed(caller.organisation, caller.queue, caller.call_id,
                                     now - caller.joined_at, destination, reason, now))
        return Overflow(caller, destination, reason)

    def request_callback(self, caller: Caller) -> list[str]:
        """The caller hangs up keeping their place; they are called back on
        ``caller.number`` when their turn comes.  Returns rings to cancel."""
        caller.callback = caller.number
        released = self._release(caller)
        self.publish(QueueCallback(caller.organisation, caller.queue, caller.call_id,
                                   caller.number, "requested", "", self.now()))
        return released

    def restore_callback(self, organisation: int, number: str, call_id: str, callback: str,
                         joined_at: float, priority: int, attempts: int) -> Caller | None:
        """A callback kept across a restart, back in its place (None: the queue is gone)."""
        queue = self.queues.get((organisation, number))
        if queue is None:
            return None
        self._seq += 1
        entry = Caller(organisation, number, call_id, callback, joined_at, priority, self._seq,
                       callback=callback, callback_attempts=attempts)
        self._insert(queue, entry)
        return entry

    def callback_dialled(self, caller: Caller) -> None:
        caller.dialling = True
        self.publish(QueueCallback(caller.organisation, caller.queue, caller.call_id,
                                   caller.callback, "dialled", next(iter(caller.ringing), ""),
                                   self.now()))

    def callback_answered(self, caller: Caller) -> str:
        """The caller picked up the callback: from now on they wait on the line
        like anyone (at their place); returns the reserved agent to ring."""
        caller.dialling = False
        caller.callback = ""
        caller.called_back = True
        return next(iter(caller.ringing), "")

    def callback_failed(self, caller: Caller) -> bool:
        """The callback was not answered: the reserved agent is freed and the
        caller keeps their place for another attempt after ``callback_retry``;
        True when that was the last attempt (they are dropped, "failed")."""
        queue = self.queues[caller.organisation, caller.queue]
        caller.dialling = False
        caller.callback_attempts += 1
        agent = next(iter(caller.ringing), "")
        self._release(caller)
        now = self.now()
        if caller.callback_attempts >= queue.settings.callback_attempts:
            self._remove(caller)
            self.publish(QueueCallback(caller.organisation, caller.queue, caller.call_id,
                                       caller.callback, "failed", agent, now))
            return True
        caller.retry_at = now + queue.settings.callback_retry
        return False

    # ------------------------------------------------------------ ringing agents

    def ring_failed(self, caller: Caller, extension: str, no_answer: bool) -> None:
        """The agent's phones did not take the call (``no_answer``: they rang out,
        which pauses the agent when the queue has ``autopause``)."""
        agent = self.agents[caller.organisation, extension]
        queue = self.queues[caller.organisation, caller.queue]
        caller.ringing.discard(extension)
        if agent.ringing is caller:
            agent.ringing = None
            if no_answer and queue.settings.autopause and agent.pause_reason is None:
                agent.pause_reason = "autopause"
            self._told(agent)
        if not caller.ringing:
            caller.retry_at = self.now() + queue.settings.retry

    def answered(self, caller: Caller, extension: str) -> list[str]:
        """``extension`` took the caller: they leave the queue (those behind move
        up); returns the other agents still ringing (cancel them)."""
        queue = self.queues[caller.organisation, caller.queue]
        now = self.now()
        caller.ringing.discard(extension)
        _, _, others = self._remove(caller)
        agent = self.agents[caller.organisation, extension]
        agent.ringing = None
        agent.on_call = queue.number
        caller.agent = extension
        wait = now - caller.joined_at
        queue.calls[extension] += 1
        queue.holdtime = wait if not queue.holdtime else \
            queue.holdtime + HOLDTIME_SMOOTHING * (wait - queue.holdtime)
        self.publish(QueueAnswered(caller.organisation, queue.number, caller.call_id, extension,
                                   wait, now))
        if caller.called_back:
            self.publish(QueueCallback(caller.organisation, queue.number, caller.call_id,
                                       caller.number, "connected", extension, now))
        self._told(agent)
        return others

    def completed(self, caller: Caller, talk: float, hangup_by: str) -> None:
        """The call between ``caller`` and their agent ended; wrap-up begins."""
        queue = self.queues[caller.organisation, caller.queue]
        agent = self.agents[caller.organisation, caller.agent]
        now = self.now()
        agent.on_call = ""
        agent.last_call = now
        agent.wrap_until = now + queue.settings.wrapuptime
        queue.talk[agent.extension] += talk
        self.publish(QueueCompleted(caller.organisation, queue.number, caller.call_id,
                                    agent.extension, talk, hangup_by, now))
        self._told(agent)

    # ------------------------------------------------------------ distribution

    def _tiers(self, queue: Queue, caller: Caller, now: float) -> int:
        """The highest penalty the caller may be offered to after their wait."""
        penalties = sorted(set(queue.settings.penalties.values()))
        if not queue.settings.penalty_wait:
            return penalties[-1] if penalties else 0
        opened = int((now - caller.joined_at) // queue.settings.penalty_wait)
        return penalties[min(opened, len(penalties) - 1)]

    def candidates(self, queue: Queue, caller: Caller, now: float) -> list[str]:
        """The free agents to offer ``caller`` to, best first, by the strategy."""
        settings = queue.settings
        penalty = settings.penalties
        free = [ext for ext in penalty
                if (queue.organisation, ext) in self.agents
                and self._free(self.agents[queue.organisation, ext], queue, now)]
        if settings.strategy != "wrandom":  # wrandom weighs by penalty instead
            ceiling = self._tiers(queue, caller, now)
            free = [ext for ext in free if penalty[ext] <= ceiling]
            if free:
                lowest = min(penalty[ext] for ext in free)
                free = [ext for ext in free if penalty[ext] == lowest]
        if settings.strategy != "ringall":
            untried = [ext for ext in free if ext not in caller.tried]
            if not untried:
                caller.tried.clear()
            free = untried or free
        return self._order(queue, free)

    def _order(self, queue: Queue, free: list[str]) -> list[str]:
        strategy = queue.settings.strategy
        members = list(queue.settings.penalties)
        if strategy in ("rrmemory", "rrordered"):
            start = members.index(queue.rr_last) + 1 if queue.rr_last in members else 0
            turn = {ext: (members.index(ext) - start) % len(members) for ext in free}
            return sorted(free, key=turn.__getitem__)
        if strategy == "leastrecent":
            return sorted(free, key=lambda ext: self.agents[queue.organisation, ext].last_call)
        if strategy == "fewestcalls":
            return sorted(free, key=lambda ext: queue.calls[ext])
        if strategy == "leasttalktime":
            return sorted(free, key=lambda ext: queue.talk[ext])
        if strategy == "random":
            return self.rng.sample(free, len(free))
        if strategy == "wrandom":  # Asterisk: random() % ((1 + penalty) * 1000), lowest wins
            penalty = queue.settings.penalties
            draw = {ext: self.rng.random() * (1 + penalty[ext]) for ext in free}
            return sorted(free, key=draw.__getitem__)
        return free  # ringall, linear, ring-progressively: in the configured order

    def waiting(self) -> list[Caller]:
        """Every caller of the node in the order agents serve them: heavier
        queues first, then priority callers, then the longest waiting."""
        return list(self._in_order())

    def _in_order(self) -> Iterator[Caller]:
        """:meth:`waiting`, lazily: each queue keeps its callers in order (joins
        are inserted by bisection), so the node's order is a merge of the queues'
        lists, not a sort of every caller on each dispatch."""
        weight = {key: q.settings.weight for key, q in self.queues.items()}
        return heapq.merge(*(q.callers for q in self.queues.values() if q.callers),
                           key=lambda c: (-weight[c.organisation, c.queue], *c.key))

    def dispatch(self) -> list[Offer]:
        """Offer free agents to waiting callers (see the module's docstring)."""
        now = self.now()
        offers = []
        drained: set[tuple[int, str]] = set()  # queues with no agent to offer to anyone
        queues = sum(1 for q in self.queues.values() if q.callers)
        for caller in self._in_order():
            key = (caller.organisation, caller.queue)
            if key in drained:
                continue
            queue = self.queues[key]
            strategy = queue.settings.strategy
            adding = (strategy == "ring-progressively" and caller.ringing and not caller.callback
                      and now >= caller.last_ring + queue.settings.progressive_delay)
            if (caller.ringing and not adding) or caller.dialling or now < caller.retry_at:
                continue
            free = self.candidates(queue, caller, now)
            if not free:
                if not queue.settings.penalty_wait:  # else a later caller may reach further
                    drained.add(key)
                    if len(drained) == queues:
                        break  # no queue has an agent left for anyone: the rest would wait
                continue
            chosen = tuple(free if strategy == "ringall" and not caller.callback else free[:1])
            self._offer(queue, caller, chosen, now)
            offers.append(Offer(caller, chosen))
        return offers

    def _offer(self, queue: Queue, caller: Caller, agents: tuple[str, ...], now: float) -> None:
        caller.ringing.update(agents)
        caller.tried.update(agents)
        caller.last_ring = now
        queue.rr_last = agents[-1]
        for extension in agents:
            agent = self.agents[caller.organisation, extension]
            agent.ringing = caller
            self.publish(QueueOffered(caller.organisation, queue.number, caller.call_id,
                                      extension, now))
            self._told(agent)

    # ------------------------------------------------------------ time

    def tick(self) -> Tick:
        """Once a second or so: wrap-ups end, callers overflow, announcements
        fall due, and free agents are offered the waiting callers."""
        now = self.now()
        for agent in self.agents.values():
            if agent.published == "wrap_up" and now >= agent.wrap_until:
                self._told(agent)
        overflows = []
        announcements = []
        staffed = {key: self.staffed(queue) for key, queue in self.queues.items()}
        for caller in self.waiting():  # a copy: overflows leave their queues
            key = (caller.organisation, caller.queue)
            queue = self.queues[key]
            if caller.callback:
                continue
            reason = self._overflow_reason(queue, caller, now, staffed[key])
            if reason:
                overflows.append(self.overflow(caller, reason))
                continue
            said = self._announcement(queue, caller, now)
            if said is not None:
                announcements.append(said)
        return Tick(self.dispatch(), overflows, announcements)

    def _overflow_reason(self, queue: Queue, caller: Caller, now: float,
                         staffed: bool) -> str:
        settings = queue.settings
        waited = now - caller.joined_at
        if caller.ringing:
            return ""
        if settings.maxwait and waited >= settings.maxwait:
            return "maxwait"
        if settings.leavewhenempty and not staffed:
            return "noagents"
        if settings.maxwait_noagents and not staffed and waited >= settings.maxwait_noagents:
            return "noagents"
        return ""

    def announcement(self, caller: Caller) -> Announcement | None:
        """What is due to be said to ``caller`` now (on joining: their place)."""
        return self._announcement(self.queues[caller.organisation, caller.queue], caller,
                                  self.now())

    def _announcement(self, queue: Queue, caller: Caller, now: float) -> Announcement | None:
        """Position and estimated wait every ``announce-frequency`` seconds (the
        position only within the limit and only when it improved), and the
        periodic prompt every ``periodic-announce-frequency`` seconds."""
        settings = queue.settings
        if caller.ringing:
            return None
        position = minutes = 0
        periodic = ""
        if settings.announce_frequency and now >= caller.next_announce:
            caller.next_announce = now + settings.announce_frequency
            place = queue.position(caller)
            if (settings.announce_position and (not caller.announced or place < caller.announced)
                    and (not settings.announce_position_limit
                         or place <= settings.announce_position_limit)):
                position = caller.announced = place
            remaining = queue.holdtime - (now - caller.joined_at)
            if settings.announce_holdtime and remaining > 0:
                minutes = math.ceil(remaining / 60)
        if settings.periodic_announce_frequency and now >= caller.next_periodic:
            caller.next_periodic = now + settings.periodic_announce_frequency
            periodic = settings.periodic_announce
        if position or minutes or periodic:
            return Announcement(caller, position, minutes, periodic)
        return None

    def estimated_wait(self, queue: Queue) -> float:
        """Seconds a new caller may expect to wait (the smoothed wait of answered callers)."""
        return queue.holdtime
