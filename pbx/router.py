"""The dial plan: what a dialled number means (pure).

``Router.resolve`` turns a number dialled within an organisation (a
:class:`~pbx.directory.Tenant`) at an instant ``now`` into a small typed
destination: extensions, ring groups, numbers, time conditions and
switchboard services (conference rooms, mailboxes, shared mailboxes, IVRs
and ACD queues) all come from the tenant, so the
B2BUA never learns their insides.  A number (DID) and a time condition lead
on to another target, a time condition to its open or closed one by its
schedule at ``now`` (FreePBX time conditions).  Ring strategies order the members of
a ring group into ring steps, remembering who answered so round-robin and
least-recent spread the calls.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from pbx.directory import Tenant
from pbx.models import RingGroup, TimeCondition
from pbx.profiles import VOICEMAIL

MAX_FORWARD_HOPS = 5
PICKUP_ANY = "*8"  # picks up any ringing call of the organisation
PICKUP_PREFIX = "**"  # + extension: picks up the call ringing there (BLF keys dial it)
SPY_PREFIX = "*55"  # + extension: a supervisor listens in on that agent's call (ChanSpy)
SPY = "spy"  # the service kind
SPY_MODES = ("4", "5", "6")  # *55 + extension + * + one: start listening, whispering, barging
VOICEMAIL_MENU = "voicemail-menu"  # the service kind: the caller listens to a mailbox
DIVERSION = "diversion"  # the service kind that says why a profile diverts a call, then does
PARK = "park"  # the service kind of the parking lot (the admin API parks calls there)
QUEUE = "queue"  # the service kind of ACD queues (queues/)
QUEUE_AGENT = "queue-agent"  # agents' feature codes: ident login or pause
QUEUE_LOGIN = "*45"  # an agent logs in to (or out of) their queues, toggling
QUEUE_PAUSE = "*46"  # an agent pauses (or unpauses), toggling; *461 … *469: with a reason
MAILBOX_PREFIX = VOICEMAIL + ":"  # a target "voicemail:1001": leave a message for 1001


@dataclass(frozen=True, slots=True)
class ExtensionDest:
    number: str


@dataclass(frozen=True, slots=True)
class RingGroupDest:
    number: str


@dataclass(frozen=True, slots=True)
class PickupDest:
    """``*8`` picks up a ringing call to any extension; ``**NNN`` that of NNN."""

    number: str | None = None


@dataclass(frozen=True, slots=True)
class ServiceDest:
    """A switchboard service (IVR, queue, voicemail, conference) by kind and id."""

    kind: str
    ident: str


@dataclass(frozen=True, slots=True)
class Unknown:
    number: str


Destination = ExtensionDest | RingGroupDest | PickupDest | ServiceDest | Unknown


@dataclass(frozen=True, slots=True)
class RingStep:
    """Extensions rung together, for at most ``timeout`` seconds."""

    members: tuple[str, ...]
    timeout: float


@dataclass
class RingMemory:
    """What strategies remember between calls: answers per member and when."""

    last_answer: dict[tuple[int, str], float] = field(default_factory=dict)
    answers: dict[tuple[int, str], int] = field(default_factory=lambda: defaultdict(int))
    next_start: dict[tuple[int, str], int] = field(default_factory=lambda: defaultdict(int))


class Router:
    """Resolves numbers and plans ring groups, within one tenant at a time."""

    def __init__(self, personal_prefix: str = "", voicemail_number: str = "",
                 rng: random.Random | None = None, voicemail_main: str = "") -> None:
        self.personal_prefix = personal_prefix  # prefix + extension: its personal conference room
        self.voicemail_number = voicemail_number  # the caller's own mailbox menu (the message key)
        self.voicemail_main = voicemail_main  # any mailbox's menu: mailbox number and PIN asked
        self.memory = RingMemory()
        self.rng = rng or random.Random()

    def resolve(self, tenant: Tenant, number: str, now: float, _hops: int = 0) -> Destination:
        """What ``number`` dialled in ``tenant`` at ``now`` (epoch seconds) reaches."""
        did = tenant.numbers.get(number)
        if did is not None and _hops < MAX_FORWARD_HOPS:
            return self.resolve(tenant, did.target, now, _hops + 1)  # a DID reaches its target
        condition = tenant.time_conditions.get(number)
        if condition is not None and _hops < MAX_FORWARD_HOPS:
            return self.resolve(tenant, branch(tenant, condition, now), now, _hops + 1)
        mailbox = number.removeprefix(MAILBOX_PREFIX)
        if mailbox != number and (mailbox in tenant.extensions or mailbox in tenant.mailboxes):
            return ServiceDest(VOICEMAIL, mailbox)
        if number == PICKUP_ANY:
            return PickupDest()
        if number.startswith(PICKUP_PREFIX) and number[len(PICKUP_PREFIX):] in tenant.extensions:
            return PickupDest(number[len(PICKUP_PREFIX):])
        if number.startswith(SPY_PREFIX):
            agent, star, mode = number[len(SPY_PREFIX):].partition("*")
            if agent in tenant.extensions and (not star or mode in SPY_MODES):
                return ServiceDest(SPY, number[len(SPY_PREFIX):])
        if number == QUEUE_LOGIN:
            return ServiceDest(QUEUE_AGENT, "login")
        code = number.removeprefix(QUEUE_PAUSE)
        if code != number and len(code) <= 1 and (code == "" or code.isdigit()):
            return ServiceDest(QUEUE_AGENT, "pause" + code)
        if number == self.voicemail_number:
            return ServiceDest(VOICEMAIL_MENU, number)
        if self.voicemail_main and number == self.voicemail_main:
            return ServiceDest(VOICEMAIL_MENU, "")  # no ident: the caller says which mailbox
        if number in tenant.extensions:
            return ExtensionDest(number)
        if number in tenant.ring_groups:
            return RingGroupDest(number)
        if number in tenant.rooms or self.room_owner(tenant, number) is not None:
            return ServiceDest("conference", number)
        if number in tenant.ivrs:
            return ServiceDest("ivr", number)
        if number in tenant.queues:
            return ServiceDest(QUEUE, number)
        if number in tenant.mailboxes:  # a shared mailbox's own number: leave a message
            return ServiceDest(VOICEMAIL, number)
        return Unknown(number)

    def room_owner(self, tenant: Tenant, number: str) -> str | None:
        """The extension whose personal room ``number`` is (Telavox: everyone has one)."""
        prefix = self.personal_prefix
        if prefix and number.startswith(prefix) and number[len(prefix):] in tenant.extensions:
            return number[len(prefix):]
        return None

    def plan(self, tenant: Tenant, group: RingGroup, now: float) -> list[RingStep]:
        """The order a ring group's members are rung in, by its strategy; members
        whose presence profile takes no queue calls at ``now`` are left out.  A
        member may be an external number (a mobile): it rings through the trunks."""
        extensions, presence = tenant.extensions, tenant.presence
        members = [m for m in group.members.split(",") if m in extensions
                   and presence.admission(extensions[m], "queue", now).through
                   or m and m not in extensions and tenant.dialling.looks_external(m)]
        if not members:
            return []
        if group.strategy == "ringall":
            return [RingStep(tuple(members), group.timeout)]
        ordered = self._order(tenant.id, group, members)
        steps = [RingStep((m,), group.member_timeout) for m in ordered]
        return _clip(steps, group.timeout)

    def _order(self, org: int, group: RingGroup, members: list[str]) -> list[str]:
        memory = self.memory
        if group.strategy == "linear":
            return members
        if group.strategy == "roundrobin":
            start = memory.next_start[org, group.number] % len(members)
            return members[start:] + members[:start]
        if group.strategy == "leastrecent":
            return sorted(members, key=lambda m: memory.last_answer.get((org, m), 0.0))
        if group.strategy == "fewestcalls":
            return sorted(members, key=lambda m: memory.answers[org, m])
        shuffled = list(members)
        self.rng.shuffle(shuffled)
        return shuffled

    def answered(self, tenant: Tenant, group_number: str | None, member: str, now: float) -> None:
        """Remember who answered, for the strategies that spread calls."""
        org = tenant.id
        self.memory.last_answer[org, member] = now
        self.memory.answers[org, member] += 1
        group = tenant.ring_groups.get(group_number) if group_number is not None else None
        if group is not None:
            members = [m for m in group.members.split(",") if m]
            if member in members:
                self.memory.next_start[org, group.number] = members.index(member) + 1


def branch(tenant: Tenant, condition: TimeCondition, now: float) -> str:
    """The target of a time condition at ``now``: open or closed by its schedule
    (closed when the schedule is missing: nobody is there to answer)."""
    schedule = tenant.schedules.get(condition.schedule)
    if schedule is not None and schedule.state(now).open:
        return condition.open_target
    return condition.closed_target


def _clip(steps: Sequence[RingStep], total: float) -> list[RingStep]:
    """Cut the steps so the whole group rings at most ``total`` seconds."""
    out: list[RingStep] = []
    left = total
    for step in steps:
        if left <= 0:
            break
        out.append(RingStep(step.members, min(step.timeout, left)))
        left -= step.timeout
    return out
