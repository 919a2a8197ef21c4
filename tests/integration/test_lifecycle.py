"""Start-up and shutdown as phones see them.  From the moment the SIP port
answers until the node is ready (a first start renders its prompts, ~1.5 s),
a new INVITE or SUBSCRIBE gets 503 with Retry-After (it used to be a final
405), REGISTER and OPTIONS are served; a stopping node answers new INVITEs,
REGISTERs and SUBSCRIBEs the same while its live calls end, their BYE served."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from pbx.sip.message import Response
from tests.integration.peers import Pbx, free_ports, write_config
from tests.integration.sipclient import SipClient

pytestmark = pytest.mark.integration

USERS = {"1001": "pw-1001-secret", "1002": "pw-1002-secret"}


def unstarted(tmp: Path, **general: object) -> Pbx:
    """A PBX with a fresh data directory (its prompts not rendered yet), not started."""
    config = write_config(tmp / "sip.conf", USERS, **general)
    (tmp / "data").mkdir()
    return Pbx("127.0.0.1", free_ports(2), free_ports(1), tmp / "data", config)


def first_answer(pbx: Pbx, timeout: float = 60) -> None:
    """Wait (polling OPTIONS every 20 ms) until the SIP port answers at all."""
    deadline = time.monotonic() + timeout
    with SipClient(pbx.host, pbx.sip_port) as probe:
        while time.monotonic() < deadline:
            probe.request("OPTIONS", "1001")
            if probe.receive(0.02) is not None:
                return
    raise AssertionError(f"the SIP port never answered:\n{pbx.log()}")


def answer_to(phone: SipClient, method: str) -> Response | None:
    """The answer to ``phone``'s last ``method`` (a resent answer to an earlier
    request, on UDP, is passed over); a non-2xx to an INVITE is ACKed."""
    while (response := phone.receive()) is not None and response.cseq.method != method:
        pass
    if response is not None and method == "INVITE" and response.status >= 300:
        phone.ack_failure(response)
    return response


def test_a_starting_node_says_come_back_not_go_away(tmp_path: Path) -> None:
    pbx = unstarted(tmp_path)
    pbx.start_process()
    try:
        first_answer(pbx)
        with SipClient(pbx.host, pbx.sip_port) as phone:
            phone.invite_text = phone.request("INVITE", "1001", to="1002")
            invite = answer_to(phone, "INVITE")
            phone.request("SUBSCRIBE", "1001", to="1002", headers={"Event": "dialog"})
            subscribe = answer_to(phone, "SUBSCRIBE")
            phone.request("REGISTER", "1001")
            register = answer_to(phone, "REGISTER")
        assert "SIP ready" not in pbx.log()  # still rendering: the window was caught
        for answer in (invite, subscribe):
            assert answer is not None and answer.status == 503, answer
            assert answer.headers.get("Retry-After") == "5"
            assert "Allow" not in answer.headers
        assert register is not None and register.status == 401  # the registrar is up
        pbx.wait_ready()
        with SipClient(pbx.host, pbx.sip_port) as phone:
            phone.request("INVITE", "1001", to="1002")
            ready = phone.receive()
        assert ready is not None and ready.status == 407  # now it asks who calls
    finally:
        pbx.stop()


def test_a_stopping_node_turns_new_work_away_while_calls_end(tmp_path: Path) -> None:
    pbx = unstarted(tmp_path, drain_time=20)
    pbx.start()
    try:
        with SipClient(pbx.host, pbx.sip_port) as caller, \
                SipClient(pbx.host, pbx.sip_port) as callee, \
                SipClient(pbx.host, pbx.sip_port) as late:
            for phone, number in ((caller, "1001"), (callee, "1002")):
                registered = phone.register(number, USERS[number],
                                            contacts=[f"<sip:{number}@{phone.host_port()}>"])
                assert registered is not None and registered.status == 200
            _, ok = caller.call("1001", USERS["1001"], "1002", callee)
            assert ok is not None and ok.status == 200
            assert pbx.process is not None
            pbx.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 10
            while "draining 1 call(s)" not in pbx.log() and time.monotonic() < deadline:
                time.sleep(0.05)
            late.invite_text = late.request("INVITE", "1001", to="1002")
            invite = answer_to(late, "INVITE")
            late.request("REGISTER", "1001")
            register = answer_to(late, "REGISTER")
            late.request("SUBSCRIBE", "1001", to="1002", headers={"Event": "dialog"})
            subscribe = answer_to(late, "SUBSCRIBE")
            for answer in (invite, register, subscribe):
                assert answer is not None and answer.status == 503, answer
                assert answer.headers.get("Retry-After") == "60"
            assert pbx.process.poll() is None  # waiting for the call
            caller.in_dialog("BYE", ok)  # in the dialog: still served
            assert callee.hung_up()
            bye_ok = caller.receive()
            assert bye_ok is not None and bye_ok.status == 200
        assert pbx.process.wait(10) == 0  # the last call ended: the node stops
    finally:
        pbx.stop()
