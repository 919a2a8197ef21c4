"""Grandstream desk phones (GXP, GRP): ``cfg<mac>.xml``.

The file is ``<gs_provision version="1"><config version="1">`` with one
element per P-value (Grandstream configuration templates): account 1 only.
BLF keys use the Multi-Purpose Key P-values every GXP firmware knows
(P323… mode, P301… account/label/value), so at most seven.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from provisioning.settings import PhoneSettings
from provisioning.xmldoc import child, document

TRANSPORT = {"udp": "0", "tcp": "1", "tls": "2"}  # P130: 0 UDP, 1 TCP, 2 TLS/TCP
LANGUAGES = {"en": "en", "de": "de", "fr": "fr", "es": "es", "it": "it", "nl": "nl"}
MPK_BLF = "1"
MAX_BLF = 7
UPGRADE_VIA = {"http": "1", "https": "2"}  # P212


def files(settings: PhoneSettings) -> dict[str, bytes]:
    """``cfg<mac>.xml`` with the phone's line, clock, language and BLF keys."""
    account = settings.accounts[0]
    server = settings.server
    values: list[tuple[str, str]] = [
        ("P271", "1"),  # account active
        ("P270", account.shown_label),  # account name
        ("P47", server.domain),  # SIP server
        ("P48", server.host_port if server.needs_proxy else ""),  # outbound proxy
        ("P35", account.extension),  # SIP user ID
        ("P36", account.auth_name),  # authenticate ID
        ("P34", account.secret),  # authenticate password
        ("P3", account.display_name or account.extension),  # name
        ("P33", settings.voicemail),  # voice mail access number
        ("P130", TRANSPORT[server.transport]),
        ("P30", settings.ntp_server),
        ("P144", "0"),  # DHCP option 42 does not override the NTP server
        *_clock(settings),
        ("P1362", LANGUAGES.get(settings.language, "en")),
    ]
    scheme, _, path = settings.firmware_url.partition("://")
    if scheme in UPGRADE_VIA:
        values += [("P212", UPGRADE_VIA[scheme]), ("P192", path)]  # firmware server path
    for n, key in enumerate(settings.blf[:MAX_BLF]):
        values += [
            (f"P{323 + n}", MPK_BLF),
            (f"P{301 + 3 * n}", "0"),  # account 1
            (f"P{302 + 3 * n}", key.label),
            (f"P{303 + 3 * n}", key.extension),
        ]
    root = ET.Element("gs_provision", version="1")
    child(root, "mac", settings.mac)
    config = child(root, "config", version="1")
    for name, value in values:
        child(config, name, value)
    return {filename(settings.mac): document(root)}


def filename(mac: str) -> str:
    return f"cfg{mac}.xml"


def _clock(settings: PhoneSettings) -> list[tuple[str, str]]:
    """A self-defined time zone (P64 ``customize``) holding the POSIX TZ string
    (at most 44 characters in today's database; P246 takes 64); DHCP option 2
    may not override it (P143)."""
    return [("P64", "customize"), ("P246", settings.timezone.posix), ("P143", "0")]
