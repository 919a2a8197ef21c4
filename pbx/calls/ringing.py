"""Ringing: forks to every registered device of the extensions a ring step
names, the step's timer, the next step, and the best answer when nobody takes
the call.  Whoever started the ring (its :class:`~pbx.calls.model.RingOwner`)
hears ``early``, ``answered`` or ``failed`` and decides what follows: answer
the caller, complete a transfer, forward on busy or no answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from pbx.events import CallRinging, EventBus
from pbx.location import LocationService, path_routes, reach
from pbx.sip.flow import Flow
from pbx.sdp import SdpError, SessionDescription
from pbx.sip.auth import build_authorization
from pbx.sip.message import URI, Headers, Request, Response, new_branch, new_call_id, new_tag

from pbx.calls.channel import Clock
from pbx.calls.model import Call, Leg, LegState, Ring, TrunkStep, new_session_version
from pbx.calls.offer_answer import OfferAnswer
from pbx.calls.ports import Carriers, Ports, Signalling
from pbx.calls.signalling import SDP, SUPPORTED, LegSignalling
from pbx.trunks.settings import TrunkSettings
from pbx.calls.views import did_of

log = logging.getLogger("pbx.calls")

Spawn = Callable[[Coroutine[Any, Any, None]], None]
External = Callable[[Call, str], list[TrunkStep]]


class Ringer:
    """Rings the destinations of one node's calls."""

    def __init__(self, sip: Signalling, legs: LegSignalling, sdp: OfferAnswer, ports: Ports,
                 location: LocationService, clock: Clock, events: EventBus,
                 spawn: Spawn, carriers: Carriers | None = None,
                 external: External | None = None) -> None:
        self.sip = sip
        self.carriers = carriers
        self.external = external  # how an external member of a ring step is reached
        self.legs = legs
        self.sdp = sdp
        self.ports = ports
        self.location = location
        self.clock = clock
        self.events = events
        self.spawn = spawn

    def start(self, ring: Ring) -> None:
        """Open the port the forks are offered, then ring the first step."""
        ring.call.ring = ring
        self.spawn(self._open(ring))

    async def _open(self, ring: Ring) -> None:
        call = ring.call
        try:
            ring.media = await self.ports.open_leg(f"{call.id}/b")
        except Exception as exc:  # the port pool is exhausted, a bind failed
            log.error("call %s: no media ports: %s", call.id, exc)
            self._give_up(ring, 503, "Service Unavailable - No media ports")
            return
        if ring.done or call.ended:
            await self.ports.close_leg(ring.media)
            ring.media = None
            return
        self.next_step(ring)

    def next_step(self, ring: Ring) -> None:
        """Ring the next step, or give up with the best answer so far."""
        while ring.steps:
            step = ring.steps.pop(0)
            if isinstance(step, TrunkStep):
                started = self._fork_trunk(ring, step)
            else:
                started = sum(self._fork(ring, number) for number in step.members)
            if started:
                ring.timer = self.clock.call_later(step.timeout, lambda: self._timeout(ring))
                return
        self._give_up(ring, ring.failure or 480)

    def _fork(self, ring: Ring, number: str) -> int:
        """INVITE every registered device of extension ``number``; how many."""
        call = ring.call
        if number not in call.tenant.extensions and self.external is not None:
            steps = self.external(call, number)  # a ring group's mobile: its route's first trunk
            if steps:
                return self._fork_trunk(ring, steps[0])
            call.path.append(f"unreachable:{number}")
            return 0
        bindings = self.location.lookup(call.tenant.aor(number), self.clock.now())
        if not bindings:
            call.path.append(f"unavailable:{number}")
            ring.failure = ring.failure or 480
            return 0
        assert ring.media is not None
        caller_offer = call.a.offer if call.a is not None else None
        rung = 0
        for binding in bindings:
            target = URI.parse(binding.contact)
            flow = reach(binding, target.host, target.port)
            try:
                srtp = self.sdp.srtp_mode(call.tenant, number, flow.transport)
            except SdpError as exc:  # it requires SRTP, keys may not travel to it
                log.warning("call %s: not ringing %s over %s: %s", call.id, binding.contact,
                            flow.transport, exc)
                call.path.append(f"srtp-needs-tls:{number}")
                ring.failure = ring.failure or 488
                continue
            version = new_session_version()
            sdp = version.stamp(self.sdp.fork_offer(ring.media.local_port, caller_offer,
                                                    srtp=srtp, transport=flow.transport))
            invite = self._invite(call, number, target, flow, sdp)
            for route in path_routes(binding):
                invite.headers.add("Route", route)
            leg = Leg(call, flow, number, invite, outgoing=True, media=ring.media,
                      local_sdp=sdp, version=version, ring=ring)
            ring.forks.append(leg)
            log.debug("call %s: INVITE %s via %s", call.id, binding.contact, flow)
            self.legs.invite(leg)
            rung += 1
        if not rung:
            return 0
        ring.rang = True
        call.path.append(f"ring:{number}x{rung}")
        self.events.publish(CallRinging(call.tenant.id, call.id, number, self.clock.now(),
                                        call.caller_number, call.caller_name, did_of(call)))
        return rung

    def _fork_trunk(self, ring: Ring, step: TrunkStep) -> int:
        """INVITE the number over the trunk; 0 when the trunk is unknown or down."""
        call = ring.call
        found = self.carriers.flow_to(call.tenant.id, step.trunk) if self.carriers else None
        if found is None:
            call.path.append(f"no-trunk:{step.trunk}")
            ring.failure = ring.failure or 503
            return 0
        carrier, flow = found
        assert ring.media is not None
        version = new_session_version()
        caller_offer = call.a.offer if call.a is not None else None
        try:
            srtp = self.sdp.srtp_mode(call.tenant, step.number, flow.transport, step.trunk)
            offer = self.sdp.fork_offer(ring.media.local_port, caller_offer,
                                        carrier.settings.codecs, srtp=srtp,
                                        transport=flow.transport)
        except SdpError as exc:  # none of its codecs, or SRTP keys may not go to it
            log.warning("call %s: not calling over %s: %s", call.id, step.trunk, exc)
            call.path.append(f"no-media:{step.trunk}")
            ring.failure = ring.failure or 488
            return 0
        sdp = version.stamp(offer)
        invite = trunk_invite(carrier.settings, step, self.sip.sent_by(flow.transport),
                              self.sip.contact(flow), self.sip.allow_header(), sdp)
        leg = Leg(call, flow, step.number, invite, outgoing=True, media=ring.media,
                  local_sdp=sdp, version=version, ring=ring, trunk=step.trunk)
        ring.forks.append(leg)
        ring.rang = True
        call.trunk = step.trunk
        call.path.append(f"trunk:{step.trunk}:{step.number}")
        log.info("call %s: out to %s over %s", call.id, step.number, step.trunk)
        self.legs.invite(leg)
        return 1

    def _authenticate(self, leg: Leg, response: Response) -> bool:
        """Answer a carrier's 401/407 to our INVITE once (RFC 3261 §22.2): the
        same INVITE again, CSeq up, with credentials.  False: cannot."""
        found = self.carriers.flow_to(leg.call.tenant.id, leg.trunk) if self.carriers else None
        header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
        challenge = response.headers.get(header)
        if found is None or not challenge or leg.challenged:
            return False
        settings = found[0].settings
        try:
            answer = build_authorization(
                challenge, method="INVITE", uri=str(leg.invite.uri),
                username=settings.auth_username or settings.username,
                password=settings.password, cnonce=new_tag())
        except ValueError as exc:
            log.warning("call %s: cannot answer %s's challenge: %s", leg.call.id, leg.trunk, exc)
            return False
        leg.invite = reauthorised(leg.invite, "Authorization" if response.status == 401
                                  else "Proxy-Authorization", answer)
        leg.challenged = True
        self.legs.invite(leg)
        return True

    def _invite(self, call: Call, number: str, target: URI, flow: Flow,
                sdp: SessionDescription) -> Request:
        realm = call.tenant.domain
        headers = Headers()
        sent_by = self.sip.sent_by(flow.transport)
        headers.add("Via", f"SIP/2.0/{flow.transport} {sent_by};branch={new_branch()};rport")
        headers.add("Max-Forwards", "70")
        name = call.caller_name.replace('"', "")
        display = f'"{name}" ' if name else ""
        headers.add("From", f"{display}<sip:{call.caller_number}@{realm}>;tag={new_tag()}")
        headers.add("To", f"<sip:{number}@{realm}>")
        headers.add("Call-ID", new_call_id())
        headers.add("CSeq", "1 INVITE")
        headers.add("Contact", self.sip.contact(flow))
        headers.add("Allow", self.sip.allow_header())
        headers.add("Supported", SUPPORTED)
        if call.diverted_from:  # RFC 5806 Diversion, RFC 7044 History-Info
            diverted, reason = call.diverted_from, call.diversion_reason
            headers.add("Diversion", f"<sip:{diverted}@{realm}>;reason={reason};counter={call.hops}")
            headers.add("History-Info", f"<sip:{diverted}@{realm}>;index=1")
            headers.add("History-Info", f"<sip:{number}@{realm}>;index=1.1")
        elif call.service:  # RFC 7044: first for the service (its name shown), then mapped to us
            service = call.service_name.replace('"', "")
            shown = f'"{service}" ' if service else ""
            headers.add("History-Info", f"{shown}<sip:{call.service}@{realm}>;index=1")
            headers.add("History-Info", f"<sip:{number}@{realm}>;index=1.1;mp=1")
        headers.add("Content-Type", SDP)
        return Request("INVITE", target, headers, bytes(sdp))

    # ------------------------------------------------------------ answers from the forks

    def on_response(self, leg: Leg, response: Response) -> None:
        """A response to a fork's INVITE."""
        ring = leg.ring
        assert ring is not None
        status = response.status
        if status < 200:
            if status == 100 or not leg.state.pending or ring.done:
                return
            leg.state = LegState.RINGING
            ring.owner.early(ring, leg, response)
            return
        if status in (401, 407) and leg.trunk and self._authenticate(leg, response):
            return
        if status >= 300:
            self.fork_failed(leg, status)
            return
        if leg.dialog is not None:
            self.legs.ack(leg)  # a retransmitted 2xx
            return
        self.legs.uac_dialog(leg, response)
        self.legs.ack(leg)
        if ring.done or ring.call.ended:
            log.info("call %s: late answer from %s, hanging up", ring.call.id, leg.number)
            leg.state = LegState.ANSWERED
            self.legs.bye(leg)
            return
        try:
            leg.offer = SessionDescription.parse(response.body)
            self.sdp.check_answer(leg, leg.offer)
        except SdpError as exc:
            log.warning("call %s: bad SDP answer from %s: %s", ring.call.id, leg.number, exc)
            leg.state = LegState.ANSWERED
            self.legs.bye(leg)
            self.fork_failed(leg, 488)
            return
        leg.state = LegState.ANSWERED
        self._won(ring, leg)

    def _won(self, ring: Ring, leg: Leg) -> None:
        """The first 2xx wins: the other forks are cancelled, the port is the winner's."""
        ring.forks.remove(leg)
        leg.media, ring.media = ring.media, None
        leg.ring = None
        self.finish(ring)
        log.info("call %s answered by %s", ring.call.id, leg.number)
        ring.owner.answered(ring, leg)

    def fork_failed(self, leg: Leg, status: int) -> None:
        """A fork refused (or timed out, 408): on with the others, the next step,
        or the end; a global decline (6xx) ends the ring at once."""
        ring = leg.ring
        assert ring is not None
        leg.state = LegState.ENDED
        if leg in ring.forks:
            ring.forks.remove(leg)
        ring.call.path.append(f"{status}:{leg.number}")
        if status in (486, 600, 603) or not ring.failure or ring.failure in (408, 480):
            ring.failure = status if status != 487 else ring.failure
        if ring.forks or ring.done:
            return
        if status in (600, 603) or leg.trunk and not (status == 408 or 500 <= status < 600):
            self._give_up(ring, status)  # a global decline; a callee's answer, not the trunk's
            return
        self._stop_timer(ring)
        self.next_step(ring)

    def _timeout(self, ring: Ring) -> None:
        ring.timer = None
        if ring.done:
            return
        ring.call.path.append("timeout")
        if ring.failure not in (486, 600, 603):
            ring.failure = 480  # nobody answered; a device that said busy still counts
        forks, ring.forks = list(ring.forks), []
        for leg in forks:
            self.legs.cancel(leg)
        self.next_step(ring)

    # ------------------------------------------------------------ the end of a ring

    def _give_up(self, ring: Ring, status: int, reason: str | None = None) -> None:
        if ring.done:
            return
        self.finish(ring)
        ring.owner.failed(ring, status, reason)

    def finish(self, ring: Ring) -> None:
        """The ring is over: its timer stops, its forks are cancelled, and its
        port (unless a fork took it) is given back."""
        ring.done = True
        self._stop_timer(ring)
        forks, ring.forks = list(ring.forks), []
        for leg in forks:
            self.legs.cancel(leg)
        if ring.call.ring is ring:
            ring.call.ring = None
        media, ring.media = ring.media, None
        if media is not None:
            self.spawn(self.ports.close_leg(media))

    def _stop_timer(self, ring: Ring) -> None:
        if ring.timer is not None:
            ring.timer.cancel()
            ring.timer = None


