"""Fixtures every test module may use: a clock moved by hand and the
in-memory call-control harness (see tests/harness.py)."""

from __future__ import annotations

import pytest

from tests.fakes import FakeClock
from tests.harness import CallHarness


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def calls() -> CallHarness:
    """The B2BUA with phones 1001–1004 (none registered yet) and no sockets."""
    return CallHarness()
