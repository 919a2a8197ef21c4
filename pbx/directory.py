"""The extension directory the SIP core consults on every request.

A read-mostly copy of the store's extensions and ring groups kept in memory:
digest auth needs a password lookup per REGISTER and the router a lookup per
INVITE, and a database round trip each would cap the rates.  Whoever changes
them in the store (the admin API) calls :meth:`Directory.reload`, so a change
takes effect at once.
"""

from __future__ import annotations

from pbx.models import Extension, Number, RingGroup
from pbx.store import Store


class Directory:
    """Extension number → extension (with its SIP password) and ring groups."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.extensions: dict[str, Extension] = {}
        self.ring_groups: dict[str, RingGroup] = {}
        self.numbers: dict[str, Number] = {}
        self.reload()

    def reload(self) -> None:
        self.extensions = {ext.number: ext for ext in self.store.extensions()}
        self.ring_groups = {group.number: group for group in self.store.ring_groups()}
        self.numbers = {entry.number: entry for entry in self.store.numbers()}

    def password_for(self, username: str) -> str | None:
        ext = self.extensions.get(username)
        return ext.secret if ext is not None else None

    def __contains__(self, number: str) -> bool:
        return number in self.extensions
