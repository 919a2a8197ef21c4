"""The transaction layer (RFC 3261 §17, RFC 6026) driven by a fake clock.

Every test feeds real parsed messages and asserts what goes on the wire,
when, and what the transaction user is told.
"""

from __future__ import annotations

import random

import pytest

from pbx.sip.flow import Flow
from pbx.sip.errors import LocalProtocolError
from pbx.sip.message import Request, Response, make_response
from pbx.sip.parser import parse_message
from pbx.sip.transaction import (
    AckReceived, ClientTransaction, RequestReceived, ResponseReceived, ServerTransaction, State,
    StrayResponse, TransactionLayer, TransactionTerminated, TransactionTimeout, build_ack,
    build_cancel,
)

PHONE = Flow("UDP", "10.0.0.7", 5062)
PHONE_TCP = Flow("TCP", "10.0.0.7", 40312)
T1, T2, T4 = 0.5, 4.0, 5.0


def request(
    method: str = "INVITE",
    *,
    branch: str | None = "z9hG4bKc1",
    cseq: int = 1,
    cseq_method: str | None = None,
    to_tag: str | None = None,
    uri: str = "sip:2000@pbx.example",
    via_host: str = "10.0.0.7:5062",
    extra: str = "",
) -> Request:
    via = f"SIP/2.0/UDP {via_host}" + (f";branch={branch}" if branch else "")
    to = "<sip:2000@pbx.example>" + (f";tag={to_tag}" if to_tag else "")
    raw = (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: {via}\r\n"
        f"Max-Forwards: 70\r\n"
        f"From: \"Alice\" <sip:1000@pbx.example>;tag=a1\r\n"
        f"To: {to}\r\n"
        f"Call-ID: call-1@10.0.0.7\r\n"
        f"CSeq: {cseq} {cseq_method or method}\r\n"
        f"{extra}"
        f"Content-Length: 0\r\n\r\n"
    )
    message = parse_message(raw.encode())
    assert isinstance(message, Request)
    return message


def response_to(req: Request, status: int, to_tag: str | None = "b2") -> Response:
    """A response as the far end would put it on the wire, parsed back."""
    built = make_response(req, status, to_tag=to_tag)
    message = parse_message(bytes(built))
    assert isinstance(message, Response)
    return message


def events(layer: TransactionLayer) -> list[object]:
    out = []
    while (event := layer.next_event()) is not None:
        out.append(event)
    return out


def kinds(items: list[object]) -> list[str]:
    return [type(item).__name__ for item in items]


def sent(layer: TransactionLayer) -> list[str]:
    """What went out, as 'METHOD' or 'status', with the destination checked by callers."""
    return [
        m.method if isinstance(m, Request) else str(m.status)
        for _, m in layer.messages_to_send()
    ]


def run_clock(layer: TransactionLayer, until: float) -> list[tuple[float, list[str], list[str]]]:
    """Fire timers one deadline at a time up to ``until``: (time, sent, events) per step."""
    steps = []
    while (deadline := layer.get_timer()) is not None and deadline <= until:
        layer.handle_timer(deadline)
        steps.append((deadline, sent(layer), kinds(events(layer))))
    return steps


# ---------------------------------------------------------------- INVITE client


def test_invite_client_udp_timer_a_doubles_until_timer_b() -> None:
    layer = TransactionLayer()
    invite = request()
    tx = layer.send_request(invite, PHONE, reliable=False, now=100.0)
    assert isinstance(tx, ClientTransaction)
    assert tx.state is State.CALLING and tx.method == "INVITE" and tx.request is invite
    assert layer.messages_to_send() == [(PHONE, invite)]
    assert layer.get_timer() == 100.5
    steps = run_clock(layer, 1000.0)
    # Timer A: 0.5, 1, 2, 4, 8, 16 (never capped) ; Timer B = 64*T1 = 32 s
    assert steps == [
        (100.5, ["INVITE"], []),
        (101.5, ["INVITE"], []),
        (103.5, ["INVITE"], []),
        (107.5, ["INVITE"], []),
        (115.5, ["INVITE"], []),
        (131.5, ["INVITE"], []),
        (132.0, [], ["TransactionTimeout", "TransactionTerminated"]),
    ]
    assert tx.state is State.TERMINATED
    assert layer.get_timer() is None and len(layer) == 0


def test_invite_client_reliable_no_retransmission_timer_b_only() -> None:
    layer = TransactionLayer()
    tx = layer.send_request(request(), PHONE_TCP, reliable=True, now=0.0)
    assert sent(layer) == ["INVITE"]
    assert run_clock(layer, 1000.0) == [(32.0, [], ["TransactionTimeout", "TransactionTerminated"])]
    assert tx.state is State.TERMINATED


