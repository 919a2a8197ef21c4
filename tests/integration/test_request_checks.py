"""What a phone sees when its request or its SDP is wrong, against the running PBX:
a malformed header call control relies on gets its 400 at once (and costs no
call and no RTP port); Require: timer is understood; a Replaces header is
checked; an offer's usable audio stream is found wherever it is; a broken SDP
line spoils only what uses it; and 400/488 for SDP say why in a Warning."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from pbx.sip.auth import build_authorization
from pbx.sip.message import Response
from tests.integration.peers import Pbx, free_ports, running_pbx
from tests.integration.sipclient import SipClient
from tests.unit.rfc4475 import VECTORS

pytestmark = pytest.mark.integration

USERS = {n: f"pw-{n}-secret" for n in ("1001", "1002", "1003")}
SDP = "application/sdp"
RTP_PORTS = 20  # ten even/odd pairs: every port a leaked call kept would show


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    base = free_ports(RTP_PORTS + 1)
    base += base & 1  # RTP on even ports
    with running_pbx(tmp_path_factory.mktemp("checks"), USERS, auth_max_failures=1000,
                     rtp_ports=f"{base}-{base + RTP_PORTS - 1}") as server:
        yield server


def challenge(client: SipClient, target: str) -> Response:
    """A fresh 407 to answer, got with a well-formed INVITE (the checks come
    before authentication, so a broken INVITE would get its 400 instead)."""
    client.invite_text = client.request("INVITE", "1001", to=target, body=client.sdp(),
                                        headers={"Content-Type": SDP})
    first = client.receive()
    assert first is not None and first.status == 407
    client.ack_failure(first)
    return first


def authenticated_invite(
    client: SipClient, target: str, *, contacts: list[str] | None = None,
    headers: dict[str, str] | None = None, body: bytes | None = None,
) -> Response | None:
    """An INVITE as given, with 1001's valid credentials: its final answer (ACKed
    when not a 2xx), None when none came within 5 s."""
    authorization = build_authorization(
        challenge(client, target).headers.get("Proxy-Authenticate") or "", method="INVITE",
        uri=client.uri(target), username="1001", password=USERS["1001"])
    client.invite_text = client.request(
        "INVITE", "1001", to=target, contacts=contacts, authorization=authorization,
        body=client.sdp() if body is None else body, headers={"Content-Type": SDP, **(headers or {})})
    final = client.final(client.receive(5), 5)
    if final is not None and final.status >= 300:
        client.ack_failure(final)
    return final


MALFORMED_CONTACTS = [
    ("sip:1001@127.0.0.1?x=y", "Bad Request - Malformed Contact"),  # headers need <>
    ("<sip:1001@127.0.0.1", "Bad Request - Malformed Contact"),  # unbalanced <
    ("<http://127.0.0.1/phone>", "Bad Request - Contact is not a SIP URI"),
    ("<sip:1001@127.0.0.1> junk", "Bad Request - Malformed Contact"),
    ("*", "Bad Request - Malformed Contact"),  # only a REGISTER may say *
]


def test_a_malformed_contact_gets_400_and_costs_nothing(pbx: Pbx) -> None:
    """It used to get 100 Trying and never a final answer, and to keep a call and
    two RTP ports for good (the Contact failed to parse deep in call control)."""
    before = pbx.health()
    assert before["calls"] == 0 and before["media_ports_total"] == RTP_PORTS // 2
    with SipClient(pbx.host, pbx.sip_port) as client:
        for k, (contact, reason) in enumerate(MALFORMED_CONTACTS):
            client.call_id += f"-{k}"
            final = authenticated_invite(client, "1002", contacts=[contact])
            assert final is not None, contact
            assert (final.status, final.reason) == (400, reason)
    time.sleep(0.5)  # what a leaked call would hold is held by now
    after = pbx.health()
    assert after["calls"] == 0
    assert after["media_ports_free"] == before["media_ports_free"] == RTP_PORTS // 2


def test_require_timer_is_understood(pbx: Pbx) -> None:
    """RFC 4028 session timers are implemented: Require: timer is no reason for 420."""
    with SipClient(pbx.host, pbx.sip_port) as client:
        client.request("OPTIONS", "1001", headers={"Require": "timer"})
        options = client.receive()
        assert options is not None and options.status == 200
        assert options.headers.get_all("Supported") == ["path", "replaces", "timer"]
        final = authenticated_invite(client, "1999", headers={
            "Require": "timer", "Supported": "timer", "Session-Expires": "1800"})
        assert final is not None and final.status == 404  # routed: no such number
        client.request("OPTIONS", "1001", headers={"Require": "timer, 100rel"})
        refused = client.receive()
        assert refused is not None and refused.status == 420
        assert refused.headers.get("Unsupported") == "100rel"


def test_session_interval_below_90_s_gets_422(pbx: Pbx) -> None:
    with SipClient(pbx.host, pbx.sip_port) as client:
        client.invite_text = client.request("INVITE", "1001", to="1002", body=client.sdp(), headers={
            "Content-Type": SDP, "Supported": "timer", "Session-Expires": "60"})
        small = client.receive()
        assert small is not None and (small.status, small.reason) == (422, "Session Interval Too Small")
        assert small.headers.get("Min-SE") == "90"
        client.ack_failure(small)


def test_replaces_header(pbx: Pbx) -> None:
    """Require: replaces is understood with a Replaces header (the INVITE goes on to
    be challenged), refused without one; two Replaces headers are a 400 (RFC 3891 §3)."""
    replaces = "abc@192.0.2.9;to-tag=t1;from-tag=f1"
    with SipClient(pbx.host, pbx.sip_port) as client:
        for extra, status, reason in [
            ({"Require": "replaces", "Replaces": replaces}, 407, "Proxy Authentication Required"),
            ({"Require": "replaces"}, 420, "Bad Extension"),
            ({"Replaces": replaces, "replaces": "def@192.0.2.9;to-tag=t2;from-tag=f2"}, 400,
             "Bad Request - Multiple Replaces headers"),
            ({"Replaces": "abc@192.0.2.9;to-tag=t1"}, 400,
             "Bad Request - Replaces needs to-tag and from-tag"),
        ]:
            client.call_id += "-r"
            client.invite_text = client.request("INVITE", "1001", to="1002", body=client.sdp(),
                                                headers={"Content-Type": SDP, **extra})
            answer = client.receive()
            assert answer is not None and (answer.status, answer.reason) == (status, reason), extra
            client.ack_failure(answer)
            if status == 420:
                assert answer.headers.get("Unsupported") == "replaces"


def test_rfc4475_escaped_invite_with_lpc_rtpmap_is_routed(pbx: Pbx) -> None:
    """RFC 4475 §3.1.1.3 (esc01): its SDP has ``a=rtpmap:31 LPC`` (no clock rate)
    on the video stream.  Authenticated, it is a call to an unknown number like
    any other (404), not a 400 "Malformed rtpmap '31 LPC'"."""
    with SipClient(pbx.host, pbx.sip_port) as client:
        text = VECTORS["esc01"][0].decode()
        # our own Via, so that the answers come back to this socket
        text = text.replace("Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw",
                            f"Via: SIP/2.0/UDP {client.host_port()};branch=z9hG4bKesc01a;rport")
        client.invite_text = text
        client.send_raw(text.encode())
        first = client.receive()
        assert first is not None and first.status == 407
        client.ack_failure(first)
        authorization = build_authorization(
            first.headers.get("Proxy-Authenticate") or "", method="INVITE",
            uri=text.split(" ")[1], username="1001", password=USERS["1001"])
        text = text.replace("branch=z9hG4bKesc01a", "branch=z9hG4bKesc01b").replace(
            "CSeq: 234234 INVITE", f"CSeq: 234235 INVITE\r\nProxy-Authorization: {authorization}")
        client.invite_text = text
        client.send_raw(text.encode())
        final = client.final(client.receive(5), 5)
        assert final is not None and (final.status, final.reason) == (404, "Not Found")
        client.ack_failure(final)


def offer(client: SipClient, unknown: int, video: int, audio: int) -> bytes:
    """A stream of a codec nobody has, a video stream, then the PCMU stream."""
    ip = client.local_host
    return (
        f"v=0\r\no=phone 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
        f"m=audio {unknown} RTP/AVP 96\r\na=rtpmap:96 x-secret-codec/8000\r\n"
        f"m=video {video} RTP/AVP 97\r\na=rtpmap:97 H264/90000\r\n"
        f"m=audio {audio} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\n"
    ).encode()


def test_the_usable_audio_stream_is_the_call(pbx: Pbx) -> None:
    """An offer whose first audio stream has only a codec nobody knows and whose
    second has PCMU: answered on the second (first and video declined, port 0),
    and the callee's audio reaches the caller's second stream, not the first."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
    unknown_rtp, audio_rtp, phone_rtp = sockets
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.2)
    with SipClient(pbx.host, pbx.sip_port) as phone, SipClient(pbx.host, pbx.sip_port) as caller:
        registered = phone.register("1003", USERS["1003"], contacts=[f"<sip:1003@{phone.host_port()}>"])
        assert registered is not None and registered.status == 200
        rang: list = []  # type: ignore[type-arg]

        def pick_up() -> None:
            invite = phone.receive_request(5, "INVITE")
            assert invite is not None
            rang.append(invite)
            phone.respond(invite, 200, body=phone.sdp(phone_rtp.getsockname()[1], codecs="0"))

        worker = threading.Thread(target=pick_up)
        worker.start()
        caller.call_id += "-streams"
        body = offer(caller, unknown_rtp.getsockname()[1], 9, audio_rtp.getsockname()[1])
        _, ok = caller.invite("1001", USERS["1001"], "1003", body=body)
        worker.join()
        assert ok is not None and ok.status == 200, ok
        caller.in_dialog("ACK", ok, cseq=ok.cseq.number)
        m_lines = [line for line in ok.body.decode().split("\r\n") if line.startswith("m=")]
        assert [line.split()[:2] for line in m_lines] == [
            ["m=audio", "0"], ["m=video", "0"], ["m=audio", m_lines[2].split()[1]]]
        assert m_lines[2].endswith("RTP/AVP 0 101") and m_lines[2].split()[1] != "0"
        pbx_b = int(rang[0].body.decode().split("m=audio ")[1].split()[0])
        arrived = {"unknown": 0, "audio": 0}
        try:
            for k in range(50):
                packet = struct.pack("!BBHII", 0x80, 0, k, 160 * k, 4242) + b"\xff" * 160
                phone_rtp.sendto(packet, ("127.0.0.1", pbx_b))
                time.sleep(0.02)
            for name, sock in (("unknown", unknown_rtp), ("audio", audio_rtp)):
                try:
                    while sock.recv(2048):
                        arrived[name] += 1
                except TimeoutError:
                    pass
        finally:
            for sock in sockets:
                sock.close()
        assert arrived["audio"] > 40 and arrived["unknown"] == 0, arrived
        # a re-INVITE with nothing we can take: 488, and the Warning says why
        video_only = body.replace(b"m=audio", b"m=video")
        caller.in_dialog("INVITE", ok, body=video_only)
        refused = caller.receive(5)
        assert refused is not None and refused.status == 488
        assert refused.headers.get("Warning") == f'304 {pbx.host} "no audio stream"'
        caller.in_dialog("BYE", ok)
        assert phone.receive_request(5, "BYE") is not None


