"""The location service (RFC 3261 §10): address-of-record → contact bindings.

Pure and in memory, like Kamailio's usrloc in write-back mode: the registrar
changes bindings here at once, and the server flushes the changed ones to the
store in batches (``take_changes``), so a REGISTER never waits on a disk.
Time is wall-clock seconds passed in, because expiry must survive a restart.
"""

from __future__ import annotations

import heapq
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from pbx.sip.flow import Flow
from pbx.sip.message import Address


@dataclass(slots=True)
class Binding:
    """One registered contact, in memory (the store's ``models.Binding`` row
    has the same fields; a plain dataclass is ~50x cheaper to build per REGISTER)."""

    id: str
    aor: str
    contact: str
    expires_at: float
    call_id: str
    cseq: int
    source_transport: str
    source_host: str
    source_port: int
    q: float = 1.0
    instance: str = ""
    user_agent: str = ""
    login: str = ""  # the SIP user name that registered it: the extension's or a device's
    path: str = ""  # the Path an edge proxy (Kamailio) put in the REGISTER, comma-joined (RFC 3327)


def path_routes(binding: Binding) -> list[str]:
    """The Route headers a request to the device carries: its Path (RFC 3327 §5.3),
    so it goes back through the proxies its REGISTER came through."""
    return [binding.path] if binding.path else []


def reach(binding: Binding, contact_host: str, contact_port: int | None) -> Flow:
    """Where requests to a registered device go.

    Registered through an edge proxy (a Path): to the first proxy of the
    Path, which knows the way on.  Over TCP/TLS: the connection it registered on (RFC 5626), the only way
    through its NAT or firewall.  Over UDP: the Contact address, unless that
    is a private address other than the one the REGISTER came from, i.e. the
    phone sits behind NAT (Kamailio's ``nat_uac_test``): then the source.
    """
    source = Flow(binding.source_transport, binding.source_host, binding.source_port)
    if binding.path:
        first = Address.parse(binding.path.split(">", 1)[0] + ">").uri
        transport = first.params.get("transport", "udp").upper()
        if transport == binding.source_transport and first.host == binding.source_host \
                and (first.port or 5060) == binding.source_port:
            return source  # the very connection the proxy sent the REGISTER on
        return Flow(transport, first.host, first.port or 5060)
    if binding.source_transport != "UDP":
        return source
    try:
        address = ipaddress.ip_address(contact_host)
    except ValueError:
        return source  # a host name we would have to resolve: the source is sure
    behind_nat = address.is_private and not address.is_loopback and contact_host != binding.source_host
    if behind_nat:
        return source
    return Flow("UDP", contact_host, contact_port or 5060)


def binding_id(aor: str, key: str) -> str:
    return f"{aor}|{key}"


class LocationService:
    """All bindings by AOR, with expiry and change tracking for write-back."""

    def __init__(self) -> None:
        self._by_aor: dict[str, dict[str, Binding]] = {}
        self._expiry: list[tuple[float, str, str]] = []
        self._dirty: dict[str, Binding] = {}
        self._removed: set[str] = set()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def load(self, bindings: Iterable[Binding]) -> None:
        """Restore bindings read from the store at start-up (not marked dirty)."""
        for binding in bindings:
            self._store(binding)
            heapq.heappush(self._expiry, (binding.expires_at, binding.aor, binding.id))

    def lookup(self, aor: str, now: float) -> list[Binding]:
        """The live bindings of ``aor``, highest q first (RFC 3261 §16.6 order)."""
        bindings = self._by_aor.get(aor)
        if not bindings:
            return []
        live = [b for b in bindings.values() if b.expires_at > now]
        live.sort(key=lambda b: -b.q)
        return live

    def _store(self, binding: Binding) -> None:
        bindings = self._by_aor.setdefault(binding.aor, {})
        if binding.id not in bindings:
            self._count += 1
        bindings[binding.id] = binding

    def get(self, aor: str, key: str) -> Binding | None:
        return self._by_aor.get(aor, {}).get(binding_id(aor, key))

    def put(self, binding: Binding) -> None:
        """Add or refresh a binding."""
        self._store(binding)
        heapq.heappush(self._expiry, (binding.expires_at, binding.aor, binding.id))
        self._dirty[binding.id] = binding
        self._removed.discard(binding.id)
        if len(self._expiry) > 4 * len(self) + 64:
            self._compact()

    def _compact(self) -> None:
        """Rebuild the expiry heap from live bindings: refreshes leave stale entries."""
        self._expiry = [
            (b.expires_at, aor, ident)
            for aor, bindings in self._by_aor.items()
            for ident, b in bindings.items()
        ]
        heapq.heapify(self._expiry)

    def remove(self, aor: str, ident: str) -> None:
        if self._drop(aor, ident):
            self._dirty.pop(ident, None)
            self._removed.add(ident)

    def _drop(self, aor: str, ident: str) -> bool:
        bindings = self._by_aor.get(aor)
        if bindings is None or bindings.pop(ident, None) is None:
            return False
        self._count -= 1
        if not bindings:
            del self._by_aor[aor]
        return True

    def follow(self, aors: Iterable[str] | None, saved: Iterable[Binding]) -> None:
        """Take the bindings of ``aors`` as another node saved them (``saved``,
        read from the store; ``aors`` None: every AOR in ``saved``).  Changes of
        ours not yet written are newer and stay; nothing is marked to write."""
        by_aor: dict[str, dict[str, Binding]] = {}
        for binding in saved:
            by_aor.setdefault(binding.aor, {})[binding.id] = binding
        for aor in by_aor if aors is None else aors:
            theirs = by_aor.get(aor, {})
            for ident in [i for i in self._by_aor.get(aor, {}) if i not in theirs]:
                if ident not in self._dirty:
                    self._drop(aor, ident)
            for ident, binding in theirs.items():
                if ident not in self._dirty and ident not in self._removed:
                    self._store(binding)
                    heapq.heappush(self._expiry, (binding.expires_at, aor, ident))

    def remove_all(self, aor: str, login: str | None = None) -> int:
        """Drop the bindings of ``aor`` (only those ``login`` made, if given)."""
        idents = [ident for ident, binding in self._by_aor.get(aor, {}).items()
                  if login is None or binding.login == login]
        for ident in idents:
            self.remove(aor, ident)
        return len(idents)

    def next_expiry(self) -> float | None:
        return self._expiry[0][0] if self._expiry else None

    def expire(self, now: float) -> list[Binding]:
        """Drop every binding whose time has come; returns the ones dropped."""
        dropped = []
        while self._expiry and self._expiry[0][0] <= now:
            _, aor, ident = heapq.heappop(self._expiry)
            binding = self._by_aor.get(aor, {}).get(ident)
            if binding is not None and binding.expires_at <= now:
                self.remove(aor, ident)
                dropped.append(binding)
        return dropped

    def restore_changes(self, upserts: list[Binding], removals: list[str]) -> None:
        """Mark a batch dirty again after a failed write, unless newer changes superseded it."""
        for binding in upserts:
            if self._by_aor.get(binding.aor, {}).get(binding.id) is binding:
                self._dirty.setdefault(binding.id, binding)
        for ident in removals:
            aor = ident.split("|", 1)[0]
            if ident not in self._by_aor.get(aor, {}):
                self._removed.add(ident)

    def take_changes(self) -> tuple[list[Binding], list[str]]:
        """Changed bindings and removed ids since the last call (for the store)."""
        upserts, removals = list(self._dirty.values()), list(self._removed)
        self._dirty.clear()
        self._removed.clear()
        return upserts, removals
