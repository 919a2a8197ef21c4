"""Hypothesis profiles for the fuzz tests: ``ci`` (default) is bounded, a few
seconds per target; ``long`` (``PBX_FUZZ=long``) runs 200 times as many examples
for a search on demand.  ``PBX_FUZZ_EXAMPLES`` sets the count directly."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow],
           "print_blob": True}
settings.register_profile("ci", max_examples=300, **_COMMON)
settings.register_profile("long", max_examples=60_000, **_COMMON)
settings.load_profile(os.environ.get("PBX_FUZZ", "ci"))
if os.environ.get("PBX_FUZZ_EXAMPLES"):
    settings.register_profile("custom", max_examples=int(os.environ["PBX_FUZZ_EXAMPLES"]),
                              **_COMMON)
    settings.load_profile("custom")
