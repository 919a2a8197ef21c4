"""A call the PBX will not place, as the phone hears it (pure).

Licenses (:mod:`pbx.rights`), toll-fraud limits (:mod:`pbx.limits`), the
numbering plan (:mod:`pbx.numbering`) and outbound routes
(:mod:`pbx.outbound`) all answer "no" the same way: a SIP status with a
reason phrase that says why (RFC 3261 §21: the phrase is for the human in
front of the phone, ``403 Forbidden - International calls are not allowed``)
and a :class:`~pbx.events.CallRefused` event for whoever watches.
"""

from __future__ import annotations

from dataclasses import dataclass

from pbx.events import CallRefused
from pbx.numbering import NumberError
from pbx.sip.message import REASONS


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    reason: str  # "A free license makes no external calls"
    cause: str  # the rule: license, international, concurrent, rate, number, route

    @property
    def phrase(self) -> str:
        """The reason phrase of the SIP answer: ``Forbidden - <reason>``."""
        return f"{REASONS.get(self.status, 'Refused')} - {self.reason}"

    def event(self, organisation: int, extension: str, dialled: str, at: float) -> CallRefused:
        return CallRefused(organisation, extension, dialled, self.status, self.reason,
                           self.cause, at)

    @classmethod
    def of(cls, error: NumberError) -> Refusal:
        """A dialled string that is no public number."""
        return cls(error.status, error.reason, "number")
