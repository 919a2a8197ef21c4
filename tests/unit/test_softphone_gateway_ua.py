"""The softphone gateway's SIP user agent against a scripted PBX (no sockets):
what a ringing, cancelled, answered or busy line sends, and the caller side
answering the PBX's digest challenge."""

from __future__ import annotations

import asyncio

from pbx.sip.auth import AuthOutcome, DigestAuthenticator
from pbx.sip.message import Request, Response, make_response
from pbx.sip.parser import parse_message
from softphone.sip_ua import SipCall, SipUserAgent, UaListener

PBX = ("127.0.0.1", 5060)
OFFER = b"v=0\r\no=pbx 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" \
        b"m=audio 30000 RTP/AVP 0\r\n"


class Sent:
    """A datagram transport that keeps what the user agent sends."""

    def __init__(self) -> None:
        self.messages: list[Request | Response] = []
        self.reply: object = None  # a function answering each request, for the caller side

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        assert addr == PBX
        message = parse_message(data, check=False)
        self.messages.append(message)
        if callable(self.reply):
            self.reply(message)

    def statuses(self) -> list[int]:
        return [m.status for m in self.messages if isinstance(m, Response)]


class Heard(UaListener):
    def __init__(self) -> None:
        self.rang: list[SipCall] = []
        self.ends: list[str] = []
        self.transfers: list[int] = []

    def transfer_progress(self, call: SipCall, status: int) -> None:
        self.transfers.append(status)

    def incoming(self, call: SipCall) -> None:
        self.rang.append(call)

    def ended(self, call: SipCall, reason: str) -> None:
        self.ends.append(reason)


def user_agent() -> tuple[SipUserAgent, Sent, Heard]:
    heard = Heard()
    ua = SipUserAgent(PBX, "pbx.test", "1001", "secret-1001", heard)
    sent = Sent()
    ua.transport = sent  # type: ignore[assignment]
    ua.local = ("127.0.0.1", 5070)
    return ua, sent, heard


def invite(call_id: str = "c1", caller: str = "1002") -> bytes:
    return (f"INVITE sip:1001@127.0.0.1:5070 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK{call_id}\r\n"
            f'From: "Bertil" <sip:{caller}@pbx.test>;tag=pbx1\r\nTo: <sip:1001@pbx.test>\r\n'
            f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:pbx@127.0.0.1:5060>\r\n"
            f"Content-Type: application/sdp\r\nContent-Length: {len(OFFER)}\r\n\r\n"
            ).encode() + OFFER


def in_dialog(method: str, call_id: str = "c1", cseq: int = 2, to_tag: str = "") -> bytes:
    to = "<sip:1001@pbx.test>" + (f";tag={to_tag}" if to_tag else "")
    return (f"{method} sip:1001@127.0.0.1:5070 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK{call_id}{method}\r\n"
            f"From: <sip:1002@pbx.test>;tag=pbx1\r\nTo: {to}\r\nCall-ID: {call_id}\r\n"
            f"CSeq: {cseq if method != 'CANCEL' else 1} {method}\r\nContent-Length: 0\r\n\r\n"
            ).encode()


def test_an_incoming_call_rings_with_the_callers_name_and_a_cancel_ends_it() -> None:
    ua, sent, heard = user_agent()
    ua.datagram_received(invite(), PBX)
    assert sent.statuses() == [180]
    assert [(c.caller_number, c.caller_name) for c in heard.rang] == [("1002", "Bertil")]
    ua.datagram_received(in_dialog("CANCEL"), PBX)
    assert sent.statuses() == [180, 200, 487]
    assert heard.ends == ["cancelled"]


def test_the_line_answers_with_its_sdp_and_the_far_ends_bye_ends_the_call() -> None:
    ua, sent, heard = user_agent()
    ua.datagram_received(invite(), PBX)
    call = heard.rang[0]
    ua.answer(call, b"v=0\r\n")
    ok = sent.messages[-1]
    assert isinstance(ok, Response) and ok.status == 200 and ok.body == b"v=0\r\n"
    assert ok.to_addr.tag == call.local_tag and ok.contacts[0].uri.port == 5070
    ua.datagram_received(invite(), PBX)  # the INVITE again: the same 200 again
    assert sent.statuses() == [180, 200, 200]
    ua.datagram_received(in_dialog("BYE", to_tag=call.local_tag), PBX)
    assert sent.statuses()[-1] == 200 and heard.ends == ["hung up"]


