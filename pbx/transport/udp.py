"""SIP over UDP (RFC 3261 §18): one datagram is one message.

IPv4-mapped IPv6 source addresses (from a dual-stack ``::`` socket) are
reported as plain IPv4 so a phone has one identity whichever way it arrives.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from collections.abc import Callable

from pbx.sip.flow import Flow

log = logging.getLogger("pbx.transport.udp")

SO_MEMINFO = getattr(socket, "SO_MEMINFO", 55)  # Linux; Python's socket module lacks the name

Receiver = Callable[[bytes, Flow], None]


def plain_host(host: str) -> str:
    """``::ffff:192.0.2.1`` → ``192.0.2.1``; anything else unchanged."""
    return host[7:] if host.startswith("::ffff:") and "." in host else host


class UdpTransport(asyncio.DatagramProtocol):
    """The UDP listener; also the socket every UDP request from us leaves by."""

    name = "UDP"

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.transport: asyncio.DatagramTransport | None = None
        self.family = socket.AF_INET
        self.sock: socket.socket | None = None
        self.datagrams = 0  # read since the last take_counts(), and their bytes
        self.payload_bytes = 0

    @classmethod
    async def listen(cls, host: str, port: int, receiver: Receiver,
                     reuse_port: bool = False) -> UdpTransport:
        """Bind ``host:port``; with ``reuse_port`` beside the node's other workers
        (SO_REUSEPORT: the kernel spreads senders over them by address hash)."""
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        if family == socket.AF_INET6 and host == "::":
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        _, protocol = await loop.create_datagram_endpoint(lambda: cls(receiver), sock=sock)
        protocol.family = family
        protocol.sock = sock
        return protocol

    def take_counts(self) -> tuple[int, int]:
        """Datagrams read and their bytes since the last call (the read rate)."""
        counts = self.datagrams, self.payload_bytes
        self.datagrams = self.payload_bytes = 0
        return counts

    def backlog_bytes(self) -> int:
        """Bytes of datagrams the kernel holds for us, not yet read (its accounting,
        overhead included: ~1.3 kB for a 500-byte request): how far we are behind.
        SO_MEMINFO's first field, one system call; 0 where the system lacks it."""
        if self.sock is None or self.sock.fileno() < 0:
            return 0
        try:
            return int.from_bytes(self.sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, 4),
                                  sys.byteorder)
        except OSError:
            return 0

    @property
    def local_port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:  # type: ignore[type-arg]
        if not data.strip(b"\r\n\x00 "):
            return  # CRLF / NUL keep-alives some phones send to hold a NAT binding open
        self.datagrams += 1
        self.payload_bytes += len(data)
        self.receiver(data, Flow("UDP", plain_host(addr[0]), addr[1]))

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error: %s", exc)

    def send(self, data: bytes, flow: Flow) -> bool:
        if self.transport is None or self.transport.is_closing():
            return False
        host = flow.host
        if self.family == socket.AF_INET6 and ":" not in host:
            host = "::ffff:" + host
        elif self.family == socket.AF_INET and ":" in host:
            return False
        self.transport.sendto(data, (host, flow.port))
        return True

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
