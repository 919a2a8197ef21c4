"""An IVR as data (Telavox "knappval", Asterisk's ``Background()``/``WaitExten``
menus, 3CX's digital receptionist): menus of greetings and keys, and what
each key, a silence or a wrong key leads to.

The tree is typed with pydantic and written the way an admin types it in
YAML: an action is a mapping with one *kind* key (``{extension: "1002"}``,
``{menu: support}``, ``{voicemail: "1001"}``, ``{time: office-hours, open:
…, closed: …}``) or a word (``repeat``, ``back``, ``hangup``).  The same
shape is the JSON the admin API takes and gives, and what the store keeps.
Scalars in YAML are read as text, never as numbers, so ``0046…`` or ``01``
stay what was typed.

What the tree must mean *in an organisation* (targets that exist, menus
that can be reached, no loop without the caller) is checked by
:mod:`ivr.check`; here only the shape and the ranges.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    BaseModel, ConfigDict, Discriminator, Field, StringConstraints, Tag, model_serializer,
    model_validator,
)

KEYS = "0123456789*#"  # the keys of a phone's keypad an option can be on
NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$"  # IVR and menu names: URL paths and file names
NUMBER = r"^[0-9A-Za-z_.+-]{1,40}$"  # a number of the organisation's dial plan
PHONE = r"^\+?[0-9]{2,20}$"  # an external number: E.164 or national digits
RECORDING = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,60}\.wav$"  # an uploaded greeting's file
LANGUAGE = r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$"  # an espeak-ng voice: en, sv, da, nb, fi, de …
MAILBOX_PREFIX = "voicemail:"  # the dial plan's target for leaving a message: voicemail:1001

Name = Annotated[str, StringConstraints(pattern=NAME)]
Number = Annotated[str, StringConstraints(pattern=NUMBER)]
Key = Annotated[str, StringConstraints(pattern=r"^[0-9*#]$")]
Loc = tuple[str, ...]  # where in a tree, as pydantic names it: ("menus", "main", "options", "1")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Greeting(_Strict):
    """What a caller hears: an uploaded recording, or text spoken with espeak-ng in
    the IVR's language.  With both, the recording plays and the text is spoken
    only when the recording cannot be read."""

    text: str = Field(default="", max_length=2000)
    recording: str = Field(default="", pattern=f"({RECORDING})|^$")

    @model_validator(mode="after")
    def _something(self) -> Greeting:
        if not self.text.strip() and not self.recording:
            raise ValueError("a greeting needs text or a recording")
        return self


# ------------------------------------------------------------------ actions


class _Action(_Strict):
    kind: ClassVar[str]

    @model_validator(mode="before")
    @classmethod
    def _from_word(cls, value: Any) -> Any:
        """``repeat``, ``back`` and ``hangup`` are written as their word."""
        return {cls.kind: True} if value == cls.kind else value


class _Word(_Action):
    """An action without an argument, written as its word (``repeat``)."""

    @model_serializer(mode="plain")
    def _as_word(self) -> str:
        return self.kind


class GotoMenu(_Action):
    """Go to another menu of the tree (``back`` returns from it)."""

    kind: ClassVar[str] = "menu"
    menu: Name


class Repeat(_Word):
    """Say the current menu's greeting again."""

    kind: ClassVar[str] = "repeat"
    repeat: Literal[True]


class Back(_Word):
    """Return to the menu the caller came from (the same menu when there is none)."""

    kind: ClassVar[str] = "back"
    back: Literal[True]


class _Leave(_Action):
    """An action that ends the IVR: an optional greeting first (``We are closed``)."""

    greeting: Greeting | None = None

    @model_serializer(mode="wrap")
    def _serialize(self, handler: Any) -> Any:
        data = handler(self)  # the kind key first: {voicemail: "1001", greeting: …}
        return {self.kind: data.pop(self.kind), **data}


