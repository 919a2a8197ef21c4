"""The softphones' user agent (softphone/ua.py, the command-line softphone's and
the browser gateway's) against a scripted PBX in memory: register with digest
and refresh, place a call through the 407, answer one, hang up each way, a
second call while on one, hold both ways, blind and attended transfer; time
is passed in by hand."""

from __future__ import annotations

import pytest

from pbx.sdp import SessionDescription
from pbx.sip.auth import AuthOutcome, DigestAuthenticator
from pbx.sip.flow import Flow
from pbx.sip.message import Request, Response, make_response
from pbx.sip.parser import parse_message
from softphone.ua import (Account, CallAnswered, CallEnded, CallRinging, IncomingCall, Registered,
                          RegistrationFailed, RequestRefused, TransferProgress, Unregistered,
                          UserAgent)

PBX = Flow("UDP", "192.0.2.10", 5060)
SECRET = "s3cret-1001"
PBX_SDP = (b"v=0\r\no=pbx 1 1 IN IP4 192.0.2.10\r\ns=pbx\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
           b"m=audio 30000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\n")


@pytest.fixture
def ua() -> UserAgent:
    return UserAgent(Account("1001", SECRET, PBX, "192.0.2.10", expiry=300),
                     "192.0.2.20:5070", ("192.0.2.20", 40000))


def sent(ua: UserAgent) -> list[Request | Response]:
    return [parse_message(data) for data in ua.messages_to_send()]


def requests(ua: UserAgent, method: str) -> list[Request]:
    return [m for m in sent(ua) if isinstance(m, Request) and m.method == method]


def events(ua: UserAgent) -> list[object]:
    out = []
    while (event := ua.next_event()) is not None:
        out.append(event)
    return out


def reply(ua: UserAgent, request: Request, status: int, now: float, *, tag: str = "pbxtag",
          body: bytes = b"", **headers: str) -> None:
    response = make_response(request, status, to_tag=tag)
    for name, value in headers.items():
        response.headers.add(name.replace("_", "-"), value)
    if body:
        response.headers.add("Contact", "<sip:pbx@192.0.2.10:5060>")
        response.headers.add("Content-Type", "application/sdp")
        response.body = body
    ua.receive(bytes(response), now)


def registered(ua: UserAgent) -> list[object]:
    """Run the REGISTER, its 401 and the answer past a real digest check."""
    auth = DigestAuthenticator("pbx.test", b"x" * 16)
    ua.register(0.0)
    (first,) = requests(ua, "REGISTER")
    assert "Authorization" not in first.headers
    reply(ua, first, 401, 0.1, WWW_Authenticate=auth.challenge(0.1)[0])
    (second,) = requests(ua, "REGISTER")
    assert second.call_id == first.call_id and second.cseq.number == first.cseq.number + 1
    checked = auth.verify("REGISTER", second.headers.get("Authorization") or "",
                          lambda user: SECRET if user == "1001" else None, 0.2)
    if checked.outcome is AuthOutcome.OK:
        reply(ua, second, 200, 0.2, Expires="300")
    else:
        reply(ua, second, 403, 0.2)
    return events(ua)


def test_registers_with_digest_and_refreshes_before_expiry(ua: UserAgent) -> None:
    (event,) = registered(ua)
    assert event == Registered(300.0)
    ua.handle_timer(200.0)  # the transaction's own timer K; no refresh yet
    assert not requests(ua, "REGISTER")
    refresh_at = ua.get_timer()
    assert refresh_at is not None and 200 < refresh_at < 300
    ua.handle_timer(refresh_at)
    (again,) = requests(ua, "REGISTER")
    assert again.headers.get("Contact") == "<sip:1001@192.0.2.20:5070;transport=udp>"


def test_unregisters_with_expires_0(ua: UserAgent) -> None:
    registered(ua)
    ua.unregister(10.0)
    (bye,) = requests(ua, "REGISTER")
    assert bye.headers.get("Expires") == "0" and not ua.registered
    reply(ua, bye, 200, 10.1)
    assert events(ua) == [Unregistered()]


