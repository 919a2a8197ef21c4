"""The browser softphone's server side: the page's WebSocket (signalling),
and for each open page a SIP line registered for the user's extension
(:mod:`softphone.line` around the pure :mod:`softphone.ua`, the same user
agent as the command-line softphone's) plus, per call, a media bridge
(:mod:`softphone.bridge`).

Call control therefore sees the page as an ordinary SIP device of the
extension (a contact binding beside the desk phone's, over loopback): it is
rung with the others, the first to answer wins, and the calls it places go
through the dial plan with the extension's digest credentials.

The page always makes the WebRTC offer (non-trickle: its candidates are in
it) and the gateway answers; so an incoming call is offered to the page as
``incoming`` and only when the user answers does the page send its offer.
A page may have several calls: one talking, the others held (call waiting,
a consultation before an attended transfer).  Each call has an id: the
page's own for the calls it places, the gateway's for those it receives.

Messages, page → gateway: ``{"type": "call", "id", "number", "sdp"}``,
``{"type": "answer", "call", "sdp"}``, ``{"type": "reject", "call"}``,
``{"type": "hangup", "call"}``, ``{"type": "dtmf", "call", "digit"}``,
``{"type": "hold", "call"}``, ``{"type": "resume", "call"}`` (holds the
others), ``{"type": "transfer", "call", "number"}`` (blind) or
``{"type": "transfer", "call", "consult"}`` (attended: the far end of
``call`` is joined to the far end of the call ``consult``),
``{"type": "renew", "call", "sdp"}`` (a new offer for an answered call's
media: the page's network changed or its ICE failed; answered with ``sdp``,
or ``error`` with ``renew`` when refused, the old media path then stays).
Gateway → page: ``registered`` (``extension``, ``ice_servers``,
``ice_transport_policy``, ``reconnect_grace`` and ``calls``: the calls still
up when a dropped page comes back), ``incoming``
(``call``, ``number``, ``name``, and ``via``, ``via_name``: the queue or
colleague the call was first for, RFC 7044 History-Info), ``sdp`` (``call``: the answer to the page's
offer), ``ringing``, ``connected`` (``codec``, ``far_end_holds``), ``held``,
``transferring`` (``number``), ``ended`` (``reason``), each with ``call``;
``error`` (``reason``, ``call`` when about one); ``agent`` (``state``,
``reason``) when the user's queue agent state changes; and once registered
``presence``, ``voicemail``, ``history`` (:mod:`softphone.feeds`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aioice.ice
from fastapi import APIRouter, FastAPI, HTTPException, WebSocket, WebSocketDisconnect
from fastapi.staticfiles import StaticFiles
from sqlmodel import Session

from admin_api.deps import find_token
from admin_api.security import token_hash
from pbx.calls.channel import KEYS
from pbx.config import General
from pbx.events import AgentStateChanged, EventBus
from pbx.models import ApiUser
from pbx.server import SipServer
from pbx.sip.flow import Flow
from softphone import feeds
from softphone.bridge import MediaBridge, NoMediaPath
from softphone.line import Line
from softphone.ua import (Account, Call, CallAnswered, CallEnded, CallRinging, Event,
                          IncomingCall, Registered, RegistrationFailed, RequestRefused,
                          TransferProgress, Unregistered)

log = logging.getLogger("softphone")
router = APIRouter(prefix="/api", tags=["softphone"])
WEB = Path(__file__).parent / "web"
REGISTER_WAIT = 10.0  # s for the PBX to answer the line's REGISTER
ICE_FAILED = ("media path failed (ICE): no audio path between your browser and the PBX; "
              "check your network, firewall or TURN settings")
MEDIA_CLOSED = "media path closed by the browser"


@dataclass(eq=False)
class PageCall:
    """One of the page's calls: its SIP call, its media, what the page asked."""

    id: str
    sip: Call
    bridge: MediaBridge | None = None
    ending: str = ""  # why, when the page ended it (the reason the page is told)
    transfer_to: str = ""  # where the far end is being transferred

    @property
    def number(self) -> str:
        """The far end's number: whom we called, or who called."""
        sip = self.sip
        return (sip.invite.uri.user if sip.outgoing else sip.caller.uri.user) or ""

    @property
    def name(self) -> str:
        return "" if self.sip.outgoing else self.sip.caller.display_name or ""


