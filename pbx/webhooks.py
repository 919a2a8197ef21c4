"""Webhooks: an organisation's HTTPS endpoints receive its events (calls
starting, ringing, answered and ended; registrations; voicemail; the
switchboard) as JSON POSTs: how CRMs (Zendesk, Lime, Upsales) pop up the
caller's card without holding a connection open.

- **Signed** as Stripe signs: ``X-PBX-Signature: t=<unix time>,v1=<hex>``,
  the hex being HMAC-SHA256 under the webhook's secret of ``<t>.<body>``.  A
  receiver recomputes it and refuses old timestamps, so a captured request
  cannot be replayed later.
- **From an outbox**: the bus subscriber (:class:`WebhookOutbox`) writes one
  row per event and webhook to the store in a worker thread, so call
  handling never waits; the sender (:class:`WebhookSender`) posts the rows
  that are due with a timeout, retries a failed one with exponential
  back-off (``webhooks_first_retry`` seconds, doubled each time, at most an
  hour) up to ``webhooks_max_attempts`` times, then gives up with a log
  line.  Every attempt is kept.  The outbox survives a restart, and a row is
  claimed with a lease before it is sent, so nodes sharing a database do
  not send it twice.
- **Where to**: ``https://`` to public addresses only, checked when the URL
  is given and again before every attempt (DNS may change); with
  ``webhooks_allow_http`` also ``http://`` and private addresses (tests,
  receivers on premises).  Redirects are not followed.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx
from sqlalchemy import delete, update
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, func, select

from pbx.http_targets import private_address
from pbx.events import Event, as_dict, event_type
from pbx.models import Webhook, WebhookAttempt, WebhookDelivery
from pbx.store import Store
from pbx.tasks import Tasks

log = logging.getLogger("pbx.webhooks")

SIGNATURE_HEADER = "X-PBX-Signature"
USER_AGENT = "pbx-webhooks/0.1"
TIMEOUT = 10.0  # s for one attempt: connect, send, the receiver's answer
MAX_DELAY = 3600.0  # the longest wait between two attempts
LEASE = TIMEOUT + 30.0  # a claimed row is not sent again before this, even by another node
BATCH = 50  # rows claimed at a time
PARALLEL = 8  # attempts in flight at once
IDLE = 60.0  # s the sender sleeps when nothing is due and nothing comes
KEEP_DAYS = 30  # delivered and given-up rows are kept this long, with their attempts


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    max_attempts: int = 12
    first_retry: float = 10.0
    allow_private: bool = False  # [general] webhooks_allow_http: http:// and private addresses


@dataclass(frozen=True, slots=True)
class Job:
    """A claimed row of the outbox, ready to send."""

    delivery_id: int
    webhook_id: int
    url: str
    secret: str
    event_type: str
    payload: str


# ------------------------------------------------------------------ pure parts

def new_secret() -> str:
    """A webhook's signing secret (shown once, kept to sign)."""
    return "whsec_" + secrets.token_urlsafe(32)


def signature(secret: str, body: bytes, at: int) -> str:
    """The ``X-PBX-Signature`` value of ``body`` sent at unix time ``at``."""
    digest = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={digest}"


def retry_delay(attempts: int, first: float) -> float:
    """Seconds to wait after the ``attempts``-th failure: ``first``, then
    doubled each time, at most :data:`MAX_DELAY`."""
    return min(first * 2 ** max(0, attempts - 1), MAX_DELAY)


def wants(events: str, kind: str) -> bool:
    """Does a webhook with the event filter ``events`` ("" = all) get ``kind``?"""
    return not events or kind in events.split(",")


def payload(event: Event, event_id: str) -> str:
    """The JSON body: ``{"id", "type", "created", "organisation", "data"}``."""
    fields = as_dict(event)
    kind = fields.pop("type")
    return json.dumps({"id": event_id, "type": kind, "created": event.at,
                       "organisation": event.organisation, "data": fields}, default=float)


