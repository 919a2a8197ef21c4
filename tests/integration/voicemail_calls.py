"""Voicemail as a scripted phone meets it over a running PBX: leaving a
message after the greeting's tone, listening until the PBX hangs up, and
the mailbox listing of the API once the message is stored."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import numpy as np

from media.g711 import ulaw_decode
from pbx.sip.message import Request, Response
from tests.integration.audio import RtpPhone
from tests.integration.peers import Pbx
from tests.integration.sipclient import SipClient

BEEP_HZ = 1000.0  # the tone after the greeting (ivr.voicemail.TONE)


def leave_message(pbx: Pbx, caller: str, password: str, target: str, seconds: float,
                  frequency: float, domain: str | None = None) -> None:
    """Call ``target`` as ``caller``, expect the PBX to answer, wait for the greeting's
    tone to end (after the greeting and the caller's options: up to ~20 s), send
    ``seconds`` of ``frequency`` and hang up."""
    with SipClient(pbx.host, pbx.sip_port, domain=domain) as phone, RtpPhone() as rtp:
        phone.call_id += f"-vm-{frequency:.0f}"
        _, ok = phone.invite(caller, password, target, body=phone.sdp(rtp.port, codecs="0 101"))
        assert ok is not None and ok.status == 200, ok  # voicemail answers
        phone.in_dialog("ACK", ok, cseq=ok.cseq.number)
        rtp.answered(ok.body)
        rtp.wait_for_tone(BEEP_HZ, timeout=40)
        rtp.send_tone(frequency, seconds)
        phone.in_dialog("BYE", ok)
        bye_ok = phone.receive(5)
        assert bye_ok is not None and bye_ok.status == 200


@contextmanager
def answered_call(pbx: Pbx, caller: str, password: str,
                  target: str) -> Iterator[tuple[SipClient, socket.socket, Response, int]]:
    """``caller`` calls ``target``; the PBX answers (voicemail, a menu).  Yields the
    phone, its RTP socket, the 200 and the PBX's RTP port."""
    with SipClient(pbx.host, pbx.sip_port) as phone:
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind(("127.0.0.1", 0))
        rtp.settimeout(0.5)
        try:
            phone.call_id += f"-{target}"
            _, ok = phone.invite(caller, password, target,
                                 body=phone.sdp(rtp.getsockname()[1], codecs="0 101"))
            assert ok is not None and ok.status == 200, ok
            phone.in_dialog("ACK", ok, cseq=ok.cseq.number)
            pbx_port = int(ok.body.decode().split("m=audio ")[1].split()[0])
            yield phone, rtp, ok, pbx_port
        finally:
            rtp.close()


def messages(pbx: Pbx, headers: dict[str, str], count: int) -> list[dict]:  # type: ignore[type-arg]
    """The mailbox listing once it holds ``count`` messages (they are stored off the call)."""
    deadline = time.monotonic() + 10
    while True:
        page = httpx.get(f"{pbx.api}/voicemail", headers=headers)
        assert page.status_code == 200, page.text
        if page.json()["total"] >= count or time.monotonic() > deadline:
            return page.json()["items"]  # type: ignore[no-any-return]
        time.sleep(0.2)


def until_bye(phone: SipClient, rtp: socket.socket) -> np.ndarray:
    """What the phone hears until the PBX hangs up (its BYE answered 200)."""
    heard: list[np.ndarray] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            heard.append(ulaw_decode(rtp.recv(2048)[12:]))
        except TimeoutError:
            pass
        bye: Request | None = phone.receive_request(0.001, "BYE")
        if bye is not None:
            phone.respond(bye, 200)
            return np.concatenate(heard)
    raise AssertionError("the PBX never hung up")