def trunk_invite(trunk: TrunkSettings, step: TrunkStep, sent_by: str, contact: str, allow: str,
                 sdp: SessionDescription) -> Request:
    """An INVITE to a carrier: the number at its domain, the caller ID where the
    trunk wants it (From, P-Asserted-Identity or Remote-Party-ID), anonymous
    callers with ``Privacy: id`` (RFC 3325 §9.3), through its outbound proxy."""
    domain = trunk.domain
    target = URI("sip", user=step.number, host=domain, params={"user": "phone"})
    name = step.caller_name.replace('"', "")
    display = f'"{name}" ' if name and step.caller_id else ""
    shown = f"<sip:{step.caller_id}@{domain}>" if step.caller_id else ""
    headers = Headers()
    headers.add("Via", f"SIP/2.0/{trunk.transport.upper()} {sent_by};branch={new_branch()};rport")
    headers.add("Max-Forwards", "70")
    if trunk.outbound_proxy:
        host, port = trunk.next_hop
        headers.add("Route", f"<sip:{host}:{port};lr>")
    if not step.caller_id:
        headers.add("From", f'"Anonymous" <sip:anonymous@anonymous.invalid>;tag={new_tag()}')
        headers.add("Privacy", "id")
    elif trunk.caller_id == "from":
        headers.add("From", f"{display}{shown};tag={new_tag()}")
    else:
        account = f"<sip:{trunk.username or step.caller_id}@{domain}>"
        headers.add("From", f"{display}{account};tag={new_tag()}")
        if trunk.caller_id == "pai":
            headers.add("P-Asserted-Identity", f"{display}{shown}")
        else:
            headers.add("Remote-Party-ID", f"{display}{shown};party=calling;screen=yes;privacy=off")
    headers.add("To", f"<sip:{step.number}@{domain}>")
    headers.add("Call-ID", new_call_id())
    headers.add("CSeq", "1 INVITE")
    headers.add("Contact", contact)
    headers.add("Allow", allow)
    headers.add("Supported", SUPPORTED)
    headers.add("Content-Type", SDP)
    return Request("INVITE", target, headers, bytes(sdp))


def reauthorised(invite: Request, header: str, value: str) -> Request:
    """The INVITE again with credentials: a new transaction (new branch, CSeq
    up), the same dialog-to-be (Call-ID, From tag)."""
    headers = Headers()
    for name, text in invite.headers:
        lower = name.lower()
        if lower == "via":
            text = text.split(";branch=")[0] + f";branch={new_branch()};rport"
        elif lower == "cseq":
            text = f"{invite.cseq.number + 1} INVITE"
        elif lower in ("authorization", "proxy-authorization"):
            continue
        headers.add(name, text)
    headers.add(header, value)
    return Request("INVITE", invite.uri, headers, invite.body)
