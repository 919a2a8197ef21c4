"""``pbx ivr simulate``: walk an IVR of the store with keys at a time, and
print where the caller goes (the store as configured, seeded as ``pbx
serve`` seeds it, so the config file's IVRs are there on a fresh install)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TextIO

from ivr.simulate import render, simulate
from ivr.tenant import hours
from pbx.config import Config
from pbx.directory import Directory
from pbx.profiles import zone
from pbx.store import Store


def simulate_command(config: Config, name: str, steps: Sequence[str], at: datetime | None,
                     organisation: str | None, out: TextIO, err: TextIO) -> int:
    """Print the walk; 1 when there is no such organisation or IVR."""
    store = Store(config.database_url)
    try:
        store.seed(config)
        directory = Directory(store, config.general.realm)
    finally:
        store.close()
    tenant = directory.default if organisation is None else next(
        (t for t in directory.tenants.values() if t.slug == organisation), None)
    if tenant is None:
        print(f"pbx: no organisation {organisation}", file=err)
        return 1
    tree = next((t for t in tenant.ivrs.values() if t.name == name), None)
    if tree is None:
        known = ", ".join(sorted(t.name for t in tenant.ivrs.values())) or "none"
        print(f"pbx: no IVR {name} in organisation {tenant.slug} (IVRs: {known})", file=err)
        return 1
    local = zone(tenant.timezone)
    when = datetime.now(local) if at is None else at if at.tzinfo else at.replace(tzinfo=local)
    walk = simulate(tree, steps, when.timestamp(), hours(tenant), tenant.extensions)
    print(f"IVR {tree.name} ({tree.number}) at {when:%a %Y-%m-%d %H:%M %Z}", file=out)
    print(render(walk), file=out)
    return 0
