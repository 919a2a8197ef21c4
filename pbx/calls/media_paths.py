"""Media paths: how a call's audio flows.

Two answered phones are bridged straight through the relay when it can
(same codec, or PCMU↔PCMA by table); through the engine, as a two-party
``call`` room, when a party's calls are recorded (always or on demand with
``*1``) or the relay cannot transcode between their codecs.  Hold plays
music to the party left alone.  Ports are given back when the call ends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from media.engine import MediaEngine, MixPort
from media.g711 import TRANSCODE
from media.prompts import PromptLibrary
from media.relay import RelayLeg

from pbx.calls.model import Call, Leg
from pbx.calls.ports import Ports, Recordings

log = logging.getLogger("pbx.calls")

CALL_ROOM = "call"


@dataclass(frozen=True, slots=True)
class RecordingSettings:
    mix: str = "stereo"  # stereo: caller left, callee right; mono: both mixed
    announce: bool = False  # both parties hear "this call is recorded"


class MediaPaths:
    """Bridges, recordings and music on hold of one node's calls."""

    def __init__(self, ports: Ports, engine: MediaEngine, recordings: Recordings,
                 prompts: Callable[[], PromptLibrary], settings: RecordingSettings) -> None:
        self.ports = ports
        self.engine = engine
        self.recordings = recordings
        self.prompts = prompts
        self.settings = settings

    def renegotiated(self, media: RelayLeg) -> None:
        """A phone agreed on its codec again: a port in the engine follows it."""
        if isinstance(media.peer, MixPort):
            self.engine.renegotiated(media)

    def detach(self, media: RelayLeg) -> None:
        """Take a port out of whatever engine room (a service's, music) it is in."""
        if isinstance(media.peer, MixPort):
            self.engine.leave(media)

    def bridge(self, call: Call) -> None:
        """Connect the two sides' media: through the relay, or through the engine
        (a two-party room) when recorded or not transcodable by the relay."""
        a, b = call.a, call.b
        assert a is not None and b is not None and a.media is not None and b.media is not None
        for media in (a.media, b.media):
            self.detach(media)
        directory = call.tenant.extensions
        recorded = [n for n in (a.number, b.number) if getattr(directory.get(n), "record", False)]
        on_demand = [n for n in (a.number, b.number)
                     if getattr(directory.get(n), "record_on_demand", False)]
        codecs = (a.media.codec, b.media.codec)
        relayable = codecs[0] == codecs[1] or codecs in TRANSCODE
        if not recorded and not on_demand and relayable:
            self.ports.bridge(a.media, b.media)
            return
        self._into_engine(call, on_demand)
        if not relayable:
            call.path.append(f"transcode:{codecs[0]}-{codecs[1]}")
        if recorded:
            self.start_recording(call, recorded)

    def into_engine(self, call: Call) -> tuple[MixPort, MixPort]:
        """The call's two parties in a ``call`` room of the engine (a supervisor is
        about to listen in), their ports left and right; relayed calls move over
        seamlessly (each leg's stream continues, RFC 3550 §5.1)."""
        if call.stereo is None:
            a, b = call.a, call.b
            assert a is not None and b is not None and a.media is not None and b.media is not None
            for media in (a.media, b.media):
                self.detach(media)
                self.ports.unbridge(media)
            self._into_engine(call, [])
        assert call.stereo is not None
        return call.stereo

    def _into_engine(self, call: Call, on_demand: list[str]) -> None:
        a, b = call.a, call.b
        assert a is not None and b is not None and a.media is not None and b.media is not None
        room = self.room_of(call)
        keys = self._recording_keys(call) if on_demand else None
        left = self.engine.join(room, a.media, tone=False, kind=CALL_ROOM,
                                on_dtmf=keys if a.number in on_demand else None)
        right = self.engine.join(room, b.media, tone=False, kind=CALL_ROOM,
                                 on_dtmf=keys if b.number in on_demand else None)
        call.stereo = (left, right)

    @staticmethod
    def room_of(call: Call) -> str:
        return f"call-{call.id}"

    def start_recording(self, call: Call, who: list[str]) -> None:
        room = self.room_of(call)
        part = f"-{len(call.recordings)}" if call.recordings else ""
        path = self.recordings.recording_path(f"call-{call.id}{part}")
        parties = [leg.number for leg in (call.a, call.b) if leg is not None]
        started = call.answered_at or call.started_at

        def done() -> None:
            self.recordings.write_recording(call.tenant.id, call.id, "call", parties, path,
                                            started)

        stereo = call.stereo if self.settings.mix == "stereo" else None
        state = self.engine.rooms[room]
        self.engine.record(state, path, stereo=stereo, on_done=done)
        if self.settings.announce:
            said = self.prompts().get("recorded")
            if said is not None:
                self.engine.play(state, said)
        call.recording = path
        call.recordings.append(path)
        call.path.append(f"record:{','.join(who)}")
        log.info("call %s: recording to %s", call.id, path)

    def _recording_keys(self, call: Call) -> Callable[[MixPort, str], None]:
        """``*1`` during the call starts recording; ``*1`` again stops it (feature code)."""
        last: dict[int, str] = {}

        def on_digit(port: MixPort, digit: str) -> None:
            previous, last[id(port)] = last.get(id(port)), digit
            if previous != "*" or digit != "1" or call.ended:
                return
            state = self.engine.rooms.get(self.room_of(call))
            if state is None:
                return
            who = next((leg.number for leg in (call.a, call.b)
                        if leg is not None and leg.media is port.leg), "?")
            if state.recorder is None:
                self.start_recording(call, [who])
            else:
                self.engine.stop_recording(state)  # its facts are stored
                call.path.append(f"record-stop:{who}")
                log.info("call %s: %s stopped the recording", call.id, who)
                call.recording = None

        return on_digit

    def hold_changed(self, leg: Leg) -> None:
        """The party put on hold hears music; on resume the two are bridged again.
        Calls through the engine (recorded, transcoded) and services keep their room."""
        call = leg.call
        if call.a is None or call.b is None or call.stereo is not None:
            return
        other = call.b if leg is call.a else call.a
        mine, theirs = leg.media, other.media
        if mine is None or theirs is None or isinstance(mine.peer, MixPort):
            return
        if leg.held:
            self.ports.unbridge(mine)
            self.engine.hold_music(theirs)
        else:
            self.engine.stop_music(theirs)
            self.ports.bridge(mine, theirs)

    async def release(self, ports: set[RelayLeg]) -> None:
        """Give a finished call's ports back (a recording's facts are stored as
        its room closes)."""
        for port in ports:
            self.engine.leave(port)
            await self.ports.close_leg(port)
