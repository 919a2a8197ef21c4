"""A worker's steering (pbx.steering) with the link and the SIP server faked:
what is forwarded, what is sent through the worker holding a connection."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from pbx.sip.flow import Flow
from pbx.sip.message import set_origin
from pbx.sip.parser import parse_message
from pbx.steering import Steering, from_worker
from pbx.workers import Workers

TCP_PHONE = Flow("TCP", "192.0.2.10", 40123)


class FakeLink:
    def __init__(self) -> None:
        self.sent: list[tuple[Any, ...]] = []

    def forward(self, worker: int, data: bytes, flow: Flow) -> None:
        self.sent.append(("forward", worker, flow))

    def send_via(self, worker: int, data: bytes, flow: Flow) -> None:
        self.sent.append(("send_via", worker, flow))

    def command(self, worker: int, name: str, *args: Any) -> None:
        self.sent.append(("command", worker, name, *args))


class FakeLoop:
    def call_soon_threadsafe(self, fn: Any, *args: Any) -> None:
        fn(*args)


@pytest.fixture
def steering() -> Iterator[Steering]:
    tenants = {"acme.test": SimpleNamespace(id=2), "pbx.test": SimpleNamespace(id=1)}
    received: list[tuple[bytes, Flow]] = []
    sip = SimpleNamespace(
        trunks=SimpleNamespace(carrier_of=lambda flow: None),
        directory=SimpleNamespace(
            tenant_for=tenants.get,
            origin=lambda a, b: tenants.get(a) or tenants.get(b) or tenants["pbx.test"]),
        transports={"UDP": object(), "TCP": SimpleNamespace(connections={})},
        receive=lambda data, flow, steered: received.append((data, flow)),
        end_calls_of=None, unregister=None, mailbox_changed=None, loop=FakeLoop(),
        received=received,
    )
    steering = Steering(sip, Workers(0, 2), "test")  # type: ignore[arg-type]
    steering.link = FakeLink()  # type: ignore[assignment]
    yield steering
    set_origin("")


def invite(domain: str) -> bytes:
    return (f"INVITE sip:1002@{domain} SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.10:40123;branch=z9hG4bKa\r\n"
            f"From: <sip:1001@{domain}>;tag=p\r\nTo: <sip:1002@{domain}>\r\nCall-ID: c\r\n"
            "CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n").encode()


def test_a_request_of_another_workers_organisation_is_forwarded(steering: Steering) -> None:
    data = invite("acme.test")
    assert steering.elsewhere(parse_message(data), data, TCP_PHONE)
    assert steering.link.sent == [("forward", 1, TCP_PHONE)]  # type: ignore[attr-defined]
    data = invite("pbx.test")
    assert not steering.elsewhere(parse_message(data), data, TCP_PHONE)  # ours: handled here


def test_sends_go_through_the_worker_holding_the_connection(steering: Steering) -> None:
    assert not steering.send(b"x", TCP_PHONE)  # unknown: this worker's transport decides
    steering._received(invite("pbx.test"), TCP_PHONE, 1)  # worker 1 passed it on
    assert steering.sip.received == [(invite("pbx.test"), TCP_PHONE)]  # type: ignore[attr-defined]
    assert steering.send(b"x", TCP_PHONE)
    assert steering.link.sent == [("send_via", 1, TCP_PHONE)]  # type: ignore[attr-defined]
    steering.sip.transports["TCP"].connections[TCP_PHONE] = object()  # type: ignore[attr-defined]
    assert not steering.send(b"x", TCP_PHONE)  # a connection of its own now
    assert not steering.send(b"x", Flow("UDP", "192.0.2.10", 5060))  # UDP: sent from here


def test_admin_commands_run_on_the_organisations_worker(steering: Steering) -> None:
    assert steering.at_home(2, "unregister", "2001", None)
    assert not steering.at_home(1, "unregister", "1001", None)
    assert steering.link.sent == [  # type: ignore[attr-defined]
        ("command", 1, "unregister", 2, "2001", None)]


def test_the_admin_api_waits_until_every_worker_has_reloaded(steering: Steering) -> None:
    reloading = threading.Thread(target=steering._reload_everywhere)  # the API's thread
    reloading.start()
    sent = steering.link.sent  # type: ignore[attr-defined]
    deadline = time.monotonic() + 2
    while not sent and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sent[0][:3] == ("command", 1, "reload")
    reloading.join(0.2)
    assert reloading.is_alive()  # worker 1 has not answered yet
    steering._reloaded(sent[0][3])
    reloading.join(2)
    assert not reloading.is_alive()


def test_a_reload_that_follows_another_workers_goes_no_further(steering: Steering) -> None:
    from_worker.run(steering._reload_everywhere)()  # as the "reload" command runs it
    assert steering.link.sent == []  # type: ignore[attr-defined]
    assert not from_worker.active()  # the thread is itself again