def test_invite_client_provisional_stops_a_and_b() -> None:
    layer = TransactionLayer()
    invite = request()
    tx = layer.send_request(invite, PHONE, reliable=False, now=0.0)
    layer.messages_to_send()
    layer.handle_timer(0.5)
    assert sent(layer) == ["INVITE"]
    ringing = response_to(invite, 180)
    layer.receive(ringing, PHONE, False, 1.0)
    assert events(layer) == [ResponseReceived(tx, ringing)]
    assert tx.state is State.PROCEEDING
    # a phone may ring for minutes: no retransmission, no Timer B (§17.1.1.2)
    assert run_clock(layer, 1000.0) == []
    again = response_to(invite, 183)
    layer.receive(again, PHONE, False, 200.0)
    assert events(layer) == [ResponseReceived(tx, again)]


def test_invite_client_non_2xx_builds_ack_and_resends_it_timer_d() -> None:
    layer = TransactionLayer()
    invite = request(extra="Route: <sip:proxy.example;lr>\r\n")
    tx = layer.send_request(invite, PHONE, reliable=False, now=0.0)
    layer.messages_to_send()
    busy = response_to(invite, 486, to_tag="busy1")
    layer.receive(busy, PHONE, False, 2.0)
    assert events(layer) == [ResponseReceived(tx, busy)]
    assert tx.state is State.COMPLETED
    out = layer.messages_to_send()
    assert len(out) == 1 and out[0][0] == PHONE
    ack = out[0][1]
    assert isinstance(ack, Request) and ack.method == "ACK"
    wire = parse_message(bytes(ack))
    assert isinstance(wire, Request)
    assert str(wire.uri) == str(invite.uri)
    assert wire.vias[0].branch == "z9hG4bKc1" and len(wire.vias) == 1
    assert wire.to_addr.tag == "busy1" and wire.from_addr.tag == "a1"
    assert (wire.cseq.number, wire.cseq.method) == (1, "ACK")
    assert wire.call_id == invite.call_id
    assert wire.headers.get_all("Route") == ["<sip:proxy.example;lr>"]
    # the final again (our ACK was lost): ACK again, the TU hears nothing
    layer.receive(response_to(invite, 486, to_tag="busy1"), PHONE, False, 3.0)
    assert layer.messages_to_send() == [(PHONE, ack)]
    assert events(layer) == []
    # Timer A was stopped; Timer D = 32 s from the final
    assert run_clock(layer, 1000.0) == [(34.0, [], ["TransactionTerminated"])]
    layer.receive(response_to(invite, 486, to_tag="busy1"), PHONE, False, 35.0)
    assert kinds(events(layer)) == ["StrayResponse"]


def test_invite_client_non_2xx_on_reliable_terminates_at_once() -> None:
    layer = TransactionLayer()
    invite = request()
    tx = layer.send_request(invite, PHONE_TCP, reliable=True, now=0.0)
    layer.messages_to_send()
    layer.receive(response_to(invite, 404), PHONE_TCP, True, 1.0)
    assert sent(layer) == ["ACK"]
    assert kinds(events(layer)) == ["ResponseReceived", "TransactionTerminated"]
    assert tx.state is State.TERMINATED and layer.get_timer() is None


def test_invite_client_accepted_passes_2xx_retransmissions_up_timer_m() -> None:
    """RFC 6026 §7.2: every 2xx goes to the TU, which ACKs it; M ends the wait."""
    layer = TransactionLayer()
    invite = request()
    tx = layer.send_request(invite, PHONE, reliable=False, now=0.0)
    layer.messages_to_send()
    ok = response_to(invite, 200)
    layer.receive(ok, PHONE, False, 1.25)
    assert events(layer) == [ResponseReceived(tx, ok)]
    assert tx.state is State.ACCEPTED
    assert layer.messages_to_send() == []  # the ACK for a 2xx is the TU's job
    again = response_to(invite, 200)
    layer.receive(again, PHONE, False, 2.0)
    fork = response_to(invite, 200, to_tag="fork2")
    layer.receive(fork, PHONE, False, 3.0)
    assert events(layer) == [ResponseReceived(tx, again), ResponseReceived(tx, fork)]
    layer.receive(response_to(invite, 180), PHONE, False, 3.5)  # late provisional: ignored
    layer.receive(response_to(invite, 503), PHONE, False, 3.6)  # final after a 2xx: ignored
    assert events(layer) == [] and layer.messages_to_send() == []
    assert run_clock(layer, 1000.0) == [(1.25 + 64 * T1, [], ["TransactionTerminated"])]
    late = response_to(invite, 200)
    layer.receive(late, PHONE, False, 40.0)
    assert events(layer) == [StrayResponse(late, PHONE)]


