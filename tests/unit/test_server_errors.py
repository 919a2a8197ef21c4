"""An error in one transaction stays there: neither another transaction nor
the TCP connection that carries them hears of it.  The historical case: a
CANCEL was answered 200, then its handler failed on the INVITE's malformed
Contact and the server tried a 400 on the finished CANCEL transaction; the
LocalProtocolError reached asyncio ("Fatal error on transport") and the
phone's connection was torn down with every call on it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import pbx.server
from pbx.sip.errors import ParseError
from pbx.sip.flow import Flow
from pbx.sip.message import Request
from tests.integration.sipclient import SipClient
from tests.unit.test_server_address import server_on


def cancel_then_options(port: int) -> tuple[int | None, int | None]:
    """Over one TCP connection: a CANCEL (matching nothing), then an OPTIONS;
    the status of each answer."""
    with SipClient("127.0.0.1", port, "TCP") as phone:
        phone.invite_text = phone.request("INVITE", "1001", to="1002")
        first = phone.receive()
        assert first is not None and first.status == 407
        phone.ack_failure(first)
        phone.cancel()
        cancelled = phone.receive()
        phone.request("OPTIONS", "1001")
        options = phone.receive()
        return (cancelled.status if cancelled else None), (options.status if options else None)


@pytest.mark.parametrize("failure", [ParseError("Bad Request - Malformed Contact"),
                                     RuntimeError("a bug")])
async def test_a_handler_failing_after_its_answer_costs_nothing_else(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: Exception) -> None:
    monkeypatch.setattr(pbx.server, "build_prompts", lambda folder, languages=(): [])
    server = server_on(tmp_path, "127.0.0.1", "transports = udp, tcp\n")
    answer_cancel = server.handlers["CANCEL"]

    def answer_then_fail(request: Request, flow: Flow, tx: object) -> None:
        answer_cancel(request, flow, tx)  # 481: no such INVITE
        raise failure

    server.handlers["CANCEL"] = answer_then_fail
    await server.start()
    try:
        cancelled, options = await asyncio.to_thread(
            cancel_then_options, server.transports["TCP"].local_port)
    finally:
        await server.stop()
    assert cancelled == 481  # the one answer the CANCEL gets
    assert options == 200  # the connection is still up and served
