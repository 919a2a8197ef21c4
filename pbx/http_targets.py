"""Where the PBX's own HTTP requests may go.  A URL a user gives it (a
calendar feed, a webhook) must not let them probe the PBX's own network
(server-side request forgery): such URLs reach public addresses only,
unless the operator allows private ones for receivers on premises."""

from __future__ import annotations

import ipaddress
import socket


def private_address(host: str, port: int) -> str | None:
    """The first address ``host`` resolves to that is not public (loopback,
    private, link-local, reserved), or None when all are.  Raises OSError
    when it does not resolve.  Blocking: call it off the event loop."""
    for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP):
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            return str(address)
    return None
