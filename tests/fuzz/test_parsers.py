"""Fuzzing every parser a peer's bytes reach (hypothesis): the SIP parser and
stream framer with the transaction layer and the request checks behind them,
the SDP parser and offer/answer, the digest parser and verifier, and RTP/RTCP
in the relay.  No exception may escape but the parser's own error type
(ParseError/SipError, SdpError, ValueError for digest headers; nothing at all
for RTP and RTCP, which are counted and dropped).

Inputs are seeds (RFC 4475 messages, tests/fuzz/corpus) with a few edits
(bytes and SIP tokens inserted, deleted, replaced, repeated), or raw bytes.
The ``ci`` profile runs 300 examples per target; ``PBX_FUZZ=long`` 60000
(see tests/fuzz/conftest.py).  A defect found is kept as an ``@example``."""

from __future__ import annotations

import struct
import time
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from media.ports import PortPool
from media.relay import MediaRelay, RelayLeg
from media.rtp import KeyListener, RtpPacket
from pbx.sdp import SdpError, SessionDescription, choose_audio, negotiate
from pbx.sip.auth import (
    Credentials, DigestAuthenticator, build_authorization, parse_auth_header,
)
from pbx.sip.errors import ParseError, SipError
from pbx.sip.flow import Flow
from pbx.sip.dialog import Dialog, request_dialog_id
from pbx.sip.message import Headers, Request, Response, make_response
from pbx.sip.parser import StreamFramer, parse_message
from pbx.sip.transaction import RequestReceived, TransactionLayer
from pbx.sip.validate import DIALOG_CONTACT, check_request
from tests.unit.rfc4475 import VECTORS

CORPUS = Path(__file__).parent / "corpus"
SIP_SEEDS = sorted({data for data, _ in VECTORS.values()}
                   | {p.read_bytes() for p in CORPUS.glob("*.sip")})
SDP_SEEDS = sorted(p.read_bytes() for p in CORPUS.glob("*.sdp"))
AUTH_SEEDS = sorted(line for line in (CORPUS / "authorization.txt").read_bytes().splitlines() if line)
RTP_SEEDS = sorted(p.read_bytes() for p in CORPUS.glob("rtp*.bin"))
RTCP_SEEDS = sorted(p.read_bytes() for p in CORPUS.glob("rtcp*.bin"))
TOKENS = [b"<", b">", b";", b",", b":", b"=", b"\"", b"\\", b"%", b"%00", b"\x00", b"\r\n",
          b"\r\n\r\n", b"\r\n ", b" ", b"\t", b"@", b"[", b"]", b"[::1]", b"?", b"&", b"*",
          b"sip:", b"sips:", b"tel:", b"SIP/2.0", b"INVITE", b"Content-Length: 99999",
          b"l: 0", b"Via: SIP/2.0/UDP h", b";branch=z9hG4bK", b";tag=", b"\xff", b"\xc3",
          b"99999999999999999999", b"-1", b"0", b"4294967296", b"a" * 300, b"m=audio 0 RTP/AVP",
          b"a=rtpmap:", b"c=IN IP6 ", b"Digest ", b"nc=", b"qop=auth", b"\x80", b"\x90", b"\xc8"]

EDIT = st.tuples(st.sampled_from(["insert", "delete", "replace", "repeat"]),
                 st.floats(0, 1), st.one_of(st.sampled_from(TOKENS), st.binary(max_size=8)),
                 st.integers(1, 64))


def fuzzed(seeds: list[bytes]) -> st.SearchStrategy[bytes]:
    """A seed with up to eight edits, or plain random bytes."""

    @st.composite
    def edited(draw: st.DrawFn) -> bytes:
        data = bytearray(draw(st.sampled_from(seeds)))
        for op, where, blob, n in draw(st.lists(EDIT, max_size=8)):
            at = int(where * len(data))
            if op == "insert":
                data[at:at] = blob
            elif op == "delete":
                del data[at:at + n]
            elif op == "replace":
                data[at:at + len(blob)] = blob
            else:
                data[at:at] = data[at:at + n] * min(n, 8)
        return bytes(data)

    return st.one_of(edited(), st.binary(max_size=1500))


# ---------------------------------------------------------------- SIP

FLOW = Flow("UDP", "192.0.2.1", 5060)


