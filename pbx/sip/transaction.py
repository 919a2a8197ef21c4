"""The transaction layer (RFC 3261 §17, with the RFC 6026 fixes), sans-IO.

Four state machines: INVITE and non-INVITE, client and server.  Every entry
point takes ``now`` (seconds, any monotonic clock); the layer never sleeps or
reads a clock.  It returns work in two queues: messages to send
(:meth:`TransactionLayer.messages_to_send`) and events for the transaction
user (:meth:`TransactionLayer.next_event`).  One heap holds every timer;
:meth:`TransactionLayer.get_timer` says when :meth:`TransactionLayer.handle_timer`
wants to run next.

Timers A, E and G retransmit; B, F and H give up; D, I, J, K, L and M keep a
finished transaction around to absorb retransmissions.  A transaction runs at
most one timer of each kind at once (A+B, E+F, G+H, then one of the waits), so
it keeps the sequence number of the heap entry that is live for each kind and
stale entries are skipped when they surface (lazy deletion).  On reliable
transports nothing is retransmitted and the waits D, I, J and K are zero.
"""

from __future__ import annotations

import enum
import heapq
import itertools
from collections import deque
from dataclasses import dataclass
from typing import Any

from pbx.sip.errors import LocalProtocolError
from pbx.sip.flow import Flow  # opaque here: where a message goes or came from
from pbx.sip.message import Headers, Request, Response, make_response

Message = Request | Response
MAGIC = "z9hG4bK"  # §8.1.1.7: branches of RFC 3261 elements start with this
TIMER_D = 32.0  # §17.1.1.2: "at least 32 seconds" on unreliable transports
_RETRANSMIT_TIMERS = frozenset(("A", "E", "G"))
RFC2543 = "rfc2543"  # first item of the keys of transactions with pre-3261 branches