def test_invite_client_accepted_on_reliable_still_waits_timer_m() -> None:
    layer = TransactionLayer()
    invite = request()
    layer.send_request(invite, PHONE_TCP, reliable=True, now=0.0)
    layer.receive(response_to(invite, 200), PHONE_TCP, True, 1.0)
    assert sent(layer) == ["INVITE"] and kinds(events(layer)) == ["ResponseReceived"]
    assert run_clock(layer, 1000.0) == [(33.0, [], ["TransactionTerminated"])]


# ---------------------------------------------------------------- non-INVITE client


def test_non_invite_client_udp_timer_e_caps_at_t2_until_timer_f() -> None:
    layer = TransactionLayer()
    options = request("OPTIONS")
    tx = layer.send_request(options, PHONE, reliable=False, now=0.0)
    assert tx.state is State.TRYING
    assert sent(layer) == ["OPTIONS"]
    steps = run_clock(layer, 1000.0)
    times = [t for t, out, _ in steps if out == ["OPTIONS"]]
    # Timer E: 0.5, 1, 2, then T2 = 4 every time ; Timer F = 32 s
    assert times == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert steps[-1] == (32.0, [], ["TransactionTimeout", "TransactionTerminated"])
    assert len(steps) == 11 and layer.get_timer() is None


def test_non_invite_client_proceeding_retransmits_every_t2() -> None:
    layer = TransactionLayer()
    options = request("OPTIONS")
    tx = layer.send_request(options, PHONE, reliable=False, now=0.0)
    layer.messages_to_send()
    layer.handle_timer(0.5)  # E fired once; the next is due at 1.5
    layer.messages_to_send()
    trying = response_to(options, 100, to_tag=None)
    layer.receive(trying, PHONE, False, 0.7)
    assert events(layer) == [ResponseReceived(tx, trying)]
    assert tx.state is State.PROCEEDING
    steps = run_clock(layer, 10.0)
    # the pending E still fires at 1.5, then every T2 (§17.1.2.2)
    assert [(t, out) for t, out, _ in steps] == [
        (1.5, ["OPTIONS"]), (5.5, ["OPTIONS"]), (9.5, ["OPTIONS"]),
    ]
    ok = response_to(options, 200)
    layer.receive(ok, PHONE, False, 10.0)
    assert events(layer) == [ResponseReceived(tx, ok)]
    assert tx.state is State.COMPLETED
    # Completed: retransmitted finals are absorbed; Timer K = T4 ends it, no more E
    layer.receive(response_to(options, 200), PHONE, False, 11.0)
    assert events(layer) == []
    assert run_clock(layer, 1000.0) == [(10.0 + T4, [], ["TransactionTerminated"])]


def test_non_invite_client_reliable_final_terminates_at_once() -> None:
    layer = TransactionLayer()
    bye = request("BYE", to_tag="b2")
    tx = layer.send_request(bye, PHONE_TCP, reliable=True, now=0.0)
    layer.messages_to_send()
    layer.receive(response_to(bye, 200), PHONE_TCP, True, 0.1)
    assert kinds(events(layer)) == ["ResponseReceived", "TransactionTerminated"]
    assert tx.state is State.TERMINATED and layer.get_timer() is None


def test_non_invite_client_reliable_timer_f_only() -> None:
    layer = TransactionLayer()
    layer.send_request(request("OPTIONS"), PHONE_TCP, reliable=True, now=5.0)
    layer.messages_to_send()
    assert run_clock(layer, 1000.0) == [(37.0, [], ["TransactionTimeout", "TransactionTerminated"])]


def test_client_matching_uses_branch_and_cseq_method() -> None:
    layer = TransactionLayer()
    invite = request()
    tx = layer.send_request(invite, PHONE, reliable=False, now=0.0)
    cancel = build_cancel(invite)
    cancel_tx = layer.send_request(cancel, PHONE, reliable=False, now=1.0)
    assert cancel_tx is not tx and cancel_tx.key != tx.key
    layer.messages_to_send()
    ok_cancel = response_to(cancel, 200)
    terminated = response_to(invite, 487)
    layer.receive(ok_cancel, PHONE, False, 1.1)
    layer.receive(terminated, PHONE, False, 1.2)
    assert events(layer)[:2] == [
        ResponseReceived(cancel_tx, ok_cancel), ResponseReceived(tx, terminated),
    ]
    other = response_to(request(branch="z9hG4bKother"), 200)
    layer.receive(other, PHONE, False, 1.3)
    assert events(layer) == [StrayResponse(other, PHONE)]


