"""The RTP port pool: even ports for RTP, the odd one above each for RTCP (RFC 3550 §11).

Freed ports go to the back of the queue so a port just released is the last
to be handed out again: late packets for an ended call then reach a closed
socket instead of the next call.
"""

from __future__ import annotations

from collections import deque


class PortsExhausted(RuntimeError):
    """Every RTP port of the range is in use: the call cannot be anchored (SIP 503)."""


class PortPool:
    """Even RTP ports in ``[start, end]`` whose RTCP port ``p + 1`` is in the range too."""

    def __init__(self, start: int, end: int) -> None:
        first = start + (start & 1)
        if not 0 < first < end <= 65535:
            raise ValueError(f"RTP port range {start}-{end} holds no even/odd port pair")
        self.start = first
        self.end = end
        self._free: deque[int] = deque(range(first, end, 2))
        self._in_use: set[int] = set()
        self.size = len(self._free)

    @property
    def free(self) -> int:
        return len(self._free)

    def allocate(self) -> int:
        """The least recently used free even port."""
        if not self._free:
            raise PortsExhausted(f"all {self.size} RTP ports of {self.start}-{self.end} in use")
        port = self._free.popleft()
        self._in_use.add(port)
        return port

    def release(self, port: int) -> None:
        """Give ``port`` back; releasing a port that is not allocated is a bug (a leak's twin)."""
        try:
            self._in_use.remove(port)
        except KeyError:
            raise ValueError(f"RTP port {port} is not allocated") from None
        self._free.append(port)
