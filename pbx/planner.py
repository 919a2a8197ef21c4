"""The outbound planner call control asks (:class:`pbx.calls.external.Planner`):
numbering, license rights, toll-fraud limits and outbound routes in one
decision per call to the public network.

For a number the dial plan does not know, in this order:

1. the organisation's numbering plan reads it (``pbx.numbering``): a
   mistyped number is refused with the reason (484/404);
2. the license of the extension it is made for (``pbx.rights``): its own
   call needs a license with external calls; a forward or diversion to an
   external number needs a mobile one; emergency numbers always pass;
3. the toll-fraud guard (``pbx.limits``): calls at once, calls an hour,
   international calls; emergency numbers always pass and are never counted;
4. the outbound routes (``pbx.outbound``): the trunks to try, the number and
   caller ID as each wants them.

A refusal goes back to call control as the SIP answer and out on the event
bus as ``call.refused``.  The guard counts a call from its plan to its
``call.ended`` event, which it follows on the bus.  Nothing here reads the
clock: call control passes ``now``.
"""

from __future__ import annotations

import logging

from pbx.calls.model import Call, TrunkStep
from pbx.directory import Tenant
from pbx.events import CallEnded, Event, EventBus
from pbx.limits import TollGuard
from pbx.numbering import NumberError
from pbx.outbound import Caller, OutboundPlan, plan
from pbx.refusal import Refusal

log = logging.getLogger("pbx.planner")

TRUNK_TIMEOUT = 60.0  # seconds a trunk has to connect the call before the next one is tried


class OutboundPlanner:
    """Decides how calls reach the public network, and keeps the guard's counts."""

    def __init__(self, events: EventBus, guard: TollGuard | None = None) -> None:
        self.events = events
        self.guard = guard or TollGuard()
        events.subscribe(self._on_event)

    def is_external(self, tenant: Tenant, number: str) -> bool:
        """Is ``number`` (none of the organisation's) meant for the public network?
        Else it is a mistyped extension, and a plain 404."""
        return tenant.dialling.looks_external(number)

    def plan(self, tenant: Tenant, call: Call, number: str,
             now: float) -> list[TrunkStep] | Refusal:
        """The trunks to try in order, or the refusal the caller hears.  A step's
        empty caller ID is an anonymous call (``Privacy: id``): a route's
        ``anonymous`` asserts no identity to the carrier either."""
        extension = _on_behalf_of(tenant, call)
        decided = self._decide(tenant, call, number, now)
        if isinstance(decided, Refusal):
            log.info("call %s: %s for %s refused: %d %s", call.id, number, extension or "-",
                     decided.status, decided.reason)
            self.events.publish(decided.event(tenant.id, extension, number, now))
            return decided
        log.info("call %s: %s is %s, route %s", call.id, number, decided.number.number,
                 decided.route or "(emergency)")
        private = decided.privacy
        return [TrunkStep(a.trunk, a.number, "" if private else a.caller_id, TRUNK_TIMEOUT,
                          "" if private else call.caller_name) for a in decided.attempts]

    def _decide(self, tenant: Tenant, call: Call, dialled: str,
               now: float) -> OutboundPlan | Refusal:
        """Steps 1-4 of the module docstring; a plan found counts from now on."""
        try:
            number = tenant.dialling.normalise(dialled)
        except NumberError as error:
            return Refusal.of(error)
        extension = _on_behalf_of(tenant, call)
        if extension:
            refusal = (tenant.may_forward_external(extension)
                       if call.diverted_from and not number.emergency
                       else tenant.may_call_out(extension, number))
            if refusal is not None:
                return refusal
        refusal = self.guard.check(tenant.id, tenant.policy, extension, number, now, call.id)
        if refusal is not None:
            return refusal
        found = plan(tenant.routes, tenant.trunks, tenant.dialling, number,
                     Caller(extension, _outward(tenant, call, now)))
        if isinstance(found, OutboundPlan):
            self.guard.started(tenant.id, extension, call.id, number, now)
        return found

    def _on_event(self, event: Event) -> None:
        if isinstance(event, CallEnded):
            self.guard.ended(event.call_id)


def _on_behalf_of(tenant: Tenant, call: Call) -> str:
    """The extension a call to the public network is made for: the one that
    forwards or diverts it, else the one that dials; "" for a call a service
    places or one from outside that nobody forwards."""
    if call.diverted_from in tenant.extensions:
        return call.diverted_from
    dialler = call.a.number if call.a is not None else ""
    if call.direction != "inbound" and call.dialling is None and dialler in tenant.extensions:
        return dialler
    return ""


def _outward(tenant: Tenant, call: Call, now: float) -> str:
    """The number a call shows outside: a call from outside that is forwarded
    shows who calls (what a user expects on their mobile), an extension's
    call the number it shows (profile or its own)."""
    if call.direction == "inbound":
        return call.caller_number
    ext = tenant.extensions.get(call.a.number if call.a is not None else "")
    return tenant.outward_number(ext, now) if ext is not None else ""
