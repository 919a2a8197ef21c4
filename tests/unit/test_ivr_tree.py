"""IVR trees: the YAML an admin writes, read and written back unchanged; the
shape checked by pydantic; what the tree means in an organisation checked
by ivr.check, each problem naming its menu and key; the config section."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.check import Problem, Targets, parse, problems
from ivr.tree import (
    Back, GotoMenu, Greeting, HangUp, IvrTree, Repeat, TimeCondition, ToExtension, ToNumber,
    ToQueue, ToVoicemail, YamlError, read_yaml, to_yaml,
)
from pbx.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]
DEMO = (REPO / "ivr-demo.yaml").read_text()


def from_yaml(text: str) -> IvrTree:
    return IvrTree.model_validate(read_yaml(text))
TARGETS = Targets(
    extensions=frozenset({"1001", "1002", "1003", "1004"}), ring_groups=frozenset({"600"}),
    rooms=frozenset({"800"}), queues=frozenset({"700"}),
    schedules=frozenset({"office-hours", "lunch"}),
)


def messages(data: object, targets: Targets = TARGETS) -> list[str]:
    tree, found = parse(data)
    if tree is not None:
        found = problems(tree, targets)
    return [str(p) for p in found]


def menus(**menus: object) -> dict[str, object]:
    return {"name": "t", "number": "510", "menus": menus}


def menu(**fields: object) -> dict[str, object]:
    return {"greeting": {"text": "Hello"}, **fields}


def test_the_demo_tree_reads_as_written() -> None:
    tree = from_yaml(DEMO)
    assert (tree.name, tree.number, tree.language, tree.schedule) == (
        "reception", "500", "en", "office-hours")
    assert tree.closed == ToVoicemail(voicemail="1001", greeting=Greeting(
        text="Welcome to Demo AB. We are closed right now. Please leave a message after the tone."))
    main = tree.menus["main"]
    assert list(main.options) == ["1", "2", "3", "0"]
    assert main.options["3"] == ToQueue(queue="700")
    assert main.options["2"] == ToExtension(extension="1002")
    assert (main.timeout, main.retries) == (5.0, 2)
    assert main.on_timeout.target() == "voicemail:1001"  # type: ignore[union-attr]
    assert problems(tree, TARGETS) == []


def test_yaml_round_trip() -> None:
    tree = from_yaml(DEMO)
    text = to_yaml(tree)
    assert from_yaml(text) == tree
    assert to_yaml(from_yaml(text)) == text
    every_kind = IvrTree.model_validate(menus(main=menu(
        options={"1": {"menu": "main"}, "2": "repeat", "3": "back", "4": "hangup",
                 "5": {"hangup": True, "greeting": {"recording": "bye-0a1b2c.wav"}},
                 "6": {"time": "lunch", "open": {"conference": "800"},
                       "closed": {"number": "+46812345678"}},
                 "7": {"queue": "700"}, "8": {"ringgroup": "600"}, "9": {"voicemail": "1002"},
                 "*": {"extension": "1001", "greeting": {"text": "Putting you through"}}},
        direct_dial=True, digit_timeout=2.5, timeout_prompt={"text": "Still there?"})))
    again = from_yaml(to_yaml(every_kind))
    assert again == every_kind
    options = again.menus["main"].options
    assert options["2"] == Repeat(repeat=True) and options["3"] == Back(back=True)
    assert options["4"] == HangUp(hangup=True)
    assert isinstance(options["6"], TimeCondition) and options["6"].closed == ToNumber(
        number="+46812345678")
    assert "'2': repeat" in to_yaml(every_kind)  # words stay words


def test_numbers_stay_as_typed() -> None:
    tree = from_yaml("name: t\nnumber: 0500\nmenus:\n  main:\n    greeting: {text: Hi}\n"
                     "    options:\n      1: {number: 0046812345678}\n    timeout: 7\n")
    assert tree.number == "0500"
    assert tree.menus["main"].options["1"] == ToNumber(number="0046812345678")
    assert tree.menus["main"].timeout == 7.0
    assert "number: '0500'" in to_yaml(tree)


def test_not_yaml() -> None:
    with pytest.raises(YamlError, match="not YAML"):
        read_yaml("menus: [unclosed")


@pytest.mark.parametrize(("data", "expected"), [
    (menus(main=menu(options={"x": "hangup"})), "menu main key x: String should match"),
    (menus(main=menu(options={"1": "dance"})), "menu main key 1: an action is repeat, back"),
    (menus(main=menu(options={"1": {"extension": "1001", "menu": "main"}})),
     "menu main key 1: an action is"),
    (menus(main=menu(options={"1": {"extension": "10 01"}})),
     "menu main key 1 extension: String should match"),
    (menus(main=menu(options={"1": {"time": "lunch", "open": "hangup",
                                    "closed": {"voicemail": ""}}})),
     "menu main key 1 closed voicemail: String should match"),
    (menus(main=menu(timeout=0.5)), "menu main timeout: Input should be greater than or equal"),
    (menus(main=menu(timeout=61)), "menu main timeout: Input should be less than or equal to 60"),
    (menus(main=menu(retries=10)), "menu main retries: Input should be less than or equal to 9"),
    (menus(main=menu(digit_timeout=20)), "menu main digit_timeout: Input should be less"),
    (menus(main={"greeting": {"text": " "}}), "menu main greeting: a greeting needs text"),
    (menus(main=menu(on_timeout="sing")), "menu main on_timeout: an action is"),
    (menus(main=menu(colour="red")), "menu main colour: Extra inputs are not permitted"),
    ({**menus(main=menu()), "schedule": "office-hours"}, "the IVR: schedule and closed go"),
    ({**menus(main=menu()), "language": "Swedish"}, "language: String should match"),
])
def test_shape_problems_name_menu_and_key(data: object, expected: str) -> None:
    found = messages(data)
    assert any(m.startswith(expected) for m in found), found


def test_problem_locations() -> None:
    tree, found = parse(menus(main=menu(options={"x": "hangup", "1": {"menu": "a b"}})))
    assert tree is None
    assert {p.loc for p in found} == {("menus", "main", "options", "x"),
                                      ("menus", "main", "options", "1", "menu")}
    assert sorted(str(p).split(":")[0] for p in found) == ["menu main key 1 menu",
                                                          "menu main key x"]
    assert str(Problem(("closed",), "no queue 9")) == "closed: no queue 9"
    assert str(Problem(("menus", "m", "on_timeout"), "x")) == "menu m on_timeout: x"


def test_dangling_targets() -> None:
    found = messages({**menus(
        main=menu(options={
            "1": {"menu": "sales"}, "2": {"extension": "1009"}, "3": {"ringgroup": "601"},
            "4": {"conference": "801"}, "5": {"voicemail": "1009"}, "6": {"queue": "701"},
            "7": {"time": "weekends", "open": "hangup", "closed": {"extension": "1001"}},
            "8": {"extension": "1001"}, "9": {"number": "+4681234567"}}),
    ), "schedule": "holidays", "closed": {"voicemail": "2000"}, "root": "main"})
    assert sorted(found) == sorted([
        "menu main key 1: no menu sales", "menu main key 2: no extension 1009",
        "menu main key 3: no ring group 601", "menu main key 4: no conference room 801",
        "menu main key 5: no extension 1009 for voicemail", "menu main key 6: no queue 701",
        "menu main key 7: no schedule weekends", "schedule: no schedule holidays",
        "closed: no extension 2000 for voicemail",
    ])
    # schedules not known (not yet configured anywhere): not checked
    unknown = Targets(extensions=TARGETS.extensions)
    assert messages(menus(main=menu(options={"1": {"time": "any", "open": "hangup",
                                                   "closed": "hangup"}})), unknown) == []


def test_root_and_unreachable_menus() -> None:
    assert messages({**menus(start=menu())}) == ["root: there is no menu main"]
    found = messages(menus(main=menu(options={"1": {"menu": "sub"}}), sub=menu(),
                           orphan=menu(options={"1": {"menu": "sub"}})))
    assert found == ["menu orphan: no key or action leads here (callers start in main)"]
    closed_only = {**menus(main=menu(), closed_menu=menu()), "schedule": "lunch",
                   "closed": {"menu": "closed_menu"}}
    assert messages(closed_only) == []  # reached when the switchboard is closed


def test_repeat_and_back_need_a_menu() -> None:
    found = messages({**menus(main=menu()), "schedule": "lunch", "closed": "repeat"})
    assert found == ["closed: repeat needs a menu to be in; callers are in none yet"]


@pytest.mark.parametrize(("tree_menus", "loop"), [
    ({"main": menu(options={"1": {"menu": "a"}}), "a": menu(on_timeout={"menu": "b"}),
      "b": menu(on_timeout={"menu": "a"})}, "a → b → a"),
    ({"main": menu(on_timeout="repeat")}, "main → main"),
    ({"main": menu(on_timeout={"menu": "main"})}, "main → main"),
    ({"main": menu(on_timeout="back")}, "main → main"),  # back at the start: main again
    ({"main": menu(on_timeout={"menu": "a"}), "a": menu(on_timeout="back")}, "main → a → main"),
    ({"main": menu(on_timeout={"time": "lunch", "open": "hangup", "closed": {"menu": "a"}}),
      "a": menu(on_timeout={"menu": "main"})}, "main → a → main"),
])
def test_loops_without_caller_input(tree_menus: dict[str, object], loop: str) -> None:
    found = messages(menus(**tree_menus))
    assert len(found) == 1, found
    assert f"loops without caller input ({loop})" in found[0]
    assert found[0].startswith("menu ") and "on_timeout" in found[0]


def test_loops_that_need_a_key_are_fine() -> None:
    assert messages(menus(
        main=menu(options={"1": {"menu": "a"}}, on_invalid={"menu": "a"},
                  on_timeout={"voicemail": "1001"}),
        a=menu(options={"#": "back", "*": "repeat"}, on_invalid={"menu": "main"},
               on_timeout={"menu": "main"}),
    )) == []


def test_config_section_reads_the_tree(tmp_path: Path) -> None:
    config = load_config(REPO / "sip.conf.example")
    assert [(t.name, t.number) for t in config.ivrs] == [("reception", "500")]
    assert config.ivrs[0] == from_yaml(DEMO)


@pytest.mark.parametrize(("yaml_text", "expected"), [
    (None, "cannot read"),
    ("menus: [", "not YAML"),
    (DEMO.replace("number: '500'", "number: '501'"), "the tree's number 501 is not the section's"),
    (DEMO.replace("{extension: '1002'}", "{extension: '1009'}"),
     "menu main key 2: no extension 1009"),
    (DEMO.replace("timeout: 5", "timeout: 500"), "menu main timeout: Input should be less"),
])
def test_config_errors_name_file_section_and_key(tmp_path: Path, yaml_text: str | None,
                                                 expected: str) -> None:
    conf = tmp_path / "sip.conf"
    conf.write_text((REPO / "sip.conf.example").read_text())
    if yaml_text is not None:
        (tmp_path / "ivr-demo.yaml").write_text(yaml_text)
    with pytest.raises(ConfigError) as info:
        load_config(conf)
    assert (info.value.section, info.value.key) == ("500", "tree")
    assert str(tmp_path / "ivr-demo.yaml") in str(info.value) and expected in str(info.value)


def test_goto_menu_and_greetings_are_listed_with_their_place() -> None:
    tree = from_yaml(DEMO)
    places = [loc for loc, _ in tree.greetings()]
    assert places == [("closed", "greeting"), ("menus", "main", "greeting"),
                      ("menus", "main", "invalid_prompt")]
    assert GotoMenu(menu="main").kind == "menu"
