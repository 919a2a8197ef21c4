"""Live events as a wallboard or an integration sees them: over the admin
API's WebSocket and through a real MQTT broker."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import aiomqtt
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.integration.peers import mqtt_broker, running_pbx
from tests.integration.sipclient import SipClient

pytestmark = pytest.mark.integration

USERS = {"1001": "pw-1001-secret", "1002": "pw-1002-secret"}


def test_websocket_feed_shows_calls_and_registrations(tmp_path: Path) -> None:
    with running_pbx(tmp_path, USERS) as pbx:
        token = pbx.admin_headers()["Authorization"][7:]
        url = f"ws://{pbx.host}:{pbx.http_port}/api/events"
        with pytest.raises(InvalidStatus):
            connect(f"{url}?token=forged").recv(timeout=5)
        with connect(f"{url}?token={token}") as feed:
            with SipClient(pbx.host, pbx.sip_port) as phone, SipClient(pbx.host, pbx.sip_port) as caller:
                assert phone.register("1002", USERS["1002"]).status == 200  # type: ignore[union-attr]
                _, busy = caller.call("1001", USERS["1001"], "1002", phone, 486)
                assert busy is not None and busy.status == 486
                caller.call_id += "-room"
                _, ok = caller.invite("1001", USERS["1001"], "81001")  # the PBX answers: a room
                assert ok is not None and ok.status == 200
                caller.in_dialog("ACK", ok, cseq=ok.cseq.number)
                caller.in_dialog("BYE", ok)
            events = [json.loads(feed.recv(timeout=5)) for _ in range(7)]
        assert [e["type"] for e in events] == [
            "registration", "call.started", "call.ringing", "call.ended", "call.started",
            "call.answered", "call.ended"]
        assert events[0]["extension"] == "1002" and events[0]["contacts"] == 1
        assert events[1]["caller"] == "1001" and events[1]["dialled"] == "1002"
        assert events[2]["extension"] == "1002"
        assert events[3]["disposition"] == "busy" and events[3]["status"] == 486
        assert events[1]["call_id"] == events[2]["call_id"] == events[3]["call_id"]
        assert events[5]["answered_by"] == "conference:81001"
        assert events[6]["disposition"] == "answered"


def test_events_reach_an_mqtt_broker(tmp_path: Path) -> None:
    with mqtt_broker(tmp_path) as (host, port):
        received: list[dict] = []  # type: ignore[type-arg]
        subscribed = threading.Event()

        async def listen() -> None:
            async with aiomqtt.Client(host, port) as client:
                await client.subscribe("pbx/default/#")
                subscribed.set()
                async for message in client.messages:
                    event = json.loads(message.payload)  # type: ignore[arg-type]
                    if event.get("dialled") == "4040":  # ours, on a shared broker too
                        received.append({"topic": str(message.topic), **event})
                        if event["type"] == "call.ended":
                            return

        def run() -> None:
            asyncio.run(asyncio.wait_for(listen(), 90))

        listener = threading.Thread(target=run)
        listener.start()
        assert subscribed.wait(10)
        with running_pbx(tmp_path, USERS, mqtt_url=f"mqtt://{host}:{port}") as pbx:
            with SipClient(pbx.host, pbx.sip_port) as caller:
                _, missing = caller.invite("1001", USERS["1001"], "4040")
                assert missing is not None and missing.status == 404
            listener.join(95)
        assert [(e["topic"], e["type"]) for e in received] == [
            ("pbx/default/call/started", "call.started"), ("pbx/default/call/ended", "call.ended")]
        assert received[1]["disposition"] == "failed" and received[1]["status"] == 404