def test_a_wrong_password_is_refused() -> None:
    ua = UserAgent(Account("1001", "wrong", PBX, "192.0.2.10"), "192.0.2.20:5070",
                   ("192.0.2.20", 40000))
    assert registered(ua) == [RegistrationFailed(403, "Forbidden")]


def test_places_a_call_through_the_407_and_acks_the_answer(ua: UserAgent) -> None:
    registered(ua)
    call = ua.call("1002", 1.0)
    (invite,) = requests(ua, "INVITE")
    assert str(invite.uri) == "sip:1002@192.0.2.10:5060"
    offer = SessionDescription.parse(invite.body)
    assert offer.audio is not None and offer.audio.port == 40000
    assert [c.name for c in offer.audio.codecs] == ["PCMU", "PCMA", "telephone-event"]
    auth = DigestAuthenticator("pbx.test", b"y" * 16)
    reply(ua, invite, 407, 1.1, Proxy_Authenticate=auth.challenge(1.1)[0])
    messages = sent(ua)
    assert [m.method for m in messages if isinstance(m, Request)] == ["ACK", "INVITE"]
    second = messages[-1]
    assert isinstance(second, Request) and second.cseq.number == 2
    assert auth.verify("INVITE", second.headers.get("Proxy-Authorization") or "",
                       lambda user: SECRET, 1.2).outcome is AuthOutcome.OK
    reply(ua, second, 180, 1.3)
    reply(ua, second, 200, 1.4, body=PBX_SDP)
    (ack,) = requests(ua, "ACK")
    assert ack.cseq.number == 2 and str(ack.uri) == "sip:pbx@192.0.2.10:5060"
    ringing, answered = events(ua)
    assert ringing == CallRinging(call)
    assert isinstance(answered, CallAnswered)
    assert (answered.media.host, answered.media.port, answered.media.codec,
            answered.media.payload_type, answered.media.event_type) == (
        "192.0.2.10", 30000, "PCMA", 8, 101)
    reply(ua, second, 200, 1.5, body=PBX_SDP)  # the 2xx again: our ACK was lost
    assert len(requests(ua, "ACK")) == 1
    ua.hangup(call, 2.0)
    (bye,) = requests(ua, "BYE")
    assert bye.to_addr.tag == "pbxtag"
    assert events(ua) == [CallEnded(call, 0, "hung up")]


def test_a_busy_callee_ends_the_call_with_its_answer(ua: UserAgent) -> None:
    call = ua.call("1002", 0.0)
    (invite,) = requests(ua, "INVITE")
    reply(ua, invite, 486, 0.1)
    assert requests(ua, "ACK")  # the transaction ACKs the failure
    assert events(ua) == [CallEnded(call, 486, "Busy Here")]


def incoming(ua: UserAgent) -> tuple[Request, object]:
    invite = parse_message(
        b"INVITE sip:1001@192.0.2.20:5070 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKin1\r\n"
        b"From: \"User 1002\" <sip:1002@192.0.2.10>;tag=caller\r\nTo: <sip:1001@192.0.2.10>\r\n"
        b"Call-ID: in-1\r\nCSeq: 7 INVITE\r\nContact: <sip:pbx@192.0.2.10:5060>\r\n"
        b"Content-Type: application/sdp\r\nContent-Length: " + str(len(PBX_SDP)).encode()
        + b"\r\n\r\n" + PBX_SDP)
    assert isinstance(invite, Request)
    ua.receive(bytes(invite), 0.0)
    (event,) = events(ua)
    assert isinstance(event, IncomingCall) and "1002" in event.call.peer
    return invite, event.call


