"""Listening in (Asterisk ChanSpy): a supervisor dials ``*55`` and an agent's
extension and hears that agent's call; keys switch the mode during the call —
``4`` listen (nobody hears the supervisor), ``5`` whisper (only the agent
does), ``6`` barge (both do), as ChanSpy's ``d`` option has them; ``*55`` +
extension + ``*`` + one of those keys starts in that mode (the wallboard's
whisper and barge buttons dial that).  Only
admins' and supervisors' extensions may (403 otherwise); an agent on no call
gives 404.  The agent hears nothing when listened to: no tone, no prompt."""

from __future__ import annotations

import logging

from pbx.calls.channel import CallControl, Channel
from pbx.directory import Directory
from pbx.router import SPY

log = logging.getLogger("ivr.spy")

MODES = {"4": "listen", "5": "whisper", "6": "barge"}


class SpyApp:
    """Destination kind ``spy``; ident: the agent's extension."""

    kind = SPY

    def __init__(self, directory: Directory, calls: CallControl) -> None:
        self.directory = directory
        self.calls = calls

    def start(self, channel: Channel, ident: str) -> None:
        tenant = self.directory.tenants.get(channel.party.organisation)
        own = channel.party.extension
        ident, _, key = ident.partition("*")
        if tenant is None or own is None or own not in tenant.supervisors:
            log.info("call %s: %s may not listen in on %s", channel.id, own, ident)
            channel.hang_up(403)
            return
        monitor = self.calls.monitor(channel, ident, MODES.get(key, "listen"))
        if monitor is None:
            log.info("call %s: %s is on no call to listen to", channel.id, ident)
            channel.hang_up(404)
            return
        if not channel.answer():
            return

        def key(digit: str) -> None:
            mode = MODES.get(digit)
            if mode is not None:
                log.info("call %s: %s now %s on %s", channel.id, own, mode, ident)
                monitor.set_mode(mode)

        channel.on_key(key)
