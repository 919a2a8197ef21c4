"""What a caller who reaches a mailbox hears and what their keys do there
(Telavox "hänvisning", Asterisk's VoiceMail application), pure.

Which greeting: a temporary one while it is valid replaces the others; else
the busy greeting when the call was diverted because the extension is busy
(RFC 5806 ``user-busy``), the unavailable greeting for every other reason
(``no-answer``, ``unavailable``, ``unconditional``); a mailbox that has none
recorded gets a spoken default ("The person at extension one zero zero two
is busy", with the recorded name in place of "the person at extension …").

Then the caller's options, said after the greeting (a key cuts it short):
leave a message after the tone (the default); ``#`` skips to the tone; ``0``
goes to the operator; ``1``, on a busy greeting, waits on the line until the
busy extension is free (camp-on); ``2`` leaves a number to call back on.
:class:`CallerOptions` takes keys and what happened and returns what to do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from media.say import say_digits
from pbx.calls.channel import Audio

BUSY = "user-busy"  # RFC 5806 diversion reason that picks the busy greeting
MAX_CALLBACK_DIGITS = 20


def greeting_kind(reason: str) -> str:
    """The greeting a diversion reason asks for: ``busy`` or ``unavailable``."""
    return "busy" if reason == BUSY else "unavailable"


def choose_greeting(recorded: Mapping[str, float | None], reason: str, now: float) -> str | None:
    """The recorded greeting to play, by kind, or None for the spoken default.
    ``recorded`` maps the kinds a mailbox has to their end (None: no end; only
    a temporary greeting has one); a temporary one counts until its end."""
    if "temporary" in recorded:
        ends = recorded["temporary"]
        if ends is None or now < ends:
            return "temporary"
    kind = greeting_kind(reason)
    return kind if kind in recorded else None


def default_greeting(reason: str, extension: str | None, name: Audio | None) -> tuple[Audio, ...]:
    """The spoken greeting of a mailbox with none recorded: its recorded name
    (else "the person at extension" and the digits) and "is busy" or "is not
    available"; a shared mailbox without a name: "The person you are calling
    is not available"."""
    state = "is_busy" if greeting_kind(reason) == "busy" else "is_not_available"
    if name is not None:
        return (name, state)
    if extension is not None:
        return ("the_person_at", *say_digits(extension), state)
    return ("unavailable",)


@dataclass(frozen=True, slots=True)
class Greet:
    """Play the greeting and the options after it; a key cuts it short, the
    end of it is :meth:`CallerOptions.greeted`."""

    audio: tuple[Audio, ...]


@dataclass(frozen=True, slots=True)
class LeaveMessage:
    """Say ``said`` (if anything), then the tone, then record the caller."""

    said: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Redirect:
    """Send the caller to ``number`` of the dial plan (the operator, the extension freed)."""

    number: str


@dataclass(frozen=True, slots=True)
class CampOn:
    """Music on hold until ``extension`` is free (:meth:`CallerOptions.free`) or
    the wait ends (:meth:`CallerOptions.gave_up`)."""

    extension: str


@dataclass(frozen=True, slots=True)
class AskCallback:
    """Ask for the number to call back on, then wait for keys."""


@dataclass(frozen=True, slots=True)
class KeepCallback:
    """Keep ``number`` as a message, thank the caller, hang up."""

    number: str


Action = Greet | LeaveMessage | Redirect | CampOn | AskCallback | KeepCallback


@dataclass
class CallerOptions:
    """One caller at a mailbox: ``operator`` is where ``0`` leads (empty: no
    ``0``), ``camp_on`` the busy extension ``1`` waits for (empty: not offered),
    ``callback`` whether ``2`` takes a number."""

    operator: str = ""
    camp_on: str = ""
    callback: bool = True
    stage: str = "greeting"  # greeting, callback, waiting, message, done
    digits: list[str] = field(default_factory=list)

    def said_options(self) -> tuple[str, ...]:
        """The options, as prompts, in the order the keys are offered."""
        said = ["busy_wait"] if self.camp_on else []
        said.append("leave_message_options" if self.operator else "leave_message")
        if self.callback:
            said.append("callback_option")
        return tuple(said)

    def start(self, greeting: tuple[Audio, ...]) -> list[Action]:
        return [Greet((*greeting, *self.said_options()))]

    def greeted(self) -> list[Action]:
        """The greeting and the options were heard to the end: the tone."""
        return self._message() if self.stage == "greeting" else []

    def key(self, digit: str) -> list[Action]:
        if self.stage == "greeting":
            if digit == "0" and self.operator:
                return self._leave(Redirect(self.operator))
            if digit == "1" and self.camp_on:
                self.stage = "waiting"
                return [CampOn(self.camp_on)]
            if digit == "2" and self.callback:
                self.stage = "callback"
                return [AskCallback()]
            return self._message()  # "#", and any key that cut the greeting short
        if self.stage == "callback":
            if digit == "#":
                return self._callback_entered()
            if digit == "*":
                self.digits.clear()
                return [AskCallback()]
            if digit.isdigit() and len(self.digits) < MAX_CALLBACK_DIGITS:
                self.digits.append(digit)
            return []
        if self.stage == "waiting" and digit == "#":
            return self._message(("leave_message",))
        return []

    def timeout(self) -> list[Action]:
        """No key for a while after "enter the number": what was keyed counts;
        nothing keyed, a message after all."""
        if self.stage != "callback":
            return []
        if self.digits:
            return self._callback_entered()
        return self._message(("leave_message",))

    def free(self) -> list[Action]:
        """The extension waited for is free: ring it again."""
        return self._leave(Redirect(self.camp_on)) if self.stage == "waiting" else []

    def gave_up(self) -> list[Action]:
        """The wait is over and the extension is still busy: a message after all."""
        return self._message(("leave_message",)) if self.stage == "waiting" else []

    def _callback_entered(self) -> list[Action]:
        if not self.digits:
            return [AskCallback()]
        return self._leave(KeepCallback("".join(self.digits)))

    def _message(self, said: tuple[str, ...] = ()) -> list[Action]:
        self.stage = "message"
        return [LeaveMessage(said)]

    def _leave(self, action: Action) -> list[Action]:
        self.stage = "done"
        return [action]
