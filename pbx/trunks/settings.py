"""A trunk's settings (``[name]`` with ``type = trunk`` in sip.conf, and the
admin API): one validated model for both, so a bad value is refused the same
way wherever it comes from (a config error naming the key, a 422 naming the
field)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pbx.fields import Listed, check_networks

TRUNK_NAME = r"^[A-Za-z][A-Za-z0-9_.-]{0,39}$"
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]{1,253})$")
DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061}


def host_port(text: str, transport: str = "udp") -> tuple[str, int]:
    """``carrier.example:5080`` → (host, port); a bare host takes the transport's port."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    if not host or not _HOST.match(host if ":" not in host else f"[{host}]"):
        raise ValueError(f"{text!r} is not a host name or address")
    if port and not (port.isascii() and port.isdigit()):
        raise ValueError(f"{text!r}: the port must be a number")
    number = int(port) if port else DEFAULT_PORTS[transport]
    if not 0 < number < 65536:
        raise ValueError(f"{text!r}: the port must be 1-65535")
    return host, number


class TrunkSettings(BaseModel):
    """A trunk to a carrier, as Asterisk/3CX operators set one up."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=TRUNK_NAME)
    host: str = Field(description="the carrier's registrar/proxy: a host name or address, "
                                  "optionally host:port")
    transport: Literal["udp", "tcp", "tls"] = "udp"
    tls_verify: bool = Field(True, description="tls: check the carrier's certificate and that "
                                               "it names the host (no: check nothing)")
    tls_ca_file: str = Field("", max_length=1000, description="tls: a PEM file of the CAs "
                             "trusted for this carrier; empty: the system's CAs")
    outbound_proxy: str = Field("", description="host[:port] every request goes through")
    auth: Literal["register", "ip"] = Field(
        "register", description="register: the PBX registers with digest credentials; "
                                "ip: the carrier is known by its addresses, no credentials")
    username: str = Field("", max_length=80)
    password: str = Field("", max_length=200)
    auth_username: str = Field("", max_length=80, description="if the digest user differs")
    from_domain: str = Field("", max_length=253, description="default: the carrier's host")
    expiry: int = Field(3600, ge=60, le=86400, description="seconds asked for a registration")
    addresses: Listed = Field(
        (), description="addresses or CIDRs the carrier sends from (ip trunks; "
                        "register trunks are known by the host's addresses too)")
    dids: Listed = Field((), description="the numbers it carries; empty: any of "
                                                  "the organisation's numbers")
    codecs: Listed = Field((), description="the codecs offered to the carrier, in order "
                                           "(PCMU, PCMA, G722, opus, telephone-event); "
                                           "empty: the node's")
    media_encryption: Literal["off", "optional", "required"] = Field(
        "off", description="SRTP (SDES, RFC 4568) on the carrier's legs: off; optional "
                           "(keys offered, plain RTP taken); required (RTP/SAVP only, "
                           "else 488); keys travel in the SIP, so use transport = tls")
    did_from: Literal["ruri", "to"] = Field(
        "ruri", description="where an inbound INVITE names the number dialled")
    caller_id: Literal["from", "pai", "rpid"] = Field(
        "from", description="where the caller ID goes on calls out: From, "
                            "P-Asserted-Identity (RFC 3325) or Remote-Party-ID")
    number_format: Literal["e164", "e164-noplus", "national"] = "e164"
    country: str = Field("SE", pattern=r"^[A-Z]{2}$")
    max_channels: int = Field(0, ge=0, le=10000, description="concurrent calls; 0: no limit")
    shared: bool = Field(False, description="the operator's: every organisation may route out")
    enabled: bool = True

    _networks = field_validator("addresses")(check_networks)

    @field_validator("codecs")
    @classmethod
    def _codecs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        known = ("PCMU", "PCMA", "G722", "opus", "telephone-event")
        for name in value:
            if name not in known:
                raise ValueError(f"unknown codec {name!r}; use {', '.join(known)}")
        return value

    @field_validator("dids")
    @classmethod
    def _dids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if not re.match(r"^\+?[0-9]{2,20}$", item):
                raise ValueError(f"{item!r} is not a phone number")
        return value

    @model_validator(mode="after")
    def _complete(self) -> TrunkSettings:
        host_port(self.host, self.transport)
        if self.outbound_proxy:
            host_port(self.outbound_proxy, self.transport)
        if self.auth == "register" and not (self.username and self.password):
            raise ValueError("a registering trunk needs username and password")
        if self.tls_ca_file and self.transport != "tls":
            raise ValueError("tls_ca_file needs transport tls")
        if self.tls_ca_file and not Path(self.tls_ca_file).is_file():
            raise ValueError(f"tls_ca_file {self.tls_ca_file!r} is not a readable file")
        return self

    @property
    def registrar(self) -> tuple[str, int]:
        return host_port(self.host, self.transport)

    @property
    def next_hop(self) -> tuple[str, int]:
        """Where requests to the carrier go: the outbound proxy, else its host."""
        return host_port(self.outbound_proxy or self.host, self.transport)

    @property
    def domain(self) -> str:
        return self.from_domain or self.registrar[0]
