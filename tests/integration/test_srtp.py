"""SRTP with SDES keys (RFC 3711, RFC 4568) between real peers: baresip's
``srtp`` media encryption (libre's own SRTP, not libsrtp) on one side, a
plain phone on the other; the PBX protects only the SRTP leg.  A scripted
phone with pylibsrtp reads what the PBX really puts on the wire."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pylibsrtp import Error as SrtpError

from media.g711 import ulaw_decode, ulaw_encode
from media.srtp import SrtpKey, receiver, sender
from pbx.sdp import SessionDescription
from pbx.store import Store
from tests.integration.audio import heard, level, tone_share, tone_wav
from tests.integration.peers import Baresip, Pbx, baresip_phone, running_pbx
from tests.integration.sipclient import SipClient

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("baresip") is None
                                 or not Path("/usr/lib/baresip/modules/srtp.so").exists(),
                                 reason="needs baresip with its srtp module")]

USERS = {n: f"pw-{n}-secret" for n in ("1001", "1002", "1003")}
SECTIONS = """
[1001]
secret = pw-1001-secret
voicemail = no
media_encryption = required
"""
SRTP = "\nmodule srtp.so\n"
MANDATORY = ";mediaenc=srtp-mand"  # baresip offers and takes RTP/SAVP only


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    users = {n: p for n, p in USERS.items() if n != "1001"}
    with running_pbx(tmp_path_factory.mktemp("srtp"), users, sections=SECTIONS) as server:
        yield server


def quality_of(pbx: Pbx, caller: str, before: set[int | None]) -> dict[str, dict[str, float]]:
    """The call quality record of ``caller``'s new call, once it is written."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        store = Store(f"sqlite:///{pbx.data_dir / 'pbx.sqlite3'}")
        try:
            done = [c for c in store.cdrs(50) if c.id not in before and c.caller == caller
                    and c.answered_by]
        finally:
            store.close()
        if done:
            return json.loads(done[0].quality)
        time.sleep(0.3)
    raise AssertionError(f"no record of {caller}'s call:\n{pbx.log()[-3000:]}")


def cdr_ids(pbx: Pbx) -> set[int | None]:
    store = Store(f"sqlite:///{pbx.data_dir / 'pbx.sqlite3'}")
    try:
        return {c.id for c in store.cdrs(200)}
    finally:
        store.close()


def registered(pbx: Pbx, number: str, port: int) -> bool:
    with SipClient(pbx.host, pbx.sip_port) as client:
        response = client.register(number, USERS[number], contacts=[], expires=None)
    return response is not None and any(c.uri.port == port for c in response.contacts)


def wait_registered(pbx: Pbx, phone: Baresip, number: str) -> None:
    deadline = time.monotonic() + 10
    while not registered(pbx, number, phone.port):
        assert time.monotonic() < deadline, phone.log()
        time.sleep(0.2)


