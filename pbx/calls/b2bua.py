"""The back-to-back user agent (RFC 3261 §6 "B2BUA"): the facade of call
control.

SIP requests and responses come in from the server and go to the part that
owns them: leg signalling (:mod:`.signalling`), SDP (:mod:`.offer_answer`),
ringing (:mod:`.ringing`), transfers and pickup (:mod:`.transfer`), media
(:mod:`.media_paths`).  This module keeps the registries, follows the dial
plan, hands callers to services (the destination kinds registered with
:meth:`B2BUA.register`, reached through :class:`~pbx.calls.session.LegChannel`)
and ends calls, once each.  It is also the :class:`~pbx.calls.channel.CallControl`
services dial and connect through.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from media.engine import MediaEngine, MixPort
from media.prompts import PromptLibrary
from pbx.directory import Directory, Tenant
from pbx.events import CallAnswered, CallEnded, CallStarted, EventBus
from pbx.location import LocationService
from pbx.sip.flow import Flow
from pbx.models import Extension
from pbx.profiles import VOICEMAIL, caller_id
from pbx.router import (
    DIVERSION, MAX_FORWARD_HOPS, VOICEMAIL_MENU, ExtensionDest, PickupDest, RingGroupDest, RingStep,
    Router, ServiceDest,
)
from pbx.sdp import SdpError, SessionDescription
from pbx.sip.dialog import request_dialog_id
from pbx.sip.errors import ParseError, SipError
from pbx.sip.message import Request, Response, new_call_id
from pbx.tasks import Tasks

from pbx.calls.channel import Application, Channel, Clock, Party
from pbx.calls.media_paths import MediaPaths
from pbx.calls.external import Planner, inbound
from pbx.refusal import Refusal
from pbx.calls.model import Call, Leg, LegState, Ring, TrunkStep
from pbx.calls.offer_answer import OfferAnswer, SrtpPolicy
from pbx.calls.ports import Carriers, Ports, Signalling
from pbx.calls.ringing import Ringer
from pbx.calls.session import LegChannel
from pbx.calls.signalling import SDP, LegSignalling
from pbx.calls.transfer import Transfers
from pbx.calls.views import did_of

log = logging.getLogger("pbx.calls")

_CALLERID = re.compile(r'\s*(?:"([^"]*)"|([^<]*?))\s*<([^>]*)>\s*$')
DIALOG_LINGER = 32.0  # seconds a finished dialog still answers retransmissions (64·T1)
DISPOSITIONS = {486: "busy", 600: "busy", 480: "noanswer", 408: "noanswer", 603: "declined"}


def parse_callerid(text: str, fallback: str) -> tuple[str, str]:
    """``"Alice" <1001>`` → (name, number); a bare name keeps the extension number."""
    match = _CALLERID.match(text or "")
    if match:
        name = match.group(1) if match.group(1) is not None else match.group(2)
        return name.strip(), match.group(3).strip() or fallback
    return (text or "").strip(), fallback


@dataclass(frozen=True, slots=True)
class CallSettings:
    codecs: tuple[str, ...] = ("PCMU", "PCMA", "G722", "telephone-event")
    language: str = "en"
    srtp: SrtpPolicy = SrtpPolicy()


class CallerRing:
    """The ring of a call a phone made: the caller hears it ring, is answered
    when a fork answers, and is forwarded or refused when none does."""

    def __init__(self, b2bua: B2BUA, call: Call) -> None:
        self.b2bua = b2bua
        self.call = call

    def early(self, ring: Ring, leg: Leg, response: Response) -> None:
        self.b2bua.early(self.call, leg, response)

    def answered(self, ring: Ring, leg: Leg) -> None:
        self.b2bua.connect_answer(self.call, leg, ring.group)

    def failed(self, ring: Ring, status: int, reason: str | None) -> None:
        self.b2bua.ring_failed(self.call, ring, status, reason)


class DialRing:
    """The ring of a call a service placed (:meth:`B2BUA.dial`)."""

    def __init__(self, b2bua: B2BUA, call: Call, on_answer: Callable[[Channel], None],
                 on_fail: Callable[[int], None]) -> None:
        self.b2bua = b2bua
        self.call = call
        self.on_answer = on_answer
        self.on_fail = on_fail

    def early(self, ring: Ring, leg: Leg, response: Response) -> None:
        pass

    def answered(self, ring: Ring, leg: Leg) -> None:
        call = self.call
        call.b = leg
        assert leg.offer is not None
        self.b2bua.sdp.apply_remote(leg, leg.offer)
        self.b2bua.answered(call, leg.number)
        self.on_answer(self.b2bua.channel_of(leg, dialled=True))

    def failed(self, ring: Ring, status: int, reason: str | None) -> None:
        self.b2bua.end_call(self.call, DISPOSITIONS.get(status, "failed"), status, "pbx")
        self.on_fail(status)


class _Dialling:
    """The handle :meth:`B2BUA.dial` returns: cancelling stops the ringing."""

    def __init__(self, b2bua: B2BUA, call: Call) -> None:
        self.b2bua = b2bua
        self.call = call
        self.id = call.id

    def cancel(self) -> None:
        call = self.call
        if not call.ended and call.b is None:
            call.write_cdr = False  # the service gave up on it: not a call of anyone's
            self.b2bua.end_call(call, "cancelled", 487, "pbx")

    def time_out(self) -> None:
        """Nobody answered within the dial's own time limit: a no-answer."""
        call = self.call
        if not call.ended and call.b is None and call.dialling is not None:
            self.b2bua.end_call(call, "noanswer", 480, "pbx")
            call.dialling.on_fail(480)  # type: ignore[attr-defined]


