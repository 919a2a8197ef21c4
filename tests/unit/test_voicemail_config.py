"""Voicemail in sip.conf, the store and the dial plan: shared mailbox sections
and the extensions' voicemail keys are validated at load (errors name file,
section and key), seed the store with hashed PINs, and the router sends a
shared mailbox's number to the voicemail kind and voicemail_main to the menu."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, select

from pbx.config import ConfigError, load_config
from pbx.directory import Directory
from pbx.models import MailboxSettings, SharedMailbox
from pbx.passwords import check_password
from pbx.router import Router, ServiceDest, Unknown
from pbx.store import Store

CONF = """
[general]
operator = 1001
voicemail_main = *98

[1001]
secret = s3cret-Pw
voicemail_pin = 4711
voicemail_operator = 1003

[1002]
secret = s3cret-Pw
mailbox = 2002
pin_from_own_device = yes
mwi_unsolicited = yes

[1003]
secret = s3cret-Pw

[2000]
type = mailbox
name = Support
members = 1002, 1003
pin = 2000
"""


def written(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sip.conf"
    path.write_text(text)
    return path


def test_voicemail_keys_and_a_shared_mailbox_are_read(tmp_path: Path) -> None:
    config = load_config(written(tmp_path, CONF))
    assert (config.general.operator, config.general.voicemail_main) == ("1001", "*98")
    assert config.general.camp_on_timeout == 300
    (box,) = config.mailboxes
    assert (box.number, box.name, box.members, box.pin) == ("2000", "Support",
                                                            ("1002", "1003"), "2000")
    alice, bob, _ = config.extensions
    assert (alice.voicemail_pin, alice.voicemail_operator) == ("4711", "1003")
    assert bob.pin_from_own_device and bob.mwi_unsolicited


@pytest.mark.parametrize(("text", "where"), [
    (CONF.replace("members = 1002, 1003", "members = 1002, 1009"), "[2000] members"),
    (CONF.replace("members = 1002, 1003", "members = 1002, 1002"), "[2000] members"),
    (CONF.replace("pin = 2000", "pin = 12"), "[2000] pin"),
    (CONF.replace("voicemail_pin = 4711", "voicemail_pin = 47a1"), "[1001] voicemail_pin"),
    (CONF.replace("voicemail_main = *98", "voicemail_main = 133"), "[general] voicemail_main"),
    (CONF.replace("type = mailbox", "type = mailbx"), "[2000] type"),
])
def test_mistakes_name_file_section_and_key(tmp_path: Path, text: str, where: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(written(tmp_path, text))
    assert f"sip.conf {where}" in str(error.value)


def test_the_store_is_seeded_with_hashed_pins_once(tmp_path: Path) -> None:
    config = load_config(written(tmp_path, CONF))
    store = Store("sqlite://")
    store.seed(config)
    store.seed(config)  # a restart: nothing doubled, nothing changed
    with Session(store.engine) as db:
        settings = {s.mailbox: s for s in db.exec(select(MailboxSettings)).all()}
        (shared,) = db.exec(select(SharedMailbox)).all()
    assert sorted(settings) == ["1001", "2000", "2002"]  # 1003 has nothing to keep
    assert check_password("4711", settings["1001"].pin_hash)
    assert "4711" not in settings["1001"].pin_hash
    assert settings["1001"].operator == "1003"
    assert settings["2002"].pin_from_own_device and not settings["2002"].pin_hash
    assert check_password("2000", settings["2000"].pin_hash)
    assert (shared.number, shared.members) == ("2000", "1002,1003")
    tenant = Directory(store, "pbx.test").default
    assert tenant.extensions["1002"].mwi_unsolicited and "2000" in tenant.mailboxes


def test_the_dial_plan_reaches_shared_mailboxes_and_the_main_menu(tmp_path: Path) -> None:
    store = Store("sqlite://")
    store.seed(load_config(written(tmp_path, CONF)))
    tenant = Directory(store, "pbx.test").default
    router = Router("8", "133", voicemail_main="*98")
    assert router.resolve(tenant, "2000", 0.0) == ServiceDest("voicemail", "2000")
    assert router.resolve(tenant, "voicemail:2000", 0.0) == ServiceDest("voicemail", "2000")
    assert router.resolve(tenant, "voicemail:1003", 0.0) == ServiceDest("voicemail", "1003")
    assert router.resolve(tenant, "*98", 0.0) == ServiceDest("voicemail-menu", "")
    assert router.resolve(tenant, "133", 0.0) == ServiceDest("voicemail-menu", "133")
    assert router.resolve(tenant, "voicemail:4040", 0.0) == Unknown("voicemail:4040")
    assert Router("8", "133").resolve(tenant, "", 0.0) == Unknown("")  # no main menu: nothing
