"""Where a message came from or goes: the one transport fact the pure stack needs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Flow:
    """Where a message came from: transport, remote host and port.

    Requests to a registered phone go back along its flow (RFC 5626 §5.3 in
    spirit, RFC 3581 for UDP) so phones behind NAT and on TCP/TLS stay reachable.
    """

    transport: str
    host: str
    port: int
