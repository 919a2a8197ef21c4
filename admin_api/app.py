"""The HTTP application served by ``pbx serve`` on ``--http-port``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

from admin_api.routes import bootstrap_admin, build_router

if TYPE_CHECKING:
    from pbx.server import SipServer


class Health(BaseModel):
    """What a load balancer or an operator checks: is the node up, how busy."""

    status: str
    registrations: int
    transports: dict[str, int]
    calls: int = 0
    media_ports_free: int = 0
    media_ports_total: int = 0
    media_channels: int = 0  # channels the engine mixes (conferences, recorded and held calls)
    media_tick_ms: float = 0.0  # the last 20 ms tick: all of it, and its compute part
    media_mix_ms: float = 0.0


class Invitation(BaseModel):
    number: str = Field(pattern=r"^[0-9A-Za-z_.+*#-]{1,40}$", description="extension to call")


def create_app(sip: SipServer) -> FastAPI:
    app = FastAPI(title="PBX admin API", version="0.1.0")

    @app.get("/api/health", response_model=Health, tags=["system"])
    def health() -> Health:
        return Health(
            status="ok",
            registrations=len(sip.location),
            transports={name: t.local_port for name, t in sip.transports.items()},
            calls=sip.b2bua.active_calls if sip.b2bua else 0,
            media_ports_free=sip.relay.pool.free if sip.relay else 0,
            media_ports_total=sip.relay.pool.size if sip.relay else 0,
            media_channels=len(sip.engine.ports),
            media_tick_ms=round(sip.engine.tick_ms, 3),
            media_mix_ms=round(sip.engine.mix_ms, 3),
        )

    @app.get("/api/conferences", tags=["conferences"])
    async def conferences() -> list[dict[str, object]]:
        """The conference rooms in use and who is in them."""
        return [
            {
                "room": room.name,
                "locked": room.locked,
                "recording": room.recorder is not None,
                "participants": [
                    {"leg": m.port.leg.label, "muted": m.muted, "moderator": m.moderator}
                    for m in room.members
                ],
            }
            for room in sip.engine.rooms.values()
            if not room.name.startswith(("lobby-", "moh-", "call-"))
        ]

    @app.post("/api/conferences/{room}/invite", status_code=202, tags=["conferences"],
              responses={404: {"description": "no such conference room"}})
    async def invite(room: str, body: Invitation) -> dict[str, str]:
        """Call a number out of a conference room; it joins when it answers.

        ``async``: it runs on the event loop the SIP side lives on, not in a thread.
        """
        if sip.b2bua is None or sip.conference(room) is None:
            raise HTTPException(404, f"no conference room {room}")
        call = sip.b2bua.invite_to_room(room, body.number)
        return {"call_id": call.id}

    bootstrap_admin(sip)
    app.include_router(build_router(sip))
    return app
