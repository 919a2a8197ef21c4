"""The browser softphone's server side: the page's WebSocket (signalling),
and for each open page a SIP user agent registered for the user's extension
(:mod:`softphone.sip_ua`) plus, per call, a media bridge (:mod:`softphone.bridge`).

The page always makes the WebRTC offer (non-trickle: its candidates are in
it) and the gateway answers; so an incoming call is offered to the page as
``incoming`` and only when the user answers does the page send its offer.

Messages, page → gateway: ``{"type": "call", "number", "sdp"}``,
``{"type": "answer", "sdp"}``, ``{"type": "reject"}``, ``{"type": "hangup"}``,
``{"type": "dtmf", "digit"}``, ``{"type": "transfer", "number"}`` (blind),
``{"type": "hold"}``, ``{"type": "resume"}``.
Gateway → page: ``registered`` (``extension``, ``ice_servers``), ``incoming`` (``number``, ``name``), ``sdp``
(the answer to the page's offer), ``ringing``, ``connected``, ``held``,
``transferring`` (``number``), ``ended`` (``reason``), ``error`` (``reason``);
and once registered ``presence``, ``voicemail``, ``history`` (:mod:`softphone.feeds`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

import aioice.ice
from fastapi import APIRouter, FastAPI, HTTPException, WebSocket, WebSocketDisconnect
from fastapi.staticfiles import StaticFiles
from sqlmodel import Session

from admin_api.deps import find_token
from pbx.calls.channel import KEYS
from pbx.config import General
from pbx.models import ApiUser
from pbx.sdp import SdpError
from pbx.server import SipServer
from softphone import feeds
from softphone.bridge import MediaBridge
from softphone.sip_ua import SipCall, SipFailure, SipUserAgent, UaListener

log = logging.getLogger("softphone")
router = APIRouter(prefix="/api", tags=["softphone"])
WEB = Path(__file__).parent / "web"


class PageSession(UaListener):
    """One open page: its user's line and at most one call."""

    def __init__(self, websocket: WebSocket, host: str) -> None:
        self.websocket = websocket
        self.host = host
        self.ua: SipUserAgent | None = None
        self.call: SipCall | None = None
        self.bridge: MediaBridge | None = None
        self.dialling: asyncio.Task[None] | None = None
        self.transfer_to = ""  # where the far end is being transferred (blind)
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()  # to the page, in order
        self.sender = asyncio.ensure_future(self._send_all())
        self._finishing: set[asyncio.Task[None]] = set()

    def tell(self, kind: str, **fields: Any) -> None:
        self.outbox.put_nowait({"type": kind, **fields})

    async def _send_all(self) -> None:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            while True:
                await self.websocket.send_json(await self.outbox.get())

    # ------------------------------------------------------------ SIP side

    def incoming(self, call: SipCall) -> None:
        self.call = call
        self.tell("incoming", number=call.caller_number, name=call.caller_name)

    def ended(self, call: SipCall, reason: str) -> None:
        if call is self.call:
            task = asyncio.ensure_future(self._finish(reason))
            self._finishing.add(task)
            task.add_done_callback(self._finishing.discard)

    def transfer_progress(self, call: SipCall, status: int) -> None:
        if status >= 300 and self.transfer_to:
            self.tell("error", reason=f"transfer to {self.transfer_to} failed ({status})")
            self.transfer_to = ""

    async def _finish(self, reason: str) -> None:
        if self.transfer_to:
            reason, self.transfer_to = f"transferred to {self.transfer_to}", ""
        self.call = None
        if self.bridge is not None:
            bridge, self.bridge = self.bridge, None
            await bridge.close()
        self.tell("ended", reason=reason)

    # ----------------------------------------------------------- page side

    async def handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        assert self.ua is not None
        number = str(message.get("number", "")).strip()
        if kind in ("call", "transfer") and (
                not number or not all(c in KEYS or c == "+" for c in number)):
            self.tell("error", reason="dial a number: digits, * and #")
        elif kind == "call" and self.call is None and self.dialling is None:
            self.dialling = asyncio.ensure_future(self._dial(number, str(message.get("sdp", ""))))
        elif kind == "answer" and self.call is not None and self.call.incoming:
            call = self.call
            bridge = await self._bridge(str(message.get("sdp", "")))
            assert call.invite is not None
            try:
                bridge.connect_pbx(call.invite.body)
            except (SdpError, ValueError) as exc:  # no offer to answer (late offer): not built
                await self.ua.hang_up(call)
                await self._finish(f"cannot answer this call: {exc}")
                return
            if call.ended:  # cancelled while the page was answering
                return
            self.ua.answer(call, await bridge.open_rtp((bridge.rtp.payload_type,)))
            self.tell("connected", codec=bridge.codec)
        elif kind in ("reject", "hangup"):
            if self.dialling is not None:
                self.dialling.cancel()
            elif self.call is not None:
                call = self.call
                await self.ua.hang_up(call)
                await self._finish("hung up" if kind == "hangup" else "rejected")
        elif kind == "transfer" and self.call is not None and self.call.confirmed:
            try:
                await self.ua.refer(self.call, number)
            except (SipFailure, TimeoutError) as exc:
                self.tell("error", reason=f"transfer refused: {exc}")
                return
            self.transfer_to = number
            self.tell("transferring", number=number)
        elif kind in ("hold", "resume") and self.call is not None and self.call.confirmed \
                and self.bridge is not None:
            try:
                answer = await self.ua.reinvite(
                    self.call, self.bridge.sdp("sendonly" if kind == "hold" else "sendrecv"))
            except (SipFailure, TimeoutError) as exc:
                self.tell("error", reason=f"{kind} refused: {exc}")
                return
            self.bridge.connect_pbx(answer)
            self.tell("held" if kind == "hold" else "connected", codec=self.bridge.codec)
        elif kind == "dtmf" and self.bridge is not None:
            digit = str(message.get("digit", ""))
            if len(digit) == 1 and digit in KEYS:
                await self.bridge.rtp.send_key(digit)
        else:
            self.tell("error", reason=f"{kind!r} is not possible now")

    async def _bridge(self, offer: str) -> MediaBridge:
        """A call's media, its peer connection answered to the page.  When ICE
        or DTLS fails the call is ended at once with the reason, rather than
        left up with no audio."""
        if self.bridge is not None:  # left by an answer whose offer was unusable
            await self.bridge.close()
        self.bridge = bridge = MediaBridge(self.host)

        @bridge.pc.on("connectionstatechange")
        async def on_state() -> None:
            if bridge.pc.connectionState == "failed" and bridge is self.bridge:
                log.info("softphone media failed (ICE/DTLS); ending the call")
                if self.dialling is not None:
                    self.dialling.cancel()
                elif self.call is not None:
                    assert self.ua is not None
                    await self.ua.hang_up(self.call)
                    await self._finish("media path failed (ICE)")

        self.tell("sdp", sdp=await bridge.answer_page(offer))
        return bridge

    async def _dial(self, number: str, offer: str) -> None:
        assert self.ua is not None
        reason = "hung up"
        try:
            pbx_sdp = await (await self._bridge(offer)).open_rtp()
            call, answer = await self.ua.invite(number, pbx_sdp,
                                                lambda response: self._progress(response.status))
            self.call = call
            assert self.bridge is not None
            self.bridge.connect_pbx(answer)
            self.tell("connected", codec=self.bridge.codec)
            return
        except SipFailure as exc:
            reason = exc.reason or str(exc.status)
        except ValueError as exc:  # the page's offer (aiortc) or the PBX's answer is unusable
            reason = f"bad session description: {exc}"
        except TimeoutError:
            reason = "no answer from the PBX"
        except asyncio.CancelledError:
            reason = "cancelled"
            pending = next(iter(self.ua.calls.values()), None)
            if pending is not None:
                await self.ua.hang_up(pending)
        finally:
            self.dialling = None
        await self._finish(reason)

    def _progress(self, status: int) -> None:
        if status in (180, 183):
            self.tell("ringing")

    async def close(self) -> None:
        self.sender.cancel()
        if self.dialling is not None:
            self.dialling.cancel()
        if self.bridge is not None:
            await self.bridge.close()
        if self.ua is not None:
            await self.ua.close()


