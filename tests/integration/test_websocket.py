"""SIP over WebSocket (RFC 7118) against a running PBX: a web client (the
``websockets`` library, as JsSIP would speak) registers with digest auth over
a ``sip`` WebSocket, plain (ws) and over TLS (wss), calls a UDP phone, and is
called back over the same connection (Via WS or WSS); a handshake without the
``sip`` subprotocol is refused."""

from __future__ import annotations

import itertools
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from pbx.sip.auth import build_authorization
from pbx.sip.message import Request, Response, make_response
from pbx.sip.parser import parse_message
from tests.integration.peers import Pbx, free_ports, running_pbx
from tests.integration.sipclient import SipClient, register

pytestmark = pytest.mark.integration

USERS = {"1001": "pw-1001-secret", "1002": "pw-1002-secret"}
INVALID = "df7jal23ls0d.invalid"  # RFC 7118 §5.2: a web client has no address of its own
_n = itertools.count(1)


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    ws, wss = free_ports(1), free_ports(1)
    with running_pbx(tmp_path_factory.mktemp("ws"), USERS, transports="udp, tcp, tls, ws, wss",
                     ws_port=ws, wss_port=wss) as server:
        server.ws_port, server.wss_port = ws, wss  # type: ignore[attr-defined]
        yield server


def web_socket(pbx: Pbx, scheme: str) -> ClientConnection:
    """A ``sip`` WebSocket to the PBX, over TLS for ``wss`` (its own certificate,
    made at start: the test trusts it as a browser told to would)."""
    if scheme == "ws":
        return connect(f"ws://{pbx.host}:{pbx.ws_port}", subprotocols=["sip"])  # type: ignore[attr-defined, list-item]
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return connect(f"wss://{pbx.host}:{pbx.wss_port}", subprotocols=["sip"],  # type: ignore[attr-defined, list-item]
                   ssl=context)


class WebClient:
    """A SIP user agent over one WebSocket."""

    def __init__(self, ws: ClientConnection, user: str, transport: str = "WS") -> None:
        self.user = user
        self.ws = ws
        self.transport = transport
        self.call_id = f"ws-{next(_n)}@{INVALID}"
        self.tag = f"t{next(_n)}"

    def request(self, method: str, to: str, cseq: int, *, body: str = "",
                headers: str = "", to_tag: str = "") -> None:
        target = f"sip:{to}@pbx.test"
        text = (f"{method} {target} SIP/2.0\r\n"
                f"Via: SIP/2.0/{self.transport} {INVALID};branch=z9hG4bK-ws{next(_n)}\r\n"
                f"Max-Forwards: 70\r\nFrom: <sip:{self.user}@pbx.test>;tag={self.tag}\r\n"
                f"To: <{target}>{';tag=' + to_tag if to_tag else ''}\r\n"
                f"Call-ID: {self.call_id}\r\nCSeq: {cseq} {method}\r\n"
                f"Contact: <sip:{self.user}@{INVALID};transport=ws>\r\n{headers}"
                + ("Content-Type: application/sdp\r\n" if body else "")
                + f"Content-Length: {len(body)}\r\n\r\n{body}")
        self.ws.send(text)

    def receive(self, timeout: float = 5.0) -> Request | Response:
        frame = self.ws.recv(timeout)
        message = parse_message(frame.encode() if isinstance(frame, str) else frame)
        assert isinstance(message, (Request, Response))
        return message

    def final(self, timeout: float = 5.0) -> Response:
        while True:
            message = self.receive(timeout)
            if isinstance(message, Response) and message.status >= 200:
                return message

    def authenticated(self, method: str, to: str, *, body: str = "", password: str) -> Response:
        """``method`` to ``to``; a 401/407 is answered once with credentials."""
        self.request(method, to, 1, body=body)
        first = self.final()
        if first.status not in (401, 407):
            return first
        header = "WWW-Authenticate" if first.status == 401 else "Proxy-Authenticate"
        answer = build_authorization(first.headers.get(header) or "", method=method,
                                     uri=f"sip:{to}@pbx.test", username=self.user,
                                     password=password)
        name = "Authorization" if first.status == 401 else "Proxy-Authorization"
        self.request(method, to, 2, body=body, headers=f"{name}: {answer}\r\n")
        return self.final()

def sdp(port: int) -> str:
    return (f"v=0\r\no=web 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


@pytest.mark.parametrize("scheme", ["ws", "wss"])
def test_a_web_client_registers_calls_and_is_called_over_its_websocket(
        pbx: Pbx, tmp_path: Path, scheme: str) -> None:
    with web_socket(pbx, scheme) as ws, SipClient(pbx.host, pbx.sip_port) as phone:
        web = WebClient(ws, "1001", scheme.upper())
        registered = web.authenticated("REGISTER", "1001", password=USERS["1001"])
        assert registered.status == 200, pbx.log()[-2000:]
        assert any(INVALID in str(c.uri) for c in registered.contacts)
        register(phone, "1002", USERS["1002"])

        picked: list[Request] = []
        worker = threading.Thread(target=lambda: picked.append(phone.pick_up(41010)))
        worker.start()
        web.call_id, web.tag = f"{scheme}-call@{INVALID}", "caller"
        ok = web.authenticated("INVITE", "1002", body=sdp(40010), password=USERS["1001"])
        worker.join()
        assert ok.status == 200 and b"m=audio" in ok.body, pbx.log()[-2000:]
        web.request("ACK", "1002", 2, to_tag=ok.to_addr.tag or "")
        assert picked and picked[0].from_addr.uri.user == "1001"
        web.request("BYE", "1002", 3, to_tag=ok.to_addr.tag or "")
        assert web.final().status == 200
        assert phone.hung_up()

        # the PBX reaches the web client over the connection it registered on
        results: list[Response | None] = []
        caller = threading.Thread(target=lambda: results.append(
            phone.invite("1002", USERS["1002"], "1001", body=phone.sdp(41012))[1]))
        caller.start()
        invite = web.receive()
        while not (isinstance(invite, Request) and invite.method == "INVITE"):
            invite = web.receive()
        assert f"SIP/2.0/{scheme.upper()} " in (invite.headers.get("Via") or "")
        web.ws.send(bytes(make_response(invite, 486, to_tag="busy")).decode())
        caller.join()
        assert results and results[0] is not None and results[0].status == 486


def test_a_handshake_without_the_sip_subprotocol_is_refused(pbx: Pbx) -> None:
    with pytest.raises(InvalidStatus) as refused, \
            connect(f"ws://{pbx.host}:{pbx.ws_port}"):  # type: ignore[attr-defined]
        pass
    assert refused.value.response.status_code == 400
