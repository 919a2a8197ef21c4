"""Conference rooms, the caller's side: answer, ask for the PIN when the room
has one (RFC 4733, SIP INFO or in-band keys, ``#`` ends it early), then join
the room, as moderator with the moderator PIN or in one's own personal room.
A moderator's keys: ``1`` mutes or unmutes everyone else, ``2`` locks or
unlocks the room.  A room set to record is recorded from its first caller.

:class:`PinLobby` is the PIN check, pure; :class:`ConferenceApp` the service
on the application interface.  The app also calls people into a room
(``POST /api/conferences/{room}/invite``) through call control's ``dial``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pbx.calls.channel import CallControl, Channel, Membership, Party, RoomLocked
from pbx.models import ConferenceRoom

log = logging.getLogger("ivr.conference")

MAX_PIN_TRIES = 3

Settings = Callable[[int, str], ConferenceRoom | None]  # (organisation, number) → the room
RecordingPath = Callable[[str], Path]
WriteRecording = Callable[[int, str, str, list[str], Path, float], None]


@dataclass
class PinLobby:
    """Keys in, a verdict out: ``None`` (keep listening), ``"member"``,
    ``"moderator"``, ``"wrong"`` (say so, ask again) or ``"refused"`` (hang up)."""

    pins: dict[str, bool]  # PIN → moderator
    digits: list[str] = field(default_factory=list)
    tries: int = 0

    @property
    def longest(self) -> int:
        return max(len(pin) for pin in self.pins)

    def key(self, digit: str) -> str | None:
        if digit != "#":
            self.digits.append(digit)
            if len(self.digits) < self.longest:
                return None
        entered, self.digits = "".join(self.digits), []
        if entered in self.pins:
            return "moderator" if self.pins[entered] else "member"
        self.tries += 1
        return "refused" if self.tries >= MAX_PIN_TRIES else "wrong"


class ConferenceApp:
    """Conference rooms (destination kind ``conference``, ident: the room number)."""

    kind = "conference"

    def __init__(self, settings: Settings, calls: CallControl, recording_path: RecordingPath,
                 write_recording: WriteRecording) -> None:
        self.settings = settings
        self.calls = calls
        self.recording_path = recording_path
        self.write_recording = write_recording

    def start(self, channel: Channel, ident: str) -> None:
        room = self.settings(channel.party.organisation, ident)
        if room is None:
            channel.hang_up(404)
            return
        if not channel.answer():
            return
        if not room.pin and not room.moderator_pin:
            # in a personal room its owner is the moderator
            owner = bool(room.owner) and channel.party.extension == room.owner
            self._enter(channel, room, moderator=owner)
            return
        pins = {room.pin: False}
        if room.moderator_pin:
            pins[room.moderator_pin] = True
        lobby = PinLobby(pins)

        def on_key(digit: str) -> None:
            verdict = lobby.key(digit)
            if verdict in ("member", "moderator"):
                self._enter(channel, room, moderator=verdict == "moderator")
            elif verdict == "wrong":
                log.info("call %s: wrong PIN for room %s (%d)", channel.id, room.number,
                         lobby.tries)
                channel.play("wrong_pin", "enter_pin")
            elif verdict == "refused":
                channel.hang_up(403)

        channel.on_key(on_key)
        channel.play("enter_pin")

    def _enter(self, channel: Channel, room: ConferenceRoom, *, moderator: bool) -> None:
        try:
            member = channel.join(room.number, moderator=moderator)
        except RoomLocked:
            log.info("call %s: room %s is locked", channel.id, room.number)
            channel.hang_up(403)
            return
        channel.on_key(self._moderator_keys(member) if moderator else None)
        if room.record and not member.room.recording:
            path = self.recording_path(f"conference-{room.number}-{channel.id}")
            started = time.time()
            member.room.record(path, on_done=lambda: self.write_recording(
                channel.party.organisation, channel.id, "conference", [room.number], path,
                started))

    @staticmethod
    def _moderator_keys(member: Membership) -> Callable[[str], None]:
        """``1`` mutes or unmutes everyone else, ``2`` locks or unlocks the room."""

        def on_key(digit: str) -> None:
            room = member.room
            if digit == "1":
                room.mute_others(member, not room.others_muted(member))
            elif digit == "2":
                room.set_locked(not room.locked)

        return on_key

    def invite(self, organisation: int, number: str, invitee: str) -> str:
        """Call ``invitee`` out of room ``number``; they join it when they answer.
        Returns the call's id; KeyError: no such room."""
        room = self.settings(organisation, number)
        if room is None:
            raise KeyError(number)
        caller = Party(organisation, number, room.name or f"Conference {number}")

        def answered(channel: Channel) -> None:
            channel.join(number)

        return self.calls.dial(
            organisation, invitee, caller=caller, on_answer=answered,
            on_fail=lambda status: log.info("room %s: %s did not join (%d)", number, invitee,
                                            status)).id