def exercise_request(request: Request) -> None:
    """What the server does with a request: check it, answer it through a
    transaction; what passed the checks makes its dialog (as call control
    does: only a missing Contact, which the checks tolerate, may be refused
    there, with its SipError)."""
    try:
        check_request(request)
    except SipError:
        pass
    else:
        if request.method in DIALOG_CONTACT:
            to = request.to_addr
            probe = Response(200, headers=Headers([("To", f"{to};tag=ours")]))
            try:
                Dialog.as_uas(request, probe, FLOW)
            except SipError as exc:
                assert "Missing Contact" in exc.reason
            request_dialog_id(request)
    for name in ("contact_star", "contacts", "expires", "replaces", "session_expires",
                 "refer_to", "content_type"):
        try:
            getattr(request, name)
        except ParseError:
            pass
    layer = TransactionLayer()
    layer.receive(request, FLOW, False, 0.0)
    event = layer.next_event()
    if isinstance(event, RequestReceived):
        layer.send_response(make_response(request, 400, "Bad Request - fuzz", to_tag="t"), 0.0)
    layer.handle_timer(100.0)
    bytes(make_response(request, 503, to_tag="t"))


@given(fuzzed(SIP_SEEDS))
def test_sip_parser_raises_only_parse_errors(data: bytes) -> None:
    try:
        message = parse_message(data)
    except ParseError as exc:
        if isinstance(exc.request, Request):  # the server answers it: that must work
            bytes(make_response(exc.request, exc.status, exc.reason, to_tag="t"))
        return
    bytes(message)
    if isinstance(message, Request):
        exercise_request(message)
    else:
        layer = TransactionLayer()
        layer.receive(message, FLOW, False, 0.0)


@given(fuzzed(SIP_SEEDS), st.lists(st.integers(1, 400), max_size=6))
def test_stream_framer_raises_only_parse_errors(data: bytes, cuts: list[int]) -> None:
    framer = StreamFramer()
    try:
        for size in [*cuts, len(data)]:
            chunk, data = data[:size], data[size:]
            for message in framer.feed(chunk):
                try:
                    parse_message(message)
                except ParseError:
                    pass
    except ParseError:
        pass  # the stream is closed


# ---------------------------------------------------------------- SDP

@given(fuzzed(SDP_SEEDS))
@example(b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
         b"m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/\r\n")
def test_sdp_parser_raises_only_sdp_errors(data: bytes) -> None:
    try:
        sdp = SessionDescription.parse(data)
        SessionDescription.parse(bytes(sdp))  # what we write we read back
        audio = choose_audio(sdp, ["PCMU", "PCMA", "G722", "telephone-event"])
        negotiate(audio.codecs, ["PCMU", "PCMA", "G722", "telephone-event"])
    except SdpError:
        pass


# ---------------------------------------------------------------- digest

DIGEST = DigestAuthenticator("pbx.test", b"0123456789abcdef0123456789abcdef",
                             algorithms=("SHA-256", "MD5"))


@given(fuzzed(AUTH_SEEDS))
def test_digest_parser_and_verifier_raise_only_value_errors(data: bytes) -> None:
    value = data.decode("utf-8", "surrogateescape")
    DIGEST.verify("INVITE", value, lambda user: "secret" if user == "1001" else None, 1e9)
    try:
        _, params = parse_auth_header(value)
    except ValueError:
        return
    try:
        Credentials.from_params(params)
    except ValueError:
        pass
    try:
        build_authorization(value, method="INVITE", uri="sip:1002@pbx.test", username="1001",
                            password="secret")
    except ValueError:
        pass


# ---------------------------------------------------------------- RTP and RTCP

class Wire:
    """Stands in for a leg's socket: what the relay sends is kept."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append(data)

    def is_closing(self) -> bool:
        return False


PHONE = ("192.0.2.1", 40000)


def bridged_legs() -> tuple[RelayLeg, RelayLeg]:
    relay = MediaRelay("127.0.0.1", PortPool(30000, 30010))
    a, b = RelayLeg(relay, "a", 30000), RelayLeg(relay, "b", 30002)
    a.set_remote(*PHONE, payload_type=0, codec="PCMU", dtmf_pt=101)
    b.set_remote("192.0.2.2", 40002, payload_type=8, codec="PCMA", dtmf_pt=101)
    a.peer, b.peer = b, a
    b.transport = Wire()  # type: ignore[assignment]
    return a, b


@given(st.lists(fuzzed(RTP_SEEDS + RTCP_SEEDS), min_size=1, max_size=8))
@example([struct.pack("!BBHII", 0x90, 0, 1, 2, 3) + b"\x00\x00\xff\xff"])  # extension past the end
def test_rtp_and_rtcp_never_raise(packets: list[bytes]) -> None:
    a, b = bridged_legs()
    keys = KeyListener()
    for data in packets:
        packet = RtpPacket.parse(data)
        if packet is not None:
            keys.feed(packet)
        a.datagram_received(data, PHONE)
        a.rtcp_received(data, PHONE)
    now = time.monotonic()  # the relay's clock: the LSR was stamped with it
    a.rtcp_report(now, time.time())
    b.rtcp_report(now, time.time())
    a.stats()
