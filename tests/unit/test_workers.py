"""Which worker of a node a SIP message goes to (pbx.workers), and the frames
of the link between workers (pbx.transport.link)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from pbx.sip.flow import Flow
from pbx.sip.message import Request, Response, new_branch, new_tag, set_origin
from pbx.sip.parser import parse_message
from pbx.transport.link import WorkerLink, decode, encode
from pbx.workers import Workers, owner, port_share, worker_of

PHONE = Flow("UDP", "192.0.2.10", 5062)
TWO = Workers(1, 2)


def request(method: str, to_tag: str = "", domain: str = "acme.test") -> Request:
    tag = f";tag={to_tag}" if to_tag else ""
    text = (f"{method} sip:1002@{domain} SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKphone1\r\n"
            f"From: <sip:1001@{domain}>;tag=phone-tag\r\nTo: <sip:1002@{domain}>{tag}\r\n"
            f"Call-ID: abc\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def response(branch: str) -> Response:
    text = (f"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 198.51.100.1:5060;branch={branch}\r\n"
            "From: <sip:pbx@acme.test>;tag=a\r\nTo: <sip:1002@acme.test>;tag=b\r\n"
            "Call-ID: abc\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
    message = parse_message(text.encode())
    assert isinstance(message, Response)
    return message


def by_domain(organisations: dict[str, int]):  # type: ignore[no-untyped-def]
    return lambda message, flow: organisations.get(message.uri.host)


def test_an_organisation_lives_on_one_worker_the_default_one_on_worker_0() -> None:
    three = Workers(0, 3)
    assert [three.home(org) for org in (1, 2, 3, 4)] == [0, 1, 2, 0]
    assert Workers(2, 3).is_home(3) and not Workers(2, 3).is_home(1)
    with pytest.raises(ValueError):
        Workers(2, 2)


def test_what_a_worker_makes_carries_its_mark() -> None:
    set_origin(Workers(1, 2).mark)
    try:
        assert worker_of(new_tag(), 2) == 1 and worker_of(new_branch(), 2) == 1
    finally:
        set_origin("")
    assert Workers(0, 1).mark == ""  # alone: today's identifiers
    assert worker_of(new_tag(), 2) is None
    assert worker_of("abc-w7", 2) is None  # a worker the node does not have
    assert worker_of("-w1", 2) is None and worker_of("x-wz", 2) is None


def test_responses_go_to_the_worker_of_their_branch() -> None:
    assert owner(response("z9hG4bK1234-w0"), PHONE, TWO, by_domain({})) == 0
    assert owner(response("z9hG4bKphone"), PHONE, TWO, by_domain({})) is None


def test_in_dialog_requests_go_to_the_worker_of_the_dialog() -> None:
    for method in ("BYE", "ACK", "INVITE", "REFER", "NOTIFY", "SUBSCRIBE"):
        assert owner(request(method, to_tag="5f3a-w0"), PHONE, TWO, by_domain({})) == 0
    unknown = request("BYE", to_tag="not-ours")
    assert owner(unknown, PHONE, TWO, by_domain({"acme.test": 2})) is None  # 481 where it lands


def test_new_requests_go_to_their_organisations_worker() -> None:
    organisations = by_domain({"acme.test": 2, "other.test": 3})
    for method in ("REGISTER", "INVITE", "CANCEL", "SUBSCRIBE", "MESSAGE"):
        assert owner(request(method), PHONE, TWO, organisations) == 1
        assert owner(request(method, domain="other.test"), PHONE, TWO, organisations) == 0
    assert owner(request("INVITE", domain="foreign.test"), PHONE, TWO, organisations) is None
    assert owner(request("OPTIONS"), PHONE, TWO, organisations) is None  # a ping: anyone


def test_one_worker_steers_nothing() -> None:
    assert owner(request("INVITE"), PHONE, Workers(), by_domain({"acme.test": 2})) is None


def test_each_worker_has_its_own_rtp_ports() -> None:
    shares = [port_share(10000, 10999, Workers(i, 3)) for i in range(3)]
    assert shares == [(10000, 10331), (10332, 10663), (10664, 10999)]
    with pytest.raises(ValueError):
        port_share(10000, 10002, Workers(0, 2))


def test_a_frame_carries_kind_sender_flow_and_bytes() -> None:
    flow = Flow("TLS", "2001:db8::1", 5061)
    assert decode(encode(b"R", 3, flow, b"INVITE ...")) == (b"R", 3, flow, b"INVITE ...")
    with pytest.raises(ValueError):
        decode(b"R")


def test_a_burst_of_frames_crosses_the_link_whole_and_in_order() -> None:
    """Far more frames at once than a Unix datagram socket queues (10 by
    default, where forwarded REGISTERs were refused), some of them large."""
    group = f"test-{os.getpid()}"
    got: list[tuple[bytes, Flow, int]] = []
    commands: list[tuple[str, list[Any]]] = []

    async def run() -> None:
        zero = WorkerLink(group, 0, 2, lambda *a: None, lambda *a: None, lambda *a: None)
        one = WorkerLink(group, 1, 2, lambda data, flow, sender: got.append((data, flow, sender)),
                         lambda *a: None, lambda name, args: commands.append((name, args)))
        await zero.open()
        await one.open()
        try:
            flow = Flow("UDP", "192.0.2.7", 5062)
            for n in range(2000):
                zero.forward(1, b"REGISTER %d " % n + b"x" * (n * 7 % 5000), flow)
            zero.command(1, "reload", 42)
            for _ in range(200):
                if commands:
                    break
                await asyncio.sleep(0.01)
        finally:
            zero.close()
            one.close()

    asyncio.run(run())
    assert len(got) == 2000 and commands == [("reload", [42])]
    assert all(data.startswith(b"REGISTER %d " % n) and len(data) == len(b"REGISTER %d " % n)
               + n * 7 % 5000 and sender == 0 for n, (data, _, sender) in enumerate(got))