def test_answers_an_incoming_call_and_repeats_the_200_until_the_ack(ua: UserAgent) -> None:
    invite, call = incoming(ua)
    assert [m.status for m in sent(ua) if isinstance(m, Response)] == [100, 180]
    ua.answer(call, 1.0)  # type: ignore[arg-type]
    (ok,) = sent(ua)
    assert isinstance(ok, Response) and ok.status == 200
    answer = SessionDescription.parse(ok.body)
    assert answer.audio is not None and [c.name for c in answer.audio.codecs] == [
        "PCMA", "telephone-event"]
    (event,) = events(ua)
    assert isinstance(event, CallAnswered) and event.media.port == 30000
    when = ua.get_timer()
    assert when is not None and when <= 1.5
    ua.handle_timer(when)
    assert [m.status for m in sent(ua) if isinstance(m, Response)] == [200]
    ack = (f"ACK sip:1001@192.0.2.20:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch="
           f"z9hG4bKack\r\nFrom: {invite.headers.get('From')}\r\nTo: {ok.headers.get('To')}\r\n"
           "Call-ID: in-1\r\nCSeq: 7 ACK\r\nContent-Length: 0\r\n\r\n").encode()
    ua.receive(ack, 1.6)
    ua.handle_timer(3.0)
    assert not [m for m in sent(ua) if isinstance(m, Response)]  # no more 200s
    bye = ack.replace(b"ACK sip", b"BYE sip").replace(b"7 ACK", b"8 BYE").replace(
        b"z9hG4bKack", b"z9hG4bKbye")
    ua.receive(bye, 4.0)
    assert [m.status for m in sent(ua) if isinstance(m, Response)] == [200]
    assert events(ua) == [CallEnded(call, 0, "the far end hung up")]  # type: ignore[arg-type]


def test_declining_a_ringing_call_says_busy(ua: UserAgent) -> None:
    _, call = incoming(ua)
    sent(ua)
    ua.hangup(call, 1.0)  # type: ignore[arg-type]
    assert [m.status for m in sent(ua) if isinstance(m, Response)] == [486]
    assert events(ua) == [CallEnded(call, 486, "Busy Here - declined")]  # type: ignore[arg-type]


def reoffer(invite: Request, ok: Response, sdp: bytes) -> bytes:
    """The PBX's re-INVITE with ``sdp`` in the dialog of ``invite`` answered by ``ok``."""
    return (f"INVITE sip:1001@192.0.2.20:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;"
            f"branch=z9hG4bKre\r\nFrom: {invite.headers.get('From')}\r\n"
            f"To: {ok.headers.get('To')}\r\nCall-ID: in-1\r\nCSeq: 8 INVITE\r\n"
            f"Contact: <sip:pbx@192.0.2.10:5060>\r\nContent-Type: application/sdp\r\n"
            f"Content-Length: {len(sdp)}\r\n\r\n").encode() + sdp


def test_a_reinvite_moves_the_media_and_is_answered(ua: UserAgent) -> None:
    invite, call = incoming(ua)
    ua.answer(call, 1.0)  # type: ignore[arg-type]
    ok = sent(ua)[-1]
    events(ua)
    moved = PBX_SDP.replace(b"30000", b"30100").replace(b"o=pbx 1 1", b"o=pbx 1 2")
    ua.receive(reoffer(invite, ok, moved), 2.0)
    answers = [m for m in sent(ua) if isinstance(m, Response) and m.status == 200]
    assert answers and answers[-1].cseq.number == 8
    assert answers[-1].body == ok.body  # our side did not change: same version (RFC 3264 §8)
    (event,) = events(ua)
    assert isinstance(event, CallAnswered) and event.media.port == 30100


def test_an_ipv6_pbx_is_written_in_brackets() -> None:
    server = Flow("UDP", "2001:db8::10", 5060)
    ua = UserAgent(Account("1001", SECRET, server, "2001:db8::10"), "[2001:db8::20]:5070",
                   ("2001:db8::20", 40000))
    ua.register(0.0)
    (register,) = requests(ua, "REGISTER")
    assert register.from_addr.uri.host == "2001:db8::10"
    ua.call("1002", 1.0)
    (invite,) = requests(ua, "INVITE")
    assert str(invite.uri) == "sip:1002@[2001:db8::10]:5060"
    assert str(invite.from_addr.uri) == "sip:1001@[2001:db8::10]"


