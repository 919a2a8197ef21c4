"""The softphone's STUN/TURN settings: what the page is given, and a setting
that is no STUN/TURN URL stopping the start with the key named."""

from pathlib import Path

import pytest

from pbx.config import ConfigError, load_config
from softphone.gateway import ice_servers


def test_the_page_gets_stun_as_given_and_turn_with_its_login(tmp_path: Path) -> None:
    path = tmp_path / "sip.conf"
    path.write_text("[general]\nwebrtc_ice_servers = stun:stun.example.org:3478, "
                    "turn:turn.example.org:3478?transport=udp\n"
                    "webrtc_turn_username = agents\nwebrtc_turn_password = s3cret-turn\n")
    assert ice_servers(load_config(path).general) == [
        {"urls": "stun:stun.example.org:3478"},
        {"urls": "turn:turn.example.org:3478?transport=udp", "username": "agents",
         "credential": "s3cret-turn"},
    ]


def test_no_servers_by_default(tmp_path: Path) -> None:
    path = tmp_path / "sip.conf"
    path.write_text("[general]\n")
    assert ice_servers(load_config(path).general) == []


def test_a_url_that_is_no_stun_or_turn_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "sip.conf"
    path.write_text("[general]\nwebrtc_ice_servers = http://stun.example.org\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert (info.value.section, info.value.key) == ("general", "webrtc_ice_servers")


def test_relay_only_needs_a_turn_server(tmp_path: Path) -> None:
    path = tmp_path / "sip.conf"
    path.write_text("[general]\nwebrtc_ice_servers = stun:stun.example.org\n"
                    "webrtc_ice_transport_policy = relay\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert (info.value.section, info.value.key) == ("general", "webrtc_ice_transport_policy")
    path.write_text("[general]\nwebrtc_ice_servers = turn:turn.example.org\n"
                    "webrtc_ice_transport_policy = relay\nwebrtc_reconnect_grace = 10\n")
    general = load_config(path).general
    assert (general.webrtc_ice_transport_policy, general.webrtc_reconnect_grace) == ("relay", 10)
