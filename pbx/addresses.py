"""E-mail addresses as the PBX takes them: where voicemail goes (an
extension's ``email``, Asterisk voicemail.conf style: ``a@x, b@y``) and who
sends it (``smtp_from``).  One parser, so the config file and the admin API
judge an address alike and say why one is refused.
"""

from __future__ import annotations

import re
from email.utils import parseaddr
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

# RFC 5322 §3.2.3 dot-atom: atext runs joined by single dots
_DOT_ATOM = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")  # RFC 1035 §2.3.1, digits allowed first


def check_address(text: str) -> str:
    """``local@domain`` (RFC 5321 §4.1.2 Mailbox, dot-atom local part): the
    address, stripped; a ValueError saying what is wrong otherwise."""
    address = text.strip()
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise ValueError(f"{address!r} is not an e-mail address (local@domain)")
    if len(local) > 64:  # RFC 5321 §4.5.3.1.1
        raise ValueError(f"{address!r}: the part before @ is longer than 64 characters")
    if not _DOT_ATOM.match(local):
        raise ValueError(f"{address!r}: the part before @ has characters an address cannot have")
    labels = domain.split(".")
    if len(domain) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ValueError(f"{address!r}: {domain!r} is not a domain name")
    return address


def address_list(text: str) -> tuple[str, ...]:
    """``a@x, b@y`` → each address checked (:func:`check_address`); empty → none."""
    return tuple(check_address(item) for item in text.split(",") if item.strip())


EmailAddresses = Annotated[str, StringConstraints(max_length=1000),
                          AfterValidator(lambda text: ", ".join(address_list(text)))]
"""Where voicemail is emailed, in sip.conf and the API alike: ``a@x, b@y``,
each address checked, kept in that form."""


def check_sender(text: str) -> str:
    """A From: an address, with a display name or without (``PBX <vm@x>``)."""
    _, address = parseaddr(text)
    check_address(address or text)
    return text.strip()