def reason_of(event: CallEnded) -> str:
    """Why a call ended, as the page says it."""
    if event.code == 0 or event.code == 487:
        return "hung up" if event.code == 0 else "cancelled"
    return event.reason or str(event.code)


class PageSession:
    """One open page: its user's line and its calls."""

    def __init__(self, websocket: WebSocket, host: str) -> None:
        self.websocket = websocket
        self.host = host
        self.line: Line | None = None
        self.calls: dict[str, PageCall] = {}
        self.registered: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self.unregistered = asyncio.Event()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()  # to the page, in order
        self.sender = asyncio.ensure_future(self._send_all())
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._unwatch: Callable[[], None] = lambda: None
        self.revoked = False

    def tell(self, kind: str, **fields: Any) -> None:
        self.outbox.put_nowait({"type": kind, **fields})

    async def _send_all(self) -> None:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            while True:
                await self.websocket.send_json(await self.outbox.get())

    def detach(self) -> None:
        """The page's WebSocket dropped: calls and media go on, nobody is told."""
        self.sender.cancel()

    def attach(self, websocket: WebSocket) -> None:
        """The page is back (a new WebSocket, the same login)."""
        self.websocket = websocket
        self.outbox = asyncio.Queue()  # what was said meanwhile: the snapshot replaces it
        self.sender = asyncio.ensure_future(self._send_all())

    def snapshot(self) -> list[dict[str, Any]]:
        """The calls as they are, for a page that comes back."""
        def state(call: Call) -> str:
            if call.state != "answered":
                return "calling" if call.outgoing else call.state
            return "on hold" if call.held else "talking"

        return [{"call": page.id, "state": state(page.sip), "number": page.number,
                 "name": page.name, "codec": page.bridge.codec if page.bridge is not None else ""}
                for page in self.calls.values()]

    async def revoke(self) -> None:
        """The login was ended (logout): the page gets nothing more."""
        self.revoked = True
        with contextlib.suppress(RuntimeError):
            await self.websocket.close(code=4401, reason="logged out")

    def _soon(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self, account: Account) -> None:
        """Open and register the line; SipRefused when the PBX says no."""
        self.line = Line(account, self.on_event)
        await self.line.connect()
        self.line.register()
        try:
            event = await asyncio.wait_for(asyncio.shield(self.registered), REGISTER_WAIT)
        except TimeoutError:
            raise SipRefused("no answer from the PBX") from None
        if isinstance(event, RegistrationFailed):
            raise SipRefused(f"{event.code} {event.reason}")

    def watch(self, bus: EventBus, organisation: int, extension: str) -> None:
        """Tell the page when its user's agent state changes (queue calls, wrap-up)."""
        def on_event(event: object) -> None:
            if isinstance(event, AgentStateChanged) and event.organisation == organisation \
                    and event.agent == extension:
                self.tell("agent", state=event.state, reason=event.reason)

        bus.subscribe(on_event)
        self._unwatch = lambda: bus.unsubscribe(on_event)

    @property
    def sip(self) -> Line:
        assert self.line is not None
        return self.line

    def _of(self, call: Call) -> PageCall | None:
        return next((c for c in self.calls.values() if c.sip is call), None)

    # ------------------------------------------------------------ SIP side

    def on_event(self, event: Event | str) -> None:
        if isinstance(event, str):
            log.warning("softphone line lost: %s", event)
            self.tell("error", reason=event)
            return
        if isinstance(event, Unregistered):
            self.unregistered.set()
            return
        if isinstance(event, (Registered, RegistrationFailed)):
            if not self.registered.done():
                self.registered.set_result(event)
            elif isinstance(event, RegistrationFailed):
                log.warning("softphone line not refreshed: %d %s", event.code, event.reason)
            return
        if isinstance(event, IncomingCall):
            call = PageCall(f"in-{next(self._ids)}", event.call)
            self.calls[call.id] = call
            via = event.call.via
            self.tell("incoming", call=call.id, number=call.number, name=call.name,
                      via=via.uri.user or "" if via is not None else "",
                      via_name=via.display_name or "" if via is not None else "")
            return
        page = self._of(event.call)
        if page is None:
            return
        if isinstance(event, CallRinging):
            self.tell("ringing", call=page.id)
        elif isinstance(event, CallAnswered):
            if page.bridge is not None:
                page.bridge.connect_pbx(event.media)
                if page.sip.held:
                    self.tell("held", call=page.id)
                else:
                    self.tell("connected", call=page.id, codec=page.bridge.codec,
                              far_end_holds=event.media.direction in ("recvonly", "inactive"))
        elif isinstance(event, RequestRefused):
            what = "transfer" if event.method == "REFER" else \
                "resume" if page.sip.held else "hold"
            page.transfer_to = "" if what == "transfer" else page.transfer_to
            self.tell("error", call=page.id, reason=f"{what} refused: {event.code} {event.reason}")
        elif isinstance(event, TransferProgress):
            if event.code >= 300 and page.transfer_to:
                self.tell("error", call=page.id,
                          reason=f"transfer to {page.transfer_to} failed ({event.code})")
                page.transfer_to = ""
        elif isinstance(event, CallEnded):
            reason = page.ending or (f"transferred to {page.transfer_to}" if page.transfer_to
                                     else reason_of(event))
            self._soon(self._finish(page, reason))

    async def _finish(self, page: PageCall, reason: str) -> None:
        if self.calls.pop(page.id, None) is None:
            return
        if page.bridge is not None:
            await page.bridge.close()
        self.tell("ended", call=page.id, reason=reason)

    # ----------------------------------------------------------- page side

    async def handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        number = str(message.get("number", "")).strip()
        page = self.calls.get(str(message.get("call", "")))
        if kind in ("call", "transfer") and "consult" not in message and (
                not number or not all(c in KEYS or c == "+" for c in number)):
            self.tell("error", reason="dial a number: digits, * and #")
        elif kind == "call":
            ident = str(message.get("id", ""))
            if not ident or ident in self.calls:
                self.tell("error", reason="a new call needs an id of its own")
                return
            await self._dial(ident, number, str(message.get("sdp", "")))
        elif page is None:
            self.tell("error", reason=f"{kind!r}: no such call")
        elif kind == "answer" and page.sip.state == "ringing" and not page.sip.outgoing:
            await self._answer(page, str(message.get("sdp", "")))
        elif kind in ("reject", "hangup"):
            page.ending = "hung up" if kind == "hangup" else "rejected"
            self.sip.hangup(page.sip)
            if page.sip.state == "ended":
                await self._finish(page, page.ending)
        elif kind == "transfer" and page.sip.state == "answered":
            self._transfer(page, message)
        elif kind in ("hold", "resume") and page.sip.state == "answered":
            if kind == "resume":
                self._hold_others(page)
            try:
                self.sip.hold(page.sip, kind == "hold")
            except ValueError as exc:
                self.tell("error", call=page.id, reason=f"{kind}: {exc}")
        elif kind == "renew":
            await self._renew(page, str(message.get("sdp", "")))
        elif kind == "dtmf" and page.bridge is not None:
            digit = str(message.get("digit", ""))
            if len(digit) == 1 and digit in KEYS:
                await page.bridge.rtp.send_key(digit)
        else:
            self.tell("error", call=page.id, reason=f"{kind!r} is not possible now")

    def _hold_others(self, page: PageCall) -> None:
        """One call talks at a time: hold every other answered one."""
        for other in self.calls.values():
            if other is not page and other.sip.state == "answered" and not other.sip.held \
                    and other.sip.reinvite is None:
                self.sip.hold(other.sip)

    def _transfer(self, page: PageCall, message: dict[str, Any]) -> None:
        consult = self.calls.get(str(message.get("consult", "")))
        if "consult" in message and (consult is None or consult is page
                                     or consult.sip.state != "answered"):
            self.tell("error", call=page.id, reason="transfer: the consultation call is not up")
            return
        number = str(message.get("number", "")).strip() if consult is None else consult.number
        try:
            self.sip.transfer(page.sip, number, replaces=consult.sip if consult else None)
        except ValueError as exc:
            self.tell("error", call=page.id, reason=f"transfer: {exc}")
            return
        page.transfer_to = number
        if consult is not None:
            consult.ending = "transferred"
        self.tell("transferring", call=page.id, number=number)

    async def _media(self, ident: str, offer: str) -> tuple[MediaBridge, tuple[str, int]]:
        """A call's media: its peer connection answered to the page, and the RTP
        address for the SIP side.  When ICE or DTLS fails the call is ended at
        once with a reason that says so, rather than left up with no audio."""
        async def on_state(bridge: MediaBridge) -> None:
            page = self.calls.get(ident)
            if page is not None and page.bridge is bridge:
                await self._check_media(page)

        bridge = MediaBridge(self.host, on_state)
        try:
            self.tell("sdp", call=ident, sdp=await bridge.answer_page(offer))
            return bridge, await bridge.open_rtp()
        except BaseException:
            await bridge.close()
            raise

    async def _check_media(self, page: PageCall) -> None:
        """End the call at once if its media path failed (ICE or DTLS) or the
        browser closed it (DTLS close_notify): a live call has no other."""
        state = page.bridge.pc.connectionState if page.bridge is not None else ""
        if state not in ("failed", "closed"):
            return
        log.info("softphone media %s (ICE/DTLS); ending call %s", state, page.id)
        page.ending = ICE_FAILED if state == "failed" else MEDIA_CLOSED
        self.sip.hangup(page.sip)
        if page.sip.state == "ended":
            await self._finish(page, page.ending)

    async def _renew(self, page: PageCall, offer: str) -> None:
        """The page renewed the call's media path (its network changed, its
        ICE went): a new peer connection on the same RTP leg, so the SIP call
        and the far end see nothing.  A refused offer leaves the old one (the
        page is told with ``renew`` set, so it keeps its old one too)."""
        try:
            if page.bridge is None or page.sip.state != "answered":
                raise ValueError("the call is not up")
            answer = await page.bridge.renew(offer)
        except (ValueError, NoMediaPath) as exc:
            log.info("softphone media renewal of call %s refused: %s", page.id, exc)
            self.tell("error", call=page.id, reason=f"media path not renewed: {exc}", renew=True)
            return
        log.info("softphone media of call %s renewed", page.id)
        self.tell("sdp", call=page.id, sdp=answer)
        await self._check_media(page)

    async def _dial(self, ident: str, number: str, offer: str) -> None:
        try:
            bridge, rtp = await self._media(ident, offer)
        except ValueError as exc:  # the page's offer is unusable for aiortc
            self.tell("ended", call=ident, reason=f"bad session description: {exc}")
            return
        except NoMediaPath:
            self.tell("ended", call=ident, reason=ICE_FAILED)
            return
        page = PageCall(ident, self.sip.call(number, rtp), bridge)
        self.calls[ident] = page
        self._hold_others(page)  # a call placed from a call: a consultation
        await self._check_media(page)  # it may have failed before the call existed

    async def _answer(self, page: PageCall, offer: str) -> None:
        try:
            page.bridge, rtp = await self._media(page.id, offer)
        except (ValueError, NoMediaPath) as exc:  # refused: the PBX rings on elsewhere
            page.ending = ICE_FAILED if isinstance(exc, NoMediaPath) else \
                f"bad session description: {exc}"
            self.sip.hangup(page.sip)
            return
        if page.sip.state != "ringing":  # cancelled while the page was answering
            return
        self._hold_others(page)  # call waiting: the call we were on waits
        self.sip.answer(page.sip, rtp)
        await self._check_media(page)

    async def close(self) -> None:
        """The page is gone: hang up its calls, unregister its line."""
        self.sender.cancel()
        self._unwatch()
        if self.line is None or self.line.ua is None:
            return
        pages = list(self.calls.values())
        self.calls.clear()  # closing their media below is no media failure
        for page in pages:
            self.sip.hangup(page.sip)
            if page.bridge is not None:
                await page.bridge.close()
        if self.line.ua.registered:
            self.line.unregister()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.unregistered.wait(), 2.0)
        self.line.disconnect()


