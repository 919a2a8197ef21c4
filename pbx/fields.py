"""Field types shared by the configuration file and the API models."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any

from pydantic import BeforeValidator


def split_commas(value: Any) -> Any:
    """``"1002, 1003"`` (a sip.conf value) → ``("1002", "1003")``; lists pass."""
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


def check_networks(value: tuple[str, ...]) -> tuple[str, ...]:
    """Each item an IP address or network (CIDR), else ValueError naming it."""
    for item in value:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"{item!r} is not an address or CIDR") from None
    return value


Listed = Annotated[tuple[str, ...], BeforeValidator(split_commas)]
"""A list written as ``a, b, c`` in sip.conf, or as a JSON list."""
