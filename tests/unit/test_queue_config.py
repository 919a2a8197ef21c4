"""Queues in sip.conf, in the store and the directory, and in the dial plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbx.config import ConfigError, load_config
from pbx.directory import Directory
from pbx.router import QUEUE, QUEUE_AGENT, Router, ServiceDest, Unknown
from pbx.store import Store

CONF = """
[general]
[1002]
secret = s3cret-1002
[1003]
secret = s3cret-1003
[700]
type = queue
name = Support
strategy = rrmemory
members = 1002,1003:5
maxwait = 120
overflow = voicemail:1002
announce-position = yes
announce-frequency = 30
"""


def test_a_queue_section_is_read_stored_and_routed(tmp_path: Path) -> None:
    path = tmp_path / "sip.conf"
    path.write_text(CONF)
    config = load_config(path)
    (queue,) = config.queues
    assert (queue.strategy, queue.penalties, queue.maxwait) == \
        ("rrmemory", {"1002": 0, "1003": 5}, 120)
    assert queue.announce_position and queue.announce_frequency == 30
    store = Store("sqlite://")
    store.seed(config)
    tenant = Directory(store, "pbx.test").default
    assert tenant.queues["700"] == queue
    router = Router()
    assert router.resolve(tenant, "700", 0) == ServiceDest(QUEUE, "700")
    assert router.resolve(tenant, "*45", 0) == ServiceDest(QUEUE_AGENT, "login")
    assert router.resolve(tenant, "*46", 0) == ServiceDest(QUEUE_AGENT, "pause")
    assert router.resolve(tenant, "*462", 0) == ServiceDest(QUEUE_AGENT, "pause2")
    assert router.resolve(tenant, "*4612", 0) == Unknown("*4612")


@pytest.mark.parametrize(("option", "key", "message"), [
    ("members = 1002,1099", "members", "no extension section for 1099"),
    ("members = 1002\nweight = heavy", "weight", "valid integer"),
    ("members = 1002:x", "members", "penalty"),
    ("retry = -1", "retry", "greater than or equal"),
    ("members = 1002\nschedule = lunchtime", "schedule", "no [lunchtime] section"),
])
def test_a_bad_queue_option_is_named(tmp_path: Path, option: str, key: str,
                                     message: str) -> None:
    path = tmp_path / "sip.conf"
    path.write_text(CONF.replace("members = 1002,1003:5", option))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert (info.value.section, info.value.key) == ("700", key)
    assert message in str(info.value)
