"""The back-to-back user agent: calls between phones (RFC 3261 §6 "B2BUA").

Every call has two sides, ``a`` (who called) and ``b`` (who answered), each
a :class:`Leg`: one SIP dialog and one relay port.  While ringing, side ``b``
is a set of forks, one INVITE per registered contact of every extension the
dial plan says to ring; the first 2xx wins and the others are cancelled.
Media is anchored: both phones talk RTP to the PBX's relay, which is what
lets hold, transfer and (next) the mixer work without re-inviting anyone.

The SIP server owns transactions and transports; this module owns the call
logic and talks to the server through a handful of methods.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote as url_unquote

from media.engine import MixPort
from media.g711 import TRANSCODE
from media.relay import MediaRelay, RelayLeg
from pbx.location import reach
from pbx.directory import Tenant
from pbx.events import CallAnswered, CallEnded, CallRinging, CallStarted
from pbx.models import Cdr, ConferenceRoom, Extension
from pbx.profiles import VOICEMAIL, caller_id
from pbx.router import (
    MAX_FORWARD_HOPS, VOICEMAIL_MENU, Destination, ExtensionDest, PickupDest, RingGroupDest,
    RingStep, ServiceDest, Unknown,
)
from pbx.sdp import (
    Codec, SdpError, SessionDescription, choose_audio, hold_direction, make_answer, make_offer,
)
from pbx.sip.dialog import Dialog, DialogId, request_dialog_id
from pbx.sip.errors import ParseError, SipError
from pbx.sip.flow import Flow
from pbx.sip.message import (
    URI, Address, Headers, Request, Response, make_response, new_branch, new_call_id, new_tag,
)
from pbx.sip.transaction import build_cancel
from pbx.voicemail import VoicemailApp, mailbox_of
from pbx.voicemail_menu import MenuCall

if TYPE_CHECKING:
    from pbx.server import SipServer

log = logging.getLogger("pbx.b2bua")

SDP = "application/sdp"
STATIC_CODECS = {
    "PCMU": Codec(0, "PCMU", 8000),
    "PCMA": Codec(8, "PCMA", 8000),
    "G722": Codec(9, "G722", 8000),
    "opus": Codec(111, "opus", 48000, 2, fmtp="minptime=10;useinbandfec=1"),
    "telephone-event": Codec(101, "telephone-event", 8000, fmtp="0-16"),
}
_CALLERID = re.compile(r'\s*(?:"([^"]*)"|([^<]*?))\s*<([^>]*)>\s*$')
_session_ids = itertools.count(int(time.time()))


def parse_callerid(text: str, fallback: str) -> tuple[str, str]:
    """``"Alice" <1001>`` → (name, number); a bare name keeps the extension number."""
    match = _CALLERID.match(text or "")
    if match:
        name = match.group(1) if match.group(1) is not None else match.group(2)
        return name.strip(), match.group(3).strip() or fallback
    return (text or "").strip(), fallback


@dataclass(eq=False)
class Leg:
    """One party of a call: a dialog with one phone and its relay port."""

    call: Call
    flow: Flow
    number: str
    invite: Request
    outgoing: bool  # True: we sent the INVITE (a callee fork)
    tx: object = None
    dialog: Dialog | None = None
    media: RelayLeg | None = None
    offer: SessionDescription | None = None  # what the phone offered (or answered)
    local_sdp: SessionDescription | None = None
    sdp_version: int = 1
    state: str = "trying"  # trying, ringing, answered, ended
    status: int = 0
    ok: Response | None = None  # our 2xx to this phone, resent until ACK
    ok_timer: asyncio.TimerHandle | None = None
    session_timer: asyncio.TimerHandle | None = None
    held: bool = False
    early_sdp_sent: bool = False
    session_expires: int | None = None


@dataclass(eq=False)
class Call:
    """A call from side ``a`` to side ``b``; ``forks`` ring until one answers."""

    id: str
    tenant: Tenant  # the organisation the call is in: its dial plan, its domain
    a: Leg | None = None
    b: Leg | None = None
    b_media: RelayLeg | None = None  # the relay port every fork is offered
    dialled: str = ""
    forks: list[Leg] = field(default_factory=list)
    steps: list[RingStep] = field(default_factory=list)
    group: str | None = None
    ring_timer: asyncio.TimerHandle | None = None
    ringing_sent: bool = False
    started_at: float = field(default_factory=time.time)
    answered_at: float | None = None
    ended: bool = False
    path: list[str] = field(default_factory=list)
    hops: int = 0
    failure: int = 0
    noanswer_target: str = ""
    busy_target: str = ""
    caller_name: str = ""
    caller_number: str = ""
    rung: str = ""  # the extension or group being rung, for Diversion when it forwards
    diverted_from: str = ""
    diversion_reason: str = ""
    transfer: Transfer | None = None
    recording: Path | None = None  # the file being written now
    recordings: list[Path] = field(default_factory=list)
    stereo: tuple[MixPort, MixPort] | None = None
    on_answer: Callable[[Leg], None] | None = None  # set for calls the PBX places
    on_fail: Callable[[int], None] | None = None
    on_end: Callable[[], None] | None = None  # tells the app that answered (voicemail): it is over

    def legs(self) -> list[Leg]:
        return [leg for leg in (self.a, self.b, *self.forks) if leg is not None]


@dataclass(eq=False)
class Transfer:
    """A blind transfer in progress: ``keep`` waits while ``referrer`` is told how it goes."""

    referrer: Leg
    keep: Leg
    old_b_media: RelayLeg | None = None


class B2BUA:
    """Call control for one node."""

    def __init__(self, server: SipServer, relay: MediaRelay) -> None:
        self.server = server
        self.relay = relay
        self.calls: dict[str, Call] = {}
        self.dialogs: dict[DialogId, Leg] = {}
        self.client_legs: dict[int, Leg] = {}
        self.server_invites: dict[int, Leg] = {}
        self.codecs = [STATIC_CODECS[c] for c in server.config.general.codecs if c in STATIC_CODECS]
        self.active_calls = 0
        self.voicemail = VoicemailApp(server)

    # ------------------------------------------------------------ helpers

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    def _address(self) -> str:
        return self.server.media_address()

    def _contact(self, flow: Flow) -> str:
        return self.server.contact(flow)

    def _warning(self, error: SdpError) -> tuple[str, str]:
        """What was wrong with a phone's SDP, for its 400/488 (RFC 3261 §20.43)."""
        return ("Warning", error.warning(self._address()))

    def _respond(
        self, request: Request, status: int, reason: str | None = None, *,
        leg: Leg | None = None, sdp: SessionDescription | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> Response:
        tag = leg.dialog.local_tag if leg is not None and leg.dialog else None
        response = make_response(request, status, reason, to_tag=tag or new_tag())
        if leg is not None and 100 < status < 300 and request.method in ("INVITE", "UPDATE"):
            response.headers.add("Contact", self._contact(leg.flow))
            response.headers.add("Allow", self.server.allow_header())
            response.headers.add("Supported", "replaces, timer")
        for name, value in headers or []:
            response.headers.add(name, value)
        if sdp is not None:
            response.headers.add("Content-Type", SDP)
            response.body = bytes(sdp)
        self.server.respond(response)
        return response

    # ------------------------------------------------------------ INVITE

    def on_invite(self, request: Request, flow: Flow, tx: object) -> None:
        if request.to_addr.tag is not None:
            self._on_reinvite(request, flow)
            return
        tenant = self.server.directory.origin(request.from_addr.uri.host, request.uri.host)
        found = self.server.authenticate(request, flow, tenant, time.time())
        if found is None:
            return
        caller = found[0]
        offer = None
        if request.body:
            if request.content_type != SDP:
                self._respond(request, 415, headers=[("Accept", SDP)])
                return
            try:
                offer = SessionDescription.parse(request.body)
                choose_audio(offer, [c.name for c in self.codecs])
            except SdpError as exc:
                # refused before anything rings: nothing we could answer with
                self._respond(request, exc.status, exc.reason, headers=[self._warning(exc)])
                return
        call = Call(id=new_call_id(), tenant=tenant, dialled=request.uri.user or "")
        call.caller_name, number = parse_callerid(caller.display_name, caller.number)
        call.caller_number = caller_id(tenant.presence.active(caller, time.time()), number)
        leg = Leg(call, flow, caller.number, request, outgoing=False, tx=tx, offer=offer)
        leg.dialog = None
        call.a = leg
        self.calls[call.id] = call
        self.server_invites[id(tx)] = leg
        self.active_calls += 1
        log.info("call %s: %s → %s", call.id, caller.number, call.dialled)
        self.server.events.publish(
            CallStarted(tenant.id, call.id, caller.number, call.dialled, call.started_at))
        self.loop.create_task(self._start(call))

    async def _start(self, call: Call) -> None:
        assert call.a is not None
        log.debug("call %s: opening media", call.id)
        try:
            call.a.media = await self.relay.open_leg(f"{call.id}/a")
            call.b_media = await self.relay.open_leg(f"{call.id}/b")
        except Exception as exc:  # port pool exhausted, bind failure
            log.error("call %s: no media ports: %s", call.id, exc)
            self._fail(call, 503, "Service Unavailable - No media ports")
            return
        if call.ended:
            await self._release_media(call)
            return
        try:
            self._route(call, call.dialled)
        except Exception:
            log.exception("call %s: routing failed", call.id)
            self._fail(call, 500)

    def _route(self, call: Call, number: str, reason: str | None = None) -> None:
        """Ring what ``number`` means; ``reason`` marks a diversion (RFC 5806)."""
        tenant = call.tenant
        dest: Destination = self.server.router.resolve(tenant, number)
        to_voicemail = number == VOICEMAIL or dest == ServiceDest(VOICEMAIL_MENU, number)
        if to_voicemail and call.diverted_from:  # a forward to voicemail: the diverter's mailbox
            dest = ServiceDest(VOICEMAIL, call.diverted_from)
        call.path.append(f"{reason or 'dial'}:{number}")
        if reason is not None:
            call.hops += 1
            if call.hops > MAX_FORWARD_HOPS:
                self._fail(call, 482, "Loop Detected - Too many forwards")
                return
        if isinstance(dest, Unknown):
            self._fail(call, 404)
        elif isinstance(dest, ExtensionDest):
            self._ring_extension(call, tenant.extensions[dest.number], reason)
        elif isinstance(dest, RingGroupDest):
            group = tenant.ring_groups[dest.number]
            call.group = group.number
            call.noanswer_target = group.fallback
            call.rung = group.number
            call.steps = self.server.router.plan(tenant, group, time.time())
            self._next_step(call)
        elif isinstance(dest, PickupDest):
            self._pickup(call, dest.number)
        elif isinstance(dest, ServiceDest) and dest.kind == "conference":
            self._conference(call, dest.ident)
        elif isinstance(dest, ServiceDest) and dest.kind == VOICEMAIL:
            self._voicemail(call, dest.ident)
        elif isinstance(dest, ServiceDest) and dest.kind == VOICEMAIL_MENU:
            self._voicemail_menu(call)
        else:
            self._fail(call, 404, "Not Found - Service not available")

    def _ring_extension(self, call: Call, ext: Extension, reason: str | None) -> None:
        if ext.forward_always and reason != "unconditional":
            self._divert(call, ext, ext.forward_always, "unconditional")
            return
        call.busy_target = ext.forward_busy
        call.noanswer_target = ext.forward_noanswer
        call.rung = ext.number
        admission = call.tenant.presence.admission(ext, "direct", time.time())
        if not admission.through:
            call.path.append(f"profile:{ext.number}:{admission.profile}")
            if admission.divert:
                self._divert(call, ext, admission.divert, "unavailable")
            else:
                self._fail(call, 486, f"Busy Here - Profile {admission.profile}")
            return
        if ext.dnd:
            call.path.append(f"dnd:{ext.number}")
            if ext.forward_busy:
                self._divert(call, ext, ext.forward_busy, "user-busy")
            else:
                self._fail(call, 486, "Busy Here - Do not disturb")
            return
        call.steps = [RingStep((ext.number,), float(ext.ring_timeout))]
        self._next_step(call)

    def _divert(self, call: Call, ext: Extension, target: str, reason: str) -> None:
        log.info("call %s: %s diverts to %s (%s)", call.id, ext.number, target, reason)
        call.diverted_from, call.diversion_reason = ext.number, reason
        self._route(call, target, reason)

    def _next_step(self, call: Call) -> None:
        """Ring the next step of the plan, or give up with the best answer so far."""
        while call.steps:
            step = call.steps.pop(0)
            started = sum(self._fork(call, number) for number in step.members)
            if started:
                call.ring_timer = self.loop.call_later(step.timeout, self._ring_timeout, call)
                return
        self._no_more_steps(call)

    def _no_more_steps(self, call: Call) -> None:
        status = call.failure or 480
        if status in (486, 600) and call.busy_target:
            target, call.busy_target = call.busy_target, ""
            call.diverted_from, call.diversion_reason = call.rung, "user-busy"
            self._route(call, target, "user-busy")
            return
        if status in (408, 480) and call.noanswer_target:
            target, call.noanswer_target = call.noanswer_target, ""
            call.diverted_from, call.diversion_reason = call.rung, "no-answer"
            self._route(call, target, "no-answer")
            return
        self._fail(call, status)

    def _fork(self, call: Call, number: str) -> int:
        """INVITE every registered device of extension ``number``; how many were called."""
        server = self.server
        bindings = server.location.lookup(call.tenant.aor(number), time.time())
        if not bindings:
            call.path.append(f"unavailable:{number}")
            call.failure = call.failure or 480
            return 0
        assert call.b_media is not None
        for binding in bindings:
            target = URI.parse(binding.contact)
            flow = reach(binding, target.host, target.port)
            invite = self._build_invite(call, number, target, flow)
            leg = Leg(call, flow, number, invite, outgoing=True)
            leg.media = call.b_media
            leg.local_sdp = invite_sdp(invite)
            call.forks.append(leg)
            log.debug("call %s: INVITE %s via %s", call.id, binding.contact, flow)
            leg.tx = server.send_request(invite, flow)
            self.client_legs[id(leg.tx)] = leg
        call.path.append(f"ring:{number}x{len(bindings)}")
        self.server.events.publish(CallRinging(call.tenant.id, call.id, number, time.time()))
        return len(bindings)

    def _build_invite(self, call: Call, number: str, target: URI, flow: Flow) -> Request:
        assert call.b_media is not None
        realm = call.tenant.domain
        headers = Headers()
        sent_by = self.server.sent_by(flow.transport)
        headers.add("Via", f"SIP/2.0/{flow.transport} {sent_by};branch={new_branch()};rport")
        headers.add("Max-Forwards", "70")
        name = call.caller_name.replace('"', "")
        display = f'"{name}" ' if name else ""
        headers.add("From", f"{display}<sip:{call.caller_number}@{realm}>;tag={new_tag()}")
        headers.add("To", f"<sip:{number}@{realm}>")
        headers.add("Call-ID", new_call_id())
        headers.add("CSeq", "1 INVITE")
        headers.add("Contact", self._contact(flow))
        headers.add("Allow", self.server.allow_header())
        headers.add("Supported", "replaces, timer")
        diverted = call.diverted_from
        if diverted:
            reason = call.diversion_reason
            headers.add("Diversion", f"<sip:{diverted}@{realm}>;reason={reason};counter={call.hops}")
            headers.add("History-Info", f"<sip:{diverted}@{realm}>;index=1")
            headers.add("History-Info", f"<sip:{number}@{realm}>;index=1.1")
        headers.add("Content-Type", SDP)
        codecs = self._offer_codecs(call.a.offer if call.a else None)
        sdp = make_offer(
            address=self._address(), port=call.b_media.local_port, codecs=codecs,
            session_id=next(_session_ids), version=1,
        )
        return Request("INVITE", target, headers, bytes(sdp))

    def _offer_codecs(self, offer: SessionDescription | None) -> list[Codec]:
        """Offer the caller's codecs first (no transcoding), then what else we do."""
        ours = {c.name: c for c in self.codecs}
        first: list[Codec] = []
        if offer is not None and offer.audio is not None:
            first = [c for c in offer.audio.codecs if c.name in ours]
        names = {c.name for c in first}
        return first + [c for c in self.codecs if c.name not in names]

    # ------------------------------------------------------------ responses to our INVITEs

    def on_response(self, tx: object, response: Response) -> None:
        leg = self.client_legs.get(id(tx))
        if leg is None:
            self.on_stray_response(response)  # a 2xx retransmission: ACK it again
            return
        method = response.cseq.method
        if method == "INVITE":
            self._on_invite_response(leg, response)
        elif method == "BYE" or method == "CANCEL":
            pass
        elif method == "NOTIFY" and response.status >= 300:
            log.info("NOTIFY refused by %s: %d", leg.number, response.status)
        if response.status >= 200:
            self.client_legs.pop(id(tx), None)

    def on_stray_response(self, response: Response) -> None:
        """A retransmitted 2xx after its transaction ended: ACK it again (RFC 6026)."""
        if response.cseq.method != "INVITE" or not 200 <= response.status < 300:
            return
        leg = self.dialogs.get((response.call_id, response.from_addr.tag or "", response.to_addr.tag or ""))
        if leg is not None and leg.dialog is not None:
            self._send_ack(leg)

    def on_timeout(self, tx: object) -> None:
        leg = self.client_legs.pop(id(tx), None)
        if leg is not None and leg.state in ("trying", "ringing"):
            self._fork_failed(leg, 408)

    def _on_invite_response(self, leg: Leg, response: Response) -> None:
        call = leg.call
        status = response.status
        if status < 200:
            if status == 100 or leg.state != "trying" and leg.state != "ringing":
                return
            leg.state = "ringing"
            if call.b is None and not call.ended and call.a is not None:
                self._early(call, leg, response)
            return
        if status >= 300:
            self._fork_failed(leg, status)
            return
        if leg.dialog is not None:
            self._send_ack(leg)  # a retransmitted 2xx
            return
        leg.dialog = Dialog.as_uac(leg.invite, response, leg.flow)
        self.dialogs[leg.dialog.id] = leg
        self._send_ack(leg)
        if call.ended or (call.b is not None and call.b is not leg and call.transfer is None):
            log.info("call %s: late answer from %s, hanging up", call.id, leg.number)
            self._hangup_leg(leg)
            return
        try:
            answer = SessionDescription.parse(response.body)
        except SdpError as exc:
            log.warning("call %s: bad SDP answer from %s: %s", call.id, leg.number, exc)
            self._hangup_leg(leg)
            self._fork_failed(leg, 488)
            return
        leg.offer = answer
        leg.state = "answered"
        self._answered(call, leg)

    def _early(self, call: Call, leg: Leg, response: Response) -> None:
        """Tell the caller it rings: 180, or 183 with media when the callee sends some."""
        assert call.a is not None
        if response.body and response.content_type == SDP and not call.a.early_sdp_sent:
            try:
                early = SessionDescription.parse(response.body)
            except SdpError:
                early = None
            if early is not None:
                self._apply_remote(leg, early)
                self.relay.bridge(call.a.media, call.b_media)  # type: ignore[arg-type]
                sdp = self._answer_caller(call, early)
                if sdp is not None:
                    call.a.early_sdp_sent = True
                    self._respond(call.a.invite, 183, leg=call.a, sdp=sdp)
                    return
        if not call.ringing_sent:
            call.ringing_sent = True
            self._ensure_caller_dialog(call)
            self._respond(call.a.invite, 180, leg=call.a)

    def _ensure_caller_dialog(self, call: Call) -> None:
        """Fix the caller leg's To tag on the first provisional so all answers share it."""
        a = call.a
        assert a is not None
        if a.dialog is None:
            tag = new_tag()
            to = Address.parse(a.invite.headers.get("To") or "")
            to.params["tag"] = tag
            probe = Response(200, headers=Headers([("To", str(to))]))
            a.dialog = Dialog.as_uas(a.invite, probe, a.flow) if a.invite.contacts else Dialog(
                a.invite.call_id, tag, a.invite.from_addr.tag or "", to, a.invite.from_addr,
                a.invite.from_addr.uri, a.flow, remote_cseq=a.invite.cseq.number, local_cseq=0,
            )
            self.dialogs[a.dialog.id] = a

    def _fork_failed(self, leg: Leg, status: int) -> None:
        call = leg.call
        leg.state, leg.status = "ended", status
        if leg in call.forks:
            call.forks.remove(leg)
        call.path.append(f"{status}:{leg.number}")
        if status in (486, 600, 603) or not call.failure or call.failure in (408, 480):
            call.failure = status if status != 487 else call.failure
        if call.forks or call.b is not None or call.ended:
            return
        if status in (600, 603):
            self._fail(call, status)
            return
        self._cancel_timer(call)
        if call.transfer is not None:
            self._transfer_failed(call, status)
            return
        self._next_step(call)

    def _ring_timeout(self, call: Call) -> None:
        call.ring_timer = None
        if call.b is not None or call.ended:
            return
        call.path.append("timeout")
        if call.failure not in (486, 600, 603):
            call.failure = 480  # nobody answered; a device that said busy still counts
        forks, call.forks = list(call.forks), []
        for leg in forks:
            self._cancel_fork(leg)
        if call.transfer is not None:
            self._transfer_failed(call, 480)
            return
        self._next_step(call)

    def _cancel_fork(self, leg: Leg) -> None:
        leg.state = "ended"
        cancel = build_cancel(leg.invite)
        self.server.send_request(cancel, leg.flow)

    # ------------------------------------------------------------ answer

    def _answered(self, call: Call, leg: Leg) -> None:
        """The first 2xx wins: cancel the other forks, answer the caller, bridge media."""
        self._cancel_timer(call)
        for other in list(call.forks):
            if other is not leg:
                self._cancel_fork(other)
        call.forks = []
        if call.transfer is not None:
            self._transfer_answered(call, leg)
            return
        call.b = leg
        if call.on_answer is not None:  # a call the PBX placed (no caller leg)
            assert leg.offer is not None
            self._apply_remote(leg, leg.offer)
            call.answered_at = time.time()
            call.path.append(f"answer:{leg.number}")
            log.info("call %s answered by %s", call.id, leg.number)
            call.on_answer(leg)
            return
        assert call.a is not None and leg.offer is not None
        self._apply_remote(leg, leg.offer)
        sdp = self._answer_caller(call, leg.offer)
        call.answered_at = time.time()
        call.path.append(f"answer:{leg.number}")
        self.server.router.answered(call.tenant, call.group, leg.number, call.answered_at)
        self.server.events.publish(
            CallAnswered(call.tenant.id, call.id, leg.number, call.answered_at))
        self._bridge(call)
        self._ensure_caller_dialog(call)
        a = call.a
        ok = self._respond(a.invite, 200, leg=a, sdp=sdp, headers=self._timer_headers(a))
        a.state = "answered"
        self._start_ok_resend(a, ok)
        self._arm_session_timer(a)
        log.info("call %s answered by %s", call.id, leg.number)

    def _bridge(self, call: Call) -> None:
        """Connect the two sides' media: straight through the relay, or through the
        engine (a two-party room) when a party's calls are recorded (always or on
        demand) or the relay cannot transcode between their codecs."""
        a, b = call.a, call.b
        assert a is not None and b is not None and a.media is not None and call.b_media is not None
        directory = call.tenant.extensions
        recorded = [n for n in (a.number, b.number) if getattr(directory.get(n), "record", False)]
        on_demand = [n for n in (a.number, b.number)
                     if getattr(directory.get(n), "record_on_demand", False)]
        codecs = (a.media.codec, call.b_media.codec)
        relayable = codecs[0] == codecs[1] or codecs in TRANSCODE
        if not recorded and not on_demand and relayable:
            self.relay.bridge(a.media, call.b_media)
            return
        engine = self.server.engine
        room = f"call-{call.id}"
        keys = self._recording_keys(call) if on_demand else None
        left = engine.join(room, a.media, tone=False,
                           on_dtmf=keys if a.number in on_demand else None)
        right = engine.join(room, call.b_media, tone=False,
                            on_dtmf=keys if b.number in on_demand else None)
        call.stereo = (left, right)
        if not relayable:
            call.path.append(f"transcode:{codecs[0]}-{codecs[1]}")
        if recorded:
            self._start_recording(call, recorded)

    def _start_recording(self, call: Call, who: list[str]) -> None:
        engine = self.server.engine
        room = f"call-{call.id}"
        part = f"-{len(call.recordings)}" if call.recordings else ""
        path = self.server.recording_path(f"call-{call.id}{part}")
        parties = [leg.number for leg in (call.a, call.b) if leg is not None]

        def done() -> None:
            self.server.write_recording(call.tenant.id, call.id, "call", parties, path,
                                        call.answered_at or call.started_at)

        stereo = call.stereo if self.server.config.general.recording_mix == "stereo" else None
        engine.record(engine.rooms[room], path, stereo=stereo, on_done=done)
        if self.server.config.general.record_announce:
            self._say(room, "recorded")
        call.recording = path
        call.recordings.append(path)
        call.path.append(f"record:{','.join(who)}")
        log.info("call %s: recording to %s", call.id, path)

    def _recording_keys(self, call: Call) -> Callable[[object, str], None]:
        """``*1`` during the call starts recording; ``*1`` again stops it (feature code)."""
        last: dict[int, str] = {}

        def on_digit(port: object, digit: str) -> None:
            previous, last[id(port)] = last.get(id(port)), digit
            if previous != "*" or digit != "1" or call.ended:
                return
            state = self.server.engine.rooms.get(f"call-{call.id}")
            if state is None:
                return
            who = next((leg.number for leg in (call.a, call.b)
                        if leg is not None and leg.media is getattr(port, "leg", None)), "?")
            if state.recorder is None:
                self._start_recording(call, [who])
            else:
                self.server.engine.stop_recording(state)  # its facts are stored
                call.path.append(f"record-stop:{who}")
                log.info("call %s: %s stopped the recording", call.id, who)
                call.recording = None

        return on_digit

    def _answer_caller(self, call: Call, callee_sdp: SessionDescription) -> SessionDescription | None:
        """Our answer to the caller's offer, preferring the codec the callee chose."""
        a = call.a
        assert a is not None and a.media is not None
        if a.offer is None:
            # offerless INVITE: we offer in the 200, the caller answers in the ACK
            sdp = make_offer(
                address=self._address(), port=a.media.local_port,
                codecs=self._offer_codecs(callee_sdp), session_id=next(_session_ids), version=1,
            )
            a.local_sdp = sdp
            return sdp
        chosen = callee_sdp.audio.codecs[0].name if callee_sdp.audio and callee_sdp.audio.codecs else None
        offered = {c.name for c in a.offer.audio.codecs} if a.offer.audio else set()
        ours = [c.name for c in self.codecs]
        supported = [chosen, "telephone-event"] if chosen in offered else ours
        try:
            sdp = make_answer(
                a.offer, address=self._address(), port=a.media.local_port, supported=supported,
                session_id=next(_session_ids), version=1,
            )
        except SdpError:
            sdp = make_answer(
                a.offer, address=self._address(), port=a.media.local_port, supported=ours,
                session_id=next(_session_ids), version=1,
            )
        a.local_sdp = sdp
        self._apply_remote(a, a.offer, sdp)
        return sdp

    def _apply_remote(
        self, leg: Leg, remote: SessionDescription, local: SessionDescription | None = None
    ) -> None:
        """Point the leg's relay port at the phone, with the codec both sides agreed on."""
        media = leg.media
        audio = remote.audio if local is None else remote.paired(local)
        if media is None or audio is None:
            return
        agreed = local.audio.codecs if local is not None and local.audio else audio.codecs
        voice = next((c for c in agreed if c.name != "telephone-event"), None)
        if voice is None:
            return
        remote_pts = {c.name: c.payload_type for c in audio.codecs}
        dtmf = remote_pts.get("telephone-event")
        host = audio.connection or remote.connection or leg.flow.host
        held = hold_direction(remote, audio) in ("sendonly", "inactive")
        media.set_remote(
            host, audio.port, payload_type=remote_pts.get(voice.name, voice.payload_type),
            codec=voice.name, dtmf_pt=dtmf,
        )
        leg.held = held
        media.hold(held)
        if isinstance(media.peer, MixPort):
            self.server.engine.renegotiated(media)

    def _start_ok_resend(self, leg: Leg, ok: Response) -> None:
        """Resend our 2xx until the ACK comes (§13.3.1.4), over UDP only."""
        leg.ok = ok
        if leg.flow.transport != "UDP":
            return
        t1, t2 = 0.5, 4.0
        started = self.loop.time()

        def resend(interval: float) -> None:
            if leg.ok is None or leg.state == "ended":
                return
            if self.loop.time() - started >= 64 * t1:
                log.info("call %s: no ACK from %s, hanging up", leg.call.id, leg.number)
                leg.ok = None
                self._hangup(leg.call, leg, 408)
                return
            self.server.send_direct(leg.ok, leg.flow)
            leg.ok_timer = self.loop.call_later(min(interval * 2, t2), resend, min(interval * 2, t2))

        leg.ok_timer = self.loop.call_later(t1, resend, t1)

    def on_ack(self, request: Request, flow: Flow) -> None:
        """ACK to one of our 2xx: stop resending it; an offerless call gets its answer."""
        leg = self.dialogs.get(request_dialog_id(request))
        if leg is None:
            return
        leg.ok = None
        if leg.ok_timer is not None:
            leg.ok_timer.cancel()
            leg.ok_timer = None
        if request.body and leg.offer is None:
            try:
                leg.offer = SessionDescription.parse(request.body)
            except SdpError as exc:
                log.warning("call %s: bad SDP in ACK: %s", leg.call.id, exc)
                self._hangup(leg.call, leg, 488)
                return
            self._apply_remote(leg, leg.offer, leg.local_sdp)

    def _send_ack(self, leg: Leg) -> None:
        assert leg.dialog is not None
        ack = leg.dialog.create_request(
            "ACK", self.server.sent_by(leg.flow.transport), cseq=leg.invite.cseq.number
        )
        self.server.send_direct(ack, leg.dialog.dest)

    # ------------------------------------------------------------ session timers (RFC 4028)

    def _timer_headers(self, leg: Leg) -> list[tuple[str, str]]:
        asked = leg.invite.headers.get("Session-Expires")
        supported = "timer" in [s.lower() for s in leg.invite.headers.get_all("Supported")]
        if asked is None or not supported:
            return []
        try:
            seconds = max(90, int(asked.split(";")[0].strip()))
        except ValueError:
            return []
        leg.session_expires = seconds
        return [("Session-Expires", f"{seconds};refresher=uac"), ("Require", "timer")]

    def _arm_session_timer(self, leg: Leg) -> None:
        """Clear the call if the refresher lets the session expire (RFC 4028 §10)."""
        seconds = leg.session_expires
        if seconds is None:
            return
        if leg.session_timer is not None:
            leg.session_timer.cancel()
        wait = seconds - min(32, seconds / 3)
        leg.session_timer = self.loop.call_later(wait, self._session_expired, leg)

    def _session_expired(self, leg: Leg) -> None:
        log.info("call %s: session timer of %s expired", leg.call.id, leg.number)
        self._hangup(leg.call, leg, 408)

    # ------------------------------------------------------------ in-dialog requests

    def _leg_for(self, request: Request) -> Leg:
        leg = self.dialogs.get(request_dialog_id(request))
        if leg is None or leg.state == "ended":
            raise SipError(481, "Call/Transaction Does Not Exist")
        assert leg.dialog is not None
        leg.dialog.receive_request(request)
        return leg

    def _on_reinvite(self, request: Request, flow: Flow) -> None:
        """Hold, resume, codec change: answered here; the other phone never notices."""
        leg = self._leg_for(request)
        if leg.ok is not None:
            self._respond(request, 491, headers=[("Retry-After", "1")])
            return
        leg.invite = request
        if not request.body:
            sdp = self._local_sdp(leg, "sendrecv")
            ok = self._respond(request, 200, leg=leg, sdp=sdp)
            self._start_ok_resend(leg, ok)
            return
        try:
            offer = SessionDescription.parse(request.body)
        except SdpError as exc:
            self._respond(request, exc.status, exc.reason, headers=[self._warning(exc)])
            return
        assert leg.media is not None
        leg.sdp_version += 1
        try:
            answer = make_answer(
                offer, address=self._address(), port=leg.media.local_port,
                supported=[c.name for c in self.codecs], session_id=self._session_id(leg),
                version=leg.sdp_version,
            )
        except SdpError as exc:
            self._respond(request, exc.status, exc.reason, headers=[self._warning(exc)])
            return
        leg.offer, leg.local_sdp = offer, answer
        was_held = leg.held
        self._apply_remote(leg, offer, answer)
        if leg.held != was_held:
            self._music_on_hold(leg)
        log.info("call %s: %s %s", leg.call.id, leg.number, "holds" if leg.held else "resumes")
        ok = self._respond(request, 200, leg=leg, sdp=answer, headers=self._timer_headers(leg))
        self._start_ok_resend(leg, ok)
        self._arm_session_timer(leg)

    def _music_on_hold(self, leg: Leg) -> None:
        """The party put on hold hears music; on resume the two are bridged again."""
        call = leg.call
        if call.recording is not None or call.a is None or call.b is None or (
            leg.media is not None and isinstance(leg.media.peer, MixPort)
        ):
            return  # recorded, transcoded and conference calls already run through the engine
        mine = leg.media
        other = call.b_media if leg is call.a else call.a.media
        if mine is None or other is None:
            return
        engine = self.server.engine
        if leg.held:
            self.relay.unbridge(mine)
            engine.hold_music(other)
        else:
            engine.stop_music(other)
            self.relay.bridge(mine, other)

    def _session_id(self, leg: Leg) -> int:
        if leg.local_sdp is not None:
            return int(leg.local_sdp.origin.sess_id)
        return next(_session_ids)

    def _local_sdp(self, leg: Leg, direction: str) -> SessionDescription:
        assert leg.media is not None
        leg.sdp_version += 1
        codecs = leg.local_sdp.audio.codecs if leg.local_sdp and leg.local_sdp.audio else self.codecs
        return make_offer(
            address=self._address(), port=leg.media.local_port, codecs=list(codecs),
            direction=direction, session_id=self._session_id(leg), version=leg.sdp_version,
        )

    def on_update(self, request: Request, flow: Flow, tx: object) -> None:
        """UPDATE without a body refreshes a session timer (RFC 4028); with one, 488."""
        leg = self._leg_for(request)
        if request.body:
            self._respond(request, 488, "Not Acceptable Here - Use re-INVITE")
            return
        self._respond(request, 200, leg=leg, headers=self._timer_headers(leg))
        self._arm_session_timer(leg)

    def on_bye(self, request: Request, flow: Flow, tx: object) -> None:
        leg = self._leg_for(request)
        self._respond(request, 200)
        log.info("call %s: %s hung up", leg.call.id, leg.number)
        leg.state = "ended"
        self._hangup(leg.call, leg, 0)

    def on_cancel(self, request: Request, flow: Flow, tx: object) -> None:
        invite_tx = self.server.transactions.find_invite_server(request)
        leg = self.server_invites.get(id(invite_tx)) if invite_tx is not None else None
        if leg is None:
            self._respond(request, 481)
            return
        self._respond(request, 200)
        call = leg.call
        if call.answered_at is not None or call.ended:
            return
        log.info("call %s cancelled by the caller", call.id)
        call.path.append("cancel")
        self._ensure_caller_dialog(call)
        self._respond(leg.invite, 487, leg=leg)
        self._end(call, "cancelled", 487, hangup_by="caller")

    def on_info(self, request: Request, flow: Flow, tx: object) -> None:
        """SIP INFO DTMF (``application/dtmf-relay`` ``Signal=5``, or ``application/dtmf``):
        the digit reaches whatever listens on the leg, as RFC 4733 and in-band digits do."""
        leg = self._leg_for(request)
        digit = _info_digit(request)
        if request.body and digit is None:
            self._respond(request, 415, headers=[("Accept", "application/dtmf-relay")])
            return
        self._respond(request, 200)
        port = leg.media.peer if leg.media is not None else None
        if digit is not None and isinstance(port, MixPort) and port.on_dtmf is not None:
            log.info("call %s: DTMF %s by INFO from %s", leg.call.id, digit, leg.number)
            port.on_dtmf(port, digit)

    def on_notify(self, request: Request, flow: Flow, tx: object) -> None:
        self._leg_for(request)
        self._respond(request, 200)

    # ------------------------------------------------------------ transfer (RFC 3515, 3891)

    def on_refer(self, request: Request, flow: Flow, tx: object) -> None:
        leg = self._leg_for(request)
        call = leg.call
        refer_to = request.headers.get("Refer-To")
        if refer_to is None:
            self._respond(request, 400, "Bad Request - Missing Refer-To")
            return
        try:
            target = Address.parse(refer_to).uri
        except ParseError as exc:
            self._respond(request, 400, exc.reason)
            return
        other = call.b if leg is call.a else call.a
        if other is None or call.answered_at is None:
            self._respond(request, 491 if call.transfer else 403, "Forbidden - Call not answered")
            return
        replaces = _replaces(target)
        if replaces is not None:
            self._attended_transfer(request, leg, other, replaces)
            return
        number = target.user or ""
        self._respond(request, 202)
        self._notify(leg, "SIP/2.0 100 Trying", active=True)
        log.info("call %s: %s transfers %s to %s", call.id, leg.number, other.number, number)
        call.transfer = Transfer(referrer=leg, keep=other)
        call.path.append(f"transfer:{number}")
        # the kept party becomes side a; the new target will ring as side b
        if other is call.b:
            call.a, call.b = call.b, call.a
            call.b_media = call.b.media if call.b else call.b_media
        new_media = asyncio.ensure_future(self.relay.open_leg(f"{call.id}/t"))
        new_media.add_done_callback(lambda f: self._transfer_ring(call, number, f))

    def _transfer_ring(self, call: Call, number: str, future: asyncio.Future[RelayLeg]) -> None:
        if future.exception() is not None or call.ended:
            self._transfer_failed(call, 503)
            return
        transfer = call.transfer
        assert transfer is not None
        transfer.old_b_media = call.b_media
        call.b_media = future.result()
        call.hops = 0
        tenant = call.tenant
        dest = self.server.router.resolve(tenant, number)
        if isinstance(dest, ExtensionDest):
            ext = tenant.extensions[dest.number]
            if ext.dnd or not tenant.presence.admission(ext, "direct", time.time()).through:
                call.path.append(f"transfer-busy:{ext.number}")
                self._transfer_failed(call, 486)  # the referrer keeps the call
                return
            call.steps = [RingStep((ext.number,), float(ext.ring_timeout))]
            self._next_step(call)
        elif isinstance(dest, RingGroupDest):
            group = tenant.ring_groups[dest.number]
            call.steps = self.server.router.plan(tenant, group, time.time())
            self._next_step(call)
        else:
            self._transfer_failed(call, 404)

    def _transfer_answered(self, call: Call, leg: Leg) -> None:
        transfer = call.transfer
        assert transfer is not None and leg.offer is not None
        call.transfer = None
        keep, referrer = transfer.keep, transfer.referrer
        self._apply_remote(leg, leg.offer)
        old_media = transfer.old_b_media
        self.relay.bridge(keep.media, call.b_media)  # type: ignore[arg-type]
        self._notify(referrer, "SIP/2.0 200 OK", active=False)
        referrer.media = old_media
        self._bye(referrer)
        if old_media is not None:
            self.loop.create_task(self.relay.close_leg(old_media))
        call.a, call.b = keep, leg
        call.path.append(f"answer:{leg.number}")
        log.info("call %s: transfer to %s answered", call.id, leg.number)

    def _transfer_failed(self, call: Call, status: int) -> None:
        transfer = call.transfer
        if transfer is None:
            return
        call.transfer = None
        log.info("call %s: transfer failed with %d", call.id, status)
        self._notify(transfer.referrer, f"SIP/2.0 {status} Transfer failed", active=False)
        new_media = call.b_media
        old = transfer.old_b_media
        if old is not None:
            call.b_media = old
            if new_media is not None and new_media is not old:
                self.loop.create_task(self.relay.close_leg(new_media))
        call.b = transfer.referrer
        call.failure = 0

    def _attended_transfer(
        self, request: Request, leg: Leg, other: Leg, replaces: tuple[str, str, str]
    ) -> None:
        """REFER with Replaces: join ``other`` to the party of the replaced dialog."""
        call_id, to_tag, from_tag = replaces
        target_leg = self.dialogs.get((call_id, to_tag, from_tag)) or self.dialogs.get(
            (call_id, from_tag, to_tag)
        )
        if target_leg is None or target_leg.state == "ended":
            self._respond(request, 481, "Call/Transaction Does Not Exist - Replaces")
            return
        second = target_leg.call
        partner = second.b if target_leg is second.a else second.a
        if partner is None or second.answered_at is None:
            self._respond(request, 481, "Call/Transaction Does Not Exist - Not answered")
            return
        self._respond(request, 202)
        call = leg.call
        log.info(
            "call %s: %s joins %s with %s", call.id, leg.number, other.number, partner.number
        )
        self.relay.bridge(other.media, partner.media)  # type: ignore[arg-type]
        # the partner moves into the first call; the referrer leaves both
        if partner is second.a:
            second.a = None
        else:
            second.b = None
        partner.call = call
        if leg is call.a:
            call.a = partner
        else:
            call.b = partner
        call.path.append(f"attended:{partner.number}")
        self._notify(leg, "SIP/2.0 200 OK", active=False)
        self._bye(leg)
        self._bye(target_leg)
        self._end(second, "transferred", 200, hangup_by="transfer")

    def _notify(self, leg: Leg, sipfrag: str, *, active: bool) -> None:
        """Report a transfer's progress to the referrer (RFC 3515 §2.4.5)."""
        if leg.dialog is None or leg.state == "ended":
            return
        state = "active;expires=60" if active else "terminated;reason=noresource"
        notify = leg.dialog.create_request(
            "NOTIFY", self.server.sent_by(leg.flow.transport),
            body=(sipfrag + "\r\n").encode(), content_type="message/sipfrag;version=2.0",
            headers=[("Event", "refer"), ("Subscription-State", state),
                     ("Contact", self._contact(leg.flow))],
        )
        tx = self.server.send_request(notify, leg.dialog.dest)
        self.client_legs[id(tx)] = leg

    # ------------------------------------------------------------ calls the PBX places

    def originate(
        self, tenant: Tenant, number: str, *, caller_name: str, caller_number: str,
        on_answer: Callable[[Leg], None], on_fail: Callable[[int], None] | None = None,
    ) -> Call:
        """Call ``number`` from the PBX itself (conference invitations, later
        callbacks and click-to-call); ``on_answer`` gets the answered leg, whose
        media port is ``leg.media``, ready for the engine."""
        call = Call(id=new_call_id(), tenant=tenant, dialled=number, on_answer=on_answer,
                    on_fail=on_fail)
        call.caller_name, call.caller_number = caller_name, caller_number
        self.calls[call.id] = call
        self.active_calls += 1
        log.info("call %s: the PBX calls %s for %s", call.id, number, caller_number)
        self.server.events.publish(
            CallStarted(tenant.id, call.id, caller_number, number, call.started_at))

        async def start() -> None:
            try:
                call.b_media = await self.relay.open_leg(f"{call.id}/b")
            except Exception as exc:
                log.error("call %s: no media ports: %s", call.id, exc)
                self._fail(call, 503, "Service Unavailable - No media ports")
                return
            dest = self.server.router.resolve(tenant, number)
            if isinstance(dest, ExtensionDest):
                ext = tenant.extensions[dest.number]
                call.steps = [RingStep((ext.number,), float(ext.ring_timeout))]
                self._next_step(call)
            else:
                self._fail(call, 404)

        self.loop.create_task(start())
        return call

    def invite_to_room(self, tenant: Tenant, number: str, invitee: str) -> Call:
        """Call ``invitee`` out of conference room ``number``; it joins when answered."""
        settings = self.server.conference(tenant, number)
        if settings is None:
            raise KeyError(number)
        room = tenant.room_key(number)
        return self.originate(
            tenant, invitee, caller_name=settings.name or f"Conference {number}",
            caller_number=number,
            on_answer=lambda leg: self.server.engine.join(room, leg.media),  # type: ignore[arg-type]
        )

    # ------------------------------------------------------------ conferences

    def _answer_here(self, call: Call, service: str, number: str) -> bool:
        """The PBX itself answers the caller for ``service`` ``number`` (a
        conference room, a mailbox): from then on the caller's media port feeds
        the engine.  False: refused, the call failed."""
        a = call.a
        assert a is not None and a.media is not None
        if a.offer is None:
            reason = f"Not Acceptable Here - {service.capitalize()} needs an SDP offer"
            self._fail(call, 488, reason)
            return False
        try:
            sdp = make_answer(
                a.offer, address=self._address(), port=a.media.local_port,
                supported=[c.name for c in self.codecs], session_id=next(_session_ids), version=1,
            )
        except SdpError as exc:
            self._fail(call, exc.status, exc.reason, headers=[self._warning(exc)])
            return False
        a.local_sdp = sdp
        self._apply_remote(a, a.offer, sdp)
        self._ensure_caller_dialog(call)
        ok = self._respond(a.invite, 200, leg=a, sdp=sdp, headers=self._timer_headers(a))
        a.state = "answered"
        call.answered_at = time.time()
        call.b = None
        self._start_ok_resend(a, ok)
        self._arm_session_timer(a)
        self.server.events.publish(
            CallAnswered(call.tenant.id, call.id, f"{service}:{number}", call.answered_at))
        return True

    def _voicemail(self, call: Call, number: str) -> None:
        """Answer for the mailbox of extension ``number`` and take a message."""
        ext = call.tenant.extensions.get(number)
        if ext is None:
            self._fail(call, 404, "Not Found - No such mailbox")
            return
        if not self._answer_here(call, VOICEMAIL, number):
            return
        call.path.append(f"voicemail:{number}")
        assert call.a is not None and call.a.media is not None
        message = self.voicemail.take(call.id, call.a.media, ext, call.caller_number,
                                      hang_up=lambda: self._hangup_by_pbx(call))
        call.on_end = lambda: self.voicemail.finish(message)

    def _voicemail_menu(self, call: Call) -> None:
        """Answer the caller's voicemail number: the menu of their own mailbox."""
        a = call.a
        assert a is not None and a.media is not None
        ext = call.tenant.extensions.get(a.number)
        if ext is None:
            self._fail(call, 404, "Not Found - No mailbox")
            return
        mailbox = mailbox_of(ext)
        if not self._answer_here(call, VOICEMAIL_MENU, mailbox):
            return
        call.path.append(f"{VOICEMAIL_MENU}:{mailbox}")
        menu = MenuCall(self.server, call.id, a.media, call.tenant.id, mailbox,
                        hang_up=lambda: self._hangup_by_pbx(call))
        call.on_end = menu.close

    def _hangup_by_pbx(self, call: Call) -> None:
        if call.a is not None and not call.ended:
            self._bye(call.a)
            self._end(call, "answered", 200, hangup_by="pbx")

    def _conference(self, call: Call, number: str) -> None:
        """Answer into a conference room; with a PIN the caller first keys it in (DTMF)."""
        settings = self.server.conference(call.tenant, number)
        assert settings is not None
        room = call.tenant.room_key(number)
        if not self._answer_here(call, "conference", number):
            return
        call.path.append(f"conference:{number}")
        a = call.a
        assert a is not None and a.media is not None
        engine = self.server.engine
        if not settings.pin and not settings.moderator_pin:
            # in a personal room its owner is the moderator
            self._enter_room(call, room, settings,
                             moderator=bool(settings.owner) and a.number == settings.owner)
            return
        # the PINs keyed in decide who comes in, and as what
        pins = {settings.pin: False}
        if settings.moderator_pin:
            pins[settings.moderator_pin] = True
        longest = max(len(pin) for pin in pins)
        digits: list[str] = []
        tries = [0]
        lobby = f"lobby-{call.id}"

        def on_digit(port: object, digit: str) -> None:
            if digit != "#":
                digits.append(digit)
                if len(digits) < longest:
                    return
            entered = "".join(digits)
            digits.clear()
            if entered in pins:
                engine.leave(a.media)  # type: ignore[arg-type]
                self._enter_room(call, room, settings, moderator=pins[entered], lobby=port)
                return
            tries[0] += 1
            log.info("call %s: wrong PIN for room %s (%d)", call.id, room, tries[0])
            if tries[0] >= 3:
                self._hangup(call, a, 403)
                self._bye(a)
                return
            self._say(lobby, "wrong_pin", "enter_pin")

        engine.join(lobby, a.media, tone=False, on_dtmf=on_digit)
        self._say(lobby, "enter_pin")

    def _say(self, room: str, *names: str) -> None:
        """Play system prompts (one after the other) into an engine room."""
        said = self.server.prompts.sequence(*names)
        state = self.server.engine.rooms.get(room)
        if said is not None and state is not None:
            self.server.engine.play(state, said)

    def _enter_room(
        self, call: Call, room: str, settings: ConferenceRoom, *, moderator: bool,
        lobby: object = None,
    ) -> None:
        a = call.a
        assert a is not None and a.media is not None
        engine = self.server.engine
        existing = engine.rooms.get(room)
        if existing is not None and existing.locked and not moderator:
            log.info("call %s: room %s is locked", call.id, room)
            self._hangup(call, a, 403)
            self._bye(a)
            return
        port = engine.join(
            room, a.media, on_dtmf=self._moderator_menu(room) if moderator else None
        )
        if isinstance(lobby, MixPort):
            port.follow(lobby)  # the PIN's last key must not also reach the menu
        state = engine.rooms[room]
        member = state.member(port)
        assert member is not None
        member.moderator = moderator
        if settings.record and state.recorder is None:
            path = self.server.recording_path(f"conference-{settings.number}-{call.id}")
            started = time.time()

            def done() -> None:
                self.server.write_recording(call.tenant.id, call.id, "conference",
                                            [settings.number], path, started)

            engine.record(state, path, on_done=done)
            log.info("room %s: recording to %s", room, path)

    def _moderator_menu(self, room: str) -> Callable[[object, str], None]:
        """A moderator's keys: 1 mutes/unmutes everyone else, 2 locks/unlocks the room."""
        engine = self.server.engine

        def on_digit(port: object, digit: str) -> None:
            state = engine.rooms.get(room)
            if state is None:
                return
            if digit == "1":
                others = [m for m in state.members if not m.moderator]
                mute = not all(m.muted for m in others)
                for member in others:
                    engine.set_muted(member.port, mute)
                log.info("room %s: moderator %s the participants", room,
                         "muted" if mute else "unmuted")
            elif digit == "2":
                state.locked = not state.locked
                log.info("room %s: %s", room, "locked" if state.locked else "unlocked")

        return on_digit

    # ------------------------------------------------------------ pickup

    def _pickup(self, call: Call, number: str | None) -> None:
        """``*8``/``**NNN``: answer a colleague's ringing call from this phone."""
        target = next(
            (
                c for c in self.calls.values()
                if c is not call and c.b is None and not c.ended and c.forks
                and c.tenant.id == call.tenant.id
                and (number is None or any(f.number == number for f in c.forks))
            ),
            None,
        )
        if target is None:
            self._fail(call, 404, "Not Found - Nothing to pick up")
            return
        picker = call.a
        assert picker is not None and target.a is not None
        log.info("call %s: %s picks up call %s", call.id, picker.number, target.id)
        self._cancel_timer(target)
        for fork in list(target.forks):
            self._cancel_fork(fork)
        target.forks = []
        # the picker's INVITE is answered with the ringing call's b-side port
        picker.call = target
        old_b = target.b_media
        picker.media, target.b_media = old_b, old_b
        if picker.offer is not None:
            sdp = make_answer(
                picker.offer, address=self._address(), port=picker.media.local_port,  # type: ignore[union-attr]
                supported=[c.name for c in self.codecs], session_id=next(_session_ids), version=1,
            )
            picker.local_sdp = sdp
            self._apply_remote(picker, picker.offer, sdp)
        else:
            sdp = self._local_sdp(picker, "sendrecv")
        self._ensure_caller_dialog_for(picker)
        ok = self._respond(picker.invite, 200, leg=picker, sdp=sdp)
        picker.state = "answered"
        self._start_ok_resend(picker, ok)
        self.server_invites[id(picker.tx)] = picker
        # the original picker call gives its ports back and disappears
        call.a = None
        self._end(call, "pickup", 200, hangup_by="pickup", write_cdr=False)
        target.path.append(f"pickup:{picker.number}")
        self._answered_by(target, picker)

    def _answered_by(self, call: Call, leg: Leg) -> None:
        call.b = leg
        assert call.a is not None and leg.offer is not None
        sdp = self._answer_caller(call, leg.offer)
        call.answered_at = time.time()
        self._bridge(call)
        self._ensure_caller_dialog(call)
        ok = self._respond(call.a.invite, 200, leg=call.a, sdp=sdp)
        call.a.state = "answered"
        self._start_ok_resend(call.a, ok)

    def _ensure_caller_dialog_for(self, leg: Leg) -> None:
        saved = leg.call.a
        leg.call.a = leg
        self._ensure_caller_dialog(leg.call)
        leg.call.a = saved

    # ------------------------------------------------------------ hang-up

    def end_calls_of(self, organisation: int, number: str) -> int:
        """End every call extension ``number`` of ``organisation`` takes part in
        (it is being removed)."""
        ended = 0
        for call in list(self.calls.values()):
            if call.tenant.id != organisation or not any(leg.number == number for leg in call.legs()):
                continue
            for leg in call.legs():
                if leg in call.forks:
                    self._cancel_fork(leg)
                elif leg.dialog is not None and leg.state == "answered":
                    self._bye(leg)
                elif not leg.outgoing and leg.state != "answered":
                    self._respond(leg.invite, 480, "Temporarily Unavailable - Removed", leg=leg)
            call.path.append(f"removed:{number}")
            self._end(call, "answered" if call.answered_at else "failed", 200, hangup_by="admin")
            ended += 1
        if ended:
            log.info("ended %d call(s) of removed extension %s", ended, number)
        return ended

    def _hangup(self, call: Call, leg: Leg, status: int) -> None:
        """``leg`` left the call: BYE the other side and end the call."""
        if call.ended:
            return
        for other in call.legs():
            if other is not leg and other.state != "ended":
                if other in call.forks:
                    self._cancel_fork(other)
                elif other.dialog is not None and other.state == "answered":
                    self._bye(other)
                elif not other.outgoing and other.state != "answered":
                    self._respond(other.invite, 487, leg=other)
        who = "caller" if leg is call.a else "callee"
        self._end(call, "answered" if call.answered_at else "failed", status or 200, hangup_by=who)

    def _hangup_leg(self, leg: Leg) -> None:
        self._bye(leg)

    def _bye(self, leg: Leg) -> None:
        if leg.dialog is None or leg.state == "ended" and leg.dialog.terminated:
            return
        leg.state = "ended"
        leg.dialog.terminated = True
        bye = leg.dialog.create_request("BYE", self.server.sent_by(leg.flow.transport))
        tx = self.server.send_request(bye, leg.dialog.dest)
        self.client_legs[id(tx)] = leg

    def _fail(
        self, call: Call, status: int, reason: str | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        """No one will answer: give the caller the final answer."""
        if call.on_fail is not None:
            call.on_fail(status)
        a = call.a
        if a is not None and a.state != "answered" and not call.ended:
            self._ensure_caller_dialog(call)
            self._respond(a.invite, status, reason, leg=a, headers=headers)
        disposition = {486: "busy", 600: "busy", 480: "noanswer", 408: "noanswer", 603: "declined"}
        self._end(call, disposition.get(status, "failed"), status, hangup_by="pbx")

    def _cancel_timer(self, call: Call) -> None:
        if call.ring_timer is not None:
            call.ring_timer.cancel()
            call.ring_timer = None

    def _end(
        self, call: Call, disposition: str, status: int, *, hangup_by: str, write_cdr: bool = True
    ) -> None:
        if call.ended:
            return
        call.ended = True
        self._cancel_timer(call)
        for fork in list(call.forks):
            self._cancel_fork(fork)
        call.forks = []
        self.active_calls -= 1
        self.calls.pop(call.id, None)
        quality = {}
        for leg in call.legs():
            leg.state = "ended"
            for timer in (leg.ok_timer, leg.session_timer):
                if timer is not None:
                    timer.cancel()
            if leg.media is not None:
                quality[leg.number] = dataclasses.asdict(leg.media.stats())
            if not leg.outgoing:
                self.server_invites.pop(id(leg.tx), None)
        self.loop.call_later(32, self._forget_dialogs, call)
        now = time.time()
        caller = call.a.number if call.a else call.caller_number
        answered_by = call.b.number if call.b and call.answered_at else ""
        if write_cdr:
            cdr = Cdr(
                call_id=call.id,
                organisation_id=call.tenant.id,
                caller=caller,
                callee=call.dialled,
                answered_by=answered_by,
                path=json.dumps(call.path),
                started_at=call.started_at,
                answered_at=call.answered_at,
                ended_at=now,
                disposition=disposition,
                status=status,
                duration=now - call.started_at,
                billsec=now - call.answered_at if call.answered_at else 0.0,
                hangup_by=hangup_by,
                quality=json.dumps(quality, default=float),
            )
            self.server.write_cdr(cdr)
        log.info("call %s ended: %s (%d)", call.id, disposition, status)
        self.server.events.publish(CallEnded(
            call.tenant.id, call.id, caller, call.dialled, answered_by, disposition, status,
            now - call.started_at, now,
        ))
        self.loop.create_task(self._release_media(call))

    def _forget_dialogs(self, call: Call) -> None:
        """Dialog state outlives the call a little, to answer retransmissions."""
        for leg in call.legs():
            if leg.dialog is not None and self.dialogs.get(leg.dialog.id) is leg:
                del self.dialogs[leg.dialog.id]

    async def _release_media(self, call: Call) -> None:
        media = {leg.media for leg in call.legs() if leg.media is not None}
        if call.b_media is not None:
            media.add(call.b_media)
        for port in media:
            self.server.engine.leave(port)  # a recording's facts are stored as its room closes
            await self.relay.close_leg(port)
        if call.on_end is not None:
            call.on_end()


def invite_sdp(invite: Request) -> SessionDescription | None:
    return SessionDescription.parse(invite.body) if invite.body else None


def _info_digit(request: Request) -> str | None:
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


def _replaces(target: URI) -> tuple[str, str, str] | None:
    """The dialog named by ``?Replaces=`` in a Refer-To URI (RFC 3891), if any."""
    if not target.headers:
        return None
    for item in target.headers.split("&"):
        name, _, value = item.partition("=")
        if name.lower() != "replaces":
            continue
        parts = url_unquote(value).split(";")
        params = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        if "to-tag" in params and "from-tag" in params:
            return parts[0], params["to-tag"], params["from-tag"]
    return None
