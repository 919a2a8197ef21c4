"""The dial plan and ring strategies, on a real in-memory store."""

from __future__ import annotations

import dataclasses
import random
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ivr.schedule import Definition
from ivr.tree import IvrTree, read_yaml
from pbx.config import (
    Config, ConferenceConfig, ExtensionConfig, General, NumberConfig, RingGroupConfig,
    ScheduleConfig, TimeConditionConfig,
)
from pbx.directory import Directory, Tenant
from pbx.models import Profile, ProfileSchedule
from pbx.profiles import Presence
from pbx.router import (
    ExtensionDest, PickupDest, RingGroupDest, RingStep, Router, ServiceDest, Unknown,
)
from pbx.store import Store

NOW = 1_800_000_000.0  # when the dial plan is asked (nothing here depends on the time)

MEMBERS = ("1001", "1002", "1003")
TZ = ZoneInfo("Europe/Stockholm")
NOW = datetime(2026, 11, 30, 10, tzinfo=TZ).timestamp()  # a Monday morning
IVR = IvrTree.model_validate(read_yaml((Path(__file__).parents[2] / "ivr-demo.yaml").read_text(
    encoding="utf-8")))


def make_router(strategy: str, **group: object) -> tuple[Router, Tenant]:
    config = Config(
        general=General(),
        extensions=tuple(ExtensionConfig(number=n, secret="s3cret") for n in (*MEMBERS, "1004")),
        ring_groups=(
            RingGroupConfig(
                number="600", strategy=strategy, members=MEMBERS + ("9999",), **group  # type: ignore[arg-type]
            ),
        ),
        conferences=(ConferenceConfig(number="800"),),
        numbers=(NumberConfig(number="+4681234567", target="600"),
                 NumberConfig(number="+4681234568", target="1004"),
                 NumberConfig(number="+4681234500", target="500"),
                 NumberConfig(number="+4681234510", target="510")),
        schedules=(ScheduleConfig("office-hours", Definition(
            **{day: ["08:00-17:00"] for day in ("mon", "tue", "wed", "thu", "fri")})),),
        time_conditions=(
            TimeConditionConfig(number="500", schedule="office-hours", open="600",
                                closed="voicemail:1004"),
            TimeConditionConfig(number="501", schedule="office-hours", open="1001",
                                closed="500"),
        ),
        ivrs=(IVR.model_copy(update={"number": "510"}),),
    )
    store = Store("sqlite://")
    store.seed(config)
    return Router("8", "133", rng=random.Random(7)), Directory(store, "pbx.test").default


def test_resolve_kinds() -> None:
    router, tenant = make_router("ringall")
    assert router.resolve(tenant, "1001", NOW) == ExtensionDest("1001")
    assert router.resolve(tenant, "600", NOW) == RingGroupDest("600")
    assert router.resolve(tenant, "800", NOW) == ServiceDest("conference", "800")
    assert router.resolve(tenant, "81002", NOW) == ServiceDest("conference", "81002")  # personal room
    assert router.resolve(tenant, "*8", NOW) == PickupDest()
    assert router.resolve(tenant, "**1002", NOW) == PickupDest("1002")
    assert router.resolve(tenant, "**5555", NOW) == Unknown("**5555")
    assert router.resolve(tenant, "5555", NOW) == Unknown("5555")
    assert router.resolve(tenant, "133", NOW) == ServiceDest("voicemail-menu", "133")
    # DIDs reach what they point at
    assert router.resolve(tenant, "+4681234567", NOW) == RingGroupDest("600")
    assert router.resolve(tenant, "+4681234568", NOW) == ExtensionDest("1004")
    assert router.resolve(tenant, "510", NOW) == ServiceDest("ivr", "510")
    assert router.resolve(tenant, "+4681234510", NOW) == ServiceDest("ivr", "510")

    assert router.resolve(tenant, "voicemail:1004", NOW) == ServiceDest("voicemail", "1004")
    assert router.resolve(tenant, "voicemail:5555", NOW) == Unknown("voicemail:5555")


