"""Walk an IVR tree with a list of keys at a given time (pure): the menus a
caller would pass, what they would hear and where they would end up.

Admins try a tree before callers do: ``pbx ivr simulate`` on the command
line and ``POST /api/ivrs/{name}/simulate`` both run this, over the same
:class:`~ivr.machine.IvrMachine` calls run on.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from ivr.machine import Checked, End, Enter, IvrMachine, OpeningHours, Output, Redirect, Say
from ivr.tree import MAILBOX_PREFIX, Greeting, IvrTree

TIMEOUT = "timeout"  # a step in which the caller presses nothing


@dataclass(frozen=True, slots=True)
class Step:
    """One line of the path: what happened (``menu``, ``say``, ``key``,
    ``timeout``, ``schedule``, ``redirect``, ``hangup``) and the detail."""

    what: str
    detail: str = ""


@dataclass
class Walk:
    """Where a caller goes: the path step by step, the menus visited, what was
    said, and the outcome: ``redirect`` (to ``destination``), ``hangup``, or
    ``waiting`` (in a menu, for more keys)."""

    steps: list[Step] = field(default_factory=list)
    menus: list[str] = field(default_factory=list)
    said: list[str] = field(default_factory=list)
    outcome: str = "waiting"
    destination: str | None = None
    unused: list[str] = field(default_factory=list)  # steps after the IVR was done


def describe(greeting: Greeting) -> str:
    """A greeting as one line: the recording's name, else the text in quotes."""
    return f"recording {greeting.recording}" if greeting.recording else f'"{greeting.text}"'


LABELS = {"extension": "extension {}", "ringgroup": "ring group {}", "queue": "queue {}",
          "voicemail": "voicemail of {}", "conference": "conference room {}",
          "number": "number {}"}


def simulate(tree: IvrTree, steps: Sequence[str], at: float, hours: OpeningHours,
             extensions: Collection[str] = ()) -> Walk:
    """Feed ``steps`` (keys ``0-9*#`` or :data:`TIMEOUT`) to a fresh caller at ``at``."""
    machine = IvrMachine(tree, hours, extensions)
    walk = Walk()
    _record(walk, machine.start(at))
    for step in steps:
        if machine.finished:
            walk.unused.append(step)
            continue
        walk.steps.append(Step(TIMEOUT) if step == TIMEOUT else Step("key", step))
        _record(walk, machine.timeout(at) if step == TIMEOUT else machine.key(step, at))
    return walk


def _record(walk: Walk, outputs: list[Output]) -> None:
    for out in outputs:
        if isinstance(out, Enter):
            walk.menus.append(out.menu)
            walk.steps.append(Step("menu", out.menu))
        elif isinstance(out, Checked):
            walk.steps.append(Step("schedule",
                                   f"{out.schedule} {'open' if out.open else 'closed'}"))
        elif isinstance(out, Say):
            for greeting in out.greetings:
                walk.said.append(describe(greeting))
                walk.steps.append(Step("say", describe(greeting)))
        elif isinstance(out, Redirect):
            walk.outcome, walk.destination = "redirect", out.target
            walk.steps.append(Step("redirect", LABELS[out.kind].format(
                out.target.removeprefix(MAILBOX_PREFIX))))
        elif isinstance(out, End):
            walk.outcome = "hangup"
            walk.steps.append(Step("hangup"))


def render(walk: Walk) -> str:
    """The walk as lines a person reads (the command line prints it)."""
    lines = []
    for step in walk.steps:
        if step.what == "menu":
            lines.append(f"menu {step.detail}")
        elif step.what == "say":
            lines.append(f"  says {step.detail}")
        elif step.what == "key":
            lines.append(f"  key {step.detail}")
        elif step.what == TIMEOUT:
            lines.append("  (no key)")
        elif step.what == "schedule":
            lines.append(f"schedule {step.detail}")
        elif step.what == "redirect":
            lines.append(f"→ {step.detail}")
        else:
            lines.append("→ hang up")
    if walk.outcome == "waiting":
        lines.append(f"… waiting for a key in menu {walk.menus[-1]}" if walk.menus
                     else "… waiting")
    if walk.unused:
        lines.append(f"(not used: {', '.join(walk.unused)})")
    return "\n".join(lines)
