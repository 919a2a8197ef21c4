"""The mailbox menu over a fake channel: logging in from another phone (three
wrong PINs hang up, each logged), the PIN asked on one's own phone when the
mailbox says so, a greeting recorded by phone (silence cut off), the PIN
changed by phone, and a shared mailbox offered after one's own."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from sqlmodel import Session, select

from ivr.mailbox_menu import MailboxMenuApp
from pbx.calls.channel import Party
from pbx.models import Greeting, MailboxSettings, Voicemail
from pbx.passwords import check_password
from pbx.voicemail import mailbox_settings, set_pin
from tests.fakes import FakeChannel
from tests.unit.voicemail_setup import Setup, eventually


def menu_app(setup: Setup) -> MailboxMenuApp:
    return MailboxMenuApp(setup.directory, setup.store, setup.events, setup.data)


def with_pin(setup: Setup, mailbox: str, pin: str, own_device: bool = False) -> None:
    with Session(setup.store.engine) as db:
        settings = mailbox_settings(db, setup.org, mailbox)
        settings.pin_from_own_device = own_device
        set_pin(db, settings, pin)


def phone(setup: Setup, extension: str) -> FakeChannel:
    return FakeChannel(setup.clock, Party(setup.org, extension, extension=extension))


async def said(channel: FakeChannel, prompt: str) -> None:
    await eventually(lambda: prompt in channel.said())


async def press(channel: FakeChannel, keys: str) -> None:
    """Keys, one at a time as a phone sends them, each handled before the next."""
    for key in keys:
        plays = len(channel.played)
        channel.press(key)
        if key == "#":
            await eventually(lambda: len(channel.played) > plays or not channel.alive)


async def test_three_wrong_pins_from_another_phone_hang_up_each_logged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    setup = Setup(tmp_path)
    with_pin(setup, "1002", "4711")
    channel = phone(setup, "1001")
    caplog.set_level(logging.INFO, "ivr.mailbox_menu")
    menu_app(setup).start(channel, "")  # voicemail_main: no ident
    await said(channel, "enter_mailbox")
    for _ in range(3):
        await press(channel, "1002#9999#")
    assert channel.said()[-2:] == ["wrong_pin", "goodbye"]
    setup.clock.advance(3)
    assert channel.ended == 200
    wrong = [r for r in caplog.records if "wrong PIN for mailbox 1002 from 1001" in r.message]
    assert len(wrong) == 3 and wrong[-1].levelno == logging.WARNING


async def test_the_right_pin_from_another_phone_opens_the_mailbox(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    with_pin(setup, "1002", "4711")
    channel = phone(setup, "1001")
    menu_app(setup).start(channel, "")
    await said(channel, "enter_mailbox")
    await press(channel, "1002#4711#")
    await said(channel, "no_messages")
    assert "wrong_pin" not in channel.said()


async def test_a_mailbox_without_a_pin_cannot_be_reached_from_elsewhere(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    channel = phone(setup, "1001")
    menu_app(setup).start(channel, "")
    await said(channel, "enter_mailbox")
    await press(channel, "1003#1003#")
    assert channel.said()[-2:] == ["wrong_pin", "enter_mailbox"]


async def test_ones_own_phone_is_asked_the_pin_only_when_the_mailbox_says_so(
        tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    with_pin(setup, "1002", "4711")
    free = phone(setup, "1002")
    menu_app(setup).start(free, "133")
    await said(free, "no_messages")
    with_pin(setup, "1002", "4711", own_device=True)
    asked = phone(setup, "1002")
    menu_app(setup).start(asked, "133")
    await said(asked, "enter_your_pin")
    await press(asked, "4711#")
    await said(asked, "no_messages")


async def test_a_greeting_recorded_by_phone_without_its_silence(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    channel = phone(setup, "1002")
    menu_app(setup).start(channel, "133")
    await said(channel, "no_messages")
    channel.press("0")
    await said(channel, "greeting_menu")
    channel.press("3")  # the name
    await said(channel, "record_after_tone")
    setup.clock.advance(5)  # the prompt and the tone are heard: recording
    assert channel.recording is not None
    voice = (np.sin(np.arange(8000) * 2 * np.pi * 440 / 8000) * 6000).astype(np.int16)
    silence = np.zeros(16000, dtype=np.int16)
    channel.recording.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(channel.recording, np.concatenate([silence, voice, silence]), 8000)
    channel.press("#")
    await said(channel, "greeting_saved")
    with Session(setup.store.engine) as db:
        (greeting,) = db.exec(select(Greeting)).all()
    assert (greeting.mailbox, greeting.kind, greeting.seconds) == ("1002", "name", 1.0)
    stored, rate = soundfile.read(greeting.path, dtype="int16")
    assert rate == 8000 and len(stored) == 8000
    assert not list(Path(greeting.path).parent.glob(".recording-*"))


async def test_a_temporary_greeting_by_phone_ends_after_its_days(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    channel = phone(setup, "1002")
    menu_app(setup).start(channel, "133")
    await said(channel, "no_messages")
    channel.press("0")
    await said(channel, "greeting_menu")
    channel.press("4")
    await said(channel, "temporary_greeting_days")
    await press(channel, "3#")
    await said(channel, "record_after_tone")
    setup.clock.advance(5)
    assert channel.recording is not None
    channel.recording.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(channel.recording, np.full(8000, 5000, dtype=np.int16), 8000)
    setup.clock.advance(60)  # no # pressed: the recording stops by itself
    await said(channel, "greeting_saved")
    with Session(setup.store.engine) as db:
        (greeting,) = db.exec(select(Greeting)).all()
    assert greeting.kind == "temporary"
    assert greeting.expires_at is not None
    assert abs(greeting.expires_at - (time.time() + 3 * 86400)) < 60


async def test_the_pin_changed_by_phone(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    channel = phone(setup, "1003")
    menu_app(setup).start(channel, "133")
    await said(channel, "no_messages")
    channel.press("0")
    await said(channel, "greeting_menu")
    channel.press("5")
    await press(channel, "2580#2580#")
    await said(channel, "pin_changed")
    with Session(setup.store.engine) as db:
        (settings,) = db.exec(select(MailboxSettings)).all()
    assert settings.mailbox == "1003" and check_password("2580", settings.pin_hash)


async def test_a_members_shared_mailbox_follows_its_own(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    wav = tmp_path / "m.wav"
    soundfile.write(wav, np.full(8000, 3000, dtype=np.int16), 8000)
    with Session(setup.store.engine) as db:
        db.add(Voicemail(organisation_id=setup.org, mailbox="2000", caller="0701",
                         path=str(wav), created_at=1.0))
        db.commit()
    channel = phone(setup, "1003")
    menu_app(setup).start(channel, "133")
    await said(channel, "shared_mailbox_key")
    assert channel.said()[-4:] == ["digit_2", "digit_0", "digit_0", "digit_0"]  # no name
    channel.press("2")
    await said(channel, "new_message")
    assert channel.played[-1][:3] == ("you_have", "number_1", "new_message")
    message = channel.played[-1][4]  # between pauses: the shared mailbox's message
    assert isinstance(message, np.ndarray) and len(message) == 8000
    await eventually(lambda: setup.store.mailbox_counts(setup.org, "2000") == (0, 1))