def ice_servers(general: General) -> list[dict[str, Any]]:
    """The page's RTCPeerConnection ``iceServers``: STUN as given, TURN with its login."""
    servers: list[dict[str, Any]] = []
    for url in general.webrtc_ice_servers:
        server: dict[str, Any] = {"urls": url}
        if url.startswith("turn") and general.webrtc_turn_username:
            server.update(username=general.webrtc_turn_username,
                          credential=general.webrtc_turn_password)
        servers.append(server)
    return servers


def _page_user(sip: SipServer, token: str) -> ApiUser:
    """The logged-in user behind ``token``, who must own an extension."""
    with Session(sip.store.engine) as db:
        user = db.get(ApiUser, find_token(db, token).user_id)
    if user is None:
        raise HTTPException(401, "invalid token")
    if not user.extension:
        raise HTTPException(403, "this login has no extension to be a phone of")
    return user


@router.websocket("/softphone")
async def softphone(websocket: WebSocket, token: str = "") -> None:
    """The page's signalling channel (the bearer token as ``token``, since
    browsers cannot set headers on a WebSocket)."""
    sip: SipServer = websocket.app.state.sip
    await websocket.accept()  # then close with a code and reason the page can show
    try:
        user = _page_user(sip, token)
    except HTTPException as exc:
        log.info("softphone refused: %s", exc.detail)
        await websocket.close(code=4401 if exc.status_code == 401 else 4403,
                              reason=str(exc.detail))
        return
    tenant = sip.directory.tenants.get(user.organisation_id)
    password = tenant.password_for(user.extension) if tenant is not None else None
    if tenant is None or password is None:
        await websocket.close(code=4404, reason="extension not found")
        return
    host = sip.config.general.bind if sip.config.general.bind not in ("0.0.0.0", "::") \
        else "127.0.0.1"
    session = PageSession(websocket, host)
    session.ua = SipUserAgent((host, sip.transports["UDP"].local_port), tenant.domain,
                              user.extension, password, session)
    stop_feeds = None
    try:
        await session.ua.start()
        await session.ua.register()
        session.tell("registered", extension=user.extension,
                     ice_servers=ice_servers(sip.config.general))
        stop_feeds = feeds.follow(sip, tenant.id, user.extension, session.tell)
        while True:
            try:
                message = await websocket.receive_json()
            except ValueError:
                session.tell("error", reason="messages are JSON objects")
                continue
            if isinstance(message, dict):
                try:
                    await session.handle(message)
                except ValueError as exc:  # an SDP aiortc or we cannot use
                    log.info("softphone message %s refused: %s", message.get("type"), exc)
                    session.tell("error", reason=f"bad session description: {exc}")
    except SipFailure as exc:
        session.tell("error", reason=f"registration refused: {exc}")
        await websocket.close(code=4502, reason=f"registration refused: {exc}")
    except (WebSocketDisconnect, TimeoutError):
        pass
    finally:
        if stop_feeds is not None:
            stop_feeds()
        await session.close()


def install(app: FastAPI, sip: SipServer) -> None:
    """Serve the page at /softphone/ and its WebSocket on the admin API.

    aiortc (aioice) offers ICE candidates on every interface but loopback;
    a PBX bound to one address keeps WebRTC media on that address too.
    """
    bind = sip.config.general.bind
    if bind not in ("0.0.0.0", "::"):
        aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [bind]
    app.include_router(router)
    app.mount("/softphone", StaticFiles(directory=WEB, html=True), name="softphone")
