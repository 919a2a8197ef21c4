"""The voicemail service over a fake channel (greeting, options, messages and
call-back requests stored) and, in the in-memory call-control harness,
camp-on: a caller waiting on a busy extension rings it again when its call
ends."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
from sqlmodel import Session, select

from ivr.voicemail import TONE, VoicemailApp
from media.prompts import PromptLibrary
from pbx.calls.channel import Party
from pbx.calls.views import extension_dialogs
from pbx.events import MailboxChanged, VoicemailLeft
from pbx.models import Greeting
from pbx.voicemail import greeting_path, mailbox_settings, save_greeting
from tests.fakes import FakeChannel
from tests.harness import CallHarness
from tests.unit.voicemail_setup import Setup, eventually


async def greeted(setup: Setup, channel: FakeChannel, ident: str = "1002") -> None:
    setup.app.start(channel, ident)
    await eventually(lambda: bool(channel.played))


async def test_the_spoken_default_then_the_options_then_the_tone(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    channel = setup.caller()
    await greeted(setup, channel)
    assert channel.answered
    assert channel.played[0] == ("the_person_at", "digit_1", "digit_0", "digit_0", "digit_2",
                                 "is_not_available", "leave_message_options", "callback_option")
    setup.clock.advance(8)  # heard to the end: the tone, then the recording
    assert channel.played[1][-1] is TONE
    setup.clock.advance(1)
    assert channel.recording is not None and channel.recording.parent.name == "1002"


async def test_a_recorded_greeting_and_a_valid_temporary_one(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    tone = (np.sin(np.arange(8000) * 2 * np.pi * 500 / 8000) * 8000).astype(np.int16)
    with Session(setup.store.engine) as db:
        for kind, ends in (("unavailable", None), ("busy", None), ("temporary", 1e10)):
            save_greeting(db, greeting_path(tmp_path, setup.org, "1002", kind), tone,
                          Greeting(organisation_id=setup.org, mailbox="1002", kind=kind,
                                   path="", seconds=1.0, expires_at=ends))
    channel = setup.caller("user-busy")
    await greeted(setup, channel)
    greeting = channel.played[0][0]
    assert isinstance(greeting, np.ndarray) and np.array_equal(greeting.astype(np.int16), tone)
    with Session(setup.store.engine) as db:  # the temporary one ends: the busy one plays
        row = db.exec(select(Greeting).where(Greeting.kind == "temporary")).one()
        row.expires_at = 1.0
        db.add(row)
        db.commit()
    again = setup.caller("user-busy")
    await greeted(setup, again)
    assert isinstance(again.played[0][0], np.ndarray)
    assert again.played[0][1:] == ("leave_message_options", "callback_option")


async def test_the_recorded_name_replaces_the_extension_in_the_default(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    name = np.full(1600, 1000, dtype=np.int16)
    with Session(setup.store.engine) as db:
        save_greeting(db, greeting_path(tmp_path, setup.org, "1002", "name"), name,
                      Greeting(organisation_id=setup.org, mailbox="1002", kind="name", path=""))
    channel = setup.caller("user-busy")
    await greeted(setup, channel)
    said = channel.played[0]
    assert isinstance(said[0], np.ndarray) and said[1] == "is_busy"


async def test_hash_skips_the_greeting_and_the_message_is_kept(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    channel = setup.caller()
    await greeted(setup, channel)
    channel.press("#")
    assert channel.played[-1][-1] is TONE
    setup.clock.advance(1)
    assert channel.recording is not None
    channel.recording.parent.mkdir(parents=True)
    soundfile.write(channel.recording, np.zeros(16000, dtype=np.int16), 8000)  # 2 s said
    channel.caller_hangs_up()
    await eventually(lambda: len(setup.messages()) == 1)
    (message,) = setup.messages()
    assert (message.mailbox, message.caller, message.callback_number) == ("1002",
                                                                           "0701234567", "")
    await eventually(lambda: any(isinstance(e, VoicemailLeft) for e in setup.seen))
    assert MailboxChanged in {type(e) for e in setup.seen}


async def test_zero_goes_to_the_operator_of_the_mailbox_or_the_organisation(
        tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    channel = setup.caller()
    await greeted(setup, channel)
    channel.press("0")
    assert channel.redirected == "1001"
    with Session(setup.store.engine) as db:
        settings = mailbox_settings(db, setup.org, "1002")
        settings.operator = "1003"
        db.add(settings)
        db.commit()
    own = setup.caller()
    await greeted(setup, own)
    own.press("0")
    assert own.redirected == "1003"


async def test_without_an_operator_zero_is_not_offered(tmp_path: Path) -> None:
    setup = Setup(tmp_path, operator="")
    channel = setup.caller()
    await greeted(setup, channel)
    assert "leave_message_options" not in channel.said() and "leave_message" in channel.said()
    channel.press("0")
    assert channel.redirected is None and channel.played[-1][-1] is TONE


async def test_a_call_back_number_becomes_a_message_that_says_it(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    channel = setup.caller()
    await greeted(setup, channel)
    channel.press("2")
    assert channel.played[-1] == ("enter_callback_number",)
    channel.press(*"0701234567#")
    assert channel.played[-1] == ("callback_number_saved",)
    await eventually(lambda: len(setup.messages()) == 1)
    (message,) = setup.messages()
    assert message.callback_number == "0701234567" and message.mailbox == "1002"
    assert Path(message.path).name.endswith("-callback.wav") and Path(message.path).exists()
    setup.clock.advance(2)
    assert channel.ended == 200  # thanked, then hung up


async def test_a_call_back_number_keyed_then_silence_counts(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    channel = setup.caller()
    await greeted(setup, channel)
    channel.press("2", "4", "6")
    setup.clock.advance(11)
    await eventually(lambda: len(setup.messages()) == 1)
    assert setup.messages()[0].callback_number == "46"


async def test_a_shared_mailbox_takes_messages_under_its_own_number(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    channel = FakeChannel(setup.clock, Party(setup.org, "1001", extension="1001",
                                             dialled="2000"))
    await greeted(setup, channel, "2000")
    assert channel.played[0][0] == "unavailable"
    channel.press("#")
    setup.clock.advance(1)
    assert channel.recording is not None and channel.recording.parent.name == "2000"


async def test_an_unknown_mailbox_is_refused(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    channel = setup.caller()
    setup.app.start(channel, "4711")
    assert channel.ended == 404 and not channel.answered


@pytest.mark.parametrize("dnd", [False, True])
async def test_camp_on_rings_the_busy_extension_again_once_its_call_ends(
        tmp_path: Path, dnd: bool) -> None:
    """1002 talks to 1003; 1001 calls 1002, is diverted on busy to voicemail and
    presses 1: music, and when 1003 hangs up 1002 rings again for 1001.  On DND
    without a call (none to end) camp-on is not offered."""
    calls = CallHarness()
    calls.register("1002", "1003")
    prompts = PromptLibrary(tmp_path / "prompts", "en")
    app = VoicemailApp(calls.directory, calls.store, tmp_path, calls.events, lambda: prompts,
                       line_busy=lambda org, ext: ext in extension_dialogs(
                           calls.b2bua.live_calls(), org))
    calls.b2bua.register(app)
    desk = calls.phones["1002"]
    if not dnd:
        talk = await calls.call("1003", "1002")
        desk.reply(desk.invites()[-1], 200)
        calls.acked(talk)
    calls.tenant.extensions["1002"].forward_busy = "voicemail"
    calls.tenant.extensions["1002"].dnd = dnd
    waiting = await calls.call("1001", "1002")
    if not dnd:
        desk.reply(desk.invites()[-1], 486)  # busy on the line
    await calls.settle()
    call = next(c for c in calls.b2bua.live_calls() if c.dialled == "1002"
                and c.a is not None and c.a.number == "1001")
    channel = call.a.channel  # type: ignore[union-attr]
    assert channel is not None and calls.statuses(waiting)[-1] == 200  # voicemail answered
    await eventually(lambda: app.waiting or channel._play_timer is not None)
    if dnd:
        channel.key("1")  # not offered: straight to the tone instead, no music
        assert not app.waiting
        assert call.a.media.peer not in calls.engine.listening  # type: ignore[union-attr]
        return
    channel.key("1")
    assert app.waiting and call.a.media.peer in calls.engine.listening  # type: ignore[union-attr]
    rung = len(desk.invites())
    calls.b2bua.on_bye(calls.in_dialog(talk, "BYE"), calls.phones["1003"].flow, None)
    await calls.settle()
    assert not app.waiting
    assert len(desk.invites()) == rung + 1  # 1002 rings again, for 1001
    assert desk.invites()[-1].from_addr.uri.user == "1001"
    desk.reply(desk.invites()[-1], 200)
    assert call.b is not None and call.b.number == "1002"  # and they talk