def test_a_second_call_while_on_one_is_busy_and_a_rejected_call_gets_486() -> None:
    ua, sent, heard = user_agent()
    ua.datagram_received(invite("c1"), PBX)
    ua.datagram_received(invite("c2", caller="1003"), PBX)
    assert sent.statuses() == [180, 486]  # call waiting is not built yet
    asyncio.run(ua.hang_up(heard.rang[0]))
    assert sent.statuses() == [180, 486, 486] and not ua.calls


def test_a_bye_for_no_call_gets_481() -> None:
    ua, sent, _ = user_agent()
    ua.datagram_received(in_dialog("BYE", call_id="gone", to_tag="x"), PBX)
    assert sent.statuses() == [481]


def test_calling_out_answers_the_digest_challenge_and_acks_the_answer() -> None:
    ua, sent, _ = user_agent()
    digest = DigestAuthenticator("pbx.test", b"0123456789abcdef0123")
    progress: list[int] = []

    def pbx(message: Request | Response) -> None:
        assert isinstance(message, Request)
        if message.method == "INVITE" and "Proxy-Authorization" not in message.headers:
            challenge = make_response(message, 407, to_tag="t1")
            challenge.headers.add("Proxy-Authenticate", digest.challenge(0.0)[0])
            replies = [challenge]
        elif message.method == "INVITE":
            result = digest.verify("INVITE", message.headers.get("Proxy-Authorization") or "",
                                   lambda user: "secret-1001" if user == "1001" else None, 1.0)
            assert result.outcome is AuthOutcome.OK
            ringing = make_response(message, 180, to_tag="t2")
            ok = make_response(message, 200, to_tag="t2")
            ok.headers.add("Contact", "<sip:b2bua@127.0.0.1:5060>")
            ok.headers.add("Content-Type", "application/sdp")
            ok.body = OFFER
            replies = [ringing, ok]
        else:
            return
        for reply in replies:
            asyncio.get_running_loop().call_soon(ua.datagram_received, bytes(reply), PBX)

    sent.reply = pbx

    async def call() -> tuple[SipCall, bytes]:
        return await ua.invite("1002", b"v=0\r\n", lambda r: progress.append(r.status))

    dialog, answer = asyncio.run(call())
    assert answer == OFFER and progress == [180]
    methods = [m.method for m in sent.messages if isinstance(m, Request)]
    assert methods == ["INVITE", "ACK", "INVITE", "ACK"]  # ACK of the 407, then of the 200
    ack = sent.messages[-1]
    assert isinstance(ack, Request) and str(ack.uri) == "sip:b2bua@127.0.0.1:5060"
    assert ack.to_addr.tag == "t2" and dialog.remote_tag == "t2"


def test_a_blind_transfer_refers_the_far_end_and_hears_how_it_went() -> None:
    ua, sent, heard = user_agent()
    ua.datagram_received(invite(), PBX)
    call = heard.rang[0]
    ua.answer(call, b"v=0\r\n")

    def pbx(message: Request | Response) -> None:
        if isinstance(message, Request) and message.method == "REFER":
            accepted = make_response(message, 202)
            asyncio.get_running_loop().call_soon(ua.datagram_received, bytes(accepted), PBX)

    sent.reply = pbx
    asyncio.run(ua.refer(call, "1003"))
    refer = sent.messages[-1]
    assert isinstance(refer, Request) and refer.method == "REFER"
    assert refer.headers.get("Refer-To") == "<sip:1003@pbx.test>"
    assert str(refer.uri) == "sip:pbx@127.0.0.1:5060"  # the PBX's Contact: in the dialog
    notify = in_dialog("NOTIFY", cseq=3, to_tag=call.local_tag).replace(
        b"Content-Length: 0\r\n\r\n",
        b"Event: refer\r\nContent-Type: message/sipfrag\r\nContent-Length: 23\r\n\r\n"
        b"SIP/2.0 486 Busy Here\r\n")
    ua.datagram_received(notify, PBX)
    assert heard.transfers == [486] and sent.statuses()[-1] == 200