def check_url(url: str, allow_http: bool) -> str:
    """A webhook URL as it will be used; ValueError says what is wrong with it."""
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, UnicodeError, ValueError):
        raise ValueError("is not a URL") from None
    schemes = ("https", "http") if allow_http else ("https",)
    if parsed.scheme not in schemes:
        raise ValueError("must start with https://" + (" or http://" if allow_http else ""))
    if not parsed.host:
        raise ValueError("has no host")
    if parsed.userinfo:
        raise ValueError("must not hold a user name or password (the signature proves "
                         "who sends)")
    return str(parsed)


def check_host(url: str) -> None:
    """Refuse a URL whose host resolves to a loopback, private, link-local or
    reserved address (ValueError).  Blocking: a DNS lookup."""
    parsed = httpx.URL(url)
    try:
        address = private_address(parsed.host, parsed.port or 443)
    except (OSError, UnicodeError) as exc:
        raise ValueError(f"cannot resolve {parsed.host}: "
                         f"{getattr(exc, 'strerror', None) or exc}") from None
    if address is not None:
        raise ValueError(f"{parsed.host} is a private address ({address}); set "
                         "webhooks_allow_http = yes to allow it")


# ------------------------------------------------------------------ the store (blocking)

def subscriptions(store: Store) -> dict[int, tuple[str, ...]]:
    """The event filters of every organisation's active webhooks."""
    found: dict[int, list[str]] = {}
    with Session(store.engine) as db:
        for organisation, events in db.exec(select(Webhook.organisation_id, Webhook.events)
                                            .where(col(Webhook.active))).all():
            found.setdefault(organisation, []).append(events)
    return {organisation: tuple(filters) for organisation, filters in found.items()}


def enqueue(store: Store, events: Sequence[Event], now: float) -> int:
    """Write a row for every event and active webhook that wants it; how many."""
    rows = 0
    with Session(store.engine) as db:
        hooks = db.exec(select(Webhook).where(
            col(Webhook.active),
            col(Webhook.organisation_id).in_({e.organisation for e in events}))).all()
        for event in events:
            kind, event_id = event_type(event), f"evt_{uuid.uuid4().hex}"
            body = None
            for hook in hooks:
                if hook.organisation_id != event.organisation or not wants(hook.events, kind):
                    continue
                body = body or payload(event, event_id)
                assert hook.id is not None
                db.add(WebhookDelivery(webhook_id=hook.id, organisation_id=event.organisation,
                                       event_id=event_id, event_type=kind, payload=body,
                                       created_at=now, next_attempt_at=now))
                rows += 1
        db.commit()
    return rows


def claim_due(store: Store, now: float, limit: int = BATCH) -> list[Job]:
    """The rows due at ``now`` whose webhook has no older row still waiting
    (one webhook's events go out in order), each claimed for :data:`LEASE`
    seconds (a row another node claimed first is left to it)."""
    claimed = []
    older = aliased(WebhookDelivery)
    waiting = select(older.id).where(
        older.webhook_id == WebhookDelivery.webhook_id, older.state == "pending",
        older.id < WebhookDelivery.id, older.next_attempt_at > now).exists()
    with Session(store.engine) as db:
        rows = db.exec(
            select(WebhookDelivery, Webhook)
            .join(Webhook, col(Webhook.id) == col(WebhookDelivery.webhook_id))
            .where(col(WebhookDelivery.state) == "pending",
                   col(WebhookDelivery.next_attempt_at) <= now, col(Webhook.active), ~waiting)
            .order_by(col(WebhookDelivery.id)).limit(limit)).all()
        for delivery, hook in rows:
            taken = db.exec(update(WebhookDelivery).where(  # type: ignore[call-overload]
                col(WebhookDelivery.id) == delivery.id,
                col(WebhookDelivery.next_attempt_at) == delivery.next_attempt_at,
            ).values(next_attempt_at=now + LEASE))
            if taken.rowcount == 1:
                assert delivery.id is not None and hook.id is not None
                claimed.append(Job(delivery.id, hook.id, hook.url, hook.secret,
                                   delivery.event_type, delivery.payload))
        db.commit()
    return claimed


