"""Configuration files for desk phones and DECT bases, one module per vendor.

Every generator is pure: :class:`~provisioning.settings.PhoneSettings` in,
``{file name: bytes}`` out.  The admin API serves them under
``/provision/{token}/{file name}`` (see ``admin_api/provision.py``).
"""

from __future__ import annotations

from collections.abc import Callable

from provisioning import grandstream, polycom, snom, yealink
from provisioning.settings import PhoneSettings

VENDORS = ("yealink", "snom", "grandstream", "polycom")
BLF_KEYS = 10  # colleagues on a desk phone's keys, in extension order
DECT_ACCOUNTS = {"W52P": 5, "W56P": 5, "W60B": 8, "W70B": 10, "W80B": 100, "W90": 250}
DECT_ACCOUNTS_DEFAULT = 8

Generator = Callable[[PhoneSettings], dict[str, bytes]]
_DESK: dict[str, Generator] = {
    "yealink": yealink.files, "snom": snom.files,
    "grandstream": grandstream.files, "polycom": polycom.files,
}


def generator(vendor: str, kind: str) -> Generator | None:
    """The generator for a device, or None when it cannot be provisioned: a
    DECT device is provisionable as a Yealink W-series base only."""
    if kind == "dect":
        return yealink.dect_files if vendor == "yealink" else None
    return _DESK.get(vendor) if kind == "desk" else None


def entry_file(vendor: str, mac: str, model: str) -> str:
    """The file a phone of ``vendor`` asks for first, to show the admin."""
    if vendor == "snom":
        return snom.filename(mac, model)
    names = {"yealink": yealink.filename, "grandstream": grandstream.filename,
             "polycom": polycom.filename}
    return names[vendor](mac)


def dect_accounts(model: str) -> int:
    """How many accounts (handsets) a Yealink DECT base takes."""
    return DECT_ACCOUNTS.get(model.upper().replace("-", ""), DECT_ACCOUNTS_DEFAULT)


def content_type(body: bytes) -> str:
    """XML for XML files (Snom, Grandstream, Polycom, whatever their suffix), else text."""
    return "application/xml" if body.startswith(b"<?xml") else "text/plain; charset=utf-8"
