"""Two-factor login codes (RFC 6238): right codes pass once, drift of one step is
forgiven, wrong and replayed codes fail."""

from __future__ import annotations

import pyotp

from admin_api.auth import OneTimeCodes

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def test_codes_pass_once_within_one_step_of_drift() -> None:
    codes, totp = OneTimeCodes(), pyotp.TOTP(SECRET)
    now = 1_800_000_000.0
    assert codes.accept(1, SECRET, totp.at(now), now)
    assert not codes.accept(1, SECRET, totp.at(now), now)  # replayed
    assert codes.accept(1, SECRET, totp.at(now + 30), now)  # the phone's clock runs ahead
    assert not codes.accept(2, SECRET, totp.at(now + 90), now)  # three steps off
    assert not codes.accept(2, SECRET, "000000" if totp.at(now) != "000000" else "111111", now)
    assert codes.accept(2, SECRET, totp.at(now - 30), now)  # another user has their own window