class SipRefused(Exception):
    """The PBX refused (or did not answer) the page's line."""


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
    stop_feeds = None
    pages: Pages = websocket.app.state.softphone
    hashed = token_hash(token)
    grace = sip.config.general.webrtc_reconnect_grace
    session = pages.resume(hashed)
    dropped = False  # the WebSocket went away without the page closing it
    try:
        if session is None:
            session = PageSession(websocket, host)
            server = Flow("UDP", host, sip.transports["UDP"].local_port)
            await session.start(Account(user.extension, password, server, tenant.domain))
            session.watch(sip.events, user.organisation_id, user.extension)
        else:
            session.attach(websocket)
        pages.add(hashed, session)
        general = sip.config.general
        session.tell("registered", extension=user.extension, ice_servers=ice_servers(general),
                     ice_transport_policy=general.webrtc_ice_transport_policy,
                     calls=session.snapshot(), reconnect_grace=grace)
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
    except SipRefused as exc:
        assert session is not None
        session.tell("error", reason=f"registration refused: {exc}")
        await websocket.close(code=4502, reason=f"registration refused: {exc}")
    except WebSocketDisconnect as exc:
        dropped = exc.code not in (1000, 1001)  # not closed by the page (log out, leaving it)
    finally:
        if stop_feeds is not None:
            stop_feeds()
        if session is not None:
            pages.remove(hashed, session)
            if dropped and session.calls and grace > 0 and not session.revoked:
                log.info("softphone page of %s dropped; its calls wait %.0f s for it",
                         user.extension, grace)
                session.detach()
                pages.park(hashed, session, grace)
            else:
                await session.close()