def test_a_time_condition_leads_by_its_schedule_at_now() -> None:
    """500: the ring group in office hours, 1004's mailbox otherwise (also through its
    DID); 501 leads to 500 when closed, so to the mailbox."""
    router, tenant = make_router("ringall")
    evening = datetime(2026, 11, 30, 17, tzinfo=TZ).timestamp()
    christmas_eve = datetime(2026, 12, 24, 10, tzinfo=TZ).timestamp()
    assert router.resolve(tenant, "500", NOW) == RingGroupDest("600")
    assert router.resolve(tenant, "+4681234500", NOW) == RingGroupDest("600")
    assert router.resolve(tenant, "501", NOW) == ExtensionDest("1001")
    for closed in (evening, christmas_eve):
        assert router.resolve(tenant, "500", closed) == ServiceDest("voicemail", "1004")
        assert router.resolve(tenant, "+4681234500", closed) == ServiceDest("voicemail", "1004")
        assert router.resolve(tenant, "501", closed) == ServiceDest("voicemail", "1004")
    # closed by hand: the override decides at once
    schedules = {"office-hours": tenant.schedules["office-hours"].switched("close", NOW - 60)}
    overridden = dataclasses.replace(tenant, schedules=schedules)
    assert router.resolve(overridden, "500", NOW) == ServiceDest("voicemail", "1004")
    # a schedule that is gone: the closed branch
    assert router.resolve(dataclasses.replace(tenant, schedules={}), "500", NOW) == ServiceDest(
        "voicemail", "1004")


def test_ringall_rings_every_known_member_at_once() -> None:
    router, tenant = make_router("ringall", timeout=40)
    group = tenant.ring_groups["600"]
    assert router.plan(tenant, group, 0.0) == [RingStep(MEMBERS, 40)]  # 9999 is no extension


def test_linear_hunts_in_order_within_the_group_timeout() -> None:
    router, tenant = make_router("linear", member_timeout=15, timeout=40)
    group = tenant.ring_groups["600"]
    assert router.plan(tenant, group, 0.0) == [
        RingStep(("1001",), 15), RingStep(("1002",), 15), RingStep(("1003",), 10),
    ]


def test_roundrobin_starts_after_the_last_answerer() -> None:
    router, tenant = make_router("roundrobin")
    group = tenant.ring_groups["600"]
    first = [s.members[0] for s in router.plan(tenant, group, 0.0)]
    assert first == ["1001", "1002", "1003"]
    router.answered(tenant, "600", "1002", 10.0)
    assert [s.members[0] for s in router.plan(tenant, group, 11.0)] == ["1003", "1001", "1002"]


def test_leastrecent_and_fewestcalls() -> None:
    router, tenant = make_router("leastrecent")
    group = tenant.ring_groups["600"]
    router.answered(tenant, "600", "1001", 10.0)
    router.answered(tenant, "600", "1003", 20.0)
    assert [s.members[0] for s in router.plan(tenant, group, 30.0)] == ["1002", "1001", "1003"]
    fewest, tenant = make_router("fewestcalls")
    group = tenant.ring_groups["600"]
    for member, times in (("1001", 3), ("1002", 1), ("1003", 2)):
        for _ in range(times):
            fewest.answered(tenant, "600", member, 1.0)
    assert [s.members[0] for s in fewest.plan(tenant, group, 2.0)] == ["1002", "1003", "1001"]


def test_random_is_a_permutation() -> None:
    router, tenant = make_router("random")
    group = tenant.ring_groups["600"]
    orders = {tuple(s.members[0] for s in router.plan(tenant, group, 0.0)) for _ in range(30)}
    assert all(sorted(order) == sorted(MEMBERS) for order in orders)
    assert len(orders) > 1


def test_unknown_strategy_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="unknown strategy"):
        RingGroupConfig(number="600", strategy="sometimes")


def test_members_whose_profile_takes_no_queue_calls_are_skipped() -> None:
    """1002 takes direct calls only, all week; 1003 is away 12:00-13:00 on Mondays."""
    router, tenant = make_router("linear", member_timeout=15, timeout=60)
    direct_only = Profile(id=1, organisation_id=tenant.id, extension="1002", name="Focus",
                          accept="direct")
    away = Profile(id=2, organisation_id=tenant.id, extension="1003", name="Lunch", accept="none")
    every_day = "mon,tue,wed,thu,fri,sat,sun"
    schedules = [
        ProfileSchedule(id=1, organisation_id=tenant.id, extension="1002", profile_id=1,
                        days=every_day, start="00:00", end="24:00"),
        ProfileSchedule(id=2, organisation_id=tenant.id, extension="1003", profile_id=2,
                        days="mon", start="12:00", end="13:00"),
    ]
    tenant = dataclasses.replace(tenant, presence=Presence.of(TZ, [direct_only, away], schedules, []))
    group = tenant.ring_groups["600"]
    lunch = datetime(2026, 11, 30, 12, 30, tzinfo=TZ).timestamp()  # a Monday
    after = datetime(2026, 11, 30, 13, 0, tzinfo=TZ).timestamp()
    assert [s.members for s in router.plan(tenant, group, lunch)] == [("1001",)]
    assert [s.members for s in router.plan(tenant, group, after)] == [("1001",), ("1003",)]
