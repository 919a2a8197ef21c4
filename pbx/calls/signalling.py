"""Leg signalling: the SIP messages of one leg, and the timers that go with
them, on an injected clock.

There is one way to answer a phone's INVITE here (:meth:`LegSignalling.answer`:
the To tag fixed by the dialog, Contact, Allow, Supported, the session timer,
the 2xx resent until the ACK), one way to refuse it, and one each to ACK,
BYE, CANCEL and NOTIFY.  When a phone goes silent (no ACK to our 2xx, an
expired session timer) the leg's owner is told through ``on_lost``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from pbx.sdp import SdpError, SessionDescription
from pbx.sip.dialog import Dialog, DialogId, request_dialog_id
from pbx.sip.errors import SipError
from pbx.sip.message import Address, Headers, Request, Response, make_response, new_tag
from pbx.sip.transaction import build_cancel

from pbx.calls.channel import Clock
from pbx.calls.model import Leg, LegState
from pbx.calls.ports import Signalling

log = logging.getLogger("pbx.calls")

SDP = "application/sdp"
SUPPORTED = "replaces, timer"
T1, T2 = 0.5, 4.0  # RFC 3261 §17.1.1.1 timer values, for resending our 2xx (§13.3.1.4)
MIN_SE = 90  # RFC 4028 §4: the smallest session interval we accept


class LegSignalling:
    """The SIP side of every leg of one node: dialogs, answers and requests."""

    def __init__(self, sip: Signalling, clock: Clock,
                 on_lost: Callable[[Leg, int], None]) -> None:
        self.sip = sip
        self.clock = clock
        self.on_lost = on_lost
        self.dialogs: dict[DialogId, Leg] = {}
        self.client_legs: dict[int, Leg] = {}  # id(client transaction) → its leg

    # ------------------------------------------------------------ responses

    def respond(
        self, request: Request, status: int, reason: str | None = None, *,
        leg: Leg | None = None, sdp: SessionDescription | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> Response:
        """Answer ``request``; a leg's dialog gives the To tag, and a dialog-making
        answer carries what the phone needs to talk to us again."""
        tag = leg.dialog.local_tag if leg is not None and leg.dialog else None
        response = make_response(request, status, reason, to_tag=tag or new_tag())
        if leg is not None and 100 < status < 300 and request.method in ("INVITE", "UPDATE"):
            if request.method == "INVITE":  # the UAS copies Record-Route (RFC 3261 §12.1.1)
                for route in request.headers.get_all("Record-Route"):
                    response.headers.add("Record-Route", route)
            response.headers.add("Contact", self.sip.contact(leg.flow))
            response.headers.add("Allow", self.sip.allow_header())
            response.headers.add("Supported", SUPPORTED)
        for name, value in headers or []:
            response.headers.add(name, value)
        if sdp is not None:
            response.headers.add("Content-Type", SDP)
            response.body = bytes(sdp)
        self.sip.respond(response)
        return response

    def warning(self, error: SdpError) -> list[tuple[str, str]]:
        """What was wrong with a phone's SDP, for its 400/488 (RFC 3261 §20.43)."""
        return [("Warning", error.warning(self.sip.media_address()))]

    def refuse_sdp(self, request: Request, error: SdpError) -> None:
        """Answer a request whose SDP we cannot take: 400 or 488 with a Warning."""
        self.respond(request, error.status, error.reason, headers=self.warning(error))

    def ensure_dialog(self, leg: Leg) -> Dialog:
        """The dialog of a phone's INVITE, made on the first answer with a To
        tag, so every later answer (180, 183, 200) shares that tag."""
        if leg.dialog is None:
            invite = leg.invite
            to = Address.parse(invite.headers.get("To") or "")
            to.params["tag"] = new_tag()
            probe = Response(200, headers=Headers([("To", str(to))]))
            leg.dialog = Dialog.as_uas(invite, probe, leg.flow)
            self.dialogs[leg.dialog.id] = leg
        return leg.dialog

    def ringing(self, leg: Leg, sdp: SessionDescription | None = None) -> None:
        """180 Ringing, or 183 Session Progress with early media."""
        self.ensure_dialog(leg)
        if sdp is not None:
            leg.early_sdp_sent = True
            self.respond(leg.invite, 183, leg=leg, sdp=sdp)
        else:
            self.respond(leg.invite, 180, leg=leg)
        if leg.state is LegState.TRYING:
            leg.state = LegState.RINGING

    def answer(self, leg: Leg, sdp: SessionDescription | None) -> None:
        """Answer a phone's INVITE with 200 OK: resent until its ACK (UDP), the
        session timer armed when the phone asked for one (RFC 4028)."""
        self.ensure_dialog(leg)
        ok = self.respond(leg.invite, 200, leg=leg, sdp=sdp,
                          headers=self.timer_headers(leg, leg.invite))
        leg.state = LegState.ANSWERED
        self._resend_until_ack(leg, ok)
        self.arm_session_timer(leg)

    def answer_reinvite(self, leg: Leg, request: Request, sdp: SessionDescription) -> None:
        """200 to a re-INVITE (hold, resume, refresh), resent until ACKed."""
        ok = self.respond(request, 200, leg=leg, sdp=sdp, headers=self.timer_headers(leg, request))
        self._resend_until_ack(leg, ok)
        self.arm_session_timer(leg)

    def reject(self, leg: Leg, status: int, reason: str | None = None,
               headers: list[tuple[str, str]] | None = None) -> None:
        """A final non-2xx to a phone's pending INVITE (nothing once it is answered)."""
        if leg.outgoing or not leg.state.pending:
            return
        self.ensure_dialog(leg)
        self.respond(leg.invite, status, reason, leg=leg, headers=headers)
        leg.state = LegState.ENDED

    def _resend_until_ack(self, leg: Leg, ok: Response) -> None:
        """Resend our 2xx until the ACK comes (§13.3.1.4), over UDP only; no ACK
        within 64·T1: the phone is gone."""
        self.stop_resend(leg)
        leg.ok = ok
        if leg.flow.transport != "UDP":
            return
        started = self.clock.now()

        def resend(interval: float) -> None:
            leg.ok_timer = None
            if leg.ok is not ok or leg.state is LegState.ENDED:
                return
            if self.clock.now() - started >= 64 * T1:
                log.info("call %s: no ACK from %s", leg.call.id, leg.number)
                leg.ok = None
                self.on_lost(leg, 408)
                return
            self.sip.send_direct(ok, leg.flow)
            following = min(interval * 2, T2)
            leg.ok_timer = self.clock.call_later(following, lambda: resend(following))

        leg.ok_timer = self.clock.call_later(T1, lambda: resend(T1))

    def stop_resend(self, leg: Leg) -> None:
        """The ACK came (or the leg ended): our 2xx need not go again."""
        leg.ok = None
        if leg.ok_timer is not None:
            leg.ok_timer.cancel()
            leg.ok_timer = None

    # ------------------------------------------------------------ session timers (RFC 4028)

    def timer_headers(self, leg: Leg, request: Request) -> list[tuple[str, str]]:
        """Grant the session interval the phone asked for (at least :data:`MIN_SE`);
        the phone refreshes (``refresher=uac``)."""
        asked = request.headers.get("Session-Expires")
        supported = "timer" in [s.strip().lower() for s in request.headers.get_all("Supported")]
        if asked is None or not supported:
            return []
        try:
            seconds = max(MIN_SE, int(asked.split(";")[0].strip()))
        except ValueError:
            return []
        leg.session_expires = seconds
        return [("Session-Expires", f"{seconds};refresher=uac"), ("Require", "timer")]

    def arm_session_timer(self, leg: Leg) -> None:
        """Clear the call if the refresher lets the session expire (RFC 4028 §10)."""
        seconds = leg.session_expires
        if seconds is None:
            return
        if leg.session_timer is not None:
            leg.session_timer.cancel()

        def expired() -> None:
            leg.session_timer = None
            log.info("call %s: session timer of %s expired", leg.call.id, leg.number)
            self.on_lost(leg, 408)

        leg.session_timer = self.clock.call_later(seconds - min(32, seconds / 3), expired)

    def stop_timers(self, leg: Leg) -> None:
        self.stop_resend(leg)
        if leg.session_timer is not None:
            leg.session_timer.cancel()
            leg.session_timer = None

    # ------------------------------------------------------------ requests

    def leg_of(self, request: Request) -> Leg:
        """The live leg an in-dialog request belongs to; 481 when there is none
        (§12.2.2), 500 when its CSeq is out of order."""
        leg = self.dialogs.get(request_dialog_id(request))
        if leg is None or leg.state is LegState.ENDED or leg.dialog is None:
            raise SipError(481, "Call/Transaction Does Not Exist")
        leg.dialog.receive_request(request)
        return leg

    def send(self, leg: Leg, request: Request) -> None:
        """Send a request of ``leg``; its responses come back to the leg."""
        dest = leg.dialog.dest if leg.dialog is not None else leg.flow
        tx = self.sip.send_request(request, dest)
        self.client_legs[id(tx)] = leg

    def invite(self, leg: Leg) -> None:
        """Send a fork's INVITE."""
        leg.tx = self.sip.send_request(leg.invite, leg.flow)
        self.client_legs[id(leg.tx)] = leg

    def uac_dialog(self, leg: Leg, response: Response) -> None:
        """The dialog our INVITE made with its 2xx (§12.1.2)."""
        leg.dialog = Dialog.as_uac(leg.invite, response, leg.flow)
        self.dialogs[leg.dialog.id] = leg

    def ack(self, leg: Leg) -> None:
        """ACK a 2xx to our INVITE (a new transaction of its own, §13.2.2.4)."""
        assert leg.dialog is not None
        ack = leg.dialog.create_request("ACK", self.sip.sent_by(leg.flow.transport),
                                        cseq=leg.invite.cseq.number)
        self.sip.send_direct(ack, leg.dialog.dest)

    def bye(self, leg: Leg) -> None:
        """End the leg's dialog (§15.1.1); a leg without one has nothing to end."""
        self.stop_timers(leg)
        if leg.dialog is None or leg.dialog.terminated:
            leg.state = LegState.ENDED
            return
        leg.state = LegState.ENDED
        leg.dialog.terminated = True
        self.send(leg, leg.dialog.create_request("BYE", self.sip.sent_by(leg.flow.transport)))

    def cancel(self, leg: Leg) -> None:
        """CANCEL a fork that still rings (§9.1)."""
        if leg.state.pending:
            self.sip.send_request(build_cancel(leg.invite), leg.flow)
        leg.state = LegState.ENDED

    def end(self, leg: Leg, status: int = 487) -> None:
        """Whatever ends this leg in its state: CANCEL a fork, BYE an answered
        phone, a final answer to a phone still waiting for one."""
        if leg.state is LegState.ENDED:
            return
        if leg.outgoing and leg.state.pending:
            self.cancel(leg)
        elif leg.state is LegState.ANSWERED:
            self.bye(leg)
        else:
            self.reject(leg, status)
        self.stop_timers(leg)

    def notify_refer(self, leg: Leg, sipfrag: str, *, active: bool) -> None:
        """Report a transfer's progress to the referrer (RFC 3515 §2.4.5)."""
        if leg.dialog is None or leg.state is LegState.ENDED:
            return
        state = "active;expires=60" if active else "terminated;reason=noresource"
        notify = leg.dialog.create_request(
            "NOTIFY", self.sip.sent_by(leg.flow.transport),
            body=(sipfrag + "\r\n").encode(), content_type="message/sipfrag;version=2.0",
            headers=[("Event", "refer"), ("Subscription-State", state),
                     ("Contact", self.sip.contact(leg.flow))],
        )
        self.send(leg, notify)

    def forget(self, leg: Leg) -> None:
        """Drop the leg's dialog from the table (after retransmissions had their time)."""
        if leg.dialog is not None and self.dialogs.get(leg.dialog.id) is leg:
            del self.dialogs[leg.dialog.id]
