"""One run of ``pbx softphone``: register, then follow the script or the keyboard.

What it prints is one line per step, for people and for scripts reading it;
what goes wrong is a :class:`SoftphoneError` that :func:`softphone.cli.main`
turns into a message and an exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import ssl
import sys
import termios
import time
import tty
from collections.abc import Iterator
from typing import TextIO

from media.audiofile import AudioFileError, read_audio
from media.rtp import EVENTS
from pbx.sip.flow import Flow
from pbx.trunks.settings import host_port
from softphone.phone import Phone
from softphone.ua import (Account, Call, CallAnswered, CallEnded, CallRinging, Event,
                          IncomingCall, Registered, RegistrationFailed)

REGISTER_WAIT = 10.0  # s for the PBX to answer our REGISTER
WAKE = ""  # put on the phone's event queue to make the loop look at ``done``


class SoftphoneError(Exception):
    """What went wrong, said to the user."""


class Session:
    """One run of the command: register, then the script or the keyboard."""

    def __init__(self, args: argparse.Namespace, out: TextIO) -> None:
        self.args, self.out = args, out
        if not args.password:
            raise SoftphoneError("no password: give --password or set PBX_SOFTPHONE_PASSWORD")
        if not (args.call or args.answer or args.interactive):
            raise SoftphoneError("nothing to do: give --call NUMBER, --answer or --interactive")
        try:
            host, port = host_port(args.server, args.transport)
        except ValueError as exc:
            raise SoftphoneError(f"--server: {exc}") from None
        if args.record is not None and not args.record.parent.is_dir():
            raise SoftphoneError(f"--record: no such directory {args.record.parent}")
        try:
            self.audio = read_audio(args.play, 8000) if args.play is not None else None
        except AudioFileError as exc:
            raise SoftphoneError(f"--play: {exc}") from None
        if not 60 <= args.expiry <= 86400:
            raise SoftphoneError("--expiry: from 60 to 86400 seconds")
        self.account = Account(args.user, args.password, Flow(args.transport.upper(), host, port),
                               args.domain or host, args.expiry)
        self.call: Call | None = None
        self.answered_at: float | None = None
        self.done = False  # the script (or the user) is finished
        self.dialling = ""  # the number typed so far (interactive, no call)

    @property
    def where(self) -> str:
        """The PBX's host:port as people write it."""
        server = self.account.server
        host = f"[{server.host}]" if ":" in server.host else server.host
        return f"{host}:{server.port}"

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    async def run(self) -> None:
        phone = Phone(self.account)
        server = self.account.server
        try:
            await phone.connect(verify_tls=not self.args.insecure)
        except (OSError, asyncio.TimeoutError) as exc:
            hint = " (--insecure accepts it)" if isinstance(exc, ssl.SSLCertVerificationError) else ""
            raise SoftphoneError(f"cannot reach {self.where} over "
                                 f"{server.transport}: {exc}{hint}") from None
        try:
            await self._register(phone)
            assert phone.leg is not None
            phone.leg.on_key = lambda key: self.say(f"heard key {key}")
            # SIGTERM (a supervisor, a test's teardown) hangs up and unregisters like q
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, self._quit, phone)
            if self.args.call:
                self.call = phone.call(self.args.call)
                self.say(f"calling {self.args.call}")
            with self._keyboard(phone) if self.args.interactive else contextlib.nullcontext():
                while not self.done:
                    try:
                        event = await phone.next_event(self._wait())
                    except asyncio.TimeoutError:
                        event = None
                    self._handle(phone, event)
        finally:
            await phone.close()
            if self.args.record is not None and phone.leg is not None and phone.leg.plan:
                seconds = phone.leg.save(self.args.record)
                self.say(f"recorded {seconds:.1f} s to {self.args.record}")

    async def _register(self, phone: Phone) -> None:
        phone.register()
        server = self.account.server
        try:
            event = await phone.next_event(REGISTER_WAIT)
        except asyncio.TimeoutError:
            raise SoftphoneError(f"registration failed: no answer from {self.where} over "
                                 f"{server.transport}") from None
        if isinstance(event, RegistrationFailed):
            raise SoftphoneError(f"registration refused: {event.code} {event.reason}")
        if not isinstance(event, Registered):
            raise SoftphoneError(f"registration failed: {event}")
        self.say(f"registered as {self.account.user} at {self.where} "
                 f"({server.transport}, {event.expires_in:.0f} s)")
        if self.args.interactive:
            self.say("keys: a answer, h hang up, 0-9 * # DTMF in a call, "
                     "a number and Enter to call, q quit")

    def _wait(self) -> float | None:
        """How long the next event may take: the script checks its clock while up."""
        return 0.1 if self.answered_at is not None else None

    def _handle(self, phone: Phone, event: Event | str | None) -> None:
        if event == WAKE:
            return
        if isinstance(event, str):
            raise SoftphoneError(event)
        if isinstance(event, IncomingCall):
            if self.call is not None:
                phone.hangup(event.call)  # busy with one call already
                return
            self.call = event.call
            self.say(f"incoming call from {event.call.peer}")
            if self.args.answer:
                phone.answer(event.call)
        elif isinstance(event, CallRinging) and event.call is self.call:
            self.say("ringing")
        elif isinstance(event, CallAnswered) and event.call is self.call:
            if self.answered_at is None:
                self._answered(phone, event)
        elif isinstance(event, CallEnded) and event.call is self.call:
            self._ended(event)
        elif isinstance(event, RegistrationFailed):
            self.say(f"re-registration refused: {event.code} {event.reason}; trying again")
        if self.answered_at is not None and self.call is not None and not self.args.interactive:
            self._script_clock(phone)

    def _answered(self, phone: Phone, event: CallAnswered) -> None:
        assert phone.leg is not None
        self.answered_at = time.monotonic()
        media = event.media
        self.say(f"answered: {media.codec} to {media.host}:{media.port}")
        if self.audio is not None:
            phone.leg.play(self.audio)
        if self.args.digits:
            self.press(phone, self.args.digits)

    def press(self, phone: Phone, keys: str) -> None:
        assert phone.leg is not None and phone.leg.sender is not None
        try:
            phone.leg.sender.press(keys)
        except ValueError as exc:
            self.say(f"cannot send {keys}: {exc}")

    def _ended(self, event: CallEnded) -> None:
        how = event.reason if not event.code else f"{event.code} {event.reason}"
        if self.answered_at is None and event.code and not self.args.interactive:
            way = "to" if event.call.outgoing else "from"
            raise SoftphoneError(f"call {way} {event.call.peer} failed: {how}")
        self.say(f"call ended: {how}")
        self.call, self.answered_at = None, None
        self.done = self.done or not self.args.interactive

    def _script_clock(self, phone: Phone) -> None:
        """Hang up when the time is up, or when there is nothing left to play or key."""
        assert self.answered_at is not None and self.call is not None and phone.leg is not None
        after = self.args.hangup_after
        if after is not None:
            due = time.monotonic() - self.answered_at >= after
        else:
            due = (self.audio is not None or bool(self.args.digits)) and not phone.leg.busy
        if due:
            phone.hangup(self.call)

    # ------------------------------------------------------------ the keyboard

    @contextlib.contextmanager
    def _keyboard(self, phone: Phone) -> Iterator[None]:
        """Keys from stdin as they are typed (cbreak on a terminal; a pipe works too)."""
        fd = sys.stdin.fileno()
        saved = None
        if os.isatty(fd):
            saved = termios.tcgetattr(fd)
            tty.setcbreak(fd)
        loop = asyncio.get_running_loop()
        loop.add_reader(fd, lambda: self._typed(phone, os.read(fd, 64)))
        try:
            yield
        finally:
            loop.remove_reader(fd)
            if saved is not None:
                termios.tcsetattr(fd, termios.TCSADRAIN, saved)

    def _typed(self, phone: Phone, data: bytes) -> None:
        if not data:  # end of input: as good as q
            self._quit(phone)
        for key in data.decode(errors="replace").upper():
            self.key(phone, key)

    def key(self, phone: Phone, key: str) -> None:
        """One key of the interactive phone: with no call, digits and Enter dial."""
        call = self.call
        if key == "Q":
            self._quit(phone)
        elif call is None:
            if key in "\r\n" and self.dialling:
                self.call = phone.call(self.dialling)
                self.say(f"calling {self.dialling}")
                self.dialling = ""
            elif key in EVENTS:
                self.dialling += key
        elif key == "A" and not call.outgoing and call.state == "ringing":
            phone.answer(call)
        elif key == "H":
            phone.hangup(call)
        elif key in EVENTS and self.answered_at is not None:
            self.press(phone, key)

    def _quit(self, phone: Phone) -> None:
        if self.call is not None:
            phone.hangup(self.call)
        self.done = True
        phone.events.put_nowait(WAKE)
