"""The queue service (destination kind ``queue``, ident: the queue's number) and
the agents' feature codes (kind ``queue-agent``), on the application interface.

A caller is answered and hears music on hold (the queue's class) while the
engine (:mod:`queues.engine`) decides; agents are rung on their own phones
only (``dial(devices_only=True)``: DND or a profile that takes no queue calls
refuses), for ``timeout`` seconds; the first to answer is connected with
``connect`` (with ``after`` when the queue asks a survey), the others stop
ringing.  A caller who hangs up while agents ring stops that ringing at once.

Callback ("press 1"): the caller hangs up and keeps their entry; when it is
their turn the engine reserves a free agent first, then the caller is dialled
(``callback_attempts`` times, ``callback_retry`` apart); answered, they wait
at the head of the line while that agent rings.  Pending callbacks are in the
store and come back after a restart.

The end of a connected call comes as the call's ``CallEnded`` on the event bus
(the channels belong to call control from ``connect`` on); agents' own calls
(``CallAnswered`` / ``CallEnded`` of calls that are not the queue's) make them
``on_direct_call``.  A call folded into another (a pickup, Replaces) ends with
``merged_into``: its agents stay on a direct call until that one ends.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from pbx.calls.channel import Audio, CallControl, Cancel, Channel, Clock, Dialling, Party
from pbx.directory import Directory
from pbx.events import (
    CallAnswered, CallEnded, CallStarted, Event, QueueEvent, QueueOverflowed, SurveyAnswered,
)
from pbx.models import QueueCallbackRequest
from pbx.queue_settings import QueueConfig
from pbx.router import QUEUE, QUEUE_AGENT
from pbx.tasks import Worker, in_thread
from queues.engine import Acd, Agent, Announcement, Caller, Offer, QueueError
from queues.store import AgentChoice, QueueStore

log = logging.getLogger("queues")

TICK = 1.0  # seconds between the engine's rounds (wrap-ups, overflows, announcements)
CALLBACK_KEY = "1"
PAUSE_REASONS = {"": "break", "1": "lunch", "2": "admin", "3": "training", "4": "meeting"}


def said_number(n: int) -> tuple[str, ...]:
    """A count as prompts: a word up to 59, else digit by digit."""
    return (f"number_{n}",) if 0 < n < 60 else tuple(f"digit_{c}" for c in str(n))


def words(announcement: Announcement) -> tuple[Audio, ...]:
    """What a waiting caller hears: "You are number three in the queue. Your
    estimated waiting time is about four minutes." and/or the periodic prompt."""
    said: tuple[Audio, ...] = ()
    if announcement.position:
        said += ("queue_you_are", *said_number(announcement.position), "queue_in_line")
    if announcement.minutes:
        said += ("queue_wait_about", *said_number(announcement.minutes),
                 "minute" if announcement.minutes == 1 else "minutes")
    if announcement.periodic:
        said += (announcement.periodic,)
    return said


@dataclass(eq=False)
class Live:
    """A caller's side the engine does not see: their channel and the rings."""

    caller: Caller
    channel: Channel | None
    dials: dict[str, Dialling] = field(default_factory=dict)  # ringing agents
    answered_at: float = 0.0
    caller_is_a: bool = True  # the caller's leg is the call's first (not a callback)


