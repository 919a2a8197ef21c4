"""Calls from and to the public network, over SIP trunks.

Inbound: an INVITE from a carrier (told by its source address, see
:mod:`pbx.trunks.service`) needs no credentials; the number dialled (in the
Request-URI or in To, as the trunk says) must be one of the organisation's
numbers that the trunk carries, and reaches what the numbers table says.
Anything else from a carrier gets 404: the PBX is no open relay.

Outbound: a number that is not the organisation's goes to the outbound
planner (routes, rights, limits: :class:`Planner`), which answers with the
trunks to try in order, or a refusal with its SIP status and reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pbx.directory import Tenant
from pbx.numbering import COUNTRIES, from_carrier
from pbx.refusal import Refusal
from pbx.sip.errors import ParseError
from pbx.sip.message import Address, Request

from pbx.calls.model import Call, TrunkStep
from pbx.calls.ports import Carrier


class Planner(Protocol):
    """Decides how an external number is reached (outbound routes, license
    rights, toll-fraud limits) — pure, ``now`` passed in."""

    def plan(self, tenant: Tenant, call: Call, number: str, now: float) -> list[TrunkStep] | Refusal:
        """The trunks to try, in order, or why not."""

    def is_external(self, tenant: Tenant, number: str) -> bool:
        """Does ``number`` leave the organisation (not one of its own)?"""


@dataclass(frozen=True, slots=True)
class Inbound:
    """What a carrier's INVITE asks for: the organisation's number dialled and
    who calls, as the carrier gave them."""

    tenant: Tenant
    did: str
    caller: str
    caller_name: str


def inbound(carrier: Carrier, tenant: Tenant, request: Request) -> Inbound | Refusal:
    """Check a carrier's INVITE: the number it names must be the
    organisation's, and one the trunk carries."""
    settings = carrier.settings
    uri = request.uri if settings.did_from == "ruri" else request.to_addr.uri
    did = (uri.user or "").split(";")[0]
    known = _number_in(tenant, did)
    if known is None or settings.dids and known not in settings.dids and did not in settings.dids:
        return Refusal(404, "No such number on this trunk", "number")
    identity = request.headers.get("P-Asserted-Identity")
    source = request.from_addr
    if identity:
        try:
            source = Address.parse(identity.split(",")[0])
        except ParseError:  # a carrier's odd PAI: From it is
            source = request.from_addr
    caller = source.uri.user or "anonymous"
    country = COUNTRIES.get(settings.country)
    if country is not None:  # shown in E.164 whatever form the carrier wrote it in
        caller = from_carrier(caller, settings.number_format, country)
    return Inbound(tenant, known, caller, source.display_name or "")


def _number_in(tenant: Tenant, did: str) -> str | None:
    """The organisation's number ``did`` is, with or without a leading ``+``."""
    for candidate in (did, f"+{did}", did.removeprefix("+")):
        if candidate in tenant.numbers:
            return candidate
    return None
