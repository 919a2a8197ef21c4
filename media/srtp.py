"""SRTP for one relay leg (RFC 3711): libsrtp through pylibsrtp, per packet.

A leg protected by SRTP has two libsrtp sessions: one that encrypts and
authenticates what we send the phone with our master key, one that checks
and decrypts what the phone sends with its key.  The keys come from SDES
(RFC 4568, ``a=crypto`` in the SDP, parsed in :mod:`pbx.sdp`); this module
only knows crypto-suite names and key material, never SIP.

Each packet costs one libsrtp call (about 1.6 µs for a 172-byte G.711
packet on this machine, ``bench/relay.py``); libsrtp has no batch call and
none is needed: the relay already handles one datagram per callback.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from pylibsrtp import Error, Policy, Session

__all__ = ["KEY_LENGTH", "SUITES", "Session", "SrtpError", "SrtpKey", "receiver", "sender"]

# RFC 4568 §6.2 suite names → libsrtp profiles (RFC 3711 default transforms)
SUITES = {
    "AES_CM_128_HMAC_SHA1_80": Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
}
KEY_LENGTH = 30  # 128-bit master key + 112-bit master salt (RFC 3711 §8.2)

SrtpError = Error  # libsrtp refused a packet: authentication, replay, a damaged header


@dataclass(frozen=True, slots=True)
class SrtpKey:
    """One direction's master key and salt for a crypto suite."""

    suite: str
    key: bytes

    def __post_init__(self) -> None:
        if self.suite not in SUITES:
            raise ValueError(f"unsupported SRTP crypto suite {self.suite!r}")
        if len(self.key) != KEY_LENGTH:
            raise ValueError(f"an SRTP master key and salt is {KEY_LENGTH} bytes")

    @classmethod
    def generate(cls, suite: str) -> SrtpKey:
        """A fresh random key (RFC 4568 §6.1: a new key for every offer or answer)."""
        return cls(suite, secrets.token_bytes(KEY_LENGTH))

    def __repr__(self) -> str:
        return f"SrtpKey({self.suite}, …)"  # never a key in a log


def sender(key: SrtpKey) -> Session:
    """The session that protects our stream: one SSRC per leg, any value.

    ``allow_repeat_tx``: the relay may forward a phone's duplicated packet
    with the same sequence number; libsrtp would refuse to protect it twice.
    """
    policy = Policy(key=key.key, ssrc_type=Policy.SSRC_ANY_OUTBOUND,
                    srtp_profile=SUITES[key.suite])
    policy.allow_repeat_tx = True
    return Session(policy)


def receiver(key: SrtpKey) -> Session:
    """The session that checks the phone's stream (any SSRC it starts; replays refused)."""
    return Session(Policy(key=key.key, ssrc_type=Policy.SSRC_ANY_INBOUND,
                          srtp_profile=SUITES[key.suite]))