class QueueApp:
    """ACD queues of one node; :attr:`acd` is the engine (the admin API reads it)."""

    kind = QUEUE

    def __init__(self, directory: Directory, calls: CallControl, clock: Clock,
                 publish: Callable[[QueueEvent], None], store: QueueStore | None = None,
                 worker: Worker = in_thread, rng: random.Random | None = None,
                 configured: Callable[[int, Iterable[QueueConfig]], None] | None = None) -> None:
        self.directory = directory
        self.configured = configured  # told each tenant's queues (the statistics' thresholds)
        self.calls = calls
        self.clock = clock
        self.publish = publish
        self.store = store
        self.worker = worker
        self.acd = Acd(clock.now, publish, rng, eligible=self._eligible)
        self.live: dict[str, Live] = {}  # by the caller's call id
        self.talking: dict[str, Live] = {}  # connected, by the call's record id
        self.queue_dials: set[str] = set()  # calls that ring agents for a queue
        self.direct: dict[str, list[tuple[int, str]]] = {}  # agents' own calls
        self._configured: dict[int, object] = {}
        self._soon: Cancel | None = None
        self.sync()
        if store is not None:
            self._restore(store)
        self.acd.announce()  # every agent's state, as restored
        self._timer = clock.call_later(TICK, self._tick)

    # ------------------------------------------------------------ configuration

    def sync(self) -> None:
        """Follow the directory: a reload gives each tenant a new ``queues`` mapping."""
        for tenant in self.directory.tenants.values():
            if self._configured.get(tenant.id) is not tenant.queues:
                self._configured[tenant.id] = tenant.queues
                self.acd.configure(tenant.id, tenant.queues.values())
                if self.configured is not None:
                    self.configured(tenant.id, tenant.queues.values())
                self.acd.announce()  # new members are agents from now on

    def _restore(self, store: QueueStore) -> None:
        """Agents' choices and pending callbacks from before a restart."""
        for choice in store.agents():
            agent = self.acd.agents.get((choice.organisation, choice.extension))
            if agent is not None:
                agent.logged_in = choice.logged_in
                agent.pause_reason = choice.pause_reason
        for row in store.callbacks():
            caller = self.acd.restore_callback(row.organisation_id, row.queue, row.call_id,
                                               row.number, row.joined_at, row.priority,
                                               row.attempts)
            if caller is not None:
                self.live[caller.call_id] = Live(caller, None)
                log.info("callback to %s for queue %s restored (waiting since %.0f)",
                         row.number, row.queue, row.joined_at)

    def _eligible(self, organisation: int, extension: str) -> bool:
        """Does the agent's phone take queue calls now (DND, presence profile)?"""
        tenant = self.directory.tenants.get(organisation)
        ext = tenant.extensions.get(extension) if tenant is not None else None
        if tenant is None or ext is None or ext.dnd:
            return False
        return tenant.presence.admission(ext, "queue", self.clock.now()).through

    def _background(self, job: Callable[[], None]) -> None:
        self.worker(job, lambda: None)

    # ------------------------------------------------------------ callers

    def start(self, channel: Channel, ident: str) -> None:
        self.sync()
        party = channel.party
        tenant = self.directory.tenants.get(party.organisation)
        settings = tenant.queues.get(ident) if tenant is not None else None
        if settings is None:
            channel.hang_up(404)
            return
        try:
            caller = self.acd.join(party.organisation, ident, channel.id, party.number,
                                   party.dialled)
        except QueueError as refused:
            log.info("call %s: queue %s refuses (%s)", channel.id, ident, refused.reason)
            if settings.overflow:
                self.publish(QueueOverflowed(party.organisation, ident, channel.id, 0.0,
                                             settings.overflow, refused.reason,
                                             self.clock.now()))
                channel.redirect(settings.overflow)
            else:
                channel.hang_up(486 if refused.reason == "full" else 480)
            return
        live = Live(caller, channel)
        self.live[channel.id] = live
        if not channel.answer():
            self._left(live)
            return
        channel.on_hangup(lambda: self._left(live))
        said = self.acd.announcement(caller)
        self._hold(live, words(said) if said is not None else (), offer=True)
        channel.on_key(lambda key: self._key(live, key))
        log.info("call %s from %s joins queue %s", channel.id, party.number, ident)
        self._run(self.acd.dispatch())

    def _hold(self, live: Live, said: tuple[Audio, ...], offer: bool = False) -> None:
        """Say something (if anything; with ``offer``, the callback offer after
        it when the queue makes one), then music on hold."""
        channel = live.channel
        if channel is None or not channel.alive:
            return
        settings = self.acd.queue(live.caller.organisation, live.caller.queue).settings
        if offer and settings.callback and not live.caller.called_back:
            said += ("queue_callback_offer",)
        if said:
            channel.play(*said, on_done=lambda: channel.music_on_hold(settings.musicclass))
        else:
            channel.music_on_hold(settings.musicclass)

    def _key(self, live: Live, key: str) -> None:
        """``1`` asks for a callback (when the queue offers one and the caller's
        number can be dialled); any other key just cuts a prompt short."""
        caller = live.caller
        channel = live.channel
        if channel is None or caller.agent:
            return
        settings = self.acd.queue(caller.organisation, caller.queue).settings
        if key != CALLBACK_KEY or not settings.callback or caller.callback \
                or caller.called_back:
            self._hold(live, ())  # back to the music
            return
        if not caller.number.removeprefix("+").isdigit():  # anonymous: nobody to call back
            self._hold(live, ("invalid_option",))
            return
        self._cancel(live, self.acd.request_callback(caller))
        log.info("call %s: %s asks for a callback in queue %s", channel.id, caller.number,
                 caller.queue)
        self._keep(caller)
        channel.on_key(None)
        channel.play("queue_callback_saved", on_done=channel.hang_up, interrupt=False)

    def _keep(self, caller: Caller) -> None:
        if self.store is None:
            return
        row = QueueCallbackRequest(organisation_id=caller.organisation, queue=caller.queue,
                                   call_id=caller.call_id, number=caller.callback,
                                   joined_at=caller.joined_at, priority=caller.priority,
                                   attempts=caller.callback_attempts)
        store = self.store
        self._background(lambda: store.keep_callback(row))

    def _drop(self, caller: Caller) -> None:
        if self.store is not None:
            store, call_id = self.store, caller.call_id
            self._background(lambda: store.drop_callback(call_id))

    def _left(self, live: Live) -> None:
        """The caller's channel ended before an agent took them."""
        caller = live.caller
        if caller.agent:
            return
        if caller.callback:  # they hung up after asking for a callback: the place stays
            live.channel = None
            return
        self.live.pop(caller.call_id, None)
        self._cancel(live, self.acd.abandon(caller))
        log.info("call %s left queue %s after %.0f s", caller.call_id, caller.queue,
                 self.clock.now() - caller.joined_at)
        self._dispatch_soon()

    def _cancel(self, live: Live, agents: list[str]) -> None:
        for agent in agents:
            dialling = live.dials.pop(agent, None)
            if dialling is not None:
                dialling.cancel()

    # ------------------------------------------------------------ agents' rings

    def _run(self, offers: list[Offer]) -> None:
        for offer in offers:
            live = self.live.get(offer.caller.call_id)
            if live is None:
                continue
            if offer.callback:
                self._call_back(live)
            else:
                for agent in offer.agents:
                    self._ring(live, agent)

    def _dispatch_soon(self) -> None:
        """Offer freed agents on the next turn of the loop (never from inside a
        call control callback)."""
        if self._soon is None:
            def run() -> None:
                self._soon = None
                self._run(self.acd.dispatch())
            self._soon = self.clock.call_later(0, run)

    def _ring(self, live: Live, agent: str) -> None:
        caller = live.caller
        organisation = caller.organisation
        settings = self.acd.queue(organisation, caller.queue).settings
        name = live.channel.party.name if live.channel is not None else ""

        def answered(channel: Channel) -> None:
            live.dials.pop(agent, None)
            if live.channel is None or not live.channel.alive or caller.agent:
                channel.hang_up()
                return
            self._cancel(live, self.acd.answered(caller, agent))
            live.answered_at = self.clock.now()
            self.talking[live.channel.id] = live
            self.live.pop(caller.call_id, None)
            log.info("call %s: agent %s takes the caller of queue %s", caller.call_id, agent,
                     caller.queue)
            after = (lambda back: self._survey(live, back, settings.survey_timeout)) \
                if settings.survey else None
            self.calls.connect(live.channel, channel, after=after)

        def failed(status: int) -> None:
            if live.dials.pop(agent, None) is None and status == 487:
                return  # we cancelled it
            log.info("call %s: agent %s did not take it (%d)", caller.call_id, agent, status)
            member = self.acd.agents[organisation, agent]
            paused = member.pause_reason
            self.acd.ring_failed(caller, agent, no_answer=status in (408, 480))
            if member.pause_reason != paused:  # autopause
                self._remember(member)

        dialling = self.calls.dial(organisation, agent,
                                   caller=Party(organisation, caller.number, name,
                                                service=caller.queue,
                                                service_name=settings.name),
                                   on_answer=answered, on_fail=failed,
                                   timeout=settings.timeout, devices_only=True)
        self.queue_dials.add(dialling.id)
        if agent in caller.ringing:  # not refused at once
            live.dials[agent] = dialling

    def _call_back(self, live: Live) -> None:
        """The callback's turn: an agent is reserved; now ring the caller."""
        caller = live.caller
        organisation = caller.organisation
        settings = self.acd.queue(organisation, caller.queue).settings
        self.acd.callback_dialled(caller)
        log.info("queue %s calls %s back (attempt %d)", caller.queue, caller.callback,
                 caller.callback_attempts + 1)

        def answered(channel: Channel) -> None:
            agent = self.acd.callback_answered(caller)
            live.channel = channel
            live.caller_is_a = False
            self._drop(caller)
            channel.on_hangup(lambda: self._left(live))
            channel.on_key(lambda key: self._key(live, key))
            self._hold(live, ("queue_callback_hello",))
            if agent:
                self._ring(live, agent)

        def failed(status: int) -> None:
            if self.acd.callback_failed(caller):
                self.live.pop(caller.call_id, None)
                self._drop(caller)
            else:
                self._keep(caller)
            self._dispatch_soon()

        self.calls.dial(organisation, caller.callback,
                        caller=Party(organisation, caller.queue, settings.name),
                        on_answer=answered, on_fail=failed,
                        timeout=settings.callback_timeout)

    # ------------------------------------------------------------ after the call

    def on_event(self, event: Event) -> None:
        """The bus: queue calls ending, agents' own calls starting and ending."""
        if isinstance(event, CallStarted):
            self._direct(event.call_id, (event.organisation, event.caller))
        elif isinstance(event, CallAnswered):
            if event.call_id in self.queue_dials:  # an agent answered a queue's ring
                self.queue_dials.discard(event.call_id)
                for key in self.direct.pop(event.call_id, []):
                    self.acd.direct_call(*key, False)
                return
            if event.call_id in self.talking:
                return
            self._direct(event.call_id, (event.organisation, event.answered_by))
        elif isinstance(event, CallEnded):
            self.queue_dials.discard(event.call_id)
            live = self.talking.pop(event.call_id, None)
            if live is not None and live.caller.agent:
                by_caller = (event.hangup_by == "caller") == live.caller_is_a
                self.acd.completed(live.caller, event.at - live.answered_at,
                                   "caller" if by_caller else "agent")
                self._dispatch_soon()
            into = event.merged_into
            for key in self.direct.pop(event.call_id, []):
                if into and key not in self.direct.get(into, []):
                    self.direct.setdefault(into, []).append(key)  # the agent talks on there
                else:
                    self.acd.direct_call(*key, False)
                    self._dispatch_soon()

    def _direct(self, call_id: str, key: tuple[int, str]) -> None:
        """An agent is on a call of their own (placed or answered)."""
        if key in self.acd.agents and call_id not in self.live \
                and key not in self.direct.get(call_id, []):
            self.direct.setdefault(call_id, []).append(key)
            self.acd.direct_call(*key, True)

    def _survey(self, live: Live, channel: Channel, wait: float) -> None:
        """The agent hung up: the caller rates the call with a key 1–5."""
        caller = live.caller
        self.talking.pop(channel.id, None)
        self.acd.completed(caller, self.clock.now() - live.answered_at, "agent")
        self._dispatch_soon()
        timeout = channel.after(wait, channel.hang_up)

        def key(digit: str) -> None:
            if digit not in "12345":
                return
            timeout.cancel()
            channel.on_key(None)
            self.publish(SurveyAnswered(caller.organisation, caller.queue, caller.call_id,
                                        caller.agent, int(digit), self.clock.now()))
            channel.play("survey_thanks", "goodbye", on_done=channel.hang_up, interrupt=False)

        channel.on_key(key)
        channel.play("survey_rate")

    # ------------------------------------------------------------ time

    def _tick(self) -> None:
        self._timer = self.clock.call_later(TICK, self._tick)
        self.sync()
        tick = self.acd.tick()
        for overflow in tick.overflows:
            live = self.live.pop(overflow.caller.call_id, None)
            if live is None or live.channel is None:
                continue
            log.info("call %s: queue %s overflows (%s) to %s", overflow.caller.call_id,
                     overflow.caller.queue, overflow.reason, overflow.destination or "hang-up")
            if overflow.destination:
                live.channel.redirect(overflow.destination)
            else:
                live.channel.hang_up()
        for announcement in tick.announcements:
            live = self.live.get(announcement.caller.call_id)
            if live is not None and live.channel is not None:
                self._hold(live, words(announcement), offer=True)
        self._run(tick.offers)

    # ------------------------------------------------------------ agents

    def set_agent(self, organisation: int, extension: str, action: str,
                  reason: str = "") -> Agent:
        """login, logout, pause (with ``reason``) or unpause an agent; QueueError
        says why not.  The choice is kept across restarts."""
        self.sync()
        acd = self.acd
        if action == "login":
            agent = acd.login(organisation, extension)
        elif action == "logout":
            agent = acd.logout(organisation, extension)
        elif action == "pause":
            agent = acd.pause(organisation, extension, reason or PAUSE_REASONS[""])
        elif action == "unpause":
            agent = acd.unpause(organisation, extension)
        else:
            raise QueueError(422, f"no agent action {action}")
        log.info("agent %s: %s %s", extension, action, reason)
        self._remember(agent)
        self._dispatch_soon()
        return agent

    def _remember(self, agent: Agent) -> None:
        """Keep an agent's own state (logged out, paused and why) across restarts."""
        if self.store is not None:
            store = self.store
            choice = AgentChoice(agent.organisation, agent.extension, agent.logged_in,
                                 agent.pause_reason)
            self._background(lambda: store.keep_agent(choice))


