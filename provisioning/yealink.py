"""Yealink: T-series desk phones and W-series DECT bases (W60B, W70B, W80B, W90).

Both read ``<mac>.cfg`` (lower-case MAC, no separators): a text file that
starts with ``#!version:1.0.0.1`` followed by ``key = value`` lines (Yealink
Auto Provisioning Guide, "MAC-Oriented CFG File").  A desk phone gets its
line on account 1 and BLF keys on line keys 2…; a DECT base gets one account
per handset, handset N ringing and dialling out on account N.
"""

from __future__ import annotations

from provisioning.settings import PhoneSettings, one_line
from provisioning.timezone import Transition

HEADER = "#!version:1.0.0.1"
TRANSPORT_TYPE = {"udp": "0", "tcp": "1", "tls": "2"}
LINE_KEY = "15"  # linekey.N.type
BLF_KEY = "16"
LANGUAGES = {
    "en": "English", "de": "German", "fr": "French", "es": "Spanish", "it": "Italian",
    "pl": "Polish", "pt": "Portuguese", "ru": "Russian", "tr": "Turkish",
}


def files(settings: PhoneSettings) -> dict[str, bytes]:
    """A T-series desk phone's ``<mac>.cfg``: its line and the BLF keys."""
    return _cfg(settings, _line_keys(settings))


def dect_files(settings: PhoneSettings) -> dict[str, bytes]:
    """A W-series DECT base's ``<mac>.cfg``: one account per handset."""
    return _cfg(settings, _handsets(settings))


def _cfg(settings: PhoneSettings, keys: list[str]) -> dict[str, bytes]:
    lines = [HEADER, *_accounts(settings), *_clock(settings), *_language(settings), *keys]
    if settings.firmware_url:
        lines.append(f"static.firmware.url = {one_line(settings.firmware_url)}")
    return {filename(settings.mac): ("\n".join(lines) + "\n").encode()}


def filename(mac: str) -> str:
    return f"{mac}.cfg"


def _accounts(settings: PhoneSettings) -> list[str]:
    server = settings.server
    lines: list[str] = []
    for n, account in enumerate(settings.accounts, start=1):
        key = f"account.{n}"
        lines += [
            f"{key}.enable = 1",
            f"{key}.label = {one_line(account.shown_label)}",
            f"{key}.display_name = {one_line(account.display_name or account.extension)}",
            f"{key}.auth_name = {account.auth_name}",
            f"{key}.user_name = {account.extension}",
            f"{key}.password = {account.secret}",
            f"{key}.sip_server.1.address = {server.domain}",
            f"{key}.sip_server.1.port = {server.port}",
            f"{key}.sip_server.1.transport_type = {TRANSPORT_TYPE[server.transport]}",
        ]
        if server.needs_proxy:
            lines += [
                f"{key}.outbound_proxy_enable = 1",
                f"{key}.outbound_proxy.1.address = {server.host}",
                f"{key}.outbound_proxy.1.port = {server.port}",
            ]
        lines += [f"{key}.subscribe_mwi_to_vm = 1", f"voice_mail.number.{n} = {settings.voicemail}"]
    return lines


def _clock(settings: PhoneSettings) -> list[str]:
    zone = settings.timezone
    lines = [
        f"local_time.ntp_server1 = {settings.ntp_server}",
        f"local_time.time_zone = {zone.offset_text()}",
    ]
    if zone.dst_start is None or zone.dst_end is None:
        return lines + ["local_time.summer_time = 0"]
    return lines + [
        "local_time.summer_time = 1",
        "local_time.dst_time_type = 1",  # by week
        f"local_time.start_time = {_week_rule(zone.dst_start)}",
        f"local_time.end_time = {_week_rule(zone.dst_end)}",
        f"local_time.offset_time = {zone.dst_save // 60}",
    ]


def _week_rule(change: Transition) -> str:
    """Month/Week of Month (5 = last)/Day of Week (1 = Monday)/Hour."""
    return f"{change.month}/{change.week}/{change.iso_weekday}/{change.hour}"


def _language(settings: PhoneSettings) -> list[str]:
    name = LANGUAGES.get(settings.language, "English")
    return [f"lang.gui = {name}", f"lang.wui = {name}"]


def _line_keys(settings: PhoneSettings) -> list[str]:
    """The phone's own line, then BLF keys that pick up a ringing colleague."""
    lines = [f"linekey.1.type = {LINE_KEY}", "linekey.1.line = 1",
             "features.pickup.direct_pickup_enable = 1",
             f"features.pickup.direct_pickup_code = {settings.pickup_prefix}"]
    for n, key in enumerate(settings.blf, start=2):
        lines += [
            f"linekey.{n}.type = {BLF_KEY}",
            f"linekey.{n}.line = 1",
            f"linekey.{n}.value = {key.extension}",
            f"linekey.{n}.label = {one_line(key.label)}",
        ]
    return lines


def _handsets(settings: PhoneSettings) -> list[str]:
    lines: list[str] = []
    for n, account in enumerate(settings.accounts, start=1):
        lines += [
            f"handset.{n}.name = {one_line(account.shown_label)}",
            f"handset.{n}.incoming_lines = {n}",
            f"handset.{n}.dial_out_lines = {n}",
            f"handset.{n}.dial_out_default_line = {n}",
        ]
    return lines
