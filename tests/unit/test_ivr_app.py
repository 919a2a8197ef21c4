"""The IVR over a channel: what a caller hears, when, and where they are sent,
with FakeChannel and FakeClock (no sockets, no sleeping), over a real store
and directory and greeting files on disk."""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import soundfile

from ivr.app import IvrApp
from ivr.greetings import GreetingLibrary, load_greetings, recording_folder
from media.speech import spoken
from ivr.schedule import Definition, Schedule
from ivr.tenant import ScheduleHours
from ivr.tree import IvrTree
from pbx.calls.channel import Party
from pbx.config import Config, ConferenceConfig, ExtensionConfig, General, RingGroupConfig
from pbx.directory import Directory, Tenant
from pbx.store import Store
from tests.fakes import FakeChannel, FakeClock

# the greetings as recordings of distinct lengths (seconds)
SECONDS = {"welcome": 2.0, "invalid": 0.5, "hello": 0.75, "support": 1.5, "closed": 3.0,
           "bye": 0.25}


@dataclass
class Hours:
    closed: set[str] = field(default_factory=set)

    def state(self, schedule: str, at: float) -> bool:
        return schedule not in self.closed


def rec(name: str) -> dict[str, str]:
    return {"recording": f"{name}.wav"}


def tree_data(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "name": "reception", "number": "500",
        "menus": {
            "main": {
                "greeting": rec("welcome"),
                "options": {"1": {"ringgroup": "600"}, "2": {"extension": "1002"},
                            "3": {"menu": "support"}, "*": "repeat",
                            "4": {"time": "lunch", "open": {"conference": "800"},
                                  "closed": {"hangup": True, "greeting": rec("bye")}}},
                "timeout": 5, "retries": 2, "invalid_prompt": rec("invalid"),
                "timeout_prompt": rec("hello"), "on_timeout": {"voicemail": "1001"},
                "on_invalid": {"extension": "1001"}, "direct_dial": True, "digit_timeout": 3,
            },
            "support": {"greeting": rec("support"),
                        "options": {"#": "back", "9": {"number": "+46812345678"}},
                        "timeout": 4, "retries": 0, "on_timeout": "hangup"},
        },
    }
    data.update(changes)
    return data


@dataclass
class Rig:
    app: IvrApp
    clock: FakeClock
    tenant: Tenant
    tree: IvrTree
    loads: list[Callable[[], None]]

    def call(self) -> FakeChannel:
        channel = FakeChannel(self.clock, Party(organisation=self.tenant.id, number="+46701234567",
                                                dialled="500"))
        self.app.start(channel, "500")
        return channel

    def heard(self, channel: FakeChannel) -> list[str]:
        """The greetings played, by name, in order (each play's items joined with +)."""
        names = {id(self.app.greetings.audio(self.tenant.id, self.tree, g)): g.recording[:-4]
                 for _, g in self.tree.greetings()}
        return ["+".join(names.get(id(a), "?") for a in play) for play in channel.played]


def rig(tmp_path: Path, hours: Hours | None = None, **changes: object) -> Rig:
    tree = IvrTree.model_validate(tree_data(**changes))
    config = Config(
        general=General(),
        extensions=tuple(ExtensionConfig(number=n, secret="s3cret")
                         for n in ("1001", "1002", "1003", "1004")),
        ring_groups=(RingGroupConfig(number="600", members=("1001", "1002")),),
        conferences=(ConferenceConfig(number="800"),), ivrs=(tree,),
    )
    store = Store("sqlite://")
    store.seed(config)
    directory = Directory(store, "pbx.test")
    tenant = directory.default
    folder = recording_folder(tmp_path, tenant.id, "reception")
    folder.mkdir(parents=True)
    for name, seconds in SECONDS.items():
        soundfile.write(folder / f"{name}.wav", np.full(int(8000 * seconds), 0.1), 8000)
    loads: list[Callable[[], None]] = []

    def worker(job: Callable[[], None], then: Callable[[], None]) -> None:
        loads.append(job)
        job()
        then()

    clock = FakeClock()
    app = IvrApp(directory, clock, lambda _: hours or Hours(), GreetingLibrary(tmp_path), worker)
    return Rig(app, clock, tenant, tenant.ivrs["500"], loads)


def test_the_caller_hears_the_greeting_and_a_key_sends_them_on(tmp_path: Path) -> None:
    r = rig(tmp_path)
    channel = r.call()
    assert channel.answered and r.heard(channel) == ["welcome"]
    r.clock.advance(1.0)
    channel.press("2")  # during the greeting: it stops, and the caller goes on at once
    assert channel.redirected == "1002" and channel.playing is None
    assert r.clock.pending() == 0


def test_greetings_load_once_in_a_worker(tmp_path: Path) -> None:
    r = rig(tmp_path)
    first, second = r.call(), r.call()
    assert len(r.loads) == 1
    assert r.heard(first) == r.heard(second) == ["welcome"]


