"""The HTTP application served by ``pbx serve`` on ``--http-port``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI
from pydantic import BaseModel

if TYPE_CHECKING:
    from pbx.server import SipServer


class Health(BaseModel):
    """What a load balancer or an operator checks: is the node up, how busy."""

    status: str
    registrations: int
    transports: dict[str, int]


def create_app(sip: SipServer) -> FastAPI:
    app = FastAPI(title="PBX admin API", version="0.1.0")

    @app.get("/api/health", response_model=Health, tags=["system"])
    def health() -> Health:
        return Health(
            status="ok",
            registrations=len(sip.location),
            transports={name: t.local_port for name, t in sip.transports.items()},
        )

    return app