def test_send_request_refuses_ack_reused_and_old_branches() -> None:
    layer = TransactionLayer()
    invite = request()
    layer.send_request(invite, PHONE, reliable=False, now=0.0)
    with pytest.raises(LocalProtocolError):
        layer.send_request(request(), PHONE, reliable=False, now=0.0)
    with pytest.raises(LocalProtocolError):
        layer.send_request(request("ACK", to_tag="b2"), PHONE, reliable=False, now=0.0)
    with pytest.raises(LocalProtocolError):
        layer.send_request(request("OPTIONS", branch="1234"), PHONE, reliable=False, now=0.0)


# ---------------------------------------------------------------- INVITE server


def test_invite_server_sends_100_at_once_and_resends_last_provisional() -> None:
    layer = TransactionLayer()
    invite = request(extra="Timestamp: 54.3\r\n")
    layer.receive(invite, PHONE, False, 0.0)
    (event,) = events(layer)
    assert isinstance(event, RequestReceived) and event.request is invite
    tx = event.tx
    assert isinstance(tx, ServerTransaction)
    assert tx.state is State.PROCEEDING and tx.dest == PHONE and tx.method == "INVITE"
    out = layer.messages_to_send()
    assert [(dest, m.status) for dest, m in out] == [(PHONE, 100)]  # type: ignore[union-attr]
    trying = parse_message(bytes(out[0][1]))
    assert trying.to_addr.tag is None and trying.headers.get("Timestamp") == "54.3"
    assert trying.vias[0].branch == "z9hG4bKc1" and trying.cseq.method == "INVITE"
    # a retransmitted INVITE is absorbed: 100 again, the TU is not told
    layer.receive(request(extra="Timestamp: 54.3\r\n"), PHONE, False, 0.5)
    assert sent(layer) == ["100"] and events(layer) == []
    layer.send_response(make_response(invite, 180, to_tag="b2"), 1.0)
    assert sent(layer) == ["180"]
    layer.receive(request(), PHONE, False, 1.5)
    assert sent(layer) == ["180"] and events(layer) == []
    assert layer.get_timer() is None  # Proceeding runs no timer


def test_invite_server_udp_non_2xx_timer_g_caps_at_t2_until_timer_h() -> None:
    layer = TransactionLayer()
    invite = request()
    layer.receive(invite, PHONE, False, 0.0)
    (tx,) = [e.tx for e in events(layer)]  # type: ignore[attr-defined]
    layer.messages_to_send()
    layer.send_response(make_response(invite, 486, to_tag="b2"), 10.0)
    assert sent(layer) == ["486"] and tx.state is State.COMPLETED
    steps = run_clock(layer, 1000.0)
    times = [t for t, out, _ in steps if out == ["486"]]
    # Timer G: 0.5, 1, 2, 4, then T2 ; Timer H = 64*T1: the ACK never came
    assert times == [10.5, 11.5, 13.5, 17.5, 21.5, 25.5, 29.5, 33.5, 37.5, 41.5]
    assert steps[-1] == (42.0, [], ["TransactionTimeout", "TransactionTerminated"])
    assert len(steps) == 11


def test_invite_server_udp_ack_confirms_then_timer_i() -> None:
    layer = TransactionLayer()
    invite = request()
    layer.receive(invite, PHONE, False, 0.0)
    (tx,) = [e.tx for e in events(layer)]  # type: ignore[attr-defined]
    layer.messages_to_send()
    final = make_response(invite, 404, to_tag="b2")
    layer.send_response(final, 0.0)
    layer.messages_to_send()
    assert run_clock(layer, 1.6) == [(0.5, ["404"], []), (1.5, ["404"], [])]
    # a retransmitted INVITE in Completed gets the final again
    layer.receive(request(), PHONE, False, 1.7)
    assert layer.messages_to_send() == [(PHONE, final)] and events(layer) == []
    ack = request("ACK", to_tag="b2")  # same branch: the ACK for a non-2xx
    layer.receive(ack, PHONE, False, 2.0)
    assert tx.state is State.CONFIRMED and events(layer) == []
    layer.receive(request("ACK", to_tag="b2"), PHONE, False, 2.5)  # absorbed
    layer.receive(request(), PHONE, False, 2.6)  # absorbed too
    assert events(layer) == [] and layer.messages_to_send() == []
    # G and H stopped; Timer I = T4
    assert run_clock(layer, 1000.0) == [(2.0 + T4, [], ["TransactionTerminated"])]