def sdp_with(client: SipClient, media: str) -> bytes:
    ip = client.local_host
    return f"v=0\r\no=phone 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n{media}".encode()


@pytest.mark.parametrize(
    "media, status, warning",
    [
        # the codec we would have used has a broken rtpmap: that is the fault
        ("m=audio 40000 RTP/AVP 96\r\na=rtpmap:96 PCMU\r\n", 400,
         "399 {host} \"Malformed rtpmap '96 PCMU'\""),
        ("m=video 40000 RTP/AVP 97\r\na=rtpmap:97 H264/90000\r\n", 488,
         '304 {host} "no audio stream"'),
        ("m=audio 40000 RTP/SAVP 0\r\n", 488, '302 {host} "no usable SRTP crypto suite"'),  # no a=crypto
        ("m=audio 40000 RTP/AVP 3\r\n", 488, '305 {host} "no common codec"'),
        ("m=audio 40000 RTP/AVP 0\r\na=rtcp:x\r\n", 400, "399 {host} \"Malformed rtcp attribute 'x'\""),
    ],
)
def test_a_refused_offer_says_why(pbx: Pbx, media: str, status: int, warning: str) -> None:
    """400 and 488 for SDP carry a Warning (RFC 3261 §20.43) naming what was wrong."""
    with SipClient(pbx.host, pbx.sip_port) as client:
        final = authenticated_invite(client, "1002", body=sdp_with(client, media))
        assert final is not None and final.status == status
        assert final.headers.get("Warning") == warning.format(host=pbx.host)