class HangUp(_Leave):
    """End the call (``hangup``, or ``{hangup: true, greeting: …}`` to say something first)."""

    kind: ClassVar[str] = "hangup"
    hangup: Literal[True]

    @model_serializer(mode="wrap")
    def _serialize(self, handler: Any) -> Any:
        return "hangup" if self.greeting is None else super()._serialize(handler)


class Destination(_Leave):
    """Send the caller back into the dial plan with :meth:`target`."""

    def target(self) -> str:
        """The dial-plan string call control redirects the caller to."""
        return str(getattr(self, self.kind))


class ToExtension(Destination):
    kind: ClassVar[str] = "extension"
    extension: Number


class ToRingGroup(Destination):
    kind: ClassVar[str] = "ringgroup"
    ringgroup: Number


class ToQueue(Destination):
    """An ACD queue by its number."""

    kind: ClassVar[str] = "queue"
    queue: Number


class ToVoicemail(Destination):
    """Leave a message in a mailbox: the dial-plan target ``voicemail:<mailbox>``."""

    kind: ClassVar[str] = "voicemail"
    voicemail: Number

    def target(self) -> str:
        return MAILBOX_PREFIX + self.voicemail


class ToConference(Destination):
    kind: ClassVar[str] = "conference"
    conference: Number


class ToNumber(Destination):
    """An external number, dialled through the dial plan (trunks: a later issue)."""

    kind: ClassVar[str] = "number"
    number: Annotated[str, StringConstraints(pattern=PHONE)]


class TimeCondition(_Action):
    """Open or closed by a schedule (opening hours, holidays) at the moment it is taken."""

    kind: ClassVar[str] = "time"
    time: Name  # the schedule's name
    open: Action
    closed: Action


_ACTIONS: tuple[type[_Action], ...] = (
    GotoMenu, ToExtension, ToRingGroup, ToQueue, ToVoicemail, ToConference, ToNumber, Repeat,
    Back, HangUp, TimeCondition,
)
KINDS = tuple(a.kind for a in _ACTIONS)


def _kind_of(value: Any) -> str | None:
    """The action kind a raw value is written as (its word, or its one kind key)."""
    if isinstance(value, _Action):
        return value.kind
    if isinstance(value, str):
        return value if value in ("repeat", "back", "hangup") else None
    if isinstance(value, dict):
        found = [key for key in value if key in KINDS]
        return found[0] if len(found) == 1 else None
    return None


Action = Annotated[
    Annotated[GotoMenu, Tag("menu")] | Annotated[ToExtension, Tag("extension")]
    | Annotated[ToRingGroup, Tag("ringgroup")] | Annotated[ToQueue, Tag("queue")]
    | Annotated[ToVoicemail, Tag("voicemail")] | Annotated[ToConference, Tag("conference")]
    | Annotated[ToNumber, Tag("number")] | Annotated[Repeat, Tag("repeat")]
    | Annotated[Back, Tag("back")] | Annotated[HangUp, Tag("hangup")]
    | Annotated[TimeCondition, Tag("time")],
    Discriminator(
        _kind_of, custom_error_type="ivr_action",
        custom_error_message="an action is repeat, back, hangup or a mapping with one of "
                             "menu, extension, ringgroup, queue, voicemail, conference, "
                             "number, time",
    ),
]
TimeCondition.model_rebuild()

# ------------------------------------------------------------------ menus and the tree


class Menu(_Strict):
    """A greeting and the keys the caller may press after (or during) it.

    A caller gets ``retries`` more tries after the first; a try ends with a
    key that means nothing (``invalid_prompt``, then the greeting again) or
    with ``timeout`` seconds of silence after the greeting (``timeout_prompt``
    and the greeting).  When the tries run out, ``on_invalid`` or
    ``on_timeout`` is taken, by how the last try ended.  With
    ``direct_dial`` the caller may also key any extension's number, its
    digits at most ``digit_timeout`` seconds apart (``#`` ends it early).
    """

    greeting: Greeting
    options: dict[Key, Action] = Field(default_factory=dict)
    timeout: float = Field(default=5.0, ge=1, le=60)
    retries: int = Field(default=2, ge=0, le=9)
    invalid_prompt: Greeting | None = None
    timeout_prompt: Greeting | None = None
    on_timeout: Action = HangUp(hangup=True)
    on_invalid: Action = HangUp(hangup=True)
    direct_dial: bool = False
    digit_timeout: float = Field(default=3.0, ge=1, le=10)