def test_every_destination(tmp_path: Path) -> None:
    for keys, target in ((["1"], "600"), (["2"], "1002"), (["4"], "800"),
                         (["3", "9"], "+46812345678")):
        r = rig(tmp_path / "-".join(keys))
        channel = r.call()
        r.clock.advance(0.5)
        channel.press(*keys)
        r.clock.advance(3.5)  # 1 and 2 begin extension numbers: the digit timeout decides
        assert channel.redirected == target, keys
        assert r.clock.pending() == 0


def test_silence_retries_twice_then_voicemail(tmp_path: Path) -> None:
    r = rig(tmp_path)
    channel = r.call()
    start = r.clock.now()
    r.clock.advance(2.0 + 4.9)  # greeting, then not quite the timeout
    assert r.heard(channel) == ["welcome"]
    r.clock.advance(0.1)
    assert r.heard(channel) == ["welcome", "hello+welcome"]
    r.clock.advance(2.75 + 5.0)
    assert r.heard(channel) == ["welcome", "hello+welcome", "hello+welcome"]
    assert channel.redirected is None
    r.clock.advance(2.75 + 5.0)
    assert channel.redirected == "voicemail:1001"
    assert r.clock.now() - start == pytest.approx(7.0 + 7.75 * 2)
    assert r.clock.pending() == 0


def test_wrong_keys_retry_then_the_operator(tmp_path: Path) -> None:
    r = rig(tmp_path)
    channel = r.call()
    channel.press("7")  # no option, and no extension starts with 7
    assert r.heard(channel) == ["welcome", "invalid+welcome"]
    r.clock.advance(0.2)
    channel.press("8")  # cuts the invalid prompt short
    assert r.heard(channel)[-1] == "invalid+welcome"
    channel.press("#")
    assert channel.redirected == "1001"  # on_invalid after the third wrong key


def test_direct_dialling(tmp_path: Path) -> None:
    r = rig(tmp_path)
    channel = r.call()
    channel.press("1", "0", "0")
    r.clock.advance(2.9)
    assert channel.redirected is None  # the digits are at most 3 s apart
    channel.press("4")
    assert channel.redirected == "1004"  # only one extension can be meant
    r = rig(tmp_path / "two")
    channel = r.call()
    channel.press("1")
    r.clock.advance(3.0)
    assert channel.redirected == "600"  # 1 alone, after the digit timeout: the option
    r = rig(tmp_path / "three")
    channel = r.call()
    channel.press("1", "0", "9")
    r.clock.advance(3.0)
    assert channel.redirected is None and r.heard(channel) == ["welcome", "invalid+welcome"]


def test_menu_back_and_repeat(tmp_path: Path) -> None:
    r = rig(tmp_path)
    channel = r.call()
    channel.press("3")
    assert r.heard(channel) == ["welcome", "support"]
    channel.press("#")
    assert r.heard(channel) == ["welcome", "support", "welcome"]
    channel.press("*")
    assert r.heard(channel)[-1] == "welcome" and len(channel.played) == 4
    channel.press("3")
    r.clock.advance(1.5 + 4.0)  # silence in support: no retries, hang up
    assert channel.ended == 200 and channel.redirected is None
    assert r.clock.pending() == 0


def test_time_condition_closed_says_goodbye_then_hangs_up(tmp_path: Path) -> None:
    r = rig(tmp_path, Hours(closed={"lunch"}))
    channel = r.call()
    channel.press("4")
    assert r.heard(channel) == ["welcome", "bye"]
    channel.press("1")  # the goodbye is not cut short, nor the key taken
    assert channel.ended is None and r.heard(channel) == ["welcome", "bye"]
    r.clock.advance(0.25)
    assert channel.ended == 200 and r.clock.pending() == 0


def test_closed_switchboard_greeting_then_voicemail(tmp_path: Path) -> None:
    closed = {"schedule": "office-hours",
              "closed": {"voicemail": "1001", "greeting": rec("closed")}}
    r = rig(tmp_path, Hours(closed={"office-hours"}), **closed)
    channel = r.call()
    assert channel.answered and r.heard(channel) == ["closed"]
    channel.press("1")
    r.clock.advance(2.9)
    assert channel.redirected is None
    r.clock.advance(0.1)
    assert channel.redirected == "voicemail:1001" and r.clock.pending() == 0
    r = rig(tmp_path / "open", Hours(), **closed)
    assert r.heard(r.call()) == ["welcome"]


