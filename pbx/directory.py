"""The extension directory the SIP core consults on every request.

A read-mostly copy of the store's extensions kept in memory: digest auth needs a
password lookup per REGISTER, and a database round trip per REGISTER would cap
the registration rate.  Whoever changes extensions in the store (the admin API)
calls :meth:`Directory.reload`, so a change takes effect at once.
"""

from __future__ import annotations

from pbx.store import Store


class Directory:
    """Extension number → SIP password, refreshed from the store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._secrets: dict[str, str] = {}
        self.reload()

    def reload(self) -> None:
        self._secrets = self.store.extension_secrets()

    def password_for(self, username: str) -> str | None:
        return self._secrets.get(username)

    def __contains__(self, number: str) -> bool:
        return number in self._secrets