def dump(phone: Baresip, timeout: float = 25.0) -> np.ndarray:
    """What the phone heard, once its call is over and the recording written."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = list(phone.directory.glob("dump-*-dec.wav"))
        if files and phone.process is not None and phone.process.poll() is not None:
            return heard(files[0])
        time.sleep(0.3)
    files = list(phone.directory.glob("dump-*-dec.wav"))
    assert files, phone.log()
    return heard(files[0])


def hears(audio: np.ndarray, frequency: float, other: float) -> bool:
    return len(audio) > 8000 and level(audio, frequency) > 20 * max(level(audio, other), 1e-3)


@pytest.mark.parametrize("srtp_calls", [True, False], ids=["srtp-phone-calls", "srtp-phone-called"])
def test_a_baresip_srtp_phone_and_a_plain_phone_hear_each_other(
        pbx: Pbx, tmp_path: Path, srtp_calls: bool) -> None:
    """1001 (SRTP required, baresip ``srtp-mand``) and 1002 (plain RTP): whoever
    calls, each phone's tone reaches the other; only 1001's leg is SRTP."""
    secure_tone = tone_wav(tmp_path / "secure.wav", 440, 5.0)
    plain_tone = tone_wav(tmp_path / "plain.wav", 1000, 5.0)
    before = cdr_ids(pbx)
    caller, callee = ("1001", "1002") if srtp_calls else ("1002", "1001")
    options = {"1001": dict(audio_file=secure_tone, extra_config=SRTP, account_params=MANDATORY),
               "1002": dict(audio_file=plain_tone)}
    with baresip_phone(tmp_path, pbx, callee, USERS[callee], seconds=25,
                       **options[callee]) as answering:  # type: ignore[arg-type]
        wait_registered(pbx, answering, callee)
        with baresip_phone(tmp_path, pbx, caller, USERS[caller], seconds=20,
                           command=f"/dial sip:{callee}@{pbx.host}:{pbx.sip_port}",
                           **options[caller]) as calling:  # type: ignore[arg-type]
            phones = {caller: calling, callee: answering}
            heard_by_secure = dump(phones["1001"])
        heard_by_plain = dump(phones["1002"])
        secure_log = phones["1001"].log()
    assert "SRTP is Enabled" in secure_log, secure_log
    assert hears(heard_by_secure, 1000, 440), secure_log + pbx.log()[-3000:]
    assert hears(heard_by_plain, 440, 1000), pbx.log()[-3000:]
    quality = quality_of(pbx, caller, before)
    # baresip sends one RTCP APP "PINGPONG" in the clear as it starts: refused, counted
    assert quality["1001"]["srtp"] and quality["1001"]["unauthenticated"] <= 2
    assert quality["1001"]["packets_in"] > 100 and quality["1001"]["packets_out"] > 100
    assert not quality["1002"]["srtp"]


def test_a_plain_offer_from_a_phone_that_requires_srtp_is_refused(pbx: Pbx) -> None:
    with SipClient(pbx.host, pbx.sip_port) as phone:
        _, final = phone.invite("1001", USERS["1001"], "1002")
    assert final is not None and final.status == 488
    assert '302' in (final.headers.get("Warning") or "") and "SRTP required" in final.reason + \
        (final.headers.get("Warning") or "")


def test_what_the_pbx_sends_an_srtp_phone_is_encrypted(pbx: Pbx, tmp_path: Path) -> None:
    """A scripted phone (pylibsrtp) as 1003 offers RTP/SAVP and calls baresip 1002,
    which plays a 1000 Hz tone: the raw packets reaching the scripted phone do
    not carry the tone, the decrypted ones do; its own protected 440 Hz tone
    reaches 1002 in the clear."""
    media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    media.bind(("127.0.0.1", 0))
    media.settimeout(0.2)
    port = media.getsockname()[1]
    ours = SrtpKey.generate("AES_CM_128_HMAC_SHA1_80")
    offer = (f"v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
             f"m=audio {port} RTP/SAVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
             f"a=rtpmap:101 telephone-event/8000\r\n"
             f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{base64.b64encode(ours.key).decode()}"
             f"\r\na=sendrecv\r\n").encode()
    plain_tone = tone_wav(tmp_path / "plain.wav", 1000, 8.0)
    try:
        with baresip_phone(tmp_path, pbx, "1002", USERS["1002"], seconds=20,
                           audio_file=plain_tone) as plain, \
                SipClient(pbx.host, pbx.sip_port) as phone:
            wait_registered(pbx, plain, "1002")
            _, ok = phone.invite("1003", USERS["1003"], "1002", body=offer)
            assert ok is not None and ok.status == 200, pbx.log()[-3000:]
            phone.in_dialog("ACK", ok, cseq=ok.cseq.number)
            answer = SessionDescription.parse(ok.body).audio
            assert answer is not None and answer.proto == "RTP/SAVP"
            [crypto] = answer.crypto
            assert crypto.tag == 1 and crypto.key.key != ours.key
            unprotect, protect = receiver(crypto.key), sender(ours)
            raw: list[bytes] = []
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                try:
                    raw.append(media.recv(2048))
                except TimeoutError:
                    pass
            assert len(raw) > 50
            assert all(len(p) == 12 + 160 + 10 for p in raw)  # PCMU and the 80-bit tag
            in_the_clear = [tone_share(ulaw_decode(p[12:172]).astype(np.float64), 1000)
                            for p in raw]
            decrypted = [tone_share(ulaw_decode(unprotect.unprotect(p)[12:]).astype(np.float64),
                                    1000) for p in raw]
            assert max(in_the_clear) < 0.2  # ciphertext: noise, no tone
            assert np.median(decrypted) > 0.8  # the tone, once decrypted
            with pytest.raises(SrtpError):  # and it was authenticated with the key we got
                receiver(SrtpKey(crypto.key.suite, bytes(30))).unprotect(raw[-1])

            remote = (answer.connection or "127.0.0.1", answer.port)
            t = np.arange(8000 * 4) / 8000
            speech = ulaw_encode((np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)).tobytes()
            for n in range(len(speech) // 160):
                packet = struct.pack("!BBHII", 0x80, 0, n, 160 * n, 0x5151) + \
                    speech[160 * n:160 * (n + 1)]
                media.sendto(protect.protect(packet), remote)
                time.sleep(0.02)
            phone.in_dialog("BYE", ok)
            heard_by_plain = dump(plain)
    finally:
        media.close()
    assert hears(heard_by_plain, 440, 1000), plain.log() + pbx.log()[-3000:]


def test_an_optional_phone_over_tls_gets_best_effort_srtp_and_the_api_can_require_it(
        pbx: Pbx, tmp_path: Path) -> None:
    """1003 (optional, the default) registers over TLS with baresip's best-effort
    ``srtp``: the PBX's INVITE carries keys in RTP/AVP and the call is SRTP.  The
    admin then requires SRTP of 1002 (``PATCH /api/extensions``): its plain
    offers get 488, until it is set back."""
    import httpx

    before = cdr_ids(pbx)
    with baresip_phone(tmp_path, pbx, "1003", USERS["1003"], transport="tls", seconds=25,
                       audio_file=tone_wav(tmp_path / "best.wav", 440, 4.0),
                       extra_config=SRTP, account_params=";mediaenc=srtp") as best_effort:
        wait_registered_tls(pbx, best_effort)
        with baresip_phone(tmp_path, pbx, "1002", USERS["1002"], seconds=20,
                           audio_file=tone_wav(tmp_path / "plain.wav", 1000, 4.0),
                           command=f"/dial sip:1003@{pbx.host}:{pbx.sip_port}") as plain:
            heard_by_plain = dump(plain)
        heard_by_secure = dump(best_effort)
    assert "SRTP is Enabled" in best_effort.log(), best_effort.log()
    assert hears(heard_by_plain, 440, 1000) and hears(heard_by_secure, 1000, 440)
    assert quality_of(pbx, "1002", before)["1003"]["srtp"]

    url, admin = f"{pbx.api}/extensions/1002", pbx.admin_headers()
    assert httpx.patch(url, headers=admin, json={"media_encryption": "required"}).json()[
        "media_encryption"] == "required"
    try:
        assert httpx.patch(url, headers=admin, json={"media_encryption": "sdes"}).status_code == 422
        with SipClient(pbx.host, pbx.sip_port) as phone:
            _, final = phone.invite("1002", USERS["1002"], "1001")
        assert final is not None and final.status == 488
    finally:
        httpx.patch(url, headers=admin, json={"media_encryption": ""})


def wait_registered_tls(pbx: Pbx, phone: Baresip) -> None:
    """baresip over TLS: registered once the PBX's location has its TLS flow."""
    deadline = time.monotonic() + 15
    while "/TLS/v4} 200 OK" not in phone.log():
        assert time.monotonic() < deadline, phone.log()
        time.sleep(0.2)