@pytest.mark.parametrize("seed", range(20))
def test_a_caller_pressing_anything_or_nothing_always_ends(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    r = rig(tmp_path)
    channel = r.call()
    for _ in range(200):
        if not channel.alive:
            break
        if rng.random() < 0.3:
            channel.press(rng.choice("0123456789*#"))
        r.clock.advance(rng.choice((0.1, 0.5, 1.0, 3.0, 6.0)))
    assert not channel.alive
    assert r.clock.pending() == 0


def test_hanging_up_mid_greeting_leaves_nothing_pending(tmp_path: Path) -> None:
    r = rig(tmp_path)
    channel = r.call()
    r.clock.advance(1.0)
    channel.caller_hangs_up()
    assert r.clock.pending() == 0
    r.clock.advance(60)
    assert channel.redirected is None and len(channel.played) == 1


def test_unknown_ivr_and_a_caller_gone_before_the_greetings_loaded(tmp_path: Path) -> None:
    r = rig(tmp_path)
    channel = FakeChannel(r.clock, Party(organisation=r.tenant.id, number="1001"))
    r.app.start(channel, "501")
    assert channel.ended == 404 and not channel.answered
    pending: list[Callable[[], None]] = []
    r.app.worker = lambda job, then: pending.append(then)
    channel = FakeChannel(r.clock, Party(organisation=r.tenant.id, number="1001"))
    r.app.greetings = GreetingLibrary(tmp_path)  # nothing loaded yet
    r.app.start(channel, "500")
    assert not channel.answered  # it rings while the greetings load
    channel.caller_hangs_up()
    pending[0]()
    assert not channel.answered and channel.played == []


def test_a_broken_recording_is_left_out(tmp_path: Path) -> None:
    r = rig(tmp_path)
    folder = recording_folder(tmp_path, r.tenant.id, "reception")
    (folder / "welcome.wav").write_bytes(b"RIFF not really")
    loaded, problems = load_greetings(tmp_path, r.tenant.id, r.tree)
    assert len(problems) == 1 and str(problems[0]).startswith(
        "menu main greeting: recording welcome.wav: cannot read audio")
    assert all(g.recording != "welcome.wav" for g in loaded)
    channel = r.call()
    assert r.heard(channel) == []  # nothing to say: the wait for a key starts at once
    r.clock.advance(5.0)
    assert r.heard(channel) == ["hello"]


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng missing")
def test_text_greetings_are_spoken_once_per_text_and_language(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PBX_SPEECH_CACHE", str(tmp_path / "speech"))
    text = {"text": "Welcome to Demo AB."}
    data = tree_data(language="sv")
    data["menus"]["main"]["greeting"] = text  # type: ignore[index]
    tree = IvrTree.model_validate(data)
    loaded, problems = load_greetings(tmp_path, 1, tree)
    assert ("menus", "main", "greeting") not in [p.loc for p in problems]  # others: no files
    said = spoken("Welcome to Demo AB.", "sv")
    assert said.is_file()
    samples = loaded[tree.menus["main"].greeting]
    assert len(samples) > 8000 and np.sqrt(np.mean(samples**2)) > 300  # a second of speech
    made = said.stat().st_mtime_ns
    other = IvrTree.model_validate({**data, "name": "other"})
    load_greetings(tmp_path, 2, other)
    assert said.stat().st_mtime_ns == made  # the same text and language: the same file
    english = IvrTree.model_validate({**data, "language": "en"})
    load_greetings(tmp_path, 1, english)
    assert len(list((tmp_path / "speech" / "en").glob("*.wav"))) == 1
    broken = IvrTree.model_validate({**data, "language": "xx"})
    _, problems = load_greetings(tmp_path, 1, broken)
    assert any(str(p).startswith("menu main greeting: text: espeak-ng failed for 'xx'")
               for p in problems)
    data["menus"]["main"]["greeting"] = {**text, "recording": "gone.wav"}  # type: ignore[index]
    both = IvrTree.model_validate(data)
    loaded, problems = load_greetings(tmp_path, 1, both)
    assert "menu main greeting: recording gone.wav: no such file" in map(str, problems)
    assert np.array_equal(loaded[both.menus["main"].greeting], samples)  # the text instead


def test_opening_hours_are_the_organisations_schedules() -> None:
    weekdays = Definition(**{day: ["08:00-17:00"] for day in ("mon", "tue", "wed", "thu", "fri")})
    hours = ScheduleHours({"office-hours": Schedule(weekdays)})
    monday = datetime(2026, 11, 30, tzinfo=ZoneInfo("Europe/Stockholm"))
    assert hours.state("office-hours", (monday + timedelta(hours=10)).timestamp()) is True
    assert hours.state("office-hours", (monday + timedelta(hours=18)).timestamp()) is False
    christmas_eve = datetime(2026, 12, 24, 10, tzinfo=ZoneInfo("Europe/Stockholm"))
    assert hours.state("office-hours", christmas_eve.timestamp()) is False
    assert hours.state("gone", monday.timestamp() + 36000) is False  # nobody there: closed
