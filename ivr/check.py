"""What an IVR tree must mean in its organisation, checked before it is stored
(pure): every target exists, every menu can be reached, and no path loops
without the caller pressing a key.

Each problem names the menu and the key (or field) it is on, so an admin
finds it at once; the admin API answers them all together as a 422, the
config loader as one error naming the file.  Shape and ranges (keys on a
keypad, timeouts, retries) are pydantic's part (:mod:`ivr.tree`);
:func:`parse` turns its errors into the same problems.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ivr.tree import (
    KINDS, Action, Back, Loc, GotoMenu, IvrTree, Repeat, TimeCondition, ToConference, ToExtension,
    ToQueue, ToRingGroup, ToVoicemail,
)


@dataclass(frozen=True, slots=True)
class Targets:
    """The organisation's dial plan as far as an IVR can point into it."""

    extensions: frozenset[str] = frozenset()
    ring_groups: frozenset[str] = frozenset()
    rooms: frozenset[str] = frozenset()
    queues: frozenset[str] = frozenset()
    mailboxes: frozenset[str] = frozenset()  # shared ones, by number (voicemail: leads there too)
    schedules: frozenset[str] | None = None  # None: schedules are not known here, not checked


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a tree, where it is: ``loc`` as pydantic gives it
    (``("menus", "main", "options", "1")``); said, it names the menu and key."""

    loc: Loc
    message: str

    def __str__(self) -> str:
        return f"{where(self.loc)}: {self.message}"


def where(loc: Loc) -> str:
    """``menu main key 1``, ``menu main on_timeout``, ``closed``, ``number``."""
    if len(loc) >= 2 and loc[0] == "menus":
        place = f"menu {loc[1]}"
        rest = loc[2:]
        if len(rest) >= 2 and rest[0] == "options":
            place += f" key {rest[1]}"
            rest = rest[2:]
        return " ".join([place, *rest])
    return " ".join(loc) or "the IVR"


def parse(data: Any) -> tuple[IvrTree | None, list[Problem]]:
    """Validate raw data (YAML's or JSON's) as a tree; its shape problems, if any."""
    try:
        return IvrTree.model_validate(data), []
    except ValidationError as exc:
        return None, [_shape_problem(error) for error in exc.errors()]


def _shape_problem(error: Any) -> Problem:
    return Problem(_without_tags(error["loc"]), error["msg"].removeprefix("Value error, "))


def _without_tags(loc: Iterable[Any]) -> Loc:
    """Pydantic's location less what only it needs: the action kind it tried
    (``options.1.extension.extension``) and the marker of a bad dict key."""
    out: list[str] = []
    slot = False  # the part before was where an action goes: a kind may follow
    for raw in loc:
        part = str(raw)
        if part == "[key]" or (slot and part in KINDS):
            slot = False
            continue
        out.append(part)
        slot = part in ("on_timeout", "on_invalid", "closed", "open") or (
            len(out) >= 2 and out[-2] == "options")
    return tuple(out)


def problems(tree: IvrTree, targets: Targets) -> list[Problem]:
    """Everything wrong with ``tree`` in an organisation with ``targets``."""
    found: list[Problem] = []
    if tree.root not in tree.menus:
        found.append(Problem(("root",), f"there is no menu {tree.root}"))
    if tree.schedule is not None:
        found += _schedule(("schedule",), tree.schedule, targets)
    for menu, loc, action in tree.actions():
        found += _target(loc, action, tree, targets)
        if menu is None and isinstance(action, Repeat | Back):
            found.append(Problem(loc, f"{action.kind} needs a menu to be in; "
                                      "callers are in none yet"))
    if tree.root in tree.menus:
        found += _unreachable(tree)
        found += _loops(tree)
    return found


def _schedule(loc: Loc, name: str, targets: Targets) -> list[Problem]:
    if targets.schedules is not None and name not in targets.schedules:
        return [Problem(loc, f"no schedule {name}")]
    return []


def _target(loc: Loc, action: Action, tree: IvrTree,
            targets: Targets) -> list[Problem]:
    """A dangling target: a menu, extension (voicemail is an extension's or a
    shared mailbox), group, room, queue or schedule that does not exist."""
    if isinstance(action, GotoMenu):
        return [] if action.menu in tree.menus else [Problem(loc, f"no menu {action.menu}")]
    if isinstance(action, TimeCondition):
        return _schedule(loc, action.time, targets)
    known: dict[type, tuple[frozenset[str], str]] = {
        ToExtension: (targets.extensions, "no extension {}"),
        ToRingGroup: (targets.ring_groups, "no ring group {}"),
        ToConference: (targets.rooms, "no conference room {}"),
        ToVoicemail: (targets.extensions | targets.mailboxes, "no extension {} for voicemail"),
        ToQueue: (targets.queues, "no queue {}"),
    }
    if type(action) in known:
        existing, message = known[type(action)]
        number = getattr(action, action.kind)
        if number not in existing:
            return [Problem(loc, message.format(number))]
    return []


def _menus_reached(action: Action) -> Iterable[str]:
    """The menus an action can lead to by itself (both branches of a time condition)."""
    if isinstance(action, GotoMenu):
        yield action.menu
    elif isinstance(action, TimeCondition):
        yield from _menus_reached(action.open)
        yield from _menus_reached(action.closed)


def _entries(tree: IvrTree) -> set[str]:
    """The menus a caller can start in: the root, and those the closed action leads to."""
    starts = {tree.root}
    if tree.closed is not None:
        starts |= {m for m in _menus_reached(tree.closed) if m in tree.menus}
    return starts


def _unreachable(tree: IvrTree) -> list[Problem]:
    seen: set[str] = set()
    pending = list(_entries(tree))
    while pending:
        name = pending.pop()
        if name in seen or name not in tree.menus:
            continue
        seen.add(name)
        menu = tree.menus[name]
        for action in (*menu.options.values(), menu.on_timeout, menu.on_invalid):
            pending += _menus_reached(action)
    return [Problem(("menus", name), f"no key or action leads here (callers start in "
                                     f"{tree.root})")
            for name in tree.menus if name not in seen]


def _loops(tree: IvrTree) -> list[Problem]:
    """Paths that go round for ever on silence alone: each menu's ``on_timeout``
    leads (through time conditions, ``repeat`` and ``back``) to menus that are
    entered afresh, tries and all, so only a path that ends bounds the call."""
    callers = _callers(tree)
    entries = _entries(tree)

    def after_silence(name: str) -> set[str]:
        return _silent_steps(name, tree.menus[name].on_timeout, callers, entries)

    found: list[Problem] = []
    reported: set[frozenset[str]] = set()
    for start in tree.menus:
        path = _cycle_from(start, after_silence)
        if path is not None and frozenset(path) not in reported:
            reported.add(frozenset(path))
            loop = " → ".join([*path, path[0]])
            found.append(Problem(("menus", start, "on_timeout"),
                                 f"loops without caller input ({loop}): end the "
                                 "silence somewhere with a destination or hangup"))
    return found


def _callers(tree: IvrTree) -> dict[str, set[str]]:
    """For each menu, the menus any action leads to it from (where ``back`` goes)."""
    callers: dict[str, set[str]] = {name: set() for name in tree.menus}
    for menu, _, action in tree.actions():
        if menu is not None and isinstance(action, GotoMenu) and action.menu in callers:
            callers[action.menu].add(menu)
    return callers


def _silent_steps(name: str, action: Action, callers: dict[str, set[str]],
                  entries: set[str]) -> set[str]:
    """The menus ``action``, taken in menu ``name`` without a key, can enter next."""
    if isinstance(action, GotoMenu):
        return {action.menu} if action.menu in callers else set()
    if isinstance(action, Repeat):
        return {name}
    if isinstance(action, Back):  # to whoever led here; at a start, the same menu again
        return callers[name] | ({name} if name in entries else set())
    if isinstance(action, TimeCondition):
        return (_silent_steps(name, action.open, callers, entries)
                | _silent_steps(name, action.closed, callers, entries))
    return set()


def _cycle_from(start: str, steps: Any) -> list[str] | None:
    """A cycle through ``start`` in the graph ``steps(menu) -> menus``, as its path."""
    path: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> bool:
        path.append(name)
        seen.add(name)
        for nxt in sorted(steps(name)):
            if nxt == start or (nxt not in seen and visit(nxt)):
                return True
        path.pop()
        return False

    return path if visit(start) else None