# ---------------------------------------------------------------- what the browser page needs

def incoming_from(ua: UserAgent, call_id: str, caller: str, now: float) -> Request:
    invite = parse_message(
        f"INVITE sip:1001@192.0.2.20:5070 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK{call_id}\r\n"
        f'From: "User {caller}" <sip:{caller}@192.0.2.10>;tag=t{call_id}\r\n'
        f"To: <sip:1001@192.0.2.10>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n"
        f"Contact: <sip:pbx@192.0.2.10:5060>\r\nContent-Type: application/sdp\r\n"
        f"Content-Length: {len(PBX_SDP)}\r\n\r\n".encode() + PBX_SDP)
    assert isinstance(invite, Request)
    ua.receive(bytes(invite), now)
    return invite


def answered_call(ua: UserAgent) -> tuple[Request, Response, object]:
    invite, call = incoming(ua)
    ua.answer(call, 1.0, rtp=("192.0.2.20", 41000))  # type: ignore[arg-type]
    (ok,) = [m for m in sent(ua) if isinstance(m, Response) and m.status == 200]
    events(ua)
    return invite, ok, call


def test_a_second_call_rings_while_on_one_and_a_cancel_ends_only_it(ua: UserAgent) -> None:
    _, _, first = answered_call(ua)
    incoming_from(ua, "in-2", "1003", 2.0)
    (event,) = events(ua)
    assert isinstance(event, IncomingCall) and event.call.caller.display_name == "User 1003"
    assert [m.status for m in sent(ua) if isinstance(m, Response)] == [100, 180]  # call waiting
    cancel = (b"CANCEL sip:1001@192.0.2.20:5070 SIP/2.0\r\n"
              b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKin-2\r\n"
              b'From: "User 1003" <sip:1003@192.0.2.10>;tag=tin-2\r\nTo: <sip:1001@192.0.2.10>\r\n'
              b"Call-ID: in-2\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n")
    ua.receive(cancel, 3.0)
    assert sorted(m.status for m in sent(ua) if isinstance(m, Response)) == [200, 487]
    (ended,) = events(ua)
    assert isinstance(ended, CallEnded) and ended.code == 487
    assert list(ua.calls.values()) == [first]


def test_the_answer_uses_the_calls_own_rtp_address(ua: UserAgent) -> None:
    _, ok, _ = answered_call(ua)
    answer = SessionDescription.parse(ok.body)
    assert answer.audio is not None and answer.audio.port == 41000


def test_hold_offers_sendonly_acks_the_answer_and_resume_offers_sendrecv(ua: UserAgent) -> None:
    _, ok, call = answered_call(ua)
    for held, direction, version in ((True, "sendonly", 2), (False, "sendrecv", 3)):
        ua.hold(call, 2.0, held)  # type: ignore[arg-type]
        (reinvite,) = requests(ua, "INVITE")
        offer = SessionDescription.parse(reinvite.body)
        assert offer.audio is not None and offer.audio.direction == direction
        assert offer.audio.port == 41000 and int(offer.origin.sess_version) == version  # RFC 3264 §8
        assert reinvite.to_addr.tag == "caller" and str(reinvite.uri) == "sip:pbx@192.0.2.10:5060"
        peer = PBX_SDP.replace(b"m=audio", b"a=recvonly\r\nm=audio") if held else PBX_SDP
        reply(ua, reinvite, 200, 2.1, tag="caller", body=peer)
        (ack,) = requests(ua, "ACK")
        assert ack.cseq.number == reinvite.cseq.number
        (event,) = events(ua)
        assert isinstance(event, CallAnswered) and event.media.direction == direction


