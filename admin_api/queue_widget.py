"""The wait-time widget (Telavox Widget): a public JSON endpoint a company's
web site reads to show "about 2 minutes wait" and whether the queue is open.

Public on purpose (no token): it shows only the estimated wait, the number
waiting and open/closed of one queue, named by the organisation's slug and
the queue's number.  Any origin may read it (CORS ``*``: it carries no
cookies and no secrets); each client address gets ``widget_requests`` per
``widget_window`` seconds, then 429 with ``Retry-After``.
"""

import math
import time
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import JSONResponse

from admin_api.deps import NUMBER
from admin_api.security import RequestLimiter
from ivr.tenant import hours
from queues.live import QueueStatistics

router = APIRouter(prefix="/api/public/queues", tags=["wait-time widget"])

CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "GET, OPTIONS",
        "Access-Control-Max-Age": "86400", "Vary": "Origin"}
Slug = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
Queue = Annotated[str, Path(pattern=NUMBER)]


def limiter(request: Request) -> RequestLimiter:
    state = request.app.state
    if getattr(state, "widget_limiter", None) is None:
        state.widget_limiter = RequestLimiter(requests=60, window=60.0)
    return state.widget_limiter  # type: ignore[no-any-return]


def refuse(status: int, reason: str, **headers: str) -> JSONResponse:
    """An error a browser on another site can read too (CORS headers on it)."""
    return JSONResponse({"detail": reason}, status, headers={**CORS, **headers})


@router.options("/{slug}/{queue}/wait", include_in_schema=False)
def preflight(slug: Slug, queue: Queue) -> Response:
    return Response(status_code=204, headers=CORS)


@router.get("/{slug}/{queue}/wait", responses={
    404: {"description": "no such organisation or queue"},
    429: {"description": "too many requests from this address; see Retry-After"}})
async def wait_time(slug: Slug, queue: Queue, request: Request) -> Response:
    """``{"queue", "open", "estimated_wait", "waiting", "at"}``: the estimated wait
    in seconds for a caller calling now (null: no estimate yet)."""
    wait = limiter(request).allow(request.client.host if request.client else "")
    if wait:
        return refuse(429, "too many requests", **{"Retry-After": str(math.ceil(wait))})
    sip = request.app.state.sip
    tenant = next((t for t in sip.directory.tenants.values() if t.slug == slug), None)
    stats: QueueStatistics | None = getattr(request.app.state, "queue_stats", None)
    live = stats.live.queues.get((tenant.id, queue)) if tenant and stats else None
    if live is None or not live.settings.public:
        return refuse(404, f"no queue {queue} at {slug}")
    now = time.time()
    shown = stats.live.queue_snapshot(tenant.id, queue, now)
    body: dict[str, Any] = {key: shown[key] for key in ("queue", "open", "estimated_wait",
                                                          "waiting", "at")}
    config = tenant.queues.get(queue)
    if config is not None and config.schedule:  # closed outside its opening hours too
        body["open"] = body["open"] and hours(tenant).state(config.schedule, now)
    return JSONResponse(body, headers={**CORS, "Cache-Control": "max-age=5"})