def record(store: Store, job: Job, at: float, status: int, error: str, duration: float,
           settings: WebhookSettings) -> WebhookDelivery | None:
    """Keep an attempt and move its row on: delivered, due again after the
    back-off, or given up after the last attempt.  None: the webhook is gone."""
    with Session(store.engine) as db:
        delivery = db.get(WebhookDelivery, job.delivery_id)
        if delivery is None:
            return None
        db.add(WebhookAttempt(delivery_id=job.delivery_id, at=at, status=status,
                              error=error[:500], duration=duration))
        delivery.attempts += 1
        delivery.last_status, delivery.last_error = status, error[:500]
        if not error:
            delivery.state, delivery.delivered_at = "delivered", at
        elif delivery.attempts >= settings.max_attempts:
            delivery.state = "failed"
        else:
            delivery.next_attempt_at = at + retry_delay(delivery.attempts, settings.first_retry)
        db.add(delivery)
        db.commit()
        db.refresh(delivery)
        return delivery


def postpone(store: Store, delivery_ids: Sequence[int], at: float) -> None:
    """Make rows due at ``at`` (they wait for an earlier one's retry)."""
    if not delivery_ids:
        return
    with Session(store.engine) as db:
        db.exec(update(WebhookDelivery).where(  # type: ignore[call-overload]
            col(WebhookDelivery.id).in_(delivery_ids),
            col(WebhookDelivery.state) == "pending").values(next_attempt_at=at))
        db.commit()


def next_due(store: Store) -> float | None:
    """When the next row is due that waits for nothing older (None: nothing is
    pending)."""
    older = aliased(WebhookDelivery)
    behind = select(older.id).where(older.webhook_id == WebhookDelivery.webhook_id,
                                    older.state == "pending", older.id < WebhookDelivery.id)
    with Session(store.engine) as db:
        return db.exec(select(func.min(WebhookDelivery.next_attempt_at))
                       .join(Webhook, col(Webhook.id) == col(WebhookDelivery.webhook_id))
                       .where(col(WebhookDelivery.state) == "pending", col(Webhook.active),
                              ~behind.exists())).one()


def prune(store: Store, before: float) -> int:
    """Forget finished rows (delivered or given up) made before ``before``."""
    with Session(store.engine) as db:
        old = select(WebhookDelivery.id).where(col(WebhookDelivery.state) != "pending",
                                               col(WebhookDelivery.created_at) < before)
        db.exec(delete(WebhookAttempt).where(  # type: ignore[call-overload]
            col(WebhookAttempt.delivery_id).in_(old)))
        gone = db.exec(delete(WebhookDelivery).where(  # type: ignore[call-overload]
            col(WebhookDelivery.state) != "pending", col(WebhookDelivery.created_at) < before))
        db.commit()
        return int(gone.rowcount)


def forget_webhook(db: Session, webhook_id: int) -> None:
    """Remove a webhook's rows and attempts (in the caller's transaction, before
    the webhook itself)."""
    rows = select(WebhookDelivery.id).where(col(WebhookDelivery.webhook_id) == webhook_id)
    db.exec(delete(WebhookAttempt).where(  # type: ignore[call-overload]
        col(WebhookAttempt.delivery_id).in_(rows)))
    db.exec(delete(WebhookDelivery).where(  # type: ignore[call-overload]
        col(WebhookDelivery.webhook_id) == webhook_id))


# ------------------------------------------------------------------ the asyncio side

