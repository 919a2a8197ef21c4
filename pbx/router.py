"""The dial plan: what a dialled number means (pure).

``Router.resolve`` turns a number into a small typed destination.  Extensions
and ring groups come from the directory; switchboard services (IVR, queues,
voicemail, conference rooms: later issues) register their numbers with
``Router.add_service``, so the B2BUA never learns their insides.  Ring
strategies order the members of a ring group into ring steps, remembering
who answered so round-robin and least-recent spread the calls.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from pbx.directory import Directory
from pbx.models import RingGroup

MAX_FORWARD_HOPS = 5


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

    last_answer: dict[str, float] = field(default_factory=dict)
    answers: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    next_start: dict[str, int] = field(default_factory=lambda: defaultdict(int))


class Router:
    """Resolves numbers and plans ring groups."""

    def __init__(self, directory: Directory, rng: random.Random | None = None) -> None:
        self.directory = directory
        self.services: dict[str, ServiceDest] = {}
        self.personal_prefix = ""  # dial prefix + extension for its personal conference room
        self.memory = RingMemory()
        self.rng = rng or random.Random()

    def add_service(self, number: str, dest: ServiceDest) -> None:
        self.services[number] = dest

    def resolve(self, number: str, _hops: int = 0) -> Destination:
        did = self.directory.numbers.get(number)
        if did is not None and _hops < MAX_FORWARD_HOPS:
            return self.resolve(did.target, _hops + 1)  # a DID reaches whatever its target is
        if number == "*8":
            return PickupDest()
        if number.startswith("**") and number[2:] in self.directory.extensions:
            return PickupDest(number[2:])
        if number in self.directory.extensions:
            return ExtensionDest(number)
        if number in self.directory.ring_groups:
            return RingGroupDest(number)
        if number in self.services:
            return self.services[number]
        if self.room_owner(number) is not None:
            return ServiceDest("conference", number)
        return Unknown(number)

    def room_owner(self, number: str) -> str | None:
        """The extension whose personal room ``number`` is (Telavox: everyone has one)."""
        prefix = self.personal_prefix
        if prefix and number.startswith(prefix) and number[len(prefix):] in self.directory.extensions:
            return number[len(prefix):]
        return None

    def plan(self, group: RingGroup, now: float) -> list[RingStep]:
        """The order a ring group's members are rung in, by its strategy."""
        members = [m for m in group.members.split(",") if m in self.directory.extensions]
        if not members:
            return []
        if group.strategy == "ringall":
            return [RingStep(tuple(members), group.timeout)]
        ordered = self._order(group, members, now)
        steps = [RingStep((m,), group.member_timeout) for m in ordered]
        return _clip(steps, group.timeout)

    def _order(self, group: RingGroup, members: list[str], now: float) -> list[str]:
        memory = self.memory
        if group.strategy == "linear":
            return members
        if group.strategy == "roundrobin":
            start = memory.next_start[group.number] % len(members)
            return members[start:] + members[:start]
        if group.strategy == "leastrecent":
            return sorted(members, key=lambda m: memory.last_answer.get(m, 0.0))
        if group.strategy == "fewestcalls":
            return sorted(members, key=lambda m: memory.answers[m])
        shuffled = list(members)
        self.rng.shuffle(shuffled)
        return shuffled

    def answered(self, group_number: str | None, member: str, now: float) -> None:
        """Remember who answered, for the strategies that spread calls."""
        self.memory.last_answer[member] = now
        self.memory.answers[member] += 1
        if group_number is not None:
            group = self.directory.ring_groups.get(group_number)
            if group is not None:
                members = [m for m in group.members.split(",") if m]
                if member in members:
                    self.memory.next_start[group_number] = members.index(member) + 1


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
