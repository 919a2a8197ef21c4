"""The transaction layer (RFC 3261 §17, with the RFC 6026 fixes), sans-IO.

Four state machines: INVITE and non-INVITE, client and server.  Every entry
point takes ``now`` (seconds, any monotonic clock); the layer never sleeps or
reads a clock.  It returns work in two queues: messages to send
(:meth:`TransactionLayer.messages_to_send`) and events for the transaction
user (:meth:`TransactionLayer.next_event`).  One heap holds every timer;
:meth:`get_timer` says when :meth:`handle_timer` wants to run next.
"""

from __future__ import annotations

import enum
import heapq
import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from pbx.sip.errors import LocalProtocolError
from pbx.sip.message import Headers, Request, Response

Message = Request | Response
MAGIC = "z9hG4bK"


class State(enum.Enum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    ACCEPTED = "accepted"  # RFC 6026
    TERMINATED = "terminated"


@dataclass(eq=False, slots=True)
class Transaction:
    """State shared by the four kinds; ``key`` is how messages find it."""

    key: tuple[Any, ...]
    request: Request
    dest: Any
    reliable: bool
    state: State
    is_client: bool
    last_response: Response | None = None
    ack: Request | None = None
    interval: float = 0.0
    timers: dict[str, float] = field(default_factory=dict)

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def is_invite(self) -> bool:
        return self.request.method == "INVITE"


ClientTransaction = Transaction
ServerTransaction = Transaction


@dataclass(frozen=True, slots=True)
class RequestReceived:
    tx: Transaction
    request: Request


@dataclass(frozen=True, slots=True)
class AckReceived:
    """An ACK for a 2xx: end to end, outside any transaction (§17.2.1)."""

    request: Request
    dest: Any


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    tx: Transaction
    response: Response


@dataclass(frozen=True, slots=True)
class StrayResponse:
    """A response that matches no client transaction (e.g. a late 2xx retransmission)."""

    response: Response
    dest: Any


@dataclass(frozen=True, slots=True)
class TransactionTimeout:
    tx: Transaction


@dataclass(frozen=True, slots=True)
class TransactionTerminated:
    tx: Transaction


Event = (
    RequestReceived | AckReceived | ResponseReceived | StrayResponse | TransactionTimeout
    | TransactionTerminated
)


def _server_key(request: Request, method: str) -> tuple[Any, ...]:
    """§17.2.3: branch + sent-by + method; RFC 2543 peers get the old rule."""
    via = request.vias[0]
    branch = via.branch or ""
    if branch.startswith(MAGIC):
        return ("s", branch, via.host, via.port, method)
    return (
        "s2543", str(request.uri), request.to_addr.tag, request.from_addr.tag, request.call_id,
        request.cseq.number, str(via), method,
    )


def _client_key(message: Message, method: str) -> tuple[Any, ...]:
    return ("c", message.vias[0].branch, method)


def build_cancel(invite: Request) -> Request:
    """The CANCEL for a pending INVITE (§9.1)."""
    headers = Headers()
    headers.add("Via", invite.headers.get_all("Via")[0])
    for name in ("Route",):
        for value in invite.headers.get_all(name):
            headers.add(name, value)
    headers.add("Max-Forwards", "70")
    headers.add("From", invite.headers.get("From") or "")
    headers.add("To", invite.headers.get("To") or "")
    headers.add("Call-ID", invite.call_id)
    headers.add("CSeq", f"{invite.cseq.number} CANCEL")
    return Request("CANCEL", invite.uri, headers)


def build_ack(invite: Request, response: Response) -> Request:
    """The ACK the client transaction sends for a non-2xx final response (§17.1.1.3)."""
    headers = Headers()
    headers.add("Via", invite.headers.get_all("Via")[0])
    for value in invite.headers.get_all("Route"):
        headers.add("Route", value)
    headers.add("Max-Forwards", "70")
    headers.add("From", invite.headers.get("From") or "")
    headers.add("To", response.headers.get("To") or "")
    headers.add("Call-ID", invite.call_id)
    headers.add("CSeq", f"{invite.cseq.number} ACK")
    return Request("ACK", invite.uri, headers)


class TransactionLayer:
    """All transactions of one SIP element."""

    def __init__(self, t1: float = 0.5, t2: float = 4.0, t4: float = 5.0) -> None:
        self.t1, self.t2, self.t4 = t1, t2, t4
        self.transactions: dict[tuple[Any, ...], Transaction] = {}
        self._heap: list[tuple[float, int, Transaction, str]] = []
        self._seq = itertools.count()
        self._outbox: list[tuple[Any, Message]] = []
        self._events: deque[Event] = deque()

    # ------------------------------------------------------------ queues

    def messages_to_send(self) -> list[tuple[Any, Message]]:
        out, self._outbox = self._outbox, []
        return out

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def __len__(self) -> int:
        return len(self.transactions)

    # ------------------------------------------------------------ timers

    def _start(self, tx: Transaction, name: str, delay: float, now: float) -> None:
        deadline = now + delay
        tx.timers[name] = deadline
        heapq.heappush(self._heap, (deadline, next(self._seq), tx, name))

    def get_timer(self) -> float | None:
        heap = self._heap
        while heap:
            deadline, _, tx, name = heap[0]
            if tx.timers.get(name) == deadline and tx.state is not State.TERMINATED:
                return deadline
            heapq.heappop(heap)  # cancelled or superseded
        return None

    def handle_timer(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, tx, name = heapq.heappop(heap)
            if tx.timers.get(name) != deadline or tx.state is State.TERMINATED:
                continue
            del tx.timers[name]
            self._fire(tx, name, now)

    def _fire(self, tx: Transaction, name: str, now: float) -> None:
        if name in ("A", "E"):  # client retransmission
            if tx.state in (State.CALLING, State.TRYING) or (
                name == "E" and tx.state is State.PROCEEDING
            ):
                self._outbox.append((tx.dest, tx.request))
                if name == "A":
                    tx.interval *= 2
                elif tx.state is State.PROCEEDING:
                    tx.interval = self.t2
                else:
                    tx.interval = min(tx.interval * 2, self.t2)
                self._start(tx, name, tx.interval, now)
        elif name == "G":  # INVITE server: resend the final response until ACK
            if tx.state is State.COMPLETED and tx.last_response is not None:
                self._outbox.append((tx.dest, tx.last_response))
                tx.interval = min(tx.interval * 2, self.t2)
                self._start(tx, "G", tx.interval, now)
        elif name in ("B", "F", "H"):
            if name == "H" or tx.state in (State.CALLING, State.TRYING, State.PROCEEDING):
                self._events.append(TransactionTimeout(tx))
                self._terminate(tx)
        else:  # D, I, J, K, L, M: the wait is over
            self._terminate(tx)

    def _terminate(self, tx: Transaction) -> None:
        if tx.state is State.TERMINATED:
            return
        tx.state = State.TERMINATED
        tx.timers.clear()
        self.transactions.pop(tx.key, None)
        self._events.append(TransactionTerminated(tx))

    # ------------------------------------------------------------ client side

    def send_request(self, request: Request, dest: Any, reliable: bool, now: float) -> Transaction:
        """Start a client transaction; ACK for a 2xx is not one (send it directly)."""
        if request.method == "ACK":
            raise LocalProtocolError("ACK for a 2xx is sent outside transactions")
        key = _client_key(request, request.method)
        if key in self.transactions:
            raise LocalProtocolError(f"branch reused: {key}")
        invite = request.method == "INVITE"
        tx = Transaction(
            key, request, dest, reliable, State.CALLING if invite else State.TRYING, True
        )
        self.transactions[key] = tx
        self._outbox.append((dest, request))
        if not reliable:
            tx.interval = self.t1
            self._start(tx, "A" if invite else "E", self.t1, now)
        self._start(tx, "B" if invite else "F", 64 * self.t1, now)
        return tx

    def _client_response(self, response: Response, dest: Any, now: float) -> None:
        tx = self.transactions.get(_client_key(response, response.cseq.method))
        if tx is None or not tx.is_client:
            self._events.append(StrayResponse(response, dest))
            return
        status = response.status
        if tx.is_invite:
            self._invite_client(tx, response, status, now)
        else:
            self._non_invite_client(tx, response, status, now)

    def _invite_client(self, tx: Transaction, response: Response, status: int, now: float) -> None:
        state = tx.state
        if status < 200:
            if state in (State.CALLING, State.PROCEEDING):
                tx.state = State.PROCEEDING
                tx.timers.pop("A", None)
                self._events.append(ResponseReceived(tx, response))
        elif status < 300:
            if state in (State.CALLING, State.PROCEEDING):
                tx.state = State.ACCEPTED
                tx.timers.pop("A", None)
                tx.timers.pop("B", None)
                self._start(tx, "M", 64 * self.t1, now)
            if tx.state is State.ACCEPTED:
                self._events.append(ResponseReceived(tx, response))  # the TU ACKs each 2xx
        else:
            if state in (State.CALLING, State.PROCEEDING):
                tx.state = State.COMPLETED
                tx.timers.pop("A", None)
                tx.timers.pop("B", None)
                tx.ack = build_ack(tx.request, response)
                self._outbox.append((tx.dest, tx.ack))
                self._events.append(ResponseReceived(tx, response))
                if tx.reliable:
                    self._terminate(tx)
                else:
                    self._start(tx, "D", 32.0, now)
            elif state is State.COMPLETED and tx.ack is not None:
                self._outbox.append((tx.dest, tx.ack))  # a retransmitted final: ACK again

    def _non_invite_client(
        self, tx: Transaction, response: Response, status: int, now: float
    ) -> None:
        if tx.state not in (State.TRYING, State.PROCEEDING):
            return  # retransmissions in Completed are absorbed
        if status < 200:
            tx.state = State.PROCEEDING
            self._events.append(ResponseReceived(tx, response))
            return
        tx.state = State.COMPLETED
        tx.timers.pop("E", None)
        tx.timers.pop("F", None)
        self._events.append(ResponseReceived(tx, response))
        if tx.reliable:
            self._terminate(tx)
        else:
            self._start(tx, "K", self.t4, now)

    # ------------------------------------------------------------ server side

    def receive(self, message: Message, dest: Any, reliable: bool, now: float) -> None:
        """Feed a parsed message that arrived from ``dest``."""
        if isinstance(message, Response):
            self._client_response(message, dest, now)
            return
        method = message.method
        if method == "ACK":
            tx = self.transactions.get(_server_key(message, "INVITE"))
            if tx is None or tx.state is State.ACCEPTED:
                self._events.append(AckReceived(message, dest))
                return
            if tx.state is State.COMPLETED:
                tx.state = State.CONFIRMED
                tx.timers.pop("G", None)
                tx.timers.pop("H", None)
                if reliable:
                    self._terminate(tx)
                else:
                    self._start(tx, "I", self.t4, now)
            return  # ACKs in Confirmed are absorbed
        key = _server_key(message, method)
        tx = self.transactions.get(key)
        if tx is not None:
            # a retransmission: resend what we last said, if anything (§17.2.1, §17.2.2)
            if tx.last_response is not None and tx.state in (
                State.PROCEEDING, State.COMPLETED, State.TRYING,
            ):
                self._outbox.append((tx.dest, tx.last_response))
            return
        invite = method == "INVITE"
        tx = Transaction(
            key, message, dest, reliable, State.PROCEEDING if invite else State.TRYING, False
        )
        self.transactions[key] = tx
        if invite:
            # §17.2.1: 100 Trying at once, so the caller stops retransmitting
            trying = Response(100, "Trying", _trying_headers(message))
            tx.last_response = trying
            self._outbox.append((dest, trying))
        self._events.append(RequestReceived(tx, message))

    def send_response(self, response: Response, now: float) -> None:
        """Send a response through the server transaction it answers."""
        method = response.cseq.method
        if method == "ACK":
            raise LocalProtocolError("ACK is never answered")
        request_key = self._response_key(response, method)
        tx = self.transactions.get(request_key)
        if tx is None or tx.is_client:
            raise LocalProtocolError(f"no server transaction for {response!r} ({method})")
        if tx.state in (State.COMPLETED, State.CONFIRMED, State.ACCEPTED, State.TERMINATED):
            if tx.state is State.ACCEPTED and 200 <= response.status < 300:
                self._outbox.append((tx.dest, response))  # the TU resends its 2xx (§13.3.1.4)
                return
            raise LocalProtocolError(f"transaction {tx.state.value}: cannot send {response!r}")
        tx.last_response = response
        self._outbox.append((tx.dest, response))
        status = response.status
        if status < 200:
            if not tx.is_invite:
                tx.state = State.PROCEEDING
            return
        if tx.is_invite:
            if status < 300:
                tx.state = State.ACCEPTED
                self._start(tx, "L", 64 * self.t1, now)
            else:
                tx.state = State.COMPLETED
                if not tx.reliable:
                    tx.interval = self.t1
                    self._start(tx, "G", self.t1, now)
                self._start(tx, "H", 64 * self.t1, now)
        else:
            tx.state = State.COMPLETED
            if tx.reliable:
                self._terminate(tx)
            else:
                self._start(tx, "J", 64 * self.t1, now)

    def _response_key(self, response: Response, method: str) -> tuple[Any, ...]:
        via = response.vias[0]
        branch = via.branch or ""
        if branch.startswith(MAGIC):
            return ("s", branch, via.host, via.port, method)
        for key, tx in self.transactions.items():
            if key[0] == "s2543" and key[-1] == method and not tx.is_client:
                request = tx.request
                if (
                    request.call_id == response.call_id
                    and request.cseq.number == response.cseq.number
                    and request.from_addr.tag == response.from_addr.tag
                ):
                    return key
        return ("s", branch, via.host, via.port, method)

    def find_invite_server(self, cancel: Request) -> Transaction | None:
        """The INVITE server transaction a CANCEL cancels (§9.2)."""
        return self.transactions.get(_server_key(cancel, "INVITE"))


def _trying_headers(request: Request) -> Headers:
    headers = Headers()
    for name, value in request.headers:
        if name in ("Via", "From", "To", "Call-ID", "CSeq", "Timestamp"):
            headers.add(name, value)
    return headers
