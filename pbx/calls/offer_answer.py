"""SDP for legs (RFC 3264): what we offer a phone we call, what we answer a
phone that calls, and pointing a leg's relay port at what the phone said.

Every leg keeps its own o= line (:class:`~pbx.sdp.SessionVersion`): the
version grows only when what we send changes, so a session refresh resends
the identical description.

SRTP is decided per leg (the B2BUA protects each leg on its own, so an SRTP
phone talks to a plain one): the extension's ``media_encryption`` (else the
node's) says ``off``, ``optional`` or ``required``.  A phone's offer is
answered in kind where the mode allows; our INVITEs offer RTP/SAVP with keys
to a ``required`` phone, best-effort RTP/AVP with keys to an ``optional``
phone reached over TLS, plain RTP otherwise.  A carrier's legs follow its
trunk's ``media_encryption`` (off unless set).
SDES keys are readable by anyone who reads the SIP: with ``srtp_require_tls``
no key is sent or taken over signalling that is not TLS; without it a
warning is logged for each leg whose keys travel in the clear.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from media.relay import RelayLeg
from pbx.directory import Tenant
from pbx.sdp import (
    SRTP_MODES, Codec, Crypto, SdpError, SessionDescription, choose_audio, hold_direction,
    make_answer, make_offer, sdes_keys,
)

from pbx.calls.model import Leg

log = logging.getLogger("pbx.calls")

STATIC_CODECS = {
    "PCMU": Codec(0, "PCMU", 8000),
    "PCMA": Codec(8, "PCMA", 8000),
    "G722": Codec(9, "G722", 8000),
    "opus": Codec(111, "opus", 48000, 2, fmtp="minptime=10;useinbandfec=1"),
    "telephone-event": Codec(101, "telephone-event", 8000, fmtp="0-16"),
}


@dataclass(frozen=True, slots=True)
class SrtpPolicy:
    """The node's SRTP settings: the mode of extensions that set none, and
    whether SDES keys may only travel over SIP over TLS."""

    default: str = "optional"
    require_tls: bool = False

    def __post_init__(self) -> None:
        if self.default not in SRTP_MODES:
            raise ValueError(f"unknown media_encryption {self.default!r}")


class OfferAnswer:
    """Offers and answers for the legs of one node, in the codecs it is configured for."""

    def __init__(self, codecs: list[str], address: Callable[[], str],
                 renegotiated: Callable[[RelayLeg], None],
                 srtp: SrtpPolicy | None = None) -> None:
        self.codecs = [STATIC_CODECS[c] for c in codecs if c in STATIC_CODECS]
        self.names = [c.name for c in self.codecs]
        self.address = address  # where phones reach our relay
        self.renegotiated = renegotiated  # a port in the engine follows the new codec
        self.srtp = srtp or SrtpPolicy()

    def srtp_mode(self, tenant: Tenant, number: str, transport: str,
                  trunk: str | None = None) -> str:
        """The SRTP mode of a leg with extension ``number``'s phone over ``transport``,
        or with the carrier of ``trunk`` (its ``media_encryption``).  SdpError
        (488) for a peer that requires SRTP where keys may not travel
        (``srtp_require_tls`` and no TLS)."""
        if trunk is not None:
            carrier = tenant.trunks.get(trunk)
            mode = carrier.media_encryption if carrier is not None else "off"
        else:
            ext = tenant.extensions.get(number)
            mode = (getattr(ext, "media_encryption", "") or self.srtp.default) if ext else "off"
        if mode != "off" and self.srtp.require_tls and transport != "TLS":
            if mode == "required":
                raise SdpError("SRTP keys need SIP over TLS", 488, 302)
            return "off"
        return mode

    def leg_mode(self, leg: Leg) -> str:
        call = leg.call
        trunk = leg.trunk or (call.trunk if leg is call.a and call.direction == "inbound"
                              else None)
        return self.srtp_mode(call.tenant, leg.number, leg.flow.transport, trunk or None)

    @staticmethod
    def offered_security(mode: str, transport: str) -> tuple[str, list[Crypto]]:
        """The transport and keys we offer: RTP/SAVP to a phone that requires SRTP,
        best-effort RTP/AVP with keys to an optional one over TLS, else plain."""
        if mode == "required":
            return "RTP/SAVP", Crypto.offered()
        if mode == "optional" and transport == "TLS":
            return "RTP/AVP", Crypto.offered()
        return "RTP/AVP", []

    def offer_codecs(self, remote: SessionDescription | None) -> list[Codec]:
        """The codecs ``remote`` has first (no transcoding), then the rest of ours."""
        ours = {c.name: c for c in self.codecs}
        first: list[Codec] = []
        if remote is not None and remote.audio is not None:
            first = [c for c in remote.audio.codecs if c.name in ours]
        names = {c.name for c in first}
        return first + [c for c in self.codecs if c.name not in names]

    def check(self, offer: SessionDescription, srtp: str = "off") -> None:
        """Refuse an offer we could never answer (SdpError: 488) before anything rings."""
        choose_audio(offer, self.names, srtp)

    def fork_offer(self, port: int, caller: SessionDescription | None,
                   only: tuple[str, ...] = (), *, srtp: str = "off",
                   transport: str = "UDP") -> SessionDescription:
        """The SDP of an INVITE we send: our relay port, the caller's codecs first
        (``only`` these, when a trunk names the codecs its carrier takes), SRTP
        keys as the callee's ``srtp`` mode and ``transport`` want."""
        codecs = self.offer_codecs(caller)
        if only:
            codecs = sorted((c for c in codecs if c.name in only), key=lambda c: only.index(c.name))
            if not any(not c.is_event for c in codecs):
                raise SdpError("none of the trunk's codecs is ours", 488)
        proto, crypto = self.offered_security(srtp, transport)
        return make_offer(address=self.address(), port=port, codecs=codecs,
                          session_id=0, version=1, proto=proto, crypto=crypto)

    def check_answer(self, leg: Leg, answer: SessionDescription) -> None:
        """A callee's answer to our RTP/SAVP offer must take one of our keys
        (RFC 4568 §7.1.3): SdpError (488) when it answered in plain RTP."""
        ours = leg.local_sdp.audio if leg.local_sdp is not None else None
        if ours is None or not ours.is_srtp:
            return
        theirs = answer.paired(leg.local_sdp)  # type: ignore[arg-type]
        if theirs is None or sdes_keys(ours, theirs) is None:
            raise SdpError("SRTP required", 488, 302)

    def answer(self, leg: Leg, prefer: SessionDescription | None = None) -> SessionDescription:
        """What we answer the phone of ``leg`` (its offer is ``leg.offer``),
        preferring the codec ``prefer`` (the other party's answer) chose, so the
        relay need not transcode.  A phone that sent no offer gets ours, and
        answers in its ACK.  Raises SdpError when nothing is common."""
        assert leg.media is not None
        port = leg.media.local_port
        srtp = self.leg_mode(leg)
        if leg.offer is None:
            proto, crypto = self.offered_security(srtp, leg.flow.transport)
            sdp = make_offer(address=self.address(), port=port, codecs=self.offer_codecs(prefer),
                             session_id=0, version=1, proto=proto, crypto=crypto)
            leg.local_sdp = leg.version.stamp(sdp)
            return leg.local_sdp
        keys = _our_keys(leg)
        supported = self.names
        chosen = _first_voice(prefer)
        offered = {c.name for c in leg.offer.audio.codecs} if leg.offer.audio else set()
        if chosen is not None and chosen in offered:
            supported = [chosen, "telephone-event"]
        try:
            sdp = make_answer(leg.offer, address=self.address(), port=port, supported=supported,
                              session_id=0, version=1, srtp=srtp, keys=keys)
        except SdpError:
            if supported is self.names:
                raise
            sdp = make_answer(leg.offer, address=self.address(), port=port,
                              supported=self.names, session_id=0, version=1, srtp=srtp,
                              keys=keys)
        leg.local_sdp = leg.version.stamp(sdp)
        self.apply_remote(leg, leg.offer, leg.local_sdp)
        return leg.local_sdp

    def answer_offer(self, leg: Leg, offer: SessionDescription) -> SessionDescription:
        """Our answer to a new offer in a re-INVITE (hold, resume, a codec change)."""
        assert leg.media is not None
        sdp = make_answer(offer, address=self.address(), port=leg.media.local_port,
                          supported=self.names, session_id=0, version=1,
                          srtp=self.leg_mode(leg), keys=_our_keys(leg))
        leg.offer, leg.local_sdp = offer, leg.version.stamp(sdp)
        self.apply_remote(leg, offer, leg.local_sdp)
        return leg.local_sdp

    def offer_again(self, leg: Leg, direction: str = "sendrecv") -> SessionDescription:
        """Our offer in a 200 to a re-INVITE without SDP (§14.2): what we sent last."""
        assert leg.media is not None
        last = leg.local_sdp.audio if leg.local_sdp is not None else None
        codecs = last.codecs if last is not None else self.codecs
        sdp = make_offer(address=self.address(), port=leg.media.local_port, codecs=list(codecs),
                         direction=direction, session_id=0, version=1,
                         proto=last.proto if last is not None else "RTP/AVP",
                         crypto=last.crypto if last is not None else None)
        leg.local_sdp = leg.version.stamp(sdp)
        return leg.local_sdp

    def apply_remote(self, leg: Leg, remote: SessionDescription,
                     local: SessionDescription | None = None) -> None:
        """Point the leg's relay port at the phone, with the codec both sides agreed
        on and the SRTP keys of our SDP and theirs (none: plain RTP)."""
        media = leg.media
        audio = remote.audio if local is None else remote.paired(local)
        if media is None or audio is None:
            return
        agreed = local.audio.codecs if local is not None and local.audio else audio.codecs
        voice = next((c for c in agreed if not c.is_event), None)
        if voice is None:
            return
        remote_pts = {c.name: c.payload_type for c in audio.codecs}
        host = audio.connection or remote.connection or leg.flow.host
        media.set_remote(host, audio.port, payload_type=remote_pts.get(voice.name, voice.payload_type),
                         codec=voice.name, dtmf_pt=remote_pts.get("telephone-event"))
        ours = leg.local_sdp.audio if leg.local_sdp is not None else None
        keys = sdes_keys(ours, audio) if ours is not None else None
        if keys is not None and media.tx_key is None and leg.flow.transport != "TLS":
            log.warning("call %s: SRTP keys of %s's media travel in SDP over %s, readable on "
                        "the way; use SIP over TLS (srtp_require_tls = yes to insist)",
                        leg.call.id, leg.number, leg.flow.transport)
        media.secure(*(keys or (None, None)))
        leg.held = hold_direction(remote, audio) in ("sendonly", "inactive")
        media.hold(leg.held)
        self.renegotiated(media)


def _our_keys(leg: Leg) -> list[Crypto]:
    """The SDES keys we sent this leg last: a new answer keeps them (RFC 4568 §7.1.4)."""
    ours = leg.local_sdp.audio if leg.local_sdp is not None else None
    return ours.crypto if ours is not None else []


def _first_voice(sdp: SessionDescription | None) -> str | None:
    if sdp is None or sdp.audio is None:
        return None
    return next((c.name for c in sdp.audio.codecs if not c.is_event), None)
