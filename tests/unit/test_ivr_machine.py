"""The IVR menu machine and the simulator over it (pure): keys, silences and
time conditions in; greetings, waits and where the caller goes out."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from ivr.machine import Checked, End, Enter, IvrMachine, Redirect, Say, Wait
from ivr.simulate import Step, render, simulate
from ivr.tree import Greeting, IvrTree

EXTENSIONS = ("1001", "1002", "1003", "1004", "2000", "20001")
NOW = 1_800_000_000.0


@dataclass
class Hours:
    """Schedules by name: open unless listed as closed; remembers what it was asked."""

    closed: set[str] = field(default_factory=set)
    asked: list[tuple[str, float]] = field(default_factory=list)

    def state(self, schedule: str, at: float) -> bool:
        self.asked.append((schedule, at))
        return schedule not in self.closed


def tree(**changes: object) -> IvrTree:
    """Two menus: main (1 sales, 2 Bertil, 0 operator, 3 support menu, 4 time
    condition, * repeat) and support (1 voicemail, 9 external, # back)."""
    data: dict[str, object] = {
        "name": "reception", "number": "500",
        "menus": {
            "main": {
                "greeting": {"text": "Welcome"},
                "options": {
                    "1": {"ringgroup": "600"}, "2": {"extension": "1002"},
                    "0": {"extension": "1001"}, "3": {"menu": "support"},
                    "4": {"time": "lunch", "open": {"conference": "800"},
                          "closed": {"hangup": True, "greeting": {"text": "Bye"}}},
                    "*": "repeat",
                },
                "timeout": 5, "retries": 2,
                "invalid_prompt": {"text": "Invalid"}, "timeout_prompt": {"text": "Hello?"},
                "on_timeout": {"voicemail": "1001"}, "on_invalid": {"extension": "1001"},
            },
            "support": {
                "greeting": {"text": "Support"},
                "options": {"1": {"voicemail": "1003"}, "9": {"number": "+46812345678"},
                            "7": {"queue": "700"}, "#": "back", "8": {"menu": "main"}},
                "retries": 0, "on_timeout": "back",
            },
        },
    }
    data.update(changes)
    return IvrTree.model_validate(data)


def said(outputs: list) -> list[str]:  # type: ignore[type-arg]
    return [g.text or g.recording for o in outputs if isinstance(o, Say) for g in o.greetings]


WELCOME = Greeting(text="Welcome")


def test_start_enters_the_root_and_waits_after_the_greeting() -> None:
    machine = IvrMachine(tree(), Hours())
    assert machine.start(NOW) == [Enter("main"), Say((WELCOME,)), Wait(5.0)]


@pytest.mark.parametrize(("key", "target", "kind"), [
    ("1", "600", "ringgroup"), ("2", "1002", "extension"), ("0", "1001", "extension"),
])
def test_a_key_sends_the_caller_on(key: str, target: str, kind: str) -> None:
    machine = IvrMachine(tree(), Hours())
    machine.start(NOW)
    assert machine.key(key, NOW) == [Redirect(target, kind)]
    assert machine.finished
    assert machine.key("2", NOW) == [] and machine.timeout(NOW) == []  # done: nothing more


@pytest.mark.parametrize(("key", "target", "kind"), [
    ("1", "voicemail:1003", "voicemail"), ("9", "+46812345678", "number"),
    ("7", "700", "queue"),
])
def test_every_destination_kind_has_its_dial_plan_target(key: str, target: str,
                                                         kind: str) -> None:
    machine = IvrMachine(tree(), Hours())
    machine.start(NOW)
    assert machine.key("3", NOW) == [Enter("support"), Say((Greeting(text="Support"),)),
                                     Wait(5.0)]
    assert machine.key(key, NOW) == [Redirect(target, kind)]


def test_silence_retries_then_the_timeout_action() -> None:
    machine = IvrMachine(tree(), Hours())
    machine.start(NOW)
    for _ in range(2):  # retries: 2
        assert said(machine.timeout(NOW)) == ["Hello?", "Welcome"]
    assert machine.timeout(NOW) == [Redirect("voicemail:1001", "voicemail")]


def test_wrong_keys_retry_then_the_invalid_action() -> None:
    machine = IvrMachine(tree(), Hours())
    machine.start(NOW)
    assert said(machine.key("5", NOW)) == ["Invalid", "Welcome"]
    assert said(machine.timeout(NOW)) == ["Hello?", "Welcome"]  # tries are shared
    assert machine.key("#", NOW) == [Redirect("1001", "extension")]  # the last try was a key


def test_a_menu_without_prompts_says_its_greeting_again() -> None:
    machine = IvrMachine(tree(), Hours())
    machine.start(NOW)
    machine.key("3", NOW)
    support = tree().menus["support"]
    assert support.invalid_prompt is None and support.retries == 0
    assert machine.key("5", NOW) == [End()]  # no tries left: on_invalid, hang up


def test_repeat_back_and_a_fresh_menu_each_time() -> None:
    machine = IvrMachine(tree(), Hours())
    machine.start(NOW)
    machine.timeout(NOW)  # one try used in main
    assert said(machine.key("*", NOW)) == ["Welcome"]
    assert machine.tries == 1  # repeating is not a new visit
    assert machine.key("3", NOW)[0] == Enter("support")
    assert machine.key("#", NOW) == [Enter("main"), Say((WELCOME,)), Wait(5.0)]
    assert machine.tries == 0  # back into main: a fresh visit
    machine.key("3", NOW)
    assert machine.key("8", NOW)[0] == Enter("main")  # main → support → main
    assert machine.key("3", NOW)[0] == Enter("support")
    assert machine.key("#", NOW)[0] == Enter("main")
    assert said(machine.key("#", NOW)) == ["Invalid", "Welcome"]  # the first try of a new visit


def test_back_at_the_root_says_it_again() -> None:
    machine = IvrMachine(tree(menus={"main": {"greeting": {"text": "Welcome"},
                                              "options": {"#": "back"}}}), Hours())
    machine.start(NOW)
    assert machine.key("#", NOW) == [Enter("main"), Say((WELCOME,)), Wait(5.0)]


def test_silence_in_a_sub_menu_goes_back() -> None:
    machine = IvrMachine(tree(), Hours())
    machine.start(NOW)
    machine.key("3", NOW)
    assert machine.timeout(NOW)[0] == Enter("main")


def test_time_condition_open_and_closed() -> None:
    hours = Hours()
    machine = IvrMachine(tree(), hours)
    machine.start(NOW)
    assert machine.key("4", NOW + 60) == [Checked("lunch", True), Redirect("800", "conference")]
    assert hours.asked == [("lunch", NOW + 60)]
    machine = IvrMachine(tree(), Hours(closed={"lunch"}))
    machine.start(NOW)
    assert machine.key("4", NOW) == [Checked("lunch", False), Say((Greeting(text="Bye"),)),
                                     End()]


def test_the_switchboard_schedule_decides_where_a_caller_starts() -> None:
    closed = {"schedule": "office-hours",
              "closed": {"voicemail": "1001", "greeting": {"text": "We are closed"}}}
    machine = IvrMachine(tree(**closed), Hours(closed={"office-hours"}))
    assert machine.start(NOW) == [Checked("office-hours", False),
                                  Say((Greeting(text="We are closed"),)),
                                  Redirect("voicemail:1001", "voicemail")]
    machine = IvrMachine(tree(**closed), Hours())
    assert machine.start(NOW) == [Checked("office-hours", True), Enter("main"),
                                  Say((WELCOME,)), Wait(5.0)]
    to_menu = {"schedule": "office-hours", "closed": {"menu": "support"}}
    machine = IvrMachine(tree(**to_menu), Hours(closed={"office-hours"}))
    assert machine.start(NOW)[1] == Enter("support")
    assert machine.key("#", NOW)[0] == Enter("support")  # nowhere to go back to


def direct() -> IvrMachine:
    menus = tree().model_dump()["menus"]
    menus["main"].update(direct_dial=True, digit_timeout=3)
    machine = IvrMachine(tree(menus=menus), Hours(), EXTENSIONS)
    machine.start(NOW)
    return machine


def test_direct_dialling_an_extension() -> None:
    machine = direct()
    assert machine.key("1", NOW) == [Wait(3.0)]  # 1 is an option, and 1001… begin with it
    assert machine.key("0", NOW) == [Wait(3.0)]
    assert machine.key("0", NOW) == [Wait(3.0)]
    assert machine.key("3", NOW) == [Redirect("1003", "extension")]  # nothing else starts so


def test_direct_dialling_ends_with_the_digit_timeout_or_hash() -> None:
    machine = direct()
    for key in "2000":
        machine.key(key, NOW)
    assert machine.timeout(NOW) == [Redirect("2000", "extension")]  # 20001 might have come
    machine = direct()
    for key in "2000#":
        out = machine.key(key, NOW)
    assert out == [Redirect("2000", "extension")]


def test_a_single_digit_that_is_an_option_is_the_option_after_the_digit_timeout() -> None:
    machine = direct()
    assert machine.key("1", NOW) == [Wait(3.0)]
    assert machine.timeout(NOW) == [Redirect("600", "ringgroup")]
    machine = direct()
    assert machine.key("0", NOW) == [Redirect("1001", "extension")]  # no extension starts with 0


def test_a_number_that_is_no_extension_is_a_wrong_key() -> None:
    machine = direct()
    for key in "109":
        machine.key(key, NOW)
    assert said(machine.timeout(NOW)) == ["Invalid", "Welcome"]
    machine.key("1", NOW)
    assert said(machine.key("*", NOW)) == ["Invalid", "Welcome"]  # * while dialling
    assert machine.key("0", NOW) == [Redirect("1001", "extension")]  # an option again


def test_nothing_or_everything_always_ends() -> None:
    """A caller who never presses, or presses every key in turn, is sent on or
    hung up on after a bounded number of steps: every input gets an answer."""
    for keys in ([], list("56789*#") * 5, list("3#") * 20):
        machine = IvrMachine(tree(), Hours(), EXTENSIONS)
        out = machine.start(NOW)
        for step in range(100):
            assert out, "a step without an answer leaves the channel waiting on nothing"
            if machine.finished:
                break
            out = machine.key(keys[step], NOW) if step < len(keys) else machine.timeout(NOW)
        assert machine.finished


def test_simulator_walks_keys_and_silences() -> None:
    walk = simulate(tree(), ["3", "timeout", "2"], NOW, Hours())
    assert walk.menus == ["main", "support", "main"]
    assert walk.outcome == "redirect" and walk.destination == "1002"
    assert walk.said == ['"Welcome"', '"Support"', '"Welcome"']
    assert walk.steps[:3] == [Step("menu", "main"), Step("say", '"Welcome"'), Step("key", "3")]
    assert walk.unused == []
    text = render(walk)
    assert text.splitlines()[-1] == "→ extension 1002"
    assert "  (no key)" in text.splitlines()


def test_simulator_at_a_closed_time_and_with_keys_left_over() -> None:
    closed = tree(schedule="office-hours", closed={"voicemail": "1001"})
    walk = simulate(closed, ["1", "2"], NOW, Hours(closed={"office-hours"}))
    assert walk.menus == [] and walk.destination == "voicemail:1001"
    assert walk.steps[0] == Step("schedule", "office-hours closed")
    assert walk.unused == ["1", "2"]
    assert render(walk).endswith("(not used: 1, 2)")


def test_simulator_still_waiting_and_hanging_up() -> None:
    walk = simulate(tree(), ["5"], NOW, Hours())
    assert walk.outcome == "waiting" and walk.destination is None
    assert render(walk).endswith("… waiting for a key in menu main")
    walk = simulate(tree(), ["4"], NOW, Hours(closed={"lunch"}))
    assert walk.outcome == "hangup" and walk.said[-1] == '"Bye"'