class CallMonitor:
    """A supervisor in a call's engine room (ChanSpy): its mode switches live."""

    def __init__(self, engine: MediaEngine, room: str, port: MixPort, agent: MixPort,
                 mode: str) -> None:
        self.engine = engine
        self.room = room
        self.port = port
        self.agent = agent
        self.mode = mode

    def set_mode(self, mode: str) -> None:
        if self.room in self.engine.rooms and mode != self.mode:
            self.engine.set_supervision(self.room, self.port, self.agent, mode)
            self.mode = mode


class B2BUA:
    """Call control for one node."""

    def __init__(self, *, sip: Signalling, ports: Ports, media: MediaPaths,
                 engine: MediaEngine, prompts: Callable[[], PromptLibrary],
                 directory: Directory, location: LocationService, router: Router,
                 events: EventBus, clock: Clock, settings: CallSettings,
                 carriers: Carriers | None = None, planner: Planner | None = None) -> None:
        self.sip = sip
        self.carriers = carriers
        self.planner = planner
        self.ports = ports
        self.media = media
        self.engine = engine
        self.prompts = prompts
        self.directory = directory
        self.router = router
        self.events = events
        self.clock = clock
        self.settings = settings
        self.apps: dict[str, Application] = {}
        self.calls: dict[str, Call] = {}
        self.server_invites: dict[int, Leg] = {}  # id(INVITE server transaction) → caller leg
        self.tasks = Tasks(log, "call task")
        self.legs = LegSignalling(sip, clock, self._lost)
        self.sdp = OfferAnswer(list(settings.codecs), sip.media_address, media.renegotiated,
                               settings.srtp)
        self.ringer = Ringer(sip, self.legs, self.sdp, ports, location, clock, events,
                             self.spawn, carriers, self._external_member)
        self.transfers = Transfers(self, self.legs, self.ringer, media)

    @property
    def active_calls(self) -> int:
        return len(self.calls)

    def register(self, app: Application) -> None:
        """Calls to ``app.kind`` destinations go to ``app`` from now on."""
        self.apps[app.kind] = app

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        self.tasks.spawn(work)

    def live_calls(self) -> list[Call]:
        return list(self.calls.values())

    # ------------------------------------------------------------ a phone calls

    def on_invite(self, request: Request, flow: Flow, tx: object) -> None:
        if request.to_addr.tag is not None:
            self._on_reinvite(request)
            return
        replaces = request.headers.get_all("Replaces")
        if len(replaces) > 1:
            raise SipError(400, "Bad Request - More than one Replaces")
        now = self.clock.now()
        carrier = self.carriers.carrier_of(flow) if self.carriers is not None else None
        call = Call(id=new_call_id(), tenant=self.directory.default, started_at=now)
        if carrier is not None:  # a carrier's call: no credentials, one of our numbers
            tenant = self.directory.tenants.get(carrier.organisation, self.directory.default)
            asked = inbound(carrier, tenant, request)
            if isinstance(asked, Refusal):
                log.info("INVITE from trunk %s for %s: %d", carrier.settings.name,
                         request.uri.user, asked.status)
                self.legs.respond(request, asked.status, asked.phrase)
                return
            call.tenant, call.dialled = tenant, asked.did
            call.caller_number, call.caller_name = asked.caller, asked.caller_name
            call.trunk, call.direction = carrier.settings.name, "inbound"
            number = asked.caller
        else:
            tenant = self.directory.origin(request.from_addr.uri.host, request.uri.host)
            found = self.sip.authenticate(request, flow, tenant, now)
            if found is None:
                return
            caller = found[0]
            call.tenant, call.dialled = tenant, request.uri.user or ""
            call.caller_name, shown = parse_callerid(caller.display_name, caller.number)
            call.caller_number = caller_id(tenant.presence.active(caller, now), shown)
            number = caller.number
        offer = None
        if request.body:
            if request.content_type != SDP:
                self.legs.respond(request, 415, headers=[("Accept", SDP)])
                return
            try:
                offer = SessionDescription.parse(request.body)
                self.sdp.check(offer, self.sdp.srtp_mode(
                    call.tenant, number, flow.transport,
                    carrier.settings.name if carrier is not None else None))
            except SdpError as exc:  # refused before anything rings
                self.legs.refuse_sdp(request, exc)
                return
        leg = Leg(call, flow, number, request, outgoing=False, tx=tx, offer=offer)
        try:
            self.legs.ensure_dialog(leg)  # the To tag every answer shares; checks Contact
        except (ParseError, SipError) as exc:
            status = getattr(exc, "status", 400)
            self.legs.respond(request, status, exc.reason)
            return
        call.a = leg
        self.calls[call.id] = call
        self.server_invites[id(tx)] = leg
        log.info("call %s: %s → %s%s", call.id, number, call.dialled,
                 f" (trunk {call.trunk})" if call.trunk else "")
        self.events.publish(CallStarted(tenant.id, call.id, number, call.dialled,
                                        call.started_at, call.caller_name, did_of(call)))
        self.spawn(self._start(call, replaces[0] if replaces else None))

    async def _start(self, call: Call, replaces: str | None) -> None:
        assert call.a is not None
        try:
            call.a.media = await self.ports.open_leg(f"{call.id}/a")
        except Exception as exc:  # the port pool is exhausted, a bind failed
            log.error("call %s: no media ports: %s", call.id, exc)
            self.fail(call, 503, "Service Unavailable - No media ports")
            return
        if call.ended:
            self.spawn(self.media.release({call.a.media}))
            return
        self.guarded(call, lambda: self.transfers.replace(call.a, replaces) if replaces  # type: ignore[arg-type]
                     else self.route(call, call.dialled))

    def guarded(self, call: Call, work: Callable[[], None]) -> None:
        """Run call logic; whatever it raises, the caller gets a final answer and
        the call's ports and timers are released."""
        try:
            work()
        except Exception:
            log.exception("call %s: failed", call.id)
            try:
                self.fail(call, 500, "Server Internal Error")
            except Exception:
                log.exception("call %s: cannot fail cleanly", call.id)
                if not call.ended:
                    self.end_call(call, "failed", 500, "pbx")

    # ------------------------------------------------------------ the dial plan

    def route(self, call: Call, number: str, reason: str | None = None) -> None:
        """Reach what ``number`` means; ``reason`` marks a diversion (RFC 5806)."""
        tenant = call.tenant
        now = self.clock.now()
        dest = self.router.resolve(tenant, number, now)
        to_voicemail = number == VOICEMAIL or dest == ServiceDest(VOICEMAIL_MENU, number)
        if to_voicemail and call.diverted_from:  # a forward to voicemail: the diverter's mailbox
            dest = ServiceDest(VOICEMAIL, call.diverted_from)
        call.path.append(f"{reason or 'dial'}:{number}")
        if reason is not None:
            call.hops += 1
            if call.hops > MAX_FORWARD_HOPS:
                self.fail(call, 482, "Loop Detected - Too many forwards")
                return
        if isinstance(dest, ExtensionDest):
            self._ring_extension(call, tenant.extensions[dest.number], reason)
        elif isinstance(dest, RingGroupDest):
            group = tenant.ring_groups[dest.number]
            steps = self.router.plan(tenant, group, now)
            self._ring(call, steps, rung=group.number, group=group.number,
                       noanswer=group.fallback)
        elif isinstance(dest, PickupDest) and call.a is not None:
            self.transfers.pickup(call, dest.number)
        elif isinstance(dest, ServiceDest) and dest.kind in self.apps and call.a is not None:
            self.serve(call, dest.kind, dest.ident)
        elif isinstance(dest, ServiceDest):
            self.fail(call, 404, "Not Found - Service not available")
        elif self.planner is not None and self.planner.is_external(tenant, number):
            self._ring_out(call, number)
        else:
            self.fail(call, 404)

    def _external_member(self, call: Call, number: str) -> list[TrunkStep]:
        """The trunks that reach an external member of a ring group ([] when the
        planner refuses: rights, limits, no route)."""
        if self.planner is None or not self.planner.is_external(call.tenant, number):
            return []
        plan = self.planner.plan(call.tenant, call, number, self.clock.now())
        return [] if isinstance(plan, Refusal) else list(plan)

    def _ring_out(self, call: Call, number: str) -> None:
        """An external number: over the trunks its route names, in order."""
        assert self.planner is not None
        plan = self.planner.plan(call.tenant, call, number, self.clock.now())
        if isinstance(plan, Refusal):
            call.path.append(f"refused:{number}")
            self.fail(call, plan.status, plan.phrase)
            return
        if call.direction == "internal":
            call.direction = "outbound"
        self._ring(call, list(plan), rung=number)

    def _ring_extension(self, call: Call, ext: Extension, reason: str | None) -> None:
        if call.devices_only:  # a queue offers a call to an agent: their phones or nothing
            taken = ext.dnd or not call.tenant.presence.admission(ext, "queue",
                                                                   self.clock.now()).through
            if taken:
                self.fail(call, 486, "Busy Here - Takes no queue calls now")
            else:
                self._ring(call, [RingStep((ext.number,), float(ext.ring_timeout))],
                           rung=ext.number)
            return
        if ext.forward_always and reason != "unconditional":
            self._divert(call, ext.number, ext.forward_always, "unconditional")
            return
        admission = call.tenant.presence.admission(ext, "direct", self.clock.now())
        if not admission.through:
            call.path.append(f"profile:{ext.number}:{admission.profile}")
            if admission.divert and DIVERSION in self.apps and call.a is not None:
                # the caller hears why ("… is in a meeting until 11:00"), then the divert
                call.diverted_from, call.diversion_reason = ext.number, "unavailable"
                self.serve(call, DIVERSION, ext.number)
            elif admission.divert:
                self._divert(call, ext.number, admission.divert, "unavailable")
            else:
                self.fail(call, 486, f"Busy Here - Profile {admission.profile}")
            return
        if call.direction == "inbound":  # a Free license takes no calls from the public network
            refused = call.tenant.may_receive_external(ext.number)
            if refused is not None:
                call.path.append(f"license:{ext.number}")
                self.fail(call, refused.status, refused.phrase)
                return
        # what it cannot take goes to its mailbox unless a forward says otherwise (a
        # service's dial, e.g. to a queue agent, is never diverted to voicemail)
        mailbox = VOICEMAIL if ext.voicemail and call.dialling is None else ""
        busy, noanswer = ext.forward_busy or mailbox, ext.forward_noanswer or mailbox
        if ext.dnd:
            call.path.append(f"dnd:{ext.number}")
            if busy:
                self._divert(call, ext.number, busy, "user-busy")
            else:
                self.fail(call, 486, "Busy Here - Do not disturb")
            return
        self._ring(call, [RingStep((ext.number,), float(ext.ring_timeout))], rung=ext.number,
                   busy=busy, noanswer=noanswer)

    def _ring(self, call: Call, steps: list[RingStep | TrunkStep], *, rung: str,
              group: str | None = None,
              busy: str = "", noanswer: str = "") -> None:
        owner = call.dialling if call.dialling is not None else CallerRing(self, call)
        self.ringer.start(Ring(call, owner, steps=steps, rung=rung, group=group, busy_target=busy,
                               noanswer_target=noanswer))

    def _divert(self, call: Call, number: str, target: str, reason: str) -> None:
        log.info("call %s: %s diverts to %s (%s)", call.id, number, target, reason)
        call.diverted_from, call.diversion_reason = number, reason
        self.route(call, target, reason)

    def ring_failed(self, call: Call, ring: Ring, status: int, reason: str | None) -> None:
        """Nobody took the call: forward on busy or no answer, else refuse it."""
        if status in (486, 600) and ring.busy_target:
            self._divert(call, ring.rung, ring.busy_target, "user-busy")
        elif status in (408, 480) and ring.noanswer_target:
            reason = "no-answer" if ring.rang else "unavailable"  # no device registered
            self._divert(call, ring.rung, ring.noanswer_target, reason)
        else:
            self.fail(call, status, reason)

    def transfer_plan(self, call: Call, number: str) -> list[RingStep] | int:
        """A blind transfer rings extensions (DND and profiles respected) and groups."""
        tenant, now = call.tenant, self.clock.now()
        dest = self.router.resolve(tenant, number, now)
        if isinstance(dest, ExtensionDest):
            ext = tenant.extensions[dest.number]
            if ext.dnd or not tenant.presence.admission(ext, "direct", now).through:
                call.path.append(f"transfer-busy:{ext.number}")
                return 486
            return [RingStep((ext.number,), float(ext.ring_timeout))]
        if isinstance(dest, RingGroupDest):
            return self.router.plan(tenant, tenant.ring_groups[dest.number], now)
        return 404

    # ------------------------------------------------------------ answering

    def early(self, call: Call, leg: Leg, response: Response) -> None:
        """Tell the caller it rings: 180, or 183 with the callee's early media."""
        a = call.a
        if a is None or not a.state.pending:
            return  # a service answered the caller already: it hears ringback there
        if response.body and response.content_type == SDP and not a.early_sdp_sent:
            try:
                early = SessionDescription.parse(response.body)
                self.sdp.apply_remote(leg, early)
                answer = self.sdp.answer(a, prefer=early)
            except SdpError:
                answer = None
            if answer is not None and a.media is not None and leg.media is not None:
                self.ports.bridge(a.media, leg.media)
                self.legs.ringing(a, answer)
                return
        if a.state is LegState.TRYING:
            self.legs.ringing(a)

    def connect_answer(self, call: Call, leg: Leg, group: str | None = None) -> None:
        """A fork answered the caller's call: answer the caller (unless a service
        did already), bridge the two, and say so."""
        call.b = leg
        assert leg.offer is not None and call.a is not None
        self.sdp.apply_remote(leg, leg.offer)
        caller = call.a
        if caller.channel is not None:
            caller.channel.release()  # type: ignore[attr-defined]
        if caller.state is not LegState.ANSWERED and not self.answer_incoming(caller, leg):
            self.legs.bye(leg)
            self.end_call(call, "failed", 488, "pbx")
            return
        self.media.bridge(call)
        self.router.answered(call.tenant, group, leg.number, self.clock.now())
        self.answered(call, leg.number)

    def answer_incoming(self, leg: Leg, prefer: Leg | None = None) -> bool:
        """200 OK to a phone's INVITE with our answer (preferring ``prefer``'s
        codec); False, with a 488 to the phone, when nothing is common."""
        try:
            sdp = self.sdp.answer(leg, prefer=prefer.offer if prefer is not None else None)
        except SdpError as exc:
            self.legs.reject(leg, exc.status, exc.reason, headers=self.legs.warning(exc))
            return False
        self.legs.answer(leg, sdp)
        return True

    def answered(self, call: Call, by: str) -> None:
        """The call is answered by ``by`` (an extension, or a service): the record and
        the event, for every way a call gets answered."""
        if call.answered_at is None:
            call.answered_at = self.clock.now()
            limit = call.tenant.policy.max_call_duration
            if limit:  # toll-fraud guard and stuck-call sweeper (the organisation's policy)
                self.clock.call_later(limit, lambda: self._too_long(call))
        call.answered_by = by
        call.path.append(f"answer:{by}")
        log.info("call %s answered by %s", call.id, by)
        self.events.publish(CallAnswered(call.tenant.id, call.id, by, self.clock.now()))

    # ------------------------------------------------------------ services

    def serve(self, call: Call, kind: str, ident: str) -> None:
        """Hand the caller to the service of ``kind`` for ``ident``."""
        assert call.a is not None
        channel = self.channel_of(call.a)
        channel.service = f"{kind}:{ident}"
        call.path.append(channel.service)
        if call.answered_at is None and call.a.state is LegState.ANSWERED:
            self.answered(call, channel.service)  # a caller answered already (click-to-call)
        self.apps[kind].start(channel, ident)

    def channel_of(self, leg: Leg, dialled: bool = False) -> LegChannel:
        call = leg.call
        tenant = call.tenant
        if dialled:
            party = Party(tenant.id, leg.number, extension=leg.number, dialled=leg.number,
                          language=self._language(tenant))
        else:
            party = Party(tenant.id, call.caller_number, call.caller_name,
                          extension=leg.number if leg.number in tenant.extensions else None,
                          dialled=call.dialled, diverted_from=call.diverted_from,
                          diversion_reason=call.diversion_reason,
                          language=self._language(tenant))
        return LegChannel(self, leg, party, self.engine, self.prompts(), self.clock,
                          tenant.room_key)

    def _language(self, tenant: Tenant) -> str:
        return tenant.language or self.settings.language

    def answer_channel(self, channel: LegChannel) -> bool:
        leg = channel.leg
        if not self.answer_incoming(leg):
            self.end_call(leg.call, "failed", 488, "pbx")
            return False
        self.answered(leg.call, channel.service or leg.number)
        return True

    def redirect_channel(self, channel: LegChannel, number: str) -> None:
        """A service sends its caller on: a hop like a forward (a loop of them ends in 482)."""
        call = channel.leg.call
        self.guarded(call, lambda: self.route(call, number, "redirect"))

    def hang_up_channel(self, channel: LegChannel, status: int) -> None:
        leg = channel.leg
        call = leg.call
        if leg.state is LegState.ANSWERED:
            self.end_all(call, "answered" if call.answered_at else "failed", 200, "pbx")
        else:
            self.fail(call, status if status >= 300 else 480)

    # ------------------------------------------------------------ CallControl

    def dial(self, organisation: int, number: str, *, caller: Party,
             on_answer: Callable[[Channel], None], on_fail: Callable[[int], None],
             timeout: float | None = None, devices_only: bool = False) -> _Dialling:
        """Ring ``number`` for a service through the dial plan (a call of its own
        until :meth:`connect` merges it); ``devices_only``: an extension's own
        phones, no forwards or diversions (a queue offering a call to an agent)."""
        tenant = self.directory.tenants.get(organisation, self.directory.default)
        call = Call(id=new_call_id(), tenant=tenant, dialled=number, started_at=self.clock.now(),
                    caller_name=caller.name, caller_number=caller.number,
                    devices_only=devices_only, service=caller.service,
                    service_name=caller.service_name)
        call.dialling = DialRing(self, call, on_answer, on_fail)
        self.calls[call.id] = call
        log.info("call %s: the PBX calls %s for %s", call.id, number, caller.number)
        self.events.publish(CallStarted(tenant.id, call.id, caller.number, number,
                                        call.started_at, caller.name))
        self.guarded(call, lambda: self.route(call, number))
        handle = _Dialling(self, call)
        if timeout is not None:
            self.clock.call_later(timeout, handle.time_out)
        return handle

    def monitor(self, supervisor: Channel, extension: str, mode: str) -> CallMonitor | None:
        """The supervisor joins the answered call ``extension`` is on (its
        parties move into the engine if the relay carried them)."""
        assert isinstance(supervisor, LegChannel)
        organisation = supervisor.party.organisation
        target = next((c for c in self.calls.values()
                       if c.tenant.id == organisation and c.answered_at and not c.ended
                       and c.a is not None and c.b is not None
                       and extension in (c.a.number, c.b.number)
                       and supervisor.leg not in (c.a, c.b)), None)
        if target is None or supervisor.leg.media is None:
            return None
        left, right = self.media.into_engine(target)
        agent = left if target.a.number == extension else right  # type: ignore[union-attr]
        room = self.media.room_of(target)
        supervisor.leave_rooms()
        port = self.engine.supervise(room, supervisor.leg.media, agent, mode,
                                     on_dtmf=supervisor.dtmf_listener())
        supervisor.adopt(port)
        target.path.append(f"monitor:{supervisor.party.extension or supervisor.party.number}")
        target.on_end.append(lambda: supervisor.hang_up())
        log.info("call %s: %s listens in (%s) on %s", target.id, supervisor.party.number, mode,
                 extension)
        return CallMonitor(self.engine, room, port, agent, mode)

    def connect(self, a: Channel, b: Channel,
                after: Callable[[Channel], None] | None = None) -> None:
        """Join two channels into one call: ``b``'s call (a service's dial) is
        folded into ``a``'s, which keeps its record.  With ``after``, ``b``
        hanging up hands ``a`` back (a queue's post-call survey) instead of
        ending the call."""
        assert isinstance(a, LegChannel) and isinstance(b, LegChannel)
        call, other = a.leg.call, b.leg.call
        a.release()
        b.release()
        if other is not call:
            other.write_cdr = False
            other.merged_into = call.id
            if other.b is b.leg:
                other.b = None
            b.leg.call = call
            self.end_call(other, "answered", 200, "connect")
        if a.leg is call.a:
            call.b = b.leg
        else:
            call.a = b.leg
        if a.leg.state is not LegState.ANSWERED and not self.answer_incoming(a.leg, b.leg):
            self.end_all(call, "failed", 488, "pbx")
            return
        self.media.bridge(call)
        self.answered(call, b.leg.number)
        call.after_b = after

    # ------------------------------------------------------------ in-dialog requests

    def _on_reinvite(self, request: Request) -> None:
        """Hold, resume, codec change: answered here; the other phone never notices."""
        leg = self.legs.leg_of(request)
        if leg.ok is not None:
            self.legs.respond(request, 491, headers=[("Retry-After", "1")])
            return
        leg.invite = request
        if not request.body:
            self.legs.answer_reinvite(leg, request, self.sdp.offer_again(leg))
            return
        was_held = leg.held
        try:
            offer = SessionDescription.parse(request.body)
            answer = self.sdp.answer_offer(leg, offer)
        except SdpError as exc:
            self.legs.refuse_sdp(request, exc)
            return
        if leg.held != was_held:
            self.media.hold_changed(leg)
        self.legs.answer_reinvite(leg, request, answer)
        log.info("call %s: %s %s", leg.call.id, leg.number, "holds" if leg.held else "resumes")

    def on_ack(self, request: Request, flow: Flow) -> None:
        """ACK to one of our 2xx: stop resending it; an offerless call gets its answer."""
        leg = self.legs.dialogs.get(request_dialog_id(request))
        if leg is None:
            return
        self.legs.stop_resend(leg)
        if request.body and leg.offer is None:
            try:
                leg.offer = SessionDescription.parse(request.body)
            except SdpError as exc:
                log.warning("call %s: bad SDP in ACK: %s", leg.call.id, exc)
                self.hangup(leg.call, leg, 488)
                self.legs.bye(leg)
                return
            self.sdp.apply_remote(leg, leg.offer, leg.local_sdp)

    def on_update(self, request: Request, flow: Flow, tx: object) -> None:
        """UPDATE without a body refreshes a session timer (RFC 4028); with one, 488."""
        leg = self.legs.leg_of(request)
        if request.body:
            self.legs.respond(request, 488, "Not Acceptable Here - Use re-INVITE")
            return
        self.legs.respond(request, 200, leg=leg, headers=self.legs.timer_headers(leg, request))
        self.legs.arm_session_timer(leg)

    def on_bye(self, request: Request, flow: Flow, tx: object) -> None:
        leg = self.legs.leg_of(request)
        self.legs.respond(request, 200)
        log.info("call %s: %s hung up", leg.call.id, leg.number)
        if self.transfers.referrer_left(leg.call, leg):
            return
        leg.state = LegState.ENDED
        self.hangup(leg.call, leg, 0)

    def on_cancel(self, request: Request, flow: Flow, tx: object) -> None:
        invite_tx = self.sip.find_invite_server(request)
        leg = self.server_invites.get(id(invite_tx)) if invite_tx is not None else None
        if leg is None:
            self.legs.respond(request, 481)
            return
        self.legs.respond(request, 200)
        call = leg.call
        if not leg.state.pending or call.ended:
            return
        log.info("call %s cancelled by the caller", call.id)
        call.path.append("cancel")
        self.legs.reject(leg, 487)
        self.end_call(call, "cancelled", 487, "caller")

    def on_info(self, request: Request, flow: Flow, tx: object) -> None:
        """SIP INFO DTMF (``application/dtmf-relay`` ``Signal=5``, or ``application/dtmf``):
        the key reaches whoever listens on the leg, like RFC 4733 and in-band keys."""
        leg = self.legs.leg_of(request)
        digit = info_digit(request)
        if request.body and digit is None:
            self.legs.respond(request, 415, headers=[("Accept", "application/dtmf-relay")])
            return
        self.legs.respond(request, 200)
        port = leg.media.peer if leg.media is not None else None
        on_dtmf = getattr(port, "on_dtmf", None)
        if digit is not None and on_dtmf is not None:
            log.info("call %s: DTMF %s by INFO from %s", leg.call.id, digit, leg.number)
            on_dtmf(port, digit)

    def on_notify(self, request: Request, flow: Flow, tx: object) -> None:
        self.legs.leg_of(request)
        self.legs.respond(request, 200)

    def on_refer(self, request: Request, flow: Flow, tx: object) -> None:
        self.transfers.on_refer(request)

    # ------------------------------------------------------------ responses to our requests

    def on_response(self, tx: object, response: Response) -> None:
        leg = self.legs.client_legs.get(id(tx))
        if leg is None:
            self.on_stray_response(response)
            return
        method = response.cseq.method
        if method == "INVITE" and leg.ring is not None:
            self.guarded(leg.call, lambda: self.ringer.on_response(leg, response))
        elif method == "NOTIFY" and response.status >= 300:
            log.info("NOTIFY refused by %s: %d", leg.number, response.status)
        if response.status >= 200:
            self.legs.client_legs.pop(id(tx), None)

    def on_stray_response(self, response: Response) -> None:
        """A retransmitted 2xx after its transaction ended: ACK it again (RFC 6026)."""
        if response.cseq.method != "INVITE" or not 200 <= response.status < 300:
            return
        leg = self.legs.dialogs.get((response.call_id, response.from_addr.tag or "",
                                     response.to_addr.tag or ""))
        if leg is not None and leg.dialog is not None:
            self.legs.ack(leg)

    def on_timeout(self, tx: object) -> None:
        leg = self.legs.client_legs.pop(id(tx), None)
        if leg is not None and leg.ring is not None and leg.state.pending:
            self.ringer.fork_failed(leg, 408)

    # ------------------------------------------------------------ the end

    def _lost(self, leg: Leg, status: int) -> None:
        """A phone went silent (no ACK, an expired session timer): end its call."""
        self.legs.bye(leg)
        self.hangup(leg.call, leg, status)

    def hangup(self, call: Call, leg: Leg, status: int) -> None:
        """``leg`` left the call: the other legs are ended, then the call."""
        if call.ended:
            return
        after, call.after_b = call.after_b, None
        if after is not None and leg is call.b and call.a is not None \
                and call.a.state is LegState.ANSWERED:
            call.b = None  # the caller stays: back to the service that connected them
            call.path.append(f"left:{leg.number}")
            self.release(leg)
            after(self.channel_of(call.a))
            return
        for other in call.legs():
            if other is not leg:
                self.legs.end(other)
        who = "caller" if leg is call.a else "callee"
        self.end_call(call, "answered" if call.answered_at else "failed", status or 200, who)

    def end_all(self, call: Call, disposition: str, status: int, hangup_by: str) -> None:
        """The PBX ends the call: every leg is ended as its state needs."""
        for leg in call.legs():
            self.legs.end(leg, status if status >= 300 else 487)
        self.end_call(call, disposition, status, hangup_by)

    def fail(self, call: Call, status: int, reason: str | None = None) -> None:
        """No one will answer: the caller gets the final answer (or, answered
        already by a service, is hung up on), and the call ends."""
        if call.ended:
            return
        a = call.a
        if a is not None and a.state.pending:
            self.legs.reject(a, status, reason)
        elif a is not None and a.state is LegState.ANSWERED:
            self.legs.bye(a)
        self.end_call(call, DISPOSITIONS.get(status, "failed"), status, "pbx")
        if isinstance(call.dialling, DialRing):  # a service's dial the dial plan refused
            call.dialling.on_fail(status)

    def end_calls_of(self, organisation: int, number: str) -> int:
        """End every call extension ``number`` of ``organisation`` takes part in
        (it is being removed)."""
        ended = 0
        for call in list(self.calls.values()):
            if call.tenant.id != organisation or not any(leg.number == number
                                                         for leg in call.legs()):
                continue
            for leg in call.legs():
                if not leg.outgoing and leg.state.pending:
                    self.legs.reject(leg, 480, "Temporarily Unavailable - Removed")
                else:
                    self.legs.end(leg)
            call.path.append(f"removed:{number}")
            self.end_call(call, "answered" if call.answered_at else "failed", 200, "admin")
            ended += 1
        if ended:
            log.info("ended %d call(s) of removed extension %s", ended, number)
        return ended

    def release(self, leg: Leg) -> None:
        """A leg left its call for good (transferred away): its port goes back."""
        if leg.media is not None:
            media, leg.media = leg.media, None
            self.spawn(self.media.release({media}))

    def end_call(self, call: Call, disposition: str, status: int, hangup_by: str) -> None:
        """The call is over: timers stop, services hear it, the record and the
        event go out, and every port is given back, once."""
        if call.ended:
            return
        call.ended = True
        if call.ring is not None:
            self.ringer.finish(call.ring)
        self.calls.pop(call.id, None)
        quality: dict[str, dict[str, float]] = {}
        ports = set()
        for leg in call.legs():
            leg.state = LegState.ENDED
            self.legs.stop_timers(leg)
            if leg.media is not None:
                ports.add(leg.media)
                quality[leg.number] = dataclasses.asdict(leg.media.stats())
            if not leg.outgoing:
                self.server_invites.pop(id(leg.tx), None)
        self.clock.call_later(DIALOG_LINGER, lambda: self._forget(call))
        now = self.clock.now()
        caller = call.a.number if call.a else call.caller_number
        answered_by = call.answered_by if call.answered_at else ""
        log.info("call %s ended: %s (%d)", call.id, disposition, status)
        for leg in call.legs():
            if leg.channel is not None:
                leg.channel.ended()  # type: ignore[attr-defined]
        self.events.publish(CallEnded(
            call.tenant.id, call.id, caller, call.dialled, answered_by, disposition, status,
            now - call.started_at, now, started_at=call.started_at,
            answered_at=call.answered_at, hangup_by=hangup_by, path=tuple(call.path),
            quality=quality, trunk=call.trunk, direction=call.direction,
            recorded=call.write_cdr, merged_into=call.merged_into,
        ))
        for listener in call.on_end:
            listener()
        if ports:
            self.spawn(self.media.release(ports))

    def _too_long(self, call: Call) -> None:
        if not call.ended:
            log.info("call %s: max_call_duration reached", call.id)
            call.path.append("max-duration")
            self.end_all(call, "answered", 200, "max-duration")

    def _forget(self, call: Call) -> None:
        """Dialog state outlives the call a little, to answer retransmissions."""
        for leg in call.legs():
            self.legs.forget(leg)


def info_digit(request: Request) -> str | None:
    """The key of a DTMF INFO body, if it is one."""
    body = request.body.decode("utf-8", "replace").strip()
    if request.content_type == "application/dtmf-relay":
        for line in body.splitlines():
            name, _, value = line.partition("=")
            if name.strip().lower() == "signal":
                body = value.strip()
                break
        else:
            return None
    elif request.content_type != "application/dtmf":
        return None
    key = body[:1].upper()
    return key if len(body) == 1 and key in "0123456789*#ABCD" else None
