"""Spoken diversion (Telavox "hänvisning"): a caller to someone whose presence
profile turns direct calls away hears who, why and until when — "Alice
Andersson is in a meeting until eleven o'clock" — and is then sent where the
profile diverts (voicemail, a colleague, a number); ``0`` reaches the operator.

:func:`announcement` composes what is said (pure: the names, the profile and
its end time in); :class:`DiversionApp` is the service (destination kind
``diversion``, ident: the extension) over a channel.  Names and profile names
are spoken by espeak-ng in the organisation's language, in a worker thread,
through the shared speech cache.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

import numpy as np

from media.audiofile import AudioFileError, read_audio
from media.codecs import ENGINE_RATE
from media.say import say_digits, say_until
from media.speech import SpeechError, spoken
from pbx.calls.channel import Audio, Channel, Clock
from pbx.directory import Directory, Tenant
from pbx.profiles import zone
from pbx.router import DIVERSION
from pbx.tasks import Worker, in_thread

log = logging.getLogger("ivr.diversion")

# profiles whose status has a prompt of its own (the default profiles' names, and kin)
STATUS_PROMPTS = {
    "meeting": "in_a_meeting", "lunch": "at_lunch", "off": "out_of_office",
    "away": "out_of_office", "vacation": "out_of_office", "holiday": "out_of_office",
}
LEVEL = 0.8  # as the system prompts


def announcement(*, name: Audio | None, number: str, profile: str,
                 profile_said: Audio | None, until: datetime | None, now: datetime,
                 language: str) -> tuple[Audio, ...]:
    """Who (their spoken name, else "the person at extension" and the digits),
    why (a status prompt, or "has the status" and the profile's spoken name,
    else "is not available") and until when (said with the weekday when it is
    not today)."""
    who: tuple[Audio, ...] = (name,) if name is not None else ("the_person_at",
                                                               *say_digits(number))
    status = STATUS_PROMPTS.get(profile.strip().casefold())
    why: tuple[Audio, ...] = ((status,) if status else ("has_status", profile_said)
                              if profile_said is not None else ("is_not_available",))
    when: tuple[Audio, ...] = ()
    if until is not None and until > now:
        weekday = until.weekday() if until.date() != now.date() else None
        when = say_until(until.hour, until.minute, language, weekday)
    return (*who, *why, *when)


def said(text: str, language: str) -> np.ndarray | None:
    """``text`` spoken in ``language`` as 8 kHz samples; None (logged) when it
    cannot be.  Blocking."""
    if not text.strip():
        return None
    try:
        return read_audio(spoken(text, language), ENGINE_RATE).astype(np.float32) * LEVEL
    except (SpeechError, AudioFileError, OSError) as exc:
        log.warning("cannot say %r in %s: %s", text, language, exc)
        return None


class DiversionApp:
    """Says why a call is diverted, then diverts it (key ``0``: the operator)."""

    kind = DIVERSION

    def __init__(self, directory: Directory, clock: Clock, operator: Callable[[Tenant], str],
                 speech: Callable[[str, str], np.ndarray | None] = said,
                 worker: Worker = in_thread) -> None:
        self.directory = directory
        self.clock = clock
        self.operator = operator
        self.speech = speech
        self.worker = worker

    def start(self, channel: Channel, ident: str) -> None:
        tenant = self.directory.tenants.get(channel.party.organisation)
        ext = tenant.extensions.get(ident) if tenant is not None else None
        if tenant is None or ext is None:
            channel.hang_up(404)
            return
        now = self.clock.now()
        active = tenant.presence.active(ext, now)
        target = tenant.presence.admission(ext, "direct", now).divert
        if not target or active.profile is None:
            channel.hang_up(486)
            return
        profile = active.profile.name
        language = channel.party.language
        spoken_text: dict[str, np.ndarray | None] = {}

        def render() -> None:  # in a worker thread
            spoken_text["name"] = self.speech(ext.display_name, language)
            if profile.strip().casefold() not in STATUS_PROMPTS:
                spoken_text["profile"] = self.speech(profile, language)

        def speak() -> None:
            if not channel.alive or not channel.answer():
                return
            tz = zone(tenant.timezone)
            words = announcement(
                name=spoken_text.get("name"), number=ext.number, profile=profile,
                profile_said=spoken_text.get("profile"),
                until=datetime.fromtimestamp(active.until, tz) if active.until else None,
                now=datetime.fromtimestamp(now, tz), language=language)
            operator = self.operator(tenant)

            def key(digit: str) -> None:
                if digit == "0" and operator:
                    log.info("call %s: to the operator %s", channel.id, operator)
                    channel.redirect(operator)

            channel.on_key(key)
            log.info("call %s: %s is %s; diverted to %s", channel.id, ext.number, profile,
                     target)
            channel.play(*words, on_done=lambda: channel.redirect(target))

        self.worker(render, speak)