def test_invite_server_reliable_no_timer_g_and_timer_i_zero() -> None:
    layer = TransactionLayer()
    invite = request()
    layer.receive(invite, PHONE_TCP, True, 0.0)
    (tx,) = [e.tx for e in events(layer)]  # type: ignore[attr-defined]
    layer.messages_to_send()
    layer.send_response(make_response(invite, 603, to_tag="b2"), 1.0)
    assert sent(layer) == ["603"]
    assert layer.get_timer() == 33.0  # only H
    layer.receive(request("ACK", to_tag="b2"), PHONE_TCP, True, 1.2)
    assert kinds(events(layer)) == ["TransactionTerminated"]
    assert tx.state is State.TERMINATED and layer.get_timer() is None


def test_invite_server_reliable_timer_h_without_ack() -> None:
    layer = TransactionLayer()
    invite = request()
    layer.receive(invite, PHONE_TCP, True, 0.0)
    events(layer)
    layer.messages_to_send()
    layer.send_response(make_response(invite, 480, to_tag="b2"), 1.0)
    layer.messages_to_send()
    assert run_clock(layer, 1000.0) == [(33.0, [], ["TransactionTimeout", "TransactionTerminated"])]


@pytest.mark.parametrize("reliable", [False, True])
def test_invite_server_accepted_rfc6026(reliable: bool) -> None:
    """2xx sent: INVITE retransmissions absorbed, the ACK goes up, the TU resends 2xx, L ends it."""
    flow = PHONE_TCP if reliable else PHONE
    layer = TransactionLayer()
    invite = request()
    layer.receive(invite, flow, reliable, 0.0)
    (tx,) = [e.tx for e in events(layer)]  # type: ignore[attr-defined]
    layer.messages_to_send()
    ok = make_response(invite, 200, to_tag="b2")
    layer.send_response(ok, 3.0)
    assert layer.messages_to_send() == [(flow, ok)]
    assert tx.state is State.ACCEPTED
    layer.receive(request(), flow, reliable, 3.5)
    assert events(layer) == [] and layer.messages_to_send() == []  # no 2xx from the layer
    ack = request("ACK", branch="z9hG4bKack", to_tag="b2")
    layer.receive(ack, flow, reliable, 4.0)
    assert events(layer) == [AckReceived(ack, flow)]
    same_branch_ack = request("ACK", to_tag="b2")
    layer.receive(same_branch_ack, flow, reliable, 4.1)
    assert events(layer) == [AckReceived(same_branch_ack, flow)]
    layer.send_response(ok, 4.5)  # the TU's own 2xx retransmission passes
    assert layer.messages_to_send() == [(flow, ok)]
    with pytest.raises(LocalProtocolError):
        layer.send_response(make_response(invite, 486, to_tag="b2"), 5.0)
    assert run_clock(layer, 1000.0) == [(3.0 + 64 * T1, [], ["TransactionTerminated"])]
    with pytest.raises(LocalProtocolError):
        layer.send_response(ok, 40.0)
    # after L a retransmitted INVITE is a new request again
    layer.receive(request(), flow, reliable, 41.0)
    assert kinds(events(layer)) == ["RequestReceived"]


# ---------------------------------------------------------------- non-INVITE server


def test_non_invite_server_udp_absorbs_and_timer_j() -> None:
    layer = TransactionLayer()
    register = request("REGISTER", uri="sip:pbx.example")
    layer.receive(register, PHONE, False, 0.0)
    (event,) = events(layer)
    assert isinstance(event, RequestReceived)
    tx = event.tx
    assert tx.state is State.TRYING and layer.messages_to_send() == []  # no 100 for non-INVITE
    # Trying: a retransmission is absorbed silently
    layer.receive(request("REGISTER", uri="sip:pbx.example"), PHONE, False, 0.5)
    assert events(layer) == [] and layer.messages_to_send() == []
    layer.send_response(make_response(register, 100), 0.6)
    assert tx.state is State.PROCEEDING and sent(layer) == ["100"]
    layer.receive(request("REGISTER", uri="sip:pbx.example"), PHONE, False, 0.7)
    assert sent(layer) == ["100"]
    final = make_response(register, 401, to_tag="b2")
    layer.send_response(final, 1.0)
    assert tx.state is State.COMPLETED and layer.messages_to_send() == [(PHONE, final)]
    layer.receive(request("REGISTER", uri="sip:pbx.example"), PHONE, False, 2.0)
    assert layer.messages_to_send() == [(PHONE, final)] and events(layer) == []
    with pytest.raises(LocalProtocolError):
        layer.send_response(make_response(register, 200, to_tag="b2"), 2.0)
    # no Timer G for non-INVITE; Timer J = 64*T1
    assert run_clock(layer, 1000.0) == [(33.0, [], ["TransactionTerminated"])]


