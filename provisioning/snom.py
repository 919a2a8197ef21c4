"""Snom desk phones (D7xx, 7xx): the XML setting file.

A Snom phone pointed at ``<folder>/snom{model}-{mac}.htm`` (its setting URL,
or the name it asks for by default) reads that index, which names
``<MAC>.xml``: ``<settings><phone-settings>`` with one element per setting,
``idx`` for the identity, and ``<functionKeys>`` with BLF keys as
``blf <sip:user@domain>`` (Snom "XML setting files", format version 2).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from provisioning.settings import PhoneSettings
from provisioning.timezone import Transition
from provisioning.xmldoc import child, document

LANGUAGES = {
    "en": "English", "de": "Deutsch", "fr": "Francais", "es": "Espanol", "it": "Italiano",
    "nl": "Dutch", "sv": "Svenska",
}
_SNOM_PREFIX = re.compile(r"(?i)^snom[\s-]*")


def files(settings: PhoneSettings) -> dict[str, bytes]:
    """``<MAC>.xml`` and, when the model is known, ``snom<model>-<MAC>.htm`` naming it."""
    settings_file = f"{settings.mac.upper()}.xml"
    out = {settings_file: _settings(settings)}
    index_file = filename(settings.mac, settings.model)
    if index_file != settings_file:
        index = ET.Element("setting-files")
        child(index, "file", url=settings.base_url + settings_file)
        out[index_file] = document(index)
    return out


def filename(mac: str, model: str) -> str:
    """``snomD785-000413AABBCC.htm``, or ``000413AABBCC.xml`` while the model is unknown."""
    model = _SNOM_PREFIX.sub("", model).replace(" ", "")
    return f"snom{model}-{mac.upper()}.htm" if model else f"{mac.upper()}.xml"


def _settings(settings: PhoneSettings) -> bytes:
    root = ET.Element("settings")
    phone = child(root, "phone-settings", e="2")
    server = settings.server
    for idx, account in enumerate(settings.accounts, start=1):
        n = str(idx)
        for tag, value in (
            ("user_active", "on"),
            ("user_realname", account.display_name or account.extension),
            ("user_idle_text", account.shown_label),
            ("user_name", account.extension),
            ("user_pname", account.auth_name),
            ("user_pass", account.secret),
            ("user_host", server.domain),
            ("user_outbound", f"{server.host_port};transport={server.transport}"),
            ("user_mailbox", settings.voicemail),
        ):
            child(phone, tag, value, idx=n, perm="R")
    language = LANGUAGES.get(settings.language, "English")
    zone = settings.timezone
    for tag, value in (
        ("language", language),
        ("web_language", language),
        ("ntp_server", settings.ntp_server),
        ("timezone", ""),  # no Snom zone code: utc_offset and dst rule instead
        ("utc_offset", f"{zone.utc_offset:+d}"),
        ("dst", _dst(settings)),
    ):
        child(phone, tag, value, perm="R")
    if settings.firmware_url:
        child(phone, "firmware", settings.firmware_url, perm="R")
    keys = child(root, "functionKeys", e="2")
    for idx, key in enumerate(settings.blf):
        child(keys, "fkey", f"blf <sip:{key.extension}@{server.domain}>|{settings.pickup_prefix}",
              idx=str(idx), context="active", label=key.label, perm="R")
    return document(root)


def _dst(settings: PhoneSettings) -> str:
    """``3600 03.05.07 02:00:00 10.05.07 03:00:00``: save, start, end (month.week.weekday)."""
    zone = settings.timezone
    if zone.dst_start is None or zone.dst_end is None:
        return ""
    return f"{zone.dst_save} {_change(zone.dst_start)} {_change(zone.dst_end)}"


def _change(change: Transition) -> str:
    minutes, seconds = divmod(change.seconds % 3600, 60)
    return (f"{change.month:02d}.{change.week:02d}.{change.iso_weekday:02d} "
            f"{change.hour:02d}:{minutes:02d}:{seconds:02d}")
