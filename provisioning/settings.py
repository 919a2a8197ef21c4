"""What every vendor's configuration file is made from: one phone's accounts,
its SIP server, clock, language and BLF keys.

The admin API fills a :class:`PhoneSettings` from the store; the vendor
modules turn it into the bytes a phone downloads.  Nothing here touches a
database, a socket or the clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pbx.config import VOICEMAIL_NUMBER
from pbx.router import PICKUP_PREFIX
from provisioning.timezone import ZoneRule

TRANSPORTS = ("udp", "tcp", "tls")
_SEPARATORS = re.compile(r"[\s:.\-]")
_HEX12 = re.compile(r"[0-9a-f]{12}")
_MAC_IN_NAME = re.compile(r"(?<![0-9a-fA-F])([0-9a-fA-F]{12})(?![0-9a-fA-F])")


def normalise_mac(text: str) -> str:
    """``00:15:65:AA:BB:CC``, ``0015-65aa-bbcc``, ``0015.65aa.bbcc`` → ``001565aabbcc``."""
    mac = _SEPARATORS.sub("", text).lower()
    if not _HEX12.fullmatch(mac):
        raise ValueError("a MAC address is 12 hex digits, e.g. 00:15:65:aa:bb:cc")
    return mac


def mac_in_filename(filename: str) -> str | None:
    """The MAC a phone put in the file name it asks for (``cfg001565aabbcc.xml``), if any."""
    match = _MAC_IN_NAME.search(filename)
    return match[1].lower() if match else None


@dataclass(frozen=True)
class Account:
    """One SIP account (a line) of the phone.

    The phone registers ``extension`` (the AOR's user part, the From/To user)
    and authenticates with its device's own ``auth_name`` and ``secret``.
    """

    extension: str
    display_name: str
    auth_name: str
    secret: str
    label: str = ""

    @property
    def shown_label(self) -> str:
        return self.label or self.extension


@dataclass(frozen=True)
class SipServer:
    """Where the phone sends SIP: ``host:port`` over ``transport``; ``domain``
    is the organisation's SIP domain that goes into the AOR."""

    domain: str
    host: str
    port: int
    transport: str = "udp"

    def __post_init__(self) -> None:
        if self.transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}")

    @property
    def host_port(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def needs_proxy(self) -> bool:
        """A domain that is not the server's address is reached through it as outbound proxy."""
        return self.domain != self.host


@dataclass(frozen=True)
class BlfKey:
    """A busy lamp field key watching a colleague's extension."""

    extension: str
    label: str


@dataclass(frozen=True)
class PhoneSettings:
    """Everything one phone's configuration says.

    ``accounts[0]`` is the phone's own line; a DECT base has one account per
    handset.  ``base_url`` is this phone's provisioning folder (ending in
    ``/``), for files that point at other files.
    """

    mac: str
    model: str
    accounts: tuple[Account, ...]
    server: SipServer
    timezone: ZoneRule
    base_url: str
    language: str = "en"
    blf: tuple[BlfKey, ...] = field(default_factory=tuple)
    voicemail: str = VOICEMAIL_NUMBER  # the number the message key dials (``voicemail_number``)
    pickup_prefix: str = PICKUP_PREFIX  # a BLF key of a ringing colleague dials it + extension
    ntp_server: str = "pool.ntp.org"
    firmware_url: str = ""

    def __post_init__(self) -> None:
        if not self.accounts:
            raise ValueError("a phone needs at least one account")
        if normalise_mac(self.mac) != self.mac:
            raise ValueError("mac must be normalised (12 lower-case hex digits)")


def one_line(value: str) -> str:
    """A value safe in a one-line ``key = value`` file: no line breaks."""
    return " ".join(value.splitlines()).strip()