def test_a_refused_hold_leaves_the_call_as_it_was(ua: UserAgent) -> None:
    _, _, call = answered_call(ua)
    ua.hold(call, 2.0)  # type: ignore[arg-type]
    (reinvite,) = requests(ua, "INVITE")
    reply(ua, reinvite, 488, 2.1, tag="caller")
    assert events(ua) == [RequestRefused(call, "INVITE", 488, "Not Acceptable Here")]  # type: ignore[arg-type]
    assert not call.held  # type: ignore[attr-defined]


def test_the_far_end_holding_us_is_answered_recvonly(ua: UserAgent) -> None:
    invite, ok, call = answered_call(ua)
    held = PBX_SDP.replace(b"o=pbx 1 1", b"o=pbx 1 2") + b"a=sendonly\r\n"
    ua.receive(reoffer(invite, ok, held), 2.0)
    (answer,) = [m for m in sent(ua) if isinstance(m, Response) and m.status == 200]
    audio = SessionDescription.parse(answer.body).audio
    assert audio is not None and audio.direction == "recvonly" and audio.port == 41000
    (event,) = events(ua)
    assert isinstance(event, CallAnswered) and event.media.direction == "recvonly"


def test_a_blind_transfer_refers_the_far_end_and_hears_how_it_went(ua: UserAgent) -> None:
    invite, ok, call = answered_call(ua)
    ua.transfer(call, "1003", 2.0)  # type: ignore[arg-type]
    (refer,) = requests(ua, "REFER")
    assert refer.headers.get("Refer-To") == "<sip:1003@192.0.2.10:5060>"
    assert str(refer.uri) == "sip:pbx@192.0.2.10:5060"  # the PBX's Contact: in the dialog
    reply(ua, refer, 202, 2.1, tag="caller")
    notify = (f"NOTIFY sip:1001@192.0.2.20:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;"
              f"branch=z9hG4bKn1\r\nFrom: {invite.headers.get('From')}\r\nTo: {ok.headers.get('To')}"
              f"\r\nCall-ID: in-1\r\nCSeq: 9 NOTIFY\r\nEvent: refer\r\n"
              f"Subscription-State: terminated\r\nContent-Type: message/sipfrag\r\n"
              f"Content-Length: 23\r\n\r\nSIP/2.0 486 Busy Here\r\n").encode()
    ua.receive(notify, 3.0)
    assert [m.status for m in sent(ua) if isinstance(m, Response)] == [200]
    assert events(ua) == [TransferProgress(call, 486)]  # type: ignore[arg-type]


def test_an_attended_transfer_names_the_consultation_dialog_in_replaces(ua: UserAgent) -> None:
    _, _, call = answered_call(ua)
    consult = ua.call("1003", 2.0, rtp=("192.0.2.20", 42000))
    (invite,) = requests(ua, "INVITE")
    assert SessionDescription.parse(invite.body).audio.port == 42000  # type: ignore[union-attr]
    reply(ua, invite, 200, 2.1, tag="t1003", body=PBX_SDP)
    events(ua)
    sent(ua)
    ua.transfer(call, "1003", 3.0, replaces=consult)  # type: ignore[arg-type]
    (refer,) = requests(ua, "REFER")
    target = refer.headers.get("Refer-To") or ""
    assert target == (f"<sip:1003@192.0.2.10:5060?Replaces={consult.call_id}%3Bto-tag%3Dt1003"
                      f"%3Bfrom-tag%3D{consult.local_tag}>")
    with pytest.raises(ValueError):  # one transfer at a time
        ua.transfer(call, "1004", 3.1)  # type: ignore[arg-type]


def test_a_session_refresh_without_sdp_gets_our_description_again(ua: UserAgent) -> None:
    invite, ok, _ = answered_call(ua)
    refresh = reoffer(invite, ok, b"").replace(b"Content-Type: application/sdp\r\n", b"")
    ua.receive(refresh, 2.0)
    (answer,) = [m for m in sent(ua) if isinstance(m, Response) and m.status >= 200]
    assert answer.status == 200 and answer.body == ok.body  # an offer: the same session (§14.2)
    assert not events(ua)