def test_non_invite_server_reliable_final_terminates_at_once() -> None:
    layer = TransactionLayer()
    register = request("REGISTER", uri="sip:pbx.example")
    layer.receive(register, PHONE_TCP, True, 0.0)
    (tx,) = [e.tx for e in events(layer)]  # type: ignore[attr-defined]
    layer.send_response(make_response(register, 200, to_tag="b2"), 0.1)
    assert sent(layer) == ["200"]
    assert kinds(events(layer)) == ["TransactionTerminated"]
    assert tx.state is State.TERMINATED and len(layer) == 0 and layer.get_timer() is None


def test_send_response_without_transaction_is_our_error() -> None:
    layer = TransactionLayer()
    with pytest.raises(LocalProtocolError):
        layer.send_response(make_response(request("OPTIONS"), 200, to_tag="x"), 0.0)


def test_send_response_finds_transaction_when_via_text_was_rewritten() -> None:
    """The quick lookup is by raw Via text; a re-serialised Via must still match (§17.2.3)."""
    layer = TransactionLayer()
    options = request("OPTIONS", via_host="10.0.0.7:5062;rport")
    layer.receive(options, PHONE, False, 0.0)
    (tx,) = [e.tx for e in events(layer)]  # type: ignore[attr-defined]
    response = make_response(options, 200, to_tag="b2")
    response.headers.set("Via", "SIP/2.0/UDP 10.0.0.7:5062 ; branch=z9hG4bKc1 ; rport=5062")
    layer.send_response(response, 0.1)
    assert tx.state is State.COMPLETED and sent(layer) == ["200"]


def test_server_matching_needs_same_sent_by_and_method() -> None:
    layer = TransactionLayer()
    layer.receive(request("OPTIONS"), PHONE, False, 0.0)
    # same branch from another host, and same branch with another method: new transactions
    layer.receive(request("OPTIONS", via_host="10.0.0.8:5062"), PHONE, False, 0.1)
    layer.receive(request("INFO", to_tag="b2"), PHONE, False, 0.2)
    received = events(layer)
    assert kinds(received) == ["RequestReceived"] * 3
    assert len({id(e.tx) for e in received}) == 3  # type: ignore[attr-defined]
    assert len(layer) == 3


# ---------------------------------------------------------------- CANCEL


def test_cancel_is_its_own_transaction_and_finds_the_invite() -> None:
    layer = TransactionLayer()
    invite = request()
    layer.receive(invite, PHONE, False, 0.0)
    (invite_tx,) = [e.tx for e in events(layer)]  # type: ignore[attr-defined]
    layer.messages_to_send()
    cancel = build_cancel(invite)
    wire = parse_message(bytes(cancel))
    assert isinstance(wire, Request)
    layer.receive(wire, PHONE, False, 1.0)
    (event,) = events(layer)
    assert isinstance(event, RequestReceived) and event.tx is not invite_tx
    assert event.tx.method == "CANCEL" and event.tx.state is State.TRYING
    assert layer.find_invite_server(wire) is invite_tx
    layer.send_response(make_response(wire, 200, to_tag="b2"), 1.0)
    layer.send_response(make_response(invite, 487, to_tag="b2"), 1.0)
    assert sent(layer) == ["200", "487"]
    assert invite_tx.state is State.COMPLETED
    # a CANCEL for another branch, or from elsewhere, matches nothing
    assert layer.find_invite_server(request("CANCEL", branch="z9hG4bKzz")) is None
    assert layer.find_invite_server(request("CANCEL", via_host="10.0.0.9")) is None


def test_build_cancel_copies_what_9_1_requires() -> None:
    invite = request(extra="Route: <sip:p1.example;lr>, <sip:p2.example;lr>\r\n", cseq=7)
    cancel = parse_message(bytes(build_cancel(invite)))
    assert isinstance(cancel, Request) and cancel.method == "CANCEL"
    assert str(cancel.uri) == str(invite.uri)
    assert cancel.call_id == invite.call_id
    assert cancel.headers.get("From") == invite.headers.get("From")
    assert cancel.headers.get("To") == invite.headers.get("To") and cancel.to_addr.tag is None
    assert (cancel.cseq.number, cancel.cseq.method) == (7, "CANCEL")
    assert [str(v) for v in cancel.vias] == [str(invite.vias[0])]
    assert cancel.headers.get_all("Route") == ["<sip:p1.example;lr>", "<sip:p2.example;lr>"]
    assert cancel.max_forwards == 70


