"""Webhooks (pbx/webhooks.py): the signature against a vector made with
openssl, the back-off schedule, URL checks, and the outbox and sender
against a real HTTP receiver on loopback: signed events arrive, a failing
receiver is retried until it answers, and one that never does is given up."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session, select

from pbx.config import Config, General
from pbx.events import CallEnded, CallStarted, EventBus, Registered
from pbx.models import Organisation, Webhook, WebhookAttempt, WebhookDelivery
from pbx.store import Store
from pbx.webhooks import (
    MAX_DELAY, WebhookOutbox, WebhookSender, WebhookSettings, check_host, check_url,
    retry_delay, signature,
)
from tests.integration.peers import WebhookReceiver


def test_the_signature_is_stripes_scheme() -> None:
    # printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test
    assert signature("whsec_test", b'{"a":1}', 1700000000) == (
        "t=1700000000,v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789")


def test_retries_back_off_exponentially_over_hours() -> None:
    delays = [retry_delay(n, 10.0) for n in range(1, 12)]
    assert delays[:4] == [10.0, 20.0, 40.0, 80.0]
    assert max(delays) == MAX_DELAY
    assert 3 * 3600 < sum(delays) < 4 * 3600  # 12 attempts span a few hours


def test_webhook_urls_are_https_to_public_hosts() -> None:
    assert check_url("https://crm.example.com/hooks/pbx?x=1", False) == \
        "https://crm.example.com/hooks/pbx?x=1"
    for bad, allow, why in (("http://crm.example.com/", False, "https://"),
                            ("ftp://crm.example.com/", True, "https:// or http://"),
                            ("https://user:pw@crm.example.com/", False, "password"),
                            ("https:///nohost", False, "host"),
                            ("not a url at all", False, "https://")):
        with pytest.raises(ValueError, match=why):
            check_url(bad, allow)
    assert check_url("http://127.0.0.1:8000/hook", True) == "http://127.0.0.1:8000/hook"
    for private in ("https://127.0.0.1/", "https://10.1.2.3/", "https://[::1]/",
                    "https://169.254.169.254/latest/meta-data"):
        with pytest.raises(ValueError, match="private address"):
            check_host(private)
    check_host("https://8.8.8.8/")  # an IP literal resolves without DNS


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'pbx.sqlite3'}")
    store.seed(Config(general=General()))
    yield store
    store.close()


def add_webhook(store: Store, url: str, events: str = "") -> Webhook:
    with Session(store.engine) as db:
        org = db.exec(select(Organisation)).one()
        hook = Webhook(organisation_id=org.id, url=url, secret="whsec_s3cret", events=events)
        db.add(hook)
        db.commit()
        db.refresh(hook)
        return hook


async def until(condition: object, seconds: float = 10.0) -> None:
    for _ in range(int(seconds * 20)):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def running(store: Store, settings: WebhookSettings) -> tuple[EventBus, WebhookSender]:
    bus = EventBus()
    outbox = WebhookOutbox(store)
    await asyncio.to_thread(outbox.reload)
    bus.subscribe(outbox.on_event)
    sender = WebhookSender(store, outbox, settings)
    sender.start()
    return bus, sender


def deliveries(store: Store) -> list[WebhookDelivery]:
    with Session(store.engine) as db:
        return list(db.exec(select(WebhookDelivery).order_by(WebhookDelivery.id)).all())


async def test_events_arrive_signed_and_filtered(store: Store) -> None:
    receiver = WebhookReceiver()
    hook = add_webhook(store, receiver.url, events="call.started,call.ended")
    bus, sender = await running(store, WebhookSettings(allow_private=True))
    try:
        org = hook.organisation_id
        bus.publish(CallStarted(org, "c1", "1001", "1002", 100.0, "Ann", "+4681234567"))
        bus.publish(Registered(org, "1001", 1, 101.0))  # not wanted
        bus.publish(Registered(org + 1, "1001", 1, 101.0))  # another organisation's
        bus.publish(CallEnded(org, "c1", "1001", "1002", "1002", "answered", 200, 5.0, 105.0,
                              hangup_by="api"))
        await until(lambda: len(receiver.got) == 2)
        assert receiver.types() == ["call.started", "call.ended"]
        assert receiver.verified("whsec_s3cret")
        assert not receiver.verified("whsec_another")
        headers, body = receiver.got[0]
        sent = json.loads(body)
        assert sent["id"].startswith("evt_") and sent["organisation"] == org
        assert sent["data"]["caller_name"] == "Ann" and sent["data"]["did"] == "+4681234567"
        assert headers["X-PBX-Event"] == "call.started"
        assert json.loads(receiver.got[1][1])["data"]["hangup_by"] == "api"
        await until(lambda: all(d.state == "delivered" for d in deliveries(store)))
    finally:
        await sender.stop()
        receiver.close()


async def test_a_failing_receiver_is_retried_in_order_then_given_up(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    flaky = WebhookReceiver(statuses=[500, 503])
    hook = add_webhook(store, flaky.url)
    down = add_webhook(store, "http://127.0.0.1:9/nobody-listens")  # the discard port
    bus, sender = await running(store, WebhookSettings(max_attempts=3, first_retry=0.2,
                                                       allow_private=True))
    try:
        with caplog.at_level(logging.WARNING, "pbx.webhooks"):
            org = hook.organisation_id
            bus.publish(CallStarted(org, "c1", "1001", "1002", 100.0))
            bus.publish(CallEnded(org, "c1", "1001", "1002", "", "failed", 480, 1.0, 101.0))
            await until(lambda: [d.state for d in deliveries(store)] == ["delivered", "failed"]
                        * 2)
        # 500, 503, then 200; the later event waited for the earlier one
        assert flaky.types() == ["call.started"] * 3 + ["call.ended"]
        with Session(store.engine) as db:
            tried = [(d.webhook_id, d.event_type, [a.status for a in db.exec(
                select(WebhookAttempt).where(WebhookAttempt.delivery_id == d.id))])
                for d in db.exec(select(WebhookDelivery).order_by(WebhookDelivery.id))]
        assert tried == [(hook.id, "call.started", [500, 503, 200]),
                         (down.id, "call.started", [0, 0, 0]),
                         (hook.id, "call.ended", [200]),
                         (down.id, "call.ended", [0, 0, 0])]
        given_up = [d for d in deliveries(store) if d.state == "failed"]
        assert all(d.attempts == 3 and "ConnectError" in d.last_error for d in given_up)
        assert sum("gave up" in r.message for r in caplog.records) == 2
    finally:
        await sender.stop()
        flaky.close()


async def test_a_later_event_waits_for_an_earlier_ones_retry(store: Store) -> None:
    """Order holds even when the later event reaches the outbox after the
    earlier one failed, and nothing spins while they wait."""
    flaky = WebhookReceiver(statuses=[500])
    hook = add_webhook(store, flaky.url)
    bus, sender = await running(store, WebhookSettings(first_retry=1.0, allow_private=True))
    rounds = 0
    real_round = sender.round

    async def counted(client: object) -> None:
        nonlocal rounds
        rounds += 1
        await real_round(client)  # type: ignore[arg-type]

    sender.round = counted  # type: ignore[method-assign]
    try:
        org = hook.organisation_id
        bus.publish(CallStarted(org, "c1", "1001", "1002", 100.0))
        await until(lambda: len(flaky.got) == 1)
        bus.publish(CallEnded(org, "c1", "1001", "1002", "", "failed", 480, 1.0, 101.0))
        await until(lambda: [d.state for d in deliveries(store)] == ["delivered"] * 2)
        assert flaky.types() == ["call.started", "call.started", "call.ended"]
        assert [d.attempts for d in deliveries(store)] == [2, 1]
        assert rounds < 20
    finally:
        await sender.stop()
        flaky.close()


async def test_private_receivers_are_refused_unless_allowed(store: Store) -> None:
    receiver = WebhookReceiver()
    hook = add_webhook(store, receiver.url)
    bus, sender = await running(store, WebhookSettings(max_attempts=1))
    try:
        bus.publish(CallStarted(hook.organisation_id, "c1", "1001", "1002", 100.0))
        await until(lambda: [d.state for d in deliveries(store)] == ["failed"])
        assert receiver.got == []
        assert "private address" in deliveries(store)[0].last_error
    finally:
        await sender.stop()
        receiver.close()


async def test_the_outbox_outlives_a_restart(store: Store) -> None:
    """Rows written while the receiver (or the PBX) was down go out later."""
    receiver = WebhookReceiver()
    hook = add_webhook(store, receiver.url)
    bus = EventBus()
    outbox = WebhookOutbox(store)
    await asyncio.to_thread(outbox.reload)
    bus.subscribe(outbox.on_event)
    bus.publish(CallStarted(hook.organisation_id, "c1", "1001", "1002", 100.0))
    await outbox.tasks.drain()
    assert [d.state for d in deliveries(store)] == ["pending"]
    _, sender = await running(store, WebhookSettings(allow_private=True))  # a new node
    try:
        await until(lambda: receiver.types() == ["call.started"])
    finally:
        await sender.stop()
        receiver.close()
