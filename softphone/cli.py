"""``pbx softphone``: a SIP phone on the command line, on the PBX's own SIP stack.

Scriptable (a test peer, a monitoring probe)::

    pbx softphone --server pbx.example --user 1001 --password … \\
        --call 1002 --play hello.wav --record heard.wav --digits 12# --hangup-after 10

or interactive for an agent at a terminal (``--interactive``): ``a`` answers,
``h`` hangs up, digits go out as RFC 4733 events (with no call they dial, and
Enter calls), ``q`` quits.  A refused
registration or a failed call says why and exits non-zero.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import ssl
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:  # the phone (numpy, the SIP stack) loads only when it runs
    from softphone.phone import Phone
    from softphone.ua import Call, Event

KEYS = "0123456789*#ABCD"
TRANSPORTS = ("udp", "tcp", "tls")
REGISTER_WAIT = 10.0  # s for the PBX to answer our REGISTER
WAKE = ""  # put on the phone's event queue to make the loop look at ``done``


class SoftphoneError(Exception):
    """What went wrong, said to the user; the command exits 1."""


def _keys(text: str) -> str:
    wrong = sorted({key for key in text.upper() if key not in KEYS})
    if wrong:
        raise argparse.ArgumentTypeError(f"not a DTMF key: {''.join(wrong)} (0-9, *, #, A-D)")
    return text.upper()


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``pbx softphone`` options."""
    parser.add_argument("--server", required=True, metavar="HOST[:PORT]",
                        help="the PBX (port: 5060, 5061 for TLS)")
    parser.add_argument("--user", required=True, help="the extension or device login")
    parser.add_argument("--password", default=os.environ.get("PBX_SOFTPHONE_PASSWORD"),
                        help="its SIP password (default: $PBX_SOFTPHONE_PASSWORD)")
    parser.add_argument("--domain", help="SIP domain of the account (default: the server's host)")
    parser.add_argument("--transport", choices=TRANSPORTS, default="udp")
    parser.add_argument("--insecure", action="store_true",
                        help="TLS: accept any certificate (a test PBX's self-signed one)")
    parser.add_argument("--expiry", type=int, default=300, metavar="SECONDS",
                        help="registration time asked for (re-registered before it runs out)")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--call", metavar="NUMBER", help="call NUMBER (or a sip: URI)")
    action.add_argument("--answer", action="store_true",
                        help="wait for one incoming call and answer it")
    parser.add_argument("--play", type=Path, metavar="FILE",
                        help="play FILE (WAV, FLAC, OGG, MP3) into the call once it is up")
    parser.add_argument("--record", type=Path, metavar="FILE",
                        help="record what the far end sends to FILE (8 kHz WAV)")
    parser.add_argument("--digits", type=_keys, default="", metavar="KEYS",
                        help="send KEYS as RFC 4733 DTMF once the call is up")
    parser.add_argument("--hangup-after", type=_seconds, metavar="SECONDS",
                        help="hang up SECONDS after the answer (default: when --play and "
                             "--digits are done, or when the far end hangs up)")
    parser.add_argument("--interactive", "-i", action="store_true",
                        help="keys on the terminal: a answer, h hang up, 0-9*# DTMF (with no "
                             "call: a number and Enter dial it), q quit")


def main(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run the command; 0 done, 1 refused or failed (said on ``err``), 2 bad input."""
    try:
        session = Session(args, out)
    except SoftphoneError as exc:
        print(f"pbx softphone: {exc}", file=err)
        return 2
    try:
        asyncio.run(session.run())
    except SoftphoneError as exc:
        print(f"pbx softphone: {exc}", file=err)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


class Session:
    """One run of the command: register, then the script or the keyboard."""

    def __init__(self, args: argparse.Namespace, out: TextIO) -> None:
        from media.audiofile import AudioFileError, read_audio
        from pbx.sip.flow import Flow
        from pbx.trunks.settings import host_port
        from softphone.ua import Account

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
        self.account = Account(args.user, args.password, Flow(args.transport.upper(), host, port),
                               args.domain or host, max(60, args.expiry))
        self.call: Call | None = None
        self.answered_at: float | None = None
        self.done = False  # the script (or the user) is finished
        self.dialling = ""  # the number typed so far (interactive, no call)

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    async def run(self) -> None:
        from softphone.phone import Phone

        phone = Phone(self.account)
        server = self.account.server
        try:
            await phone.connect(verify_tls=not self.args.insecure)
        except (OSError, asyncio.TimeoutError) as exc:
            hint = " (--insecure accepts it)" if isinstance(exc, ssl.SSLCertVerificationError) else ""
            raise SoftphoneError(f"cannot reach {server.host}:{server.port} over "
                                 f"{server.transport}: {exc}{hint}") from None
        try:
            await self._register(phone)
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
        from softphone.ua import Registered, RegistrationFailed

        phone.register()
        server = self.account.server
        try:
            event = await phone.next_event(REGISTER_WAIT)
        except asyncio.TimeoutError:
            raise SoftphoneError(f"registration failed: no answer from {server.host}:"
                                 f"{server.port} over {server.transport}") from None
        if isinstance(event, RegistrationFailed):
            raise SoftphoneError(f"registration refused: {event.code} {event.reason}")
        if not isinstance(event, Registered):
            raise SoftphoneError(f"registration failed: {event}")
        self.say(f"registered as {self.account.user} at {server.host}:{server.port} "
                 f"({server.transport}, {event.expires_in:.0f} s)")
        if self.args.interactive:
            self.say("keys: a answer, h hang up, 0-9 * # DTMF in a call, "
                     "a number and Enter to call, q quit")

    def _wait(self) -> float | None:
        """How long the next event may take: the script checks its clock while up."""
        return 0.1 if self.answered_at is not None else None

    def _handle(self, phone: Phone, event: Event | str | None) -> None:
        from softphone.ua import (CallAnswered, CallEnded, CallRinging, IncomingCall,
                                  RegistrationFailed)

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
        if self.answered_at is None and event.call.outgoing and event.code:
            if not self.args.interactive:
                raise SoftphoneError(f"call to {event.call.peer} failed: {how}")
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
            import termios
            import tty

            saved = termios.tcgetattr(fd)
            tty.setcbreak(fd)
        loop = asyncio.get_running_loop()
        loop.add_reader(fd, lambda: self._typed(phone, os.read(fd, 64)))
        try:
            yield
        finally:
            loop.remove_reader(fd)
            if saved is not None:
                import termios

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
            elif key in KEYS:
                self.dialling += key
        elif key == "A" and not call.outgoing and call.state == "ringing":
            phone.answer(call)
        elif key == "H":
            phone.hangup(call)
        elif key in KEYS and self.answered_at is not None:
            self.press(phone, key)

    def _quit(self, phone: Phone) -> None:
        if self.call is not None:
            phone.hangup(self.call)
        self.done = True
        phone.events.put_nowait(WAKE)
