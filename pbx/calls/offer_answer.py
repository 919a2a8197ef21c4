"""SDP for legs (RFC 3264): what we offer a phone we call, what we answer a
phone that calls, and pointing a leg's relay port at what the phone said.

Every leg keeps its own o= line (:class:`~pbx.sdp.SessionVersion`): the
version grows only when what we send changes, so a session refresh resends
the identical description.
"""

from __future__ import annotations

from collections.abc import Callable

from media.relay import RelayLeg
from pbx.sdp import (
    Codec, SdpError, SessionDescription, choose_audio, hold_direction, make_answer, make_offer,
)

from pbx.calls.model import Leg

STATIC_CODECS = {
    "PCMU": Codec(0, "PCMU", 8000),
    "PCMA": Codec(8, "PCMA", 8000),
    "G722": Codec(9, "G722", 8000),
    "opus": Codec(111, "opus", 48000, 2, fmtp="minptime=10;useinbandfec=1"),
    "telephone-event": Codec(101, "telephone-event", 8000, fmtp="0-16"),
}


class OfferAnswer:
    """Offers and answers for the legs of one node, in the codecs it is configured for."""

    def __init__(self, codecs: list[str], address: Callable[[], str],
                 renegotiated: Callable[[RelayLeg], None]) -> None:
        self.codecs = [STATIC_CODECS[c] for c in codecs if c in STATIC_CODECS]
        self.names = [c.name for c in self.codecs]
        self.address = address  # where phones reach our relay
        self.renegotiated = renegotiated  # a port in the engine follows the new codec

    def offer_codecs(self, remote: SessionDescription | None) -> list[Codec]:
        """The codecs ``remote`` has first (no transcoding), then the rest of ours."""
        ours = {c.name: c for c in self.codecs}
        first: list[Codec] = []
        if remote is not None and remote.audio is not None:
            first = [c for c in remote.audio.codecs if c.name in ours]
        names = {c.name for c in first}
        return first + [c for c in self.codecs if c.name not in names]

    def check(self, offer: SessionDescription) -> None:
        """Refuse an offer we could never answer (SdpError: 488) before anything rings."""
        choose_audio(offer, self.names)

    def fork_offer(self, port: int, caller: SessionDescription | None,
                   only: tuple[str, ...] = ()) -> SessionDescription:
        """The SDP of an INVITE we send: our relay port, the caller's codecs first
        (``only`` these, when a trunk names the codecs its carrier takes)."""
        codecs = self.offer_codecs(caller)
        if only:
            codecs = sorted((c for c in codecs if c.name in only), key=lambda c: only.index(c.name))
            if not any(not c.is_event for c in codecs):
                raise SdpError("none of the trunk's codecs is ours", 488)
        return make_offer(address=self.address(), port=port, codecs=codecs,
                          session_id=0, version=1)

    def answer(self, leg: Leg, prefer: SessionDescription | None = None) -> SessionDescription:
        """What we answer the phone of ``leg`` (its offer is ``leg.offer``),
        preferring the codec ``prefer`` (the other party's answer) chose, so the
        relay need not transcode.  A phone that sent no offer gets ours, and
        answers in its ACK.  Raises SdpError when nothing is common."""
        assert leg.media is not None
        port = leg.media.local_port
        if leg.offer is None:
            sdp = make_offer(address=self.address(), port=port, codecs=self.offer_codecs(prefer),
                             session_id=0, version=1)
            leg.local_sdp = leg.version.stamp(sdp)
            return leg.local_sdp
        supported = self.names
        chosen = _first_voice(prefer)
        offered = {c.name for c in leg.offer.audio.codecs} if leg.offer.audio else set()
        if chosen is not None and chosen in offered:
            supported = [chosen, "telephone-event"]
        try:
            sdp = make_answer(leg.offer, address=self.address(), port=port, supported=supported,
                              session_id=0, version=1)
        except SdpError:
            if supported is self.names:
                raise
            sdp = make_answer(leg.offer, address=self.address(), port=port,
                              supported=self.names, session_id=0, version=1)
        leg.local_sdp = leg.version.stamp(sdp)
        self.apply_remote(leg, leg.offer, leg.local_sdp)
        return leg.local_sdp

    def answer_offer(self, leg: Leg, offer: SessionDescription) -> SessionDescription:
        """Our answer to a new offer in a re-INVITE (hold, resume, a codec change)."""
        assert leg.media is not None
        sdp = make_answer(offer, address=self.address(), port=leg.media.local_port,
                          supported=self.names, session_id=0, version=1)
        leg.offer, leg.local_sdp = offer, leg.version.stamp(sdp)
        self.apply_remote(leg, offer, leg.local_sdp)
        return leg.local_sdp

    def offer_again(self, leg: Leg, direction: str = "sendrecv") -> SessionDescription:
        """Our offer in a 200 to a re-INVITE without SDP (§14.2): what we sent last."""
        assert leg.media is not None
        codecs = leg.local_sdp.audio.codecs if leg.local_sdp and leg.local_sdp.audio \
            else self.codecs
        sdp = make_offer(address=self.address(), port=leg.media.local_port, codecs=list(codecs),
                         direction=direction, session_id=0, version=1)
        leg.local_sdp = leg.version.stamp(sdp)
        return leg.local_sdp

    def apply_remote(self, leg: Leg, remote: SessionDescription,
                     local: SessionDescription | None = None) -> None:
        """Point the leg's relay port at the phone, with the codec both sides agreed on."""
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
        leg.held = hold_direction(remote, audio) in ("sendonly", "inactive")
        media.hold(leg.held)
        self.renegotiated(media)


def _first_voice(sdp: SessionDescription | None) -> str | None:
    if sdp is None or sdp.audio is None:
        return None
    return next((c.name for c in sdp.audio.codecs if not c.is_event), None)