class Pages:
    """The open pages by login (token hash), and the pages whose WebSocket
    dropped mid-call, kept for a grace period for the page to come back."""

    def __init__(self) -> None:
        self.open: dict[str, set[PageSession]] = {}
        self.parked: dict[str, tuple[PageSession, asyncio.TimerHandle]] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def add(self, hashed: str, session: PageSession) -> None:
        self.loop = asyncio.get_running_loop()
        self.open.setdefault(hashed, set()).add(session)

    def remove(self, hashed: str, session: PageSession) -> None:
        self.open.get(hashed, set()).discard(session)

    def park(self, hashed: str, session: PageSession, grace: float) -> None:
        self._end(hashed)  # one waiting page per login
        timer = asyncio.get_running_loop().call_later(grace, self._end, hashed)
        self.parked[hashed] = (session, timer)

    def resume(self, hashed: str) -> PageSession | None:
        """The page that waits for this login, now taken back."""
        session, timer = self.parked.pop(hashed, (None, None))
        if timer is not None:
            timer.cancel()
        return session

    def _end(self, hashed: str) -> None:
        """No page came back in time (or the login ended): hang up, unregister."""
        session = self.resume(hashed)
        if session is not None:
            log.info("softphone page did not come back: its calls end")
            task = asyncio.ensure_future(session.close())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def revoked(self, hashed: str) -> None:
        """A logout (from a worker thread): that login's pages are closed with 4401."""
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._revoke, hashed)

    def _revoke(self, hashed: str) -> None:
        self._end(hashed)
        for session in self.open.get(hashed, set()):
            task = asyncio.ensure_future(session.revoke())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


def install(app: FastAPI, sip: SipServer) -> None:
    """Serve the page at /softphone/ and its WebSocket on the admin API.

    aiortc (aioice) offers ICE candidates on every interface but loopback;
    a PBX bound to one address keeps WebRTC media on that address too.
    """
    bind = sip.config.general.bind
    if bind not in ("0.0.0.0", "::"):
        aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [bind]
    app.state.softphone = pages = Pages()
    app.state.on_logout.append(pages.revoked)
    app.include_router(router)
    app.mount("/softphone", StaticFiles(directory=WEB, html=True), name="softphone")
