"""Extension calendars: ICS feeds fetched over HTTP and kept as calendar events.

An extension with a ``calendar_url`` has it fetched every
:data:`REFRESH_SECONDS` by a job of the SIP node (:class:`CalendarSync`), and
the events of the next :data:`FEED_DAYS` days replace the ones stored.  An
uploaded file cannot be fetched again, so its events are expanded over
:data:`UPLOAD_DAYS` days at once.  The rules that read the events are in
:mod:`pbx.profiles`; this module is the I/O around them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import delete
from sqlmodel import Session, col, select

from pbx.http_targets import private_address
from pbx.models import CalendarEvent, Extension, Organisation
from pbx.profiles import calendar_events, zone
from pbx.store import Store

log = logging.getLogger("pbx.calendars")

REFRESH_SECONDS = 15 * 60
PAST_SECONDS = 86400  # events that ended up to a day ago are kept (nothing reads them yet)
FEED_DAYS = 14
UPLOAD_DAYS = 366
MAX_BYTES = 2_000_000
FETCH_TIMEOUT = 10.0


class FetchError(ValueError):
    """A calendar URL that gave no usable answer; the message says why."""


def public_only(request: httpx.Request) -> None:
    """Refuse a request (the first or a redirect's) to a host that resolves to a
    loopback, private, link-local or reserved address: a calendar URL must not
    let a user probe the PBX's own network."""
    host = request.url.host
    try:
        address = private_address(host, request.url.port or 443)
    except OSError as exc:
        raise FetchError(f"cannot resolve {host}: {exc.strerror or exc}") from None
    if address is not None:
        raise FetchError(f"{host} is a private address ({address}); "
                         "set calendar_private_hosts = yes to allow it")


def fetch(url: str, allow_private: bool = False) -> bytes:
    """GET an ICS feed (``webcal://`` is ``https://``), at most :data:`MAX_BYTES`,
    from public addresses only unless ``allow_private``."""
    if url.startswith("webcal://"):
        url = "https://" + url.removeprefix("webcal://")
    body = bytearray()
    hooks = {} if allow_private else {"request": [public_only]}
    try:
        with httpx.Client(timeout=FETCH_TIMEOUT, follow_redirects=True,
                          event_hooks=hooks) as client, client.stream("GET", url) as response:
            status = response.status_code
            for chunk in response.iter_bytes() if status == 200 else ():
                body += chunk
                if len(body) > MAX_BYTES:
                    break
    except (httpx.HTTPError, httpx.InvalidURL, UnicodeError) as exc:  # idna: a bad host name
        raise FetchError(f"cannot fetch {url}: {exc or type(exc).__name__}") from None
    if status != 200:
        raise FetchError(f"{url} answered {status}")
    if len(body) > MAX_BYTES:
        raise FetchError(f"{url} sent more than {MAX_BYTES} bytes")
    return bytes(body)


def window(now: float, days: int) -> tuple[float, float]:
    """The span of events kept: from a day ago to ``days`` ahead."""
    return now - PAST_SECONDS, now + days * 86400


def replace_events(db: Session, ext: Extension, rows: Sequence[CalendarEvent]) -> None:
    """Swap the extension's stored events for ``rows`` (in the caller's transaction)."""
    db.exec(delete(CalendarEvent).where(  # type: ignore[call-overload]
        col(CalendarEvent.organisation_id) == ext.organisation_id,
        col(CalendarEvent.extension) == ext.number,
    ))
    db.add_all(rows)


def events_from(
    ics: bytes | str, ext: Extension, tz: ZoneInfo, now: float, days: int,
) -> list[CalendarEvent]:
    """Parse ``ics`` into the extension's rows for the window (CalendarError if invalid)."""
    start, end = window(now, days)
    return calendar_events(ics, start, end, tz, organisation_id=ext.organisation_id,
                           extension=ext.number)


def refresh(store: Store, now: float, allow_private: bool = False) -> int:
    """Fetch every calendar URL once and store its events; returns how many
    calendars changed.  A failing feed keeps its old events and is logged."""
    with Session(store.engine) as db:
        subscribed = db.exec(select(Extension).where(col(Extension.calendar_url) != "")).all()
        zones = {o.id: zone(o.timezone) for o in db.exec(select(Organisation)).all()}
    refreshed = 0
    for ext in subscribed:
        try:
            ics = fetch(ext.calendar_url, allow_private)
            rows = events_from(ics, ext, zones.get(ext.organisation_id, zone("")), now, FEED_DAYS)
        except ValueError as exc:  # FetchError, CalendarError
            log.warning("calendar of %s (organisation %d): %s", ext.number,
                        ext.organisation_id, exc)
            continue
        with Session(store.engine) as db:
            replace_events(db, ext, rows)
            db.commit()
        refreshed += 1
        log.info("calendar of %s: %d events", ext.number, len(rows))
    return refreshed


class CalendarSync:
    """The periodic job: every :data:`REFRESH_SECONDS`, :func:`refresh`, then
    ``on_change`` (the directory reload) when anything was stored."""

    def __init__(self, store: Store, on_change: Callable[[], None],
                 interval: float = REFRESH_SECONDS, allow_private: bool = False) -> None:
        self.store = store
        self.on_change = on_change
        self.interval = interval
        self.allow_private = allow_private

    async def run(self) -> None:
        while True:
            try:
                if await asyncio.to_thread(refresh, self.store, time.time(), self.allow_private):
                    await asyncio.to_thread(self.on_change)  # reads the store: not on the loop
            except Exception:
                log.exception("calendar refresh failed; next try in %d s", self.interval)
            await asyncio.sleep(self.interval)
