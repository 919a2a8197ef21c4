"""The link between the workers of one node: Unix stream connections.

Three kinds of frames, each sent whole with its length in front:

* ``R`` *received*: a message the kernel handed to this worker but that
  belongs to another (:mod:`pbx.workers`), with the flow it came on;
* ``S`` *send*: bytes for a TCP/TLS connection the receiving worker holds
  (a phone's connection belongs to the worker that accepted it);
* ``C`` *command*: what the admin API (in worker 0) asks of the worker an
  organisation lives on, as a JSON list ``[name, *args]``.

Streams, not datagrams: a Unix datagram socket queues at most
``net.unix.max_dgram_qlen`` messages (10 by default) for its reader, so a
burst of forwarded REGISTERs was refused (``EAGAIN``) and the phones had to
retransmit; a stream buffers by bytes, and asyncio queues what the kernel
cannot take yet.  Each worker listens; the first frame for a peer opens a
connection to it, which carries this worker's frames from then on.
Addresses are in Linux's abstract namespace (no file to clean up), named by
the supervisor's ``group`` so two nodes on one machine never cross.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
from collections.abc import Callable
from typing import Any

from pbx.sip.flow import Flow

log = logging.getLogger("pbx.transport.link")

_HEAD = struct.Struct("!cBBH")  # kind, sender, transport length, host length; then port, names, data


def link_address(group: str, index: int) -> str:
    return f"\0pbx-{group}-{index}"


def encode(kind: bytes, sender: int, flow: Flow, data: bytes) -> bytes:
    transport, host = flow.transport.encode(), flow.host.encode()
    return (_HEAD.pack(kind, sender, len(transport), len(host)) + struct.pack("!H", flow.port)
            + transport + host + data)


def decode(frame: bytes) -> tuple[bytes, int, Flow, bytes]:
    """(kind, sender, flow, data) of a frame; ValueError for a frame no worker sent."""
    try:
        kind, sender, transport_length, host_length = _HEAD.unpack_from(frame)
        (port,) = struct.unpack_from("!H", frame, _HEAD.size)
    except struct.error:
        raise ValueError("short frame") from None
    start = _HEAD.size + 2
    transport = frame[start:start + transport_length].decode()
    host = frame[start + transport_length:start + transport_length + host_length].decode()
    return kind, sender, Flow(transport, host, port), frame[start + transport_length + host_length:]


_NOWHERE = Flow("", "", 0)
_LENGTH = struct.Struct("!I")


class _Inbound(asyncio.Protocol):
    """One peer's connection to this worker: cuts its bytes into frames."""

    def __init__(self, deliver: Callable[[bytes], None]) -> None:
        self.deliver = deliver
        self.buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        start = 0
        while len(buffer) - start >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(buffer, start)
            end = start + _LENGTH.size + length
            if len(buffer) < end:
                break
            self.deliver(bytes(buffer[start + _LENGTH.size:end]))
            start = end
        del buffer[:start]


class _Outbound(asyncio.Protocol):
    """This worker's connection to one peer; what is sent before it is open waits."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.early: list[bytes] = []
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.writelines(self.early)
        self.early.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True

    def write(self, data: bytes) -> None:
        if self.transport is None:
            self.early.append(data)
        else:
            self.transport.write(data)


class WorkerLink:
    """This worker's end of the link: frames out to peers, frames in to handlers."""

    def __init__(self, group: str, index: int, count: int,
                 on_received: Callable[[bytes, Flow, int], None],
                 on_send: Callable[[bytes, Flow], None],
                 on_command: Callable[[str, list[Any]], None]) -> None:
        self.group = group
        self.index = index
        self.count = count
        self.on_received = on_received
        self.on_send = on_send
        self.on_command = on_command
        self.server: asyncio.AbstractServer | None = None
        self._peers: dict[int, _Outbound] = {}

    async def open(self) -> None:
        # sockets made here: uvloop mangles abstract addresses passed as paths
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(link_address(self.group, self.index))
        sock.listen(64)
        sock.setblocking(False)
        self.server = await asyncio.get_running_loop().create_unix_server(
            lambda: _Inbound(self.deliver), sock=sock)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for peer in self._peers.values():
            if peer.transport is not None:
                peer.transport.close()
        self._peers.clear()

    def deliver(self, frame: bytes) -> None:
        sender = -1
        try:
            kind, sender, flow, data = decode(frame)
            if kind == b"R":
                self.on_received(data, flow, sender)
            elif kind == b"S":
                self.on_send(data, flow)
            elif kind == b"C":
                name, *args = json.loads(data)
                self.on_command(name, args)
            else:
                raise ValueError(f"unknown frame kind {kind!r}")
        except Exception:
            log.exception("frame from worker %d dropped", sender)

    def _to(self, worker: int, frame: bytes) -> None:
        if self.server is None:
            log.warning("worker link closed: frame for worker %d dropped", worker)
            return
        peer = self._peers.get(worker)
        if peer is None or peer.closed:
            peer = self._peers[worker] = _Outbound()
            asyncio.get_running_loop().create_task(self._connect(worker, peer))
        peer.write(_LENGTH.pack(len(frame)) + frame)

    async def _connect(self, worker: int, peer: _Outbound) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(link_address(self.group, worker))  # local: at once or refused
            sock.setblocking(False)
            await asyncio.get_running_loop().create_unix_connection(lambda: peer, sock=sock)
        except OSError as exc:  # that worker is not up yet, or gone (stopping)
            sock.close()
            log.warning("worker %d unreachable: %s (%d frames dropped)", worker, exc,
                        len(peer.early))
            peer.closed = True
            if self._peers.get(worker) is peer:
                del self._peers[worker]

    def forward(self, worker: int, data: bytes, flow: Flow) -> None:
        """Hand a received message to the worker it belongs to."""
        self._to(worker, encode(b"R", self.index, flow, data))

    def send_via(self, worker: int, data: bytes, flow: Flow) -> None:
        """Have ``worker`` send ``data`` on its connection ``flow``."""
        self._to(worker, encode(b"S", self.index, flow, data))

    def command(self, worker: int, name: str, *args: Any) -> None:
        self._to(worker, encode(b"C", self.index, _NOWHERE, json.dumps([name, *args]).encode()))
