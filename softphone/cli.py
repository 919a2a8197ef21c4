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
import os
import sys
from pathlib import Path
from typing import TextIO

from media.rtp import EVENTS

TRANSPORTS = ("udp", "tcp", "tls")


def _keys(text: str) -> str:
    wrong = sorted({key for key in text.upper() if key not in EVENTS})
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
    """Run the command; 0 done, 1 refused or failed (said on ``err``), 2 bad input.

    The phone (the SIP stack, asyncio glue) is imported here, not at the top:
    ``pbx`` builds this parser for every command.
    """
    from softphone.session import Session, SoftphoneError

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
