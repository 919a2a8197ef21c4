"""Secrets people type, stored so a stolen database does not give them away:
scrypt (RFC 7914) with a salt of their own.  Admin API passwords and mailbox
PINs alike; checking costs tens of milliseconds on purpose, so callers on
the event loop run it in a worker thread."""

from __future__ import annotations

import hashlib
import hmac
import secrets

SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str) -> str:
    """``scrypt$<salt>$<digest>``, both hex."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    """Does ``password`` hash to ``stored``?  False for anything malformed (or empty)."""
    try:
        _, salt, digest = stored.split("$")
        candidate = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), **SCRYPT)
    except ValueError:
        return False
    return hmac.compare_digest(candidate.hex(), digest)