class IvrTree(_Strict):
    """A whole IVR: dialled on ``number``, speaking ``language``; callers start in
    the ``root`` menu, or, when ``schedule`` says the switchboard is closed,
    get the ``closed`` action instead."""

    name: Name
    number: Number
    language: str = Field(default="en", pattern=LANGUAGE)
    schedule: Name | None = None
    closed: Action | None = None
    root: Name = "main"
    menus: dict[Name, Menu] = Field(min_length=1, max_length=100)

    @model_validator(mode="after")
    def _closed_with_schedule(self) -> IvrTree:
        if (self.schedule is None) != (self.closed is None):
            raise ValueError("schedule and closed go together: the schedule says when the "
                             "switchboard is closed, closed what callers get then")
        return self

    def greetings(self) -> Iterator[tuple[Loc, Greeting]]:
        """Every greeting the tree can say (menus, their prompts, before an action),
        with where it is."""
        for _, loc, action in self.actions():
            if isinstance(action, _Leave) and action.greeting is not None:
                yield (*loc, "greeting"), action.greeting
        for name, menu in self.menus.items():
            for field in ("greeting", "invalid_prompt", "timeout_prompt"):
                greeting = getattr(menu, field)
                if greeting is not None:
                    yield ("menus", name, field), greeting

    def references(self, number: str) -> list[Loc]:
        """Where the tree sends callers to ``number`` of the dial plan (an
        extension, its mailbox, a group, room or queue): what deleting it would break."""
        return [loc for _, loc, action in self.actions()
                if isinstance(action, Destination) and not isinstance(action, ToNumber)
                and getattr(action, action.kind) == number]

    def actions(self) -> Iterator[tuple[str | None, Loc, Action]]:
        """Every action: the menu it is in (None: the IVR's own ``closed``), where
        it is as pydantic would say (``("menus", "main", "options", "1")``), and
        the action; a time condition's branches follow it, at its place."""
        if self.closed is not None:
            yield from _branches(None, ("closed",), self.closed)
        for name, menu in self.menus.items():
            for key, action in menu.options.items():
                yield from _branches(name, ("menus", name, "options", key), action)
            yield from _branches(name, ("menus", name, "on_timeout"), menu.on_timeout)
            yield from _branches(name, ("menus", name, "on_invalid"), menu.on_invalid)


def _branches(menu: str | None, loc: Loc,
              action: Action) -> Iterator[tuple[str | None, Loc, Action]]:
    yield menu, loc, action
    if isinstance(action, TimeCondition):
        yield from _branches(menu, loc, action.open)
        yield from _branches(menu, loc, action.closed)


# ------------------------------------------------------------------ YAML


class _TextLoader(yaml.SafeLoader):
    """YAML where a number-looking scalar stays text (``0046``, ``1:``, ``500``);
    pydantic turns the fields that are numbers into numbers."""


_TextLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers
            if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class YamlError(ValueError):
    """The text is not YAML (the message says where)."""


def read_yaml(text: str) -> Any:
    """The data of a YAML document, to be validated with :meth:`IvrTree.model_validate`."""
    try:
        return yaml.load(text, Loader=_TextLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        raise YamlError(f"not YAML: {exc}".replace("\n", " ")) from None


def to_data(tree: IvrTree) -> dict[str, Any]:
    """The tree as the admin types it: defaults left out, actions in their short form."""
    return tree.model_dump(mode="json", exclude_defaults=True)


def to_json(tree: IvrTree) -> str:
    """The tree as the store keeps it."""
    return tree.model_dump_json(exclude_defaults=True)


def to_yaml(tree: IvrTree) -> str:
    return yaml.safe_dump(to_data(tree), sort_keys=False, allow_unicode=True, width=1000,
                          default_flow_style=None)
