"""Overload control end to end: a node over one of its limits refuses new
INVITEs and REGISTERs with 503 + Retry-After while the calls it carries go on,
and takes new work again once it is back under its limits."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pbx.sip.message import Request
from tests.integration.peers import Pbx, running_pbx
from tests.integration.sipclient import SipClient, place_call, register

pytestmark = pytest.mark.integration

USERS = {n: f"pw-{n}-secret" for n in ("1001", "1002", "1003", "1004")}


@pytest.fixture
def pbx(tmp_path: Path) -> Iterator[Pbx]:
    # one INVITE waiting for its answer is all this node takes: a ringing call overloads
    # it (the other limits out of reach: a loaded test machine must not trip them)
    with running_pbx(tmp_path, USERS, overload_transactions=1, overload_retry_after=7,
                     overload_loop_lag_ms=10000, overload_udp_wait_ms=10000) as server:
        yield server


def health_until(pbx: Pbx, check: Callable[[dict], bool],  # type: ignore[type-arg]
                 what: str) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        overload = pbx.health()["overload"]
        if check(overload):
            return overload  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError(f"health never showed {what}: {overload}")


def test_new_work_gets_503_while_an_established_call_hangs_up(pbx: Pbx) -> None:
    with SipClient(pbx.host, pbx.sip_port) as alice, SipClient(pbx.host, pbx.sip_port) as bob, \
            SipClient(pbx.host, pbx.sip_port) as carol, SipClient(pbx.host, pbx.sip_port) as dave:
        for phone, number in ((alice, "1001"), (bob, "1002"), (carol, "1003"), (dave, "1004")):
            register(phone, number, USERS[number])
        ok, _ = place_call(alice, "1001", USERS["1001"], bob, "1002", 41000, "established")
        health_until(pbx, lambda o: not o["overloaded"], "a calm node")

        # carol's call to dave rings and is not answered: one open INVITE transaction
        rang: list[Request] = []

        def ring() -> None:
            invite = dave.receive_request(5, "INVITE")
            if invite is not None:
                rang.append(invite)
                dave.respond(invite, 180)

        ringer = threading.Thread(target=ring)
        ringer.start()
        carol.call_id += "-ringing"
        ringing = carol.start_invite("1003", USERS["1003"], "1004")
        assert ringing is not None and ringing.status == 180
        ringer.join()
        overload = health_until(pbx, lambda o: o["level"] >= 0.9, "full shedding (9 in 10)")
        assert overload["reason"] == "transactions" and overload["transactions"] >= 1

        with SipClient(pbx.host, pbx.sip_port) as newcomer:
            newcomer.call_id += "-new-call"
            _, refused = newcomer.invite("1001", USERS["1001"], "1002")
            assert refused is not None and refused.status == 503
            assert refused.headers.get("Retry-After") == "7"
            registration = newcomer.register("1001", USERS["1001"])
            assert registration is not None and registration.status == 503
            assert registration.headers.get("Retry-After") == "7"

        # the established call is in-dialog work: its BYE goes through
        alice.in_dialog("BYE", ok)
        assert alice.receive(5).status == 200  # type: ignore[union-attr]
        assert bob.hung_up()

        # the ringing call ends: the node recovers and takes new work again
        carol.cancel()
        assert sorted(r.status for r in (carol.receive(5), carol.receive(5)) if r) == [200, 487]
        cancel = dave.receive_request(5, "CANCEL")
        assert cancel is not None
        dave.respond(cancel, 200)
        dave.respond(rang[0], 487)
        overload = health_until(pbx, lambda o: not o["overloaded"], "the node recovered")
        assert overload["shed"] >= 2
        with SipClient(pbx.host, pbx.sip_port) as later:
            response = later.register("1001", USERS["1001"])
            assert response is not None and response.status == 200
    log = pbx.log()
    assert "overload: shedding" in log and "overload over" in log