def test_build_ack_takes_to_from_the_response() -> None:
    invite = request(cseq=3)
    ack = build_ack(invite, response_to(invite, 407, to_tag="px"))
    assert ack.method == "ACK" and ack.to_addr.tag == "px"
    assert (ack.cseq.number, ack.cseq.method) == (3, "ACK")
    assert ack.headers.get("Route") is None


# ---------------------------------------------------------------- RFC 2543 peers


def test_rfc2543_request_matching_without_magic_cookie() -> None:
    layer = TransactionLayer()
    invite = request(branch=None)
    layer.receive(invite, PHONE, False, 0.0)
    (tx,) = [e.tx for e in events(layer)]  # type: ignore[attr-defined]
    layer.messages_to_send()
    layer.receive(request(branch=None), PHONE, False, 0.5)  # same everything: retransmission
    assert events(layer) == [] and sent(layer) == ["100"]
    layer.receive(request(branch=None, uri="sip:2001@pbx.example"), PHONE, False, 0.6)
    layer.receive(request(branch=None, cseq=2), PHONE, False, 0.7)
    layer.receive(request(branch="1", via_host="10.0.0.7:5062"), PHONE, False, 0.8)
    assert kinds(events(layer)) == ["RequestReceived"] * 3  # each differs: new transactions
    layer.messages_to_send()
    # responses find it without a branch, and the ACK for our non-2xx too
    layer.send_response(make_response(invite, 486, to_tag="b2"), 1.0)
    assert sent(layer) == ["486"] and tx.state is State.COMPLETED
    layer.receive(request("ACK", branch=None, to_tag="wrong"), PHONE, False, 1.2)
    assert kinds(events(layer)) == ["AckReceived"] and tx.state is State.COMPLETED
    layer.receive(request("ACK", branch=None, to_tag="b2"), PHONE, False, 1.3)
    assert events(layer) == [] and tx.state is State.CONFIRMED
    # CANCEL matching (§9.2) by the same fields
    assert layer.find_invite_server(request("CANCEL", branch=None)) is tx
    assert layer.find_invite_server(request("CANCEL", branch=None, cseq=5)) is None


def test_rfc2543_reinvite_ack_matches_by_its_own_to_tag() -> None:
    layer = TransactionLayer()
    reinvite = request(branch=None, to_tag="b2", cseq=4)
    layer.receive(reinvite, PHONE, False, 0.0)
    (tx,) = [e.tx for e in events(layer)]  # type: ignore[attr-defined]
    layer.send_response(make_response(reinvite, 491), 0.1)
    layer.receive(request("ACK", branch=None, to_tag="b2", cseq=4), PHONE, False, 0.2)
    assert tx.state is State.CONFIRMED and events(layer) == []


# ---------------------------------------------------------------- stray responses and ACKs


def test_stray_response_and_ack_without_transaction() -> None:
    layer = TransactionLayer()
    response = response_to(request(), 200)
    layer.receive(response, PHONE, False, 0.0)
    ack = request("ACK", branch="z9hG4bKnew", to_tag="b2")
    layer.receive(ack, PHONE, False, 0.0)
    assert events(layer) == [StrayResponse(response, PHONE), AckReceived(ack, PHONE)]
    assert layer.messages_to_send() == [] and len(layer) == 0


# ---------------------------------------------------------------- many transactions


def test_many_transactions_fire_in_deadline_order() -> None:
    """One heap for all: deadlines interleave, cancelled entries never fire."""
    rng = random.Random(7)
    layer = TransactionLayer()
    expected: dict[int, float] = {}  # id(tx) -> when it must terminate
    txs = []
    for i in range(400):
        now = round(rng.uniform(0, 20), 3)
        req = request("OPTIONS", branch=f"z9hG4bK{i}")
        tx = layer.send_request(req, PHONE, reliable=i % 3 == 0, now=now)
        txs.append(tx)
        if i % 2:  # answered at once: Timer K (or nothing on reliable) replaces E/F
            layer.receive(response_to(req, 200), PHONE, i % 3 == 0, now)
            if i % 3:
                expected[id(tx)] = now + T4
        else:
            expected[id(tx)] = now + 64 * T1
    for i in range(200):
        now = round(rng.uniform(0, 20), 3)
        reg = request("REGISTER", branch=f"z9hG4bKs{i}", uri="sip:pbx.example")
        layer.receive(reg, PHONE, False, now)
        layer.send_response(make_response(reg, 200, to_tag="t"), now)
    events(layer)
    layer.messages_to_send()
    assert len(layer) == 400 - 67 + 200  # reliable answered ones already ended
    seen: list[float] = []
    ended: dict[int, float] = {}
    clock = 0.0
    while (deadline := layer.get_timer()) is not None:
        assert deadline >= clock
        clock = deadline
        layer.handle_timer(clock)
        seen.append(clock)
        for event in events(layer):
            if isinstance(event, TransactionTerminated) and isinstance(
                event.tx, ClientTransaction
            ):
                ended[id(event.tx)] = clock
            if isinstance(event, TransactionTimeout):
                assert expected[id(event.tx)] == clock
        for _, message in layer.messages_to_send():
            assert isinstance(message, Request) and message.method == "OPTIONS"
    assert seen == sorted(seen)
    assert ended == pytest.approx(expected)
    assert len(layer) == 0 and layer.get_timer() is None
    assert all(tx.state is State.TERMINATED for tx in txs)


