"""The link between the workers of one node: a Unix datagram socket each.

Three kinds of frames, each one datagram (a SIP message fits: the kernel
takes datagrams far larger than SIP's 64 KiB limit on a local socket):

* ``R`` *received*: a message the kernel handed to this worker but that
  belongs to another (:mod:`pbx.workers`), with the flow it came on;
* ``S`` *send*: bytes for a TCP/TLS connection the receiving worker holds
  (a phone's connection belongs to the worker that accepted it);
* ``C`` *command*: what the admin API (in worker 0) asks of the worker an
  organisation lives on, as a JSON list ``[name, *args]``.

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


class WorkerLink(asyncio.DatagramProtocol):
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
        self.transport: asyncio.DatagramTransport | None = None
        self.sock: socket.socket | None = None

    async def open(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        sock.setblocking(False)
        sock.bind(link_address(self.group, self.index))
        self.sock = sock
        await asyncio.get_running_loop().create_datagram_endpoint(lambda: self, sock=sock)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def datagram_received(self, frame: bytes, addr: Any) -> None:
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

    def error_received(self, exc: Exception) -> None:
        log.warning("worker link: %s", exc)

    def _to(self, worker: int, frame: bytes) -> None:
        """Straight on the socket: uvloop's ``sendto`` mangles abstract addresses."""
        if self.sock is None or self.transport is None or self.transport.is_closing():
            log.warning("worker link closed: frame for worker %d dropped", worker)
            return
        try:
            self.sock.sendto(frame, link_address(self.group, worker))
        except OSError as exc:  # that worker is gone (stopping), or too far behind
            log.warning("worker %d unreachable: %s", worker, exc)

    def forward(self, worker: int, data: bytes, flow: Flow) -> None:
        """Hand a received message to the worker it belongs to."""
        self._to(worker, encode(b"R", self.index, flow, data))

    def send_via(self, worker: int, data: bytes, flow: Flow) -> None:
        """Have ``worker`` send ``data`` on its connection ``flow``."""
        self._to(worker, encode(b"S", self.index, flow, data))

    def command(self, worker: int, name: str, *args: Any) -> None:
        self._to(worker, encode(b"C", self.index, _NOWHERE, json.dumps([name, *args]).encode()))