class AgentCodes:
    """Agents' feature codes (destination kind ``queue-agent``): ``*45`` logs in
    or out of every queue they are a member of; ``*46`` pauses or unpauses
    (``*461`` lunch, ``*462`` admin, ``*463`` training, ``*464`` meeting)."""

    kind = QUEUE_AGENT

    def __init__(self, queues: QueueApp) -> None:
        self.queues = queues

    def start(self, channel: Channel, ident: str) -> None:
        extension = channel.party.extension
        if extension is None:
            channel.hang_up(403)
            return
        if not channel.answer():
            return
        organisation = channel.party.organisation
        try:
            agent = self.queues.acd.agent(organisation, extension)
            if ident == "login":
                action = "logout" if agent.logged_in else "login"
            else:
                action = "unpause" if agent.pause_reason is not None else "pause"
            reason = PAUSE_REASONS.get(ident.removeprefix("pause"), "break")
            agent = self.queues.set_agent(organisation, extension, action, reason)
            prompt = {"login": "agent_logged_in", "logout": "agent_logged_out",
                      "pause": "agent_paused", "unpause": "agent_unpaused"}[action]
        except QueueError as refused:
            log.info("call %s: %s: %s", channel.id, extension, refused.reason)
            prompt = "not_an_agent" if refused.status == 404 else "invalid_option"
        channel.play(prompt, on_done=channel.hang_up)
