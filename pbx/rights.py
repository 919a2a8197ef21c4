"""What a license lets its holder do with the public network (pure).

The license table of Telavox, whose model the PBX follows:

============  ==================================================================
``free``      internal calls, conferences, the softphone; no calls to or from
              the public network, no number of its own
``fixed``     external calls in and out and a number of its own, voicemail
``mobile``    ``fixed``, and forwarding to a mobile (external) number
============  ==================================================================

An extension's rights are those of its user's active license (the directory
collects them, :class:`~pbx.directory.Tenant`).  An extension
no user holds (a phone set up in ``sip.conf``, a lobby phone) is not bound
by a license; a user without an active license cannot register or call at
all (``unlicensed``).  Emergency numbers are always allowed: the caller of
:func:`may_call_out` passes the number.
"""

from __future__ import annotations

from dataclasses import dataclass

from pbx.numbering import ExternalNumber
from pbx.refusal import Refusal


@dataclass(frozen=True, slots=True)
class Rights:
    external_calls: bool  # calls to and from the public network
    own_number: bool  # a number (DID) of the numbers table reaching the extension
    forward_external: bool  # forwards and profile diversions to an external number


RIGHTS: dict[str, Rights] = {
    "free": Rights(external_calls=False, own_number=False, forward_external=False),
    "fixed": Rights(external_calls=True, own_number=True, forward_external=False),
    "mobile": Rights(external_calls=True, own_number=True, forward_external=True),
}
UNBOUND = Rights(external_calls=True, own_number=True, forward_external=True)  # no user's


def rights_of(kind: str | None) -> Rights:
    """The rights of a license kind; None: an extension no user holds."""
    return UNBOUND if kind is None else RIGHTS[kind]


def may_call_out(kind: str | None, number: ExternalNumber) -> Refusal | None:
    """May an extension with a ``kind`` license call ``number``?  None: yes."""
    if number.emergency or rights_of(kind).external_calls:
        return None
    return Refusal(403, f"A {kind} license makes no external calls", "license")


def may_receive_external(kind: str | None) -> Refusal | None:
    """May an extension with a ``kind`` license take a call from the public network?"""
    if rights_of(kind).external_calls:
        return None
    return Refusal(403, f"A {kind} license takes no external calls", "license")


def may_forward_external(kind: str | None) -> Refusal | None:
    """May an extension with a ``kind`` license forward or divert to an external number?"""
    if rights_of(kind).forward_external:
        return None
    return Refusal(403, f"A {kind} license does not forward to external numbers; "
                        "a mobile license does", "license")


def may_hold_number(kind: str | None) -> str | None:
    """Why an extension with a ``kind`` license may not have a number of its own
    (the admin API's answer), or None."""
    if rights_of(kind).own_number:
        return None
    return f"a {kind} license comes with no number of its own (fixed and mobile licenses do)"
