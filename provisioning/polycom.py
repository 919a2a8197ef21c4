"""Polycom (Poly) VVX and SoundPoint IP phones running UC Software.

The phone first fetches the master configuration ``<mac>.cfg``
(``<APPLICATION CONFIG_FILES=...>``), then the files it names, relative to
the same folder: here ``<mac>-phone.cfg``, whose parameters are the
attributes of ``<PHONE_CONFIG><ALL .../>`` (UC Software Administrator Guide:
``reg.x.*``, ``msg.mwi.x.*``, ``attendant.resourceList.x.*`` for BLF,
``tcpIpApp.sntp.*`` for the clock, ``lcl.ml.lang``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from provisioning.settings import PhoneSettings
from provisioning.timezone import Transition
from provisioning.xmldoc import document

TRANSPORT = {"udp": "UDPOnly", "tcp": "TCPOnly", "tls": "TLS"}
LANGUAGES = {
    "en": "English_United_Kingdom", "de": "German_Germany", "fr": "French_France",
    "es": "Spanish_Spain", "it": "Italian_Italy", "nl": "Dutch_Netherlands",
    "sv": "Swedish_Sweden", "da": "Danish_Denmark", "nb": "Norwegian_Norway",
}
APPLICATION = "sip.ld"  # the UC Software image name the phone asks for by default


def files(settings: PhoneSettings) -> dict[str, bytes]:
    """The master file ``<mac>.cfg`` and the parameters ``<mac>-phone.cfg``."""
    phone_file = f"{settings.mac}-phone.cfg"
    master = ET.Element("APPLICATION", {
        "APP_FILE_PATH": settings.firmware_url or APPLICATION,
        "CONFIG_FILES": phone_file,
        "MISC_FILES": "", "LOG_FILE_DIRECTORY": "", "OVERRIDES_DIRECTORY": "",
        "CONTACTS_DIRECTORY": "", "LICENSE_DIRECTORY": "",
    })
    root = ET.Element("PHONE_CONFIG")
    ET.SubElement(root, "ALL", _parameters(settings))
    return {filename(settings.mac): document(master), phone_file: document(root)}


def filename(mac: str) -> str:
    """The master configuration file, the one the phone asks for first."""
    return f"{mac}.cfg"


def _parameters(settings: PhoneSettings) -> dict[str, str]:
    server = settings.server
    values: dict[str, str] = {}
    for n, account in enumerate(settings.accounts, start=1):
        reg = f"reg.{n}"
        values |= {
            f"{reg}.address": f"{account.extension}@{server.domain}",
            f"{reg}.displayName": account.display_name or account.extension,
            f"{reg}.label": account.shown_label,
            f"{reg}.auth.userId": account.auth_name,
            f"{reg}.auth.password": account.secret,
            f"{reg}.server.1.address": server.domain,
            f"{reg}.server.1.port": str(server.port),
            f"{reg}.server.1.transport": TRANSPORT[server.transport],
            f"msg.mwi.{n}.callBackMode": "contact",
            f"msg.mwi.{n}.callBack": settings.voicemail,
        }
        if server.needs_proxy:
            values |= {
                f"{reg}.outboundProxy.address": server.host,
                f"{reg}.outboundProxy.port": str(server.port),
                f"{reg}.outboundProxy.transport": TRANSPORT[server.transport],
            }
    for n, key in enumerate(settings.blf, start=1):
        values |= {
            f"attendant.resourceList.{n}.address": f"{key.extension}@{server.domain}",
            f"attendant.resourceList.{n}.label": key.label,
            f"attendant.resourceList.{n}.type": "normal",
        }
    values |= {
        "tcpIpApp.sntp.address": settings.ntp_server,
        "tcpIpApp.sntp.address.overrideDHCP": "1",
        "tcpIpApp.sntp.gmtOffset": str(settings.timezone.utc_offset),
        "tcpIpApp.sntp.gmtOffset.overrideDHCP": "1",
        **_daylight_saving(settings),
        "lcl.ml.lang": LANGUAGES.get(settings.language, "English_United_Kingdom"),
    }
    return values


def _daylight_saving(settings: PhoneSettings) -> dict[str, str]:
    zone = settings.timezone
    if zone.dst_start is None or zone.dst_end is None:
        return {"tcpIpApp.sntp.daylightSavings.enable": "0"}
    return {
        "tcpIpApp.sntp.daylightSavings.enable": "1",
        "tcpIpApp.sntp.daylightSavings.fixedDayEnable": "0",
        **_change("start", zone.dst_start),
        **_change("stop", zone.dst_end),
    }


def _change(which: str, change: Transition) -> dict[str, str]:
    """Month, hour, day of week (1 = Sunday) and the week as its first date
    (1, 8, 15, 22) or ``lastInMonth``."""
    key = f"tcpIpApp.sntp.daylightSavings.{which}"
    last = change.week == 5
    return {
        f"{key}.month": str(change.month),
        f"{key}.time": str(change.hour),
        f"{key}.dayOfWeek": str(change.weekday + 1),
        f"{key}.dayOfWeek.lastInMonth": "1" if last else "0",
        f"{key}.date": "1" if last else str((change.week - 1) * 7 + 1),
    }