class WebhookOutbox:
    """Subscribes to the bus: events some webhook wants are written to the
    outbox in a worker thread (in batches), then the sender is woken.  Which
    organisations have webhooks is kept in memory (:meth:`reload` after every
    change), so the events nobody wants cost nothing."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.subscribed: dict[int, tuple[str, ...]] = {}
        self.ready = asyncio.Event()  # rows were written: the sender looks
        self.tasks = Tasks(log, "queueing webhook deliveries")
        self._pending: list[Event] = []
        self._writing = False
        self.reloaded: list[Callable[[], None]] = []  # told after each reload (other workers)

    def reload(self) -> None:
        """Read which organisations' webhooks want what (blocking: a query)."""
        self.subscribed = subscriptions(self.store)
        for listener in self.reloaded:
            listener()

    def on_event(self, event: Event) -> None:
        filters = self.subscribed.get(event.organisation, ())
        kind = event_type(event)
        if not any(wants(events, kind) for events in filters):
            return
        self._pending.append(event)
        if not self._writing:
            self._writing = True
            self.tasks.spawn(self._write())

    async def _write(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    await asyncio.to_thread(enqueue, self.store, batch, time.time())
                except Exception:
                    log.exception("cannot queue %d event(s) for webhooks", len(batch))
                    continue
                self.ready.set()
        finally:
            self._writing = False


class WebhookSender:
    """Posts due rows of the outbox, signed, and records how each attempt went."""

    def __init__(self, store: Store, outbox: WebhookOutbox, settings: WebhookSettings) -> None:
        self.store = store
        self.outbox = outbox
        self.settings = settings
        self._task: asyncio.Task[None] | None = None
        self._prune_at = 0.0
        self._slots = asyncio.Semaphore(PARALLEL)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.outbox.tasks.drain()

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False,
                                     headers={"User-Agent": USER_AGENT}) as client:
            while True:
                try:
                    await self.round(client)
                except Exception:
                    log.exception("webhook sender failed; trying again in %.0f s", IDLE)
                    await asyncio.sleep(IDLE)

    async def round(self, client: httpx.AsyncClient) -> None:
        """Send what is due; with nothing due, wait for new rows or the next retry."""
        now = time.time()
        if now >= self._prune_at:
            self._prune_at = now + 3600
            if pruned := await asyncio.to_thread(prune, self.store, now - KEEP_DAYS * 86400):
                log.info("forgot %d finished webhook deliveries", pruned)
        jobs = await asyncio.to_thread(claim_due, self.store, now)
        if jobs:
            by_webhook: dict[int, list[Job]] = {}
            for job in jobs:
                by_webhook.setdefault(job.webhook_id, []).append(job)
            await asyncio.gather(*(self.deliver_in_order(client, queue)
                                   for queue in by_webhook.values()))
            return
        due = await asyncio.to_thread(next_due, self.store)
        wait = IDLE if due is None else min(IDLE, max(0.0, due - time.time()))
        try:
            await asyncio.wait_for(self.outbox.ready.wait(), wait)
        except TimeoutError:
            pass
        self.outbox.ready.clear()

    async def deliver_in_order(self, client: httpx.AsyncClient, jobs: list[Job]) -> None:
        """One webhook's rows one after the other, oldest first, so a receiver
        gets the events in the order they happened.  When one fails, the rest
        wait with it and go out after its retry: a receiver that hangs costs
        one timeout per round, not one per row."""
        async with self._slots:
            for index, job in enumerate(jobs):
                row = await self.deliver(client, job)
                if row is not None and row.state == "pending":
                    rest = [later.delivery_id for later in jobs[index + 1:]]
                    await asyncio.to_thread(postpone, self.store, rest, row.next_attempt_at)
                    return

    async def deliver(self, client: httpx.AsyncClient, job: Job) -> WebhookDelivery | None:
        """One attempt: POST the body signed now; a 2xx delivers it.  Returns the
        row as it stands after the attempt (None: the webhook is gone)."""
        body = job.payload.encode()
        at = time.time()
        status, error = 0, ""
        headers = {"Content-Type": "application/json", "X-PBX-Event": job.event_type,
                   "X-PBX-Delivery": str(job.delivery_id),
                   SIGNATURE_HEADER: signature(job.secret, body, int(at))}
        try:
            if not self.settings.allow_private:
                await asyncio.to_thread(check_host, job.url)
            async with client.stream("POST", job.url, content=body,
                                     headers=headers) as response:
                status = response.status_code
            if not 200 <= status < 300:
                error = f"answered {status}"
        except ValueError as exc:
            error = str(exc)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            error = f"{type(exc).__name__}: {exc}".rstrip(": ")
        took = time.time() - at
        log.info("webhook %d: %s %s → %s (%.2f s)", job.webhook_id, job.event_type,
                 job.url, status or error, took)
        row = await asyncio.to_thread(record, self.store, job, at, status, error, took,
                                      self.settings)
        if row is not None and row.state == "failed":
            log.warning("webhook %d: gave up on delivery %d (%s) after %d attempts: %s",
                        job.webhook_id, job.delivery_id, job.event_type, row.attempts,
                        error)
        return row
