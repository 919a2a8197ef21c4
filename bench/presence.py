#!/usr/bin/env python3
"""Presence under load: what a look at an organisation costs.

The presence watch (``pbx/presence.py``) looks at the extensions of an
organisation someone follows: on a call event at those in a call (now or at
the last look), on a registration at that one, on a directory reload, a
profile's end and every 60 s at all of them.  A look is the line (from the
live calls' dialogs and the location service) and the profile in force
(:meth:`Presence.active`).  This builds an organisation of ``--extensions``
extensions, each with the four default profiles, a weekly Lunch schedule
and half of them with a manual profile until later; half are registered and
a tenth are in a call.  Printed: the time of a full look and of a call
event's look (``statuses_of``, median and p99 of ``--rounds``), and of one
PIDF document.  Not included: the live calls' dialogs
(``extension_dialogs``), which BLF computes on every call event already.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pbx.calls.views import DialogState  # noqa: E402
from pbx.directory import Tenant  # noqa: E402
from pbx.location import Binding, LocationService  # noqa: E402
from pbx.models import Extension, Profile, ProfileSchedule  # noqa: E402
from pbx.presence import PresenceStatus, pidf, statuses_of  # noqa: E402
from pbx.profiles import DEFAULT_PROFILES, Presence, zone  # noqa: E402


def organisation(count: int, now: float) -> tuple[Tenant, LocationService, dict[str, tuple]]:
    tz = zone("Europe/Stockholm")
    extensions, profiles, schedules = {}, [], []
    location = LocationService()
    for i in range(count):
        number = str(10000 + i)
        ids = []
        for name, accept, divert, match in DEFAULT_PROFILES:
            ids.append(len(profiles) + 1)
            profiles.append(Profile(id=ids[-1], organisation_id=1, extension=number, name=name,
                                    accept=accept, divert=divert, calendar_match=match))
        schedules.append(ProfileSchedule(id=i + 1, organisation_id=1, extension=number,
                                         profile_id=ids[1], days="mon,tue,wed,thu,fri",
                                         start="12:00", end="13:00"))
        manual = i % 2 == 0
        extensions[number] = Extension(organisation_id=1, number=number, secret="x",
                                       profile_id=ids[2] if manual else None,
                                       profile_until=now + 3600 if manual else None)
        if i % 2:
            location.load([Binding(id=f"b{i}", aor=f"sip:{number}@acme.test",
                                   contact=f"sip:{number}@127.0.0.1:5060", expires_at=now + 3600,
                                   call_id=f"c{i}", cseq=1, source_transport="UDP",
                                   source_host="127.0.0.1", source_port=5060)])
    tenant = Tenant(1, "acme", "acme.test", extensions=extensions,
                    presence=Presence.of(tz, profiles, schedules, []))
    dialogs = {str(10000 + i): (DialogState(f"c{i}-b", "recipient", "confirmed"),)
               for i in range(0, count, 10)}
    return tenant, location, dialogs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--extensions", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    now = time.time()
    tenant, location, dialogs = organisation(args.extensions, now)
    def timed(only: set[str] | None) -> list[float]:
        times = []
        for _ in range(args.rounds):
            started = time.perf_counter()
            statuses_of(tenant, dialogs,
                        lambda number: bool(location.lookup(tenant.aor(number), now)), now, only)
            times.append(time.perf_counter() - started)
        return sorted(times)

    looks, call_looks = timed(None), timed(set(dialogs))
    status = PresenceStatus("10000", "on_call", "Lunch", now + 3600)
    documents = []
    for _ in range(1000):
        started = time.perf_counter()
        pidf("sip:10000@acme.test", status, zone("Europe/Stockholm"))
        documents.append(time.perf_counter() - started)
    print(f"extensions               {args.extensions} ({len(dialogs)} in a call)")
    for name, times in (("full look", looks), ("call event's look", call_looks)):
        print(f"{name:<24} median {statistics.median(times) * 1000:.2f} ms, "
              f"p99 {times[int(0.99 * (len(times) - 1))] * 1000:.2f} ms")
    print(f"per extension            {statistics.median(looks) / args.extensions * 1e6:.1f} µs")
    print(f"one PIDF document        median {statistics.median(documents) * 1e6:.0f} µs")


if __name__ == "__main__":
    main()