def test_handle_timer_late_fires_everything_due_in_order() -> None:
    """A sleepy event loop: one late call fires every due timer, once each."""
    layer = TransactionLayer()
    layer.send_request(request("OPTIONS"), PHONE, reliable=False, now=0.0)
    layer.messages_to_send()
    layer.handle_timer(8.0)  # E due at 0.5 (then re-armed from 8.0)
    assert sent(layer) == ["OPTIONS"]
    assert layer.get_timer() == 9.0  # restarted from the late firing: 8.0 + 1


def test_timers_follow_configured_t1_t2_t4() -> None:
    """A LAN deployment may shorten T1: every 64*T1 timer and the caps follow."""
    layer = TransactionLayer(t1=0.1, t2=0.4, t4=1.0)
    options = request("OPTIONS")
    layer.send_request(options, PHONE, reliable=False, now=0.0)
    layer.messages_to_send()
    steps = run_clock(layer, 100.0)
    times = [round(t, 6) for t, out, _ in steps if out]
    assert times[:5] == [0.1, 0.3, 0.7, 1.1, 1.5]  # E: 0.1, 0.2, 0.4, then T2 = 0.4
    assert steps[-1][0] == pytest.approx(6.4) and steps[-1][2][0] == "TransactionTimeout"

    invite = request(branch="z9hG4bKs")
    layer.receive(invite, PHONE, False, 10.0)
    layer.send_response(make_response(invite, 200, to_tag="b2"), 10.0)
    layer.receive(options, PHONE, False, 10.0)
    layer.send_response(make_response(options, 200, to_tag="b2"), 10.0)
    events(layer)
    layer.messages_to_send()
    ends = [t for t, _, kind in run_clock(layer, 100.0) for k in kind if k.endswith("Terminated")]
    assert ends == pytest.approx([16.4, 16.4])  # Timer L and Timer J: 64*T1

    bye = request("BYE", branch="z9hG4bKc2", to_tag="b2")
    layer.send_request(bye, PHONE, reliable=False, now=20.0)
    layer.receive(response_to(bye, 200), PHONE, False, 20.0)
    invite2 = request(branch="z9hG4bKc3")
    layer.send_request(invite2, PHONE, reliable=False, now=20.0)
    layer.receive(response_to(invite2, 500), PHONE, False, 20.0)
    events(layer)
    layer.messages_to_send()
    ends = [t for t, _, kind in run_clock(layer, 100.0) if "TransactionTerminated" in kind]
    assert ends == [21.0, 52.0]  # Timer K = T4; Timer D stays 32 s (§17.1.1.2)


def test_unanswered_counts_server_transactions_that_owe_a_final_answer() -> None:
    """The overload governor's measure of work in hand: a provisional answer or a
    retransmission does not change it, a final answer ends it, timers leave it at 0."""
    layer = TransactionLayer()
    invite = request("INVITE")
    register = request("REGISTER", branch="z9hG4bKr1", uri="sip:pbx.example")
    layer.receive(invite, PHONE, False, 0.0)
    layer.receive(register, PHONE, False, 0.0)
    layer.receive(register, PHONE, False, 0.5)  # a retransmission: the same transaction
    assert layer.unanswered == 2
    layer.send_response(make_response(invite, 180, to_tag="b2"), 0.6)
    assert layer.unanswered == 2
    layer.send_response(make_response(register, 200, to_tag="t"), 0.7)
    assert layer.unanswered == 1
    layer.send_response(make_response(invite, 486, to_tag="b2"), 0.8)
    assert layer.unanswered == 0
    while (deadline := layer.get_timer()) is not None:
        layer.handle_timer(deadline)
    assert layer.unanswered == 0 and len(layer) == 0