class State(enum.Enum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    ACCEPTED = "accepted"  # RFC 6026 §7.1, §7.2
    TERMINATED = "terminated"


_OPEN = (State.TRYING, State.PROCEEDING)  # a server transaction still owes its final answer


@dataclass(eq=False, slots=True)
class Transaction:
    """What the four kinds share.  Identity equality: the TU keys its state by ``id(tx)``.

    ``dest`` is where requests (client) or responses (server) go: the next hop,
    or the flow the request came from.  ``key`` is how messages find it.
    """

    key: tuple[Any, ...]
    request: Request
    method: str
    dest: Flow
    reliable: bool
    state: State
    interval: float = 0.0  # current retransmission interval of A, E or G
    retransmit_seq: int = 0  # heap entry of the running A/E/G timer, 0 if none
    lifetime_seq: int = 0  # heap entry of the running B/D/F/H/I/J/K/L/M timer


@dataclass(eq=False, slots=True)
class ClientTransaction(Transaction):
    ack: Request | None = None  # the ACK we sent for a non-2xx final (§17.1.1.3)


@dataclass(eq=False, slots=True)
class ServerTransaction(Transaction):
    last_response: Response | None = None  # resent when the request is retransmitted
    via_key: tuple[str | None, str | None] | None = None  # raw first Via line and CSeq
    response_key: tuple[Any, ...] | None = None  # RFC 2543 peers: how responses find it

    @property
    def answered(self) -> bool:
        """A final response went out: nothing more may be said but a 2xx retransmission."""
        return self.last_response is not None and self.last_response.status >= 200


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A new request; answer it with :meth:`TransactionLayer.send_response`."""

    tx: ServerTransaction
    request: Request


@dataclass(frozen=True, slots=True)
class AckReceived:
    """An ACK for a 2xx: end to end, outside any transaction (§17.2.1, RFC 6026 §7.1)."""

    request: Request
    dest: Flow


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """A response to our request; for INVITE also every 2xx retransmission (re-ACK it)."""

    tx: ClientTransaction
    response: Response


@dataclass(frozen=True, slots=True)
class StrayResponse:
    """A response that matches no client transaction (e.g. a 2xx after Timer M)."""

    response: Response
    dest: Flow


@dataclass(frozen=True, slots=True)
class TransactionTimeout:
    """Timer B, F or H fired: no final response (client) or no ACK (server)."""

    tx: Transaction


@dataclass(frozen=True, slots=True)
class TransportError:
    """The transport could not deliver our request (§17.1.4): the transaction is
    over; the TU treats it as a 503 from the next hop (§8.1.3.1) and fails over."""

    tx: ClientTransaction
    reason: str


@dataclass(frozen=True, slots=True)
class TransactionTerminated:
    tx: Transaction


Event = (
    RequestReceived | AckReceived | ResponseReceived | StrayResponse | TransactionTimeout
    | TransportError | TransactionTerminated
)


def _server_key(request: Request, method: str) -> tuple[Any, ...]:
    """§17.2.3: branch + sent-by + method; the RFC 2543 rule when the branch lacks the cookie.

    ``method`` is INVITE when a CANCEL (§9.2) looks for its INVITE.
    """
    via = request.vias[0]
    branch = via.params.get("branch")
    if branch is not None and branch.startswith(MAGIC):
        return (branch, via.host, via.port, method)
    return _key_2543(request, method, request.to_addr.tag)


def _key_2543(request: Request, method: str, to_tag: str | None) -> tuple[Any, ...]:
    """Request-URI, To tag, From tag, Call-ID, CSeq number, top Via and method (§17.2.3)."""
    return (
        RFC2543, str(request.uri), to_tag, request.from_addr.tag, request.call_id,
        request.cseq.number, str(request.vias[0]), method,
    )


def _response_key_2543(message: Message, method: str) -> tuple[Any, ...]:
    """What a response shares with a 2543 request: no Request-URI, the To tag may be new."""
    return (
        message.call_id, message.from_addr.tag, message.cseq.number, str(message.vias[0]), method,
    )


def _copy_top_via_and_route(request: Request, headers: Headers) -> None:
    headers.add("Via", request.headers.get_all("Via")[0])
    for value in request.headers.get_all("Route"):
        headers.add("Route", value)
    headers.add("Max-Forwards", "70")


def build_cancel(invite: Request) -> Request:
    """The CANCEL for a pending INVITE (§9.1).

    Same Request-URI, Call-ID, From, To (tags as they were: none on To for an
    initial INVITE), CSeq number and top Via, so the far end's §9.2 matching
    finds the INVITE; Route copied so it takes the same path.
    """
    headers = Headers()
    _copy_top_via_and_route(invite, headers)
    headers.add("From", invite.headers.get("From") or "")
    headers.add("To", invite.headers.get("To") or "")
    headers.add("Call-ID", invite.call_id)
    headers.add("CSeq", f"{invite.cseq.number} CANCEL")
    return Request("CANCEL", invite.uri, headers)


def build_ack(invite: Request, response: Response) -> Request:
    """The ACK the INVITE client transaction sends for a non-2xx final (§17.1.1.3).

    It belongs to the INVITE transaction (same branch), so the To comes from
    the response: it carries the tag the server put there.
    """
    headers = Headers()
    _copy_top_via_and_route(invite, headers)
    headers.add("From", invite.headers.get("From") or "")
    headers.add("To", response.headers.get("To") or "")
    headers.add("Call-ID", invite.call_id)
    headers.add("CSeq", f"{invite.cseq.number} ACK")
    return Request("ACK", invite.uri, headers)


def _trying(invite: Request) -> Response:
    """100 Trying for an INVITE; §8.2.6.1: the Timestamp is echoed."""
    response = make_response(invite, 100)
    timestamp = invite.headers.get("Timestamp")
    if timestamp is not None:
        response.headers.add("Timestamp", timestamp)
    return response


class TransactionLayer:
    """All transactions of one SIP element."""

    def __init__(self, t1: float = 0.5, t2: float = 4.0, t4: float = 5.0) -> None:
        self.t1, self.t2, self.t4 = t1, t2, t4
        self._clients: dict[tuple[Any, ...], ClientTransaction] = {}
        self._servers: dict[tuple[Any, ...], ServerTransaction] = {}
        self._servers_by_via: dict[tuple[str | None, str | None], ServerTransaction] = {}
        self._servers_2543: dict[tuple[Any, ...], ServerTransaction] = {}
        self._heap: list[tuple[float, int, Transaction, str]] = []
        self._seq = itertools.count(1)
        self._outbox: list[tuple[Flow, Message]] = []
        self._events: deque[Event] = deque()
        self.unanswered = 0  # server transactions without a final response: work in hand

    # ------------------------------------------------------------ queues

    def messages_to_send(self) -> list[tuple[Flow, Message]]:
        """Everything to put on the wire since the last call, in order."""
        out, self._outbox = self._outbox, []
        return out

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def __len__(self) -> int:
        """Live transactions, client and server."""
        return len(self._clients) + len(self._servers)

    # ------------------------------------------------------------ timers

    def _start(self, tx: Transaction, name: str, delay: float, now: float) -> None:
        """Start timer ``name``, replacing the running timer of the same kind."""
        seq = next(self._seq)
        if name in _RETRANSMIT_TIMERS:
            tx.retransmit_seq = seq
        else:
            tx.lifetime_seq = seq
        heapq.heappush(self._heap, (now + delay, seq, tx, name))

    @staticmethod
    def _live(seq: int, tx: Transaction, name: str) -> bool:
        return seq == (tx.retransmit_seq if name in _RETRANSMIT_TIMERS else tx.lifetime_seq)

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must run next, or None if no timer runs."""
        heap = self._heap
        while heap:
            deadline, seq, tx, name = heap[0]
            if self._live(seq, tx, name):
                return deadline
            heapq.heappop(heap)
        return None

    def handle_timer(self, now: float) -> None:
        """Fire every timer due by ``now``, earliest first."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, seq, tx, name = heapq.heappop(heap)
            if self._live(seq, tx, name):
                self._fire(tx, name, now)

    def _fire(self, tx: Transaction, name: str, now: float) -> None:
        if name == "A":  # §17.1.1.2: doubles without a cap; B ends it
            tx.interval *= 2
            self._outbox.append((tx.dest, tx.request))
            self._start(tx, "A", tx.interval, now)
        elif name == "E":  # §17.1.2.2: doubles up to T2, and is T2 once Proceeding
            if tx.state is State.PROCEEDING:
                tx.interval = self.t2
            else:
                tx.interval = min(tx.interval * 2, self.t2)
            self._outbox.append((tx.dest, tx.request))
            self._start(tx, "E", tx.interval, now)
        elif name == "G":  # §17.2.1: the final response again, until the ACK
            assert isinstance(tx, ServerTransaction) and tx.last_response is not None
            tx.interval = min(tx.interval * 2, self.t2)
            self._outbox.append((tx.dest, tx.last_response))
            self._start(tx, "G", tx.interval, now)
        elif name in ("B", "F", "H"):
            self._events.append(TransactionTimeout(tx))
            self._terminate(tx)
        else:  # D, I, J, K, L, M: retransmissions can no longer arrive
            self._terminate(tx)

    def _wait(self, tx: Transaction, name: str, delay: float, now: float) -> None:
        """Enter a wait state's timer; zero (reliable transports) terminates at once."""
        tx.retransmit_seq = 0
        if delay > 0:
            self._start(tx, name, delay, now)
        else:
            self._terminate(tx)

    def _terminate(self, tx: Transaction) -> None:
        if tx.state is State.TERMINATED:
            return
        if isinstance(tx, ServerTransaction) and tx.state in _OPEN:
            self.unanswered -= 1
        tx.state = State.TERMINATED
        tx.retransmit_seq = tx.lifetime_seq = 0
        if isinstance(tx, ServerTransaction):
            if self._servers.get(tx.key) is tx:
                del self._servers[tx.key]
            if tx.via_key is not None and self._servers_by_via.get(tx.via_key) is tx:
                del self._servers_by_via[tx.via_key]
            if tx.response_key is not None and self._servers_2543.get(tx.response_key) is tx:
                del self._servers_2543[tx.response_key]
        elif self._clients.get(tx.key) is tx:
            del self._clients[tx.key]
        self._events.append(TransactionTerminated(tx))

    # ------------------------------------------------------------ client side

    def send_request(
        self, request: Request, dest: Flow, reliable: bool, now: float
    ) -> ClientTransaction:
        """Start a client transaction and send ``request`` to ``dest``.

        An ACK for a 2xx is not a transaction (§17.1.1.3): send it directly.
        The top Via must carry a fresh RFC 3261 branch: it is the key (§17.1.3).
        """
        method = request.method
        if method == "ACK":
            raise LocalProtocolError("ACK for a 2xx is sent outside transactions")
        branch = request.vias[0].params.get("branch")
        if branch is None or not branch.startswith(MAGIC):
            raise LocalProtocolError(f"{method} needs a {MAGIC} branch in its top Via")
        key = (branch, method)
        if key in self._clients:
            raise LocalProtocolError(f"branch {branch} already used for a {method}")
        invite = method == "INVITE"
        tx = ClientTransaction(
            key, request, method, dest, reliable, State.CALLING if invite else State.TRYING
        )
        self._clients[key] = tx
        self._outbox.append((dest, request))
        if not reliable:
            tx.interval = self.t1
            self._start(tx, "A" if invite else "E", self.t1, now)
        self._start(tx, "B" if invite else "F", 64 * self.t1, now)
        return tx

    def transport_error(self, dest: Flow, reason: str) -> None:
        """Nothing can reach ``dest`` (a connection refused, a certificate that fails
        verification): every client transaction still waiting on it ends with
        :class:`TransportError` (§17.1.4)."""
        failed = [tx for tx in self._clients.values() if tx.dest == dest
                  and tx.state in (State.CALLING, State.TRYING, State.PROCEEDING)]
        for tx in failed:
            self._events.append(TransportError(tx, reason))
            self._terminate(tx)

    def _receive_response(self, response: Response, dest: Flow, now: float) -> None:
        """§17.1.3: the top Via branch and the CSeq method find the transaction."""
        tx = self._clients.get((response.vias[0].params.get("branch"), response.cseq.method))
        if tx is None:
            self._events.append(StrayResponse(response, dest))
        elif tx.method == "INVITE":
            self._invite_client(tx, response, now)
        else:
            self._non_invite_client(tx, response, now)

    def _invite_client(self, tx: ClientTransaction, response: Response, now: float) -> None:
        """Figure 5 of RFC 3261 as amended by RFC 6026 §7.2."""
        status = response.status
        state = tx.state
        if state is State.CALLING or state is State.PROCEEDING:
            if status < 200:
                if state is State.CALLING:
                    tx.state = State.PROCEEDING
                    tx.retransmit_seq = tx.lifetime_seq = 0  # A stops; B only guards Calling
                self._events.append(ResponseReceived(tx, response))
            elif status < 300:
                tx.state = State.ACCEPTED
                tx.retransmit_seq = 0
                self._start(tx, "M", 64 * self.t1, now)
                self._events.append(ResponseReceived(tx, response))
            else:
                tx.state = State.COMPLETED
                tx.ack = build_ack(tx.request, response)
                self._outbox.append((tx.dest, tx.ack))
                self._events.append(ResponseReceived(tx, response))
                self._wait(tx, "D", 0.0 if tx.reliable else TIMER_D, now)
        elif state is State.ACCEPTED:
            if 200 <= status < 300:
                # each 2xx (retransmission or another fork) goes up: the TU ACKs it
                self._events.append(ResponseReceived(tx, response))
        elif state is State.COMPLETED and status >= 300 and tx.ack is not None:
            self._outbox.append((tx.dest, tx.ack))  # the final again: our ACK was lost

    def _non_invite_client(self, tx: ClientTransaction, response: Response, now: float) -> None:
        """Figure 6 of RFC 3261; responses after the final are absorbed."""
        if tx.state is not State.TRYING and tx.state is not State.PROCEEDING:
            return
        if response.status < 200:
            tx.state = State.PROCEEDING
            self._events.append(ResponseReceived(tx, response))
            return
        tx.state = State.COMPLETED
        self._events.append(ResponseReceived(tx, response))
        self._wait(tx, "K", 0.0 if tx.reliable else self.t4, now)

    # ------------------------------------------------------------ server side

    def receive(self, message: Message, dest: Flow, reliable: bool, now: float) -> None:
        """Feed a parsed message that arrived from ``dest``."""
        if isinstance(message, Response):
            self._receive_response(message, dest, now)
            return
        method = message.method
        if method == "ACK":
            self._receive_ack(message, dest, now)
            return
        key = _server_key(message, method)
        tx = self._servers.get(key)
        if tx is not None:
            # §17.2.1, §17.2.2: a retransmission; say again what we last said
            state = tx.state
            response = tx.last_response
            if response is not None and (state is State.PROCEEDING or state is State.COMPLETED):
                self._outbox.append((tx.dest, response))
            return  # Trying: nothing said yet; Accepted, Confirmed: absorbed (RFC 6026 §7.1)
        invite = method == "INVITE"
        tx = ServerTransaction(
            key, message, method, dest, reliable, State.PROCEEDING if invite else State.TRYING
        )
        self._servers[key] = tx
        self.unanswered += 1
        if key[0] != RFC2543:
            # make_response copies these lines verbatim: equal text, equal key
            headers = message.headers
            via_key = (headers.get("Via"), headers.get("CSeq"))
            if via_key not in self._servers_by_via:
                tx.via_key = via_key
                self._servers_by_via[via_key] = tx
        else:
            # a response has no Request-URI: should two 2543 requests differ only
            # there, the first keeps the way back (there is no telling them apart)
            response_key = _response_key_2543(message, method)
            if response_key not in self._servers_2543:
                tx.response_key = response_key
                self._servers_2543[response_key] = tx
        if invite:
            # §17.2.1: 100 Trying at once, so the caller stops retransmitting
            tx.last_response = _trying(message)
            self._outbox.append((dest, tx.last_response))
        self._events.append(RequestReceived(tx, message))

    def _receive_ack(self, ack: Request, dest: Flow, now: float) -> None:
        """An ACK ends a Completed INVITE server transaction; one for a 2xx goes to the TU."""
        tx = self._ack_target(ack)
        if tx is None or tx.state is State.ACCEPTED:
            self._events.append(AckReceived(ack, dest))  # RFC 6026 §7.1: passed up
        elif tx.state is State.COMPLETED:
            tx.state = State.CONFIRMED
            self._wait(tx, "I", 0.0 if tx.reliable else self.t4, now)
        # in Proceeding or Confirmed the ACK is absorbed

    def _ack_target(self, ack: Request) -> ServerTransaction | None:
        """§17.2.3: the INVITE transaction an ACK belongs to.

        For an RFC 2543 peer the ACK carries the To tag of our response, which
        is the INVITE's own To tag for a re-INVITE and a new one otherwise.
        """
        key = _server_key(ack, "INVITE")
        tx = self._servers.get(key)
        if tx is not None or key[0] != RFC2543:
            return tx
        tx = self._servers.get(_key_2543(ack, "INVITE", None))
        if tx is None or tx.last_response is None:
            return None
        return tx if tx.last_response.to_addr.tag == ack.to_addr.tag else None

    def send_response(self, response: Response, now: float) -> None:
        """Send a response through the server transaction it answers.

        Raises :class:`LocalProtocolError` when there is none, or when the
        transaction has already sent its final response (except a 2xx for an
        INVITE in Accepted: the TU retransmits those itself, §13.3.1.4).
        """
        headers = response.headers
        tx = self._servers_by_via.get((headers.get("Via"), headers.get("CSeq")))
        if tx is None:
            tx = self._find_server(response)
        if tx is None:
            raise LocalProtocolError(f"no server transaction for {response!r}")
        status = response.status
        state = tx.state
        if state is not State.TRYING and state is not State.PROCEEDING:
            if state is State.ACCEPTED and 200 <= status < 300:
                self._outbox.append((tx.dest, response))
                return
            raise LocalProtocolError(f"{tx.method} transaction {state.value}: no {response!r}")
        tx.last_response = response
        self._outbox.append((tx.dest, response))
        if status < 200:
            tx.state = State.PROCEEDING
            return
        self.unanswered -= 1
        if tx.method != "INVITE":
            tx.state = State.COMPLETED
            self._wait(tx, "J", 0.0 if tx.reliable else 64 * self.t1, now)
        elif status < 300:
            tx.state = State.ACCEPTED  # RFC 6026 §7.1: the TU owns 2xx retransmission
            self._start(tx, "L", 64 * self.t1, now)
        else:
            tx.state = State.COMPLETED
            if not tx.reliable:
                tx.interval = self.t1
                self._start(tx, "G", self.t1, now)
            self._start(tx, "H", 64 * self.t1, now)

    def _find_server(self, response: Response) -> ServerTransaction | None:
        """The slow way back: a 2543 request, or the response's Via or CSeq text changed."""
        method = response.cseq.method
        via = response.vias[0]
        branch = via.params.get("branch")
        if branch is not None and branch.startswith(MAGIC):
            return self._servers.get((branch, via.host, via.port, method))
        return self._servers_2543.get(_response_key_2543(response, method))

    def find_invite_server(self, cancel: Request) -> ServerTransaction | None:
        """The INVITE server transaction a CANCEL cancels (§9.2), in whatever state."""
        return self._servers.get(_server_key(cancel, "INVITE"))
