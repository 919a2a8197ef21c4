"""One caller's way through an IVR tree (pure): keys, silences and ``now`` in;
what to say, how long to wait, where to send the caller out.

The same machine runs a call (:mod:`ivr.app` plays what it says over the
caller's channel and times the silences) and the simulator
(:mod:`ivr.simulate`, which feeds it a list of keys), so what the admin
simulates is what callers get.  Time conditions ask an
:class:`OpeningHours` whether a schedule is open at ``now``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol

from ivr.tree import (
    Action, Back, Destination, GotoMenu, Greeting, HangUp, IvrTree, Menu, Repeat, TimeCondition,
)

MAX_DIALLED = 20  # digits of a direct-dialled number; more end it at once


class OpeningHours(Protocol):
    """Whether a schedule of the organisation (opening hours, holidays) is open."""

    def state(self, schedule: str, at: float) -> bool:
        """True when ``schedule`` is open at wall-clock ``at`` (Unix seconds)."""


# ------------------------------------------------------------------ what the machine says


@dataclass(frozen=True, slots=True)
class Enter:
    """The caller is now in this menu (for logs and the simulator's path)."""

    menu: str


@dataclass(frozen=True, slots=True)
class Checked:
    """A time condition asked its schedule (for logs and the simulator's path)."""

    schedule: str
    open: bool


@dataclass(frozen=True, slots=True)
class Say:
    """Greetings, one after the other; a key cuts them short unless what follows
    ends the IVR (a redirect or hang-up waits until they are heard)."""

    greetings: tuple[Greeting, ...]


@dataclass(frozen=True, slots=True)
class Wait:
    """Once what is said has been heard, wait this long for a key, then call
    :meth:`IvrMachine.timeout`."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Redirect:
    """Send the caller back into the dial plan with ``target`` ("1002",
    "voicemail:1001" …); the IVR is done."""

    target: str
    kind: str  # the action's kind: extension, ringgroup, voicemail …


@dataclass(frozen=True, slots=True)
class End:
    """Hang up; the IVR is done."""


Output = Enter | Checked | Say | Wait | Redirect | End


# ------------------------------------------------------------------ the machine


class IvrMachine:
    """A caller in one IVR.  Every key and every timeout gets an answer until
    the caller is sent on or hung up on: a channel never waits on nothing."""

    def __init__(self, tree: IvrTree, hours: OpeningHours,
                 extensions: Collection[str] = ()) -> None:
        self.tree = tree
        self.hours = hours
        self.extensions = frozenset(extensions)  # what direct dialling may reach
        self.menu: str | None = None
        self.came_from: list[str] = []  # menus to go ``back`` to, last first
        self.tries = 0  # tries used up in this menu (wrong keys and silences)
        self.dialled = ""  # digits of a number being direct-dialled
        self.finished = False

    def start(self, now: float) -> list[Output]:
        """The call arrives: closed by the schedule, or the root menu."""
        tree = self.tree
        if tree.schedule is not None and tree.closed is not None:
            open_ = self.hours.state(tree.schedule, now)
            out: list[Output] = [Checked(tree.schedule, open_)]
            return out + (self._enter(tree.root) if open_ else self._take(tree.closed, now))
        return self._enter(tree.root)

    def key(self, key: str, now: float) -> list[Output]:
        """A key the caller pressed (during the greeting or after it)."""
        if self.finished:
            return []
        menu = self._current()
        if self.dialled:
            if key.isdigit():
                self.dialled += key
                return self._more_digits(now)
            if key == "#":
                return self._dialled_number(now)
            self.dialled = ""
            return self._fail("invalid", now)
        if menu.direct_dial and key.isdigit() and self._extends(key):
            self.dialled = key
            return self._more_digits(now)
        option = menu.options.get(key)
        if option is not None:
            return self._take(option, now)
        return self._fail("invalid", now)

    def timeout(self, now: float) -> list[Output]:
        """The :class:`Wait` ran out without a key."""
        if self.finished:
            return []
        if self.dialled:
            return self._dialled_number(now)
        return self._fail("timeout", now)

    # ------------------------------------------------------------------ inside

    def _current(self) -> Menu:
        return self.tree.menus[self.menu or self.tree.root]

    def _enter(self, name: str) -> list[Output]:
        self.menu, self.tries, self.dialled = name, 0, ""
        return [Enter(name), *self._prompt(())]

    def _prompt(self, before: tuple[Greeting, ...]) -> list[Output]:
        menu = self._current()
        return [Say((*before, menu.greeting)), Wait(menu.timeout)]

    def _take(self, action: Action, now: float) -> list[Output]:
        if isinstance(action, GotoMenu):
            if self.menu is not None:
                self.came_from.append(self.menu)
            return self._enter(action.menu)
        if isinstance(action, Back):
            return self._enter(self.came_from.pop() if self.came_from
                               else self.menu or self.tree.root)
        if isinstance(action, Repeat):
            return self._enter(self.tree.root) if self.menu is None else self._prompt(())
        if isinstance(action, TimeCondition):
            open_ = self.hours.state(action.time, now)
            return [Checked(action.time, open_),
                    *self._take(action.open if open_ else action.closed, now)]
        self.finished = True
        said: list[Output] = [Say((action.greeting,))] if action.greeting is not None else []
        if isinstance(action, HangUp):
            return [*said, End()]
        assert isinstance(action, Destination)
        return [*said, Redirect(action.target(), action.kind)]

    def _fail(self, how: str, now: float) -> list[Output]:
        """A wrong key or a silence: another try while there are any, then the
        menu's final action for how the last try ended."""
        menu = self._current()
        self.tries += 1
        if self.tries > menu.retries:
            return self._take(menu.on_invalid if how == "invalid" else menu.on_timeout, now)
        prompt = menu.invalid_prompt if how == "invalid" else menu.timeout_prompt
        return self._prompt(() if prompt is None else (prompt,))

    def _extends(self, digits: str) -> bool:
        """Some extension's number starts with ``digits`` and goes on."""
        return any(e.startswith(digits) and e != digits for e in self.extensions)

    def _more_digits(self, now: float) -> list[Output]:
        """A number is being keyed: dial it as soon as it can only be one
        extension, else wait for the next digit."""
        unique = self.dialled in self.extensions and not self._extends(self.dialled)
        if unique or len(self.dialled) >= MAX_DIALLED:
            return self._dialled_number(now)
        return [Wait(self._current().digit_timeout)]

    def _dialled_number(self, now: float) -> list[Output]:
        """The number is complete (the digit timeout, ``#``, a unique match): an
        extension is dialled; a single digit that is an option is that option."""
        number, self.dialled = self.dialled, ""
        if number in self.extensions:
            self.finished = True
            return [Redirect(number, "extension")]
        option = self._current().options.get(number)
        if option is not None:
            return self._take(option, now)
        return self._fail("invalid", now)
