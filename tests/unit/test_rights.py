"""License rights (the Telavox table) and what the directory's tenants answer
from the store: an extension's license, its call policy over the node's
defaults, its outbound routes in order; refusals as SIP answers and events."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from pbx import rights
from pbx.config import CallPolicyConfig, General
from pbx.directory import Directory
from pbx.events import CallRefused, as_dict
from pbx.models import (
    ApiUser, CallPolicy, Extension, License, Organisation, OutboundRoute, Profile,
)
from pbx.numbering import COUNTRIES, NumberingPlan
from pbx.refusal import Refusal
from pbx.store import Store

SE = NumberingPlan(COUNTRIES["SE"])
HOME, EMERGENCY = SE.normalise("08-123 45 67"), SE.normalise("112")
NOW = 1_800_000_000.0


@pytest.mark.parametrize(("kind", "out", "inbound", "forward", "number"), [
    ("free", "A free license makes no external calls", "A free license takes no external calls",
     "A free license does not forward to external numbers; a mobile license does",
     "a free license comes with no number of its own (fixed and mobile licenses do)"),
    ("fixed", None, None,
     "A fixed license does not forward to external numbers; a mobile license does", None),
    ("mobile", None, None, None, None),
    (None, None, None, None, None),  # an extension no user holds: not bound by a license
])
def test_the_license_table(kind: str | None, out: str | None, inbound: str | None,
                           forward: str | None, number: str | None) -> None:
    def reason(refusal: Refusal | None) -> str | None:
        assert refusal is None or (refusal.status, refusal.cause) == (403, "license")
        return None if refusal is None else refusal.reason

    assert reason(rights.may_call_out(kind, HOME)) == out
    assert reason(rights.may_receive_external(kind)) == inbound
    assert reason(rights.may_forward_external(kind)) == forward
    assert rights.may_hold_number(kind) == number
    assert rights.may_call_out(kind, EMERGENCY) is None  # 112 from any phone


def test_a_refusal_is_the_sip_answer_and_an_event() -> None:
    refusal = rights.may_call_out("free", HOME)
    assert refusal is not None
    assert refusal.phrase == "Forbidden - A free license makes no external calls"
    event = refusal.event(3, "1001", "08-123 45 67", NOW)
    assert event == CallRefused(3, "1001", "08-123 45 67", 403,
                                "A free license makes no external calls", "license", NOW)
    assert as_dict(event)["type"] == "call.refused"


def _store() -> tuple[Store, int]:
    store = Store("sqlite://")
    with Session(store.engine) as db:
        org = Organisation(slug="acme", name="Acme", domain="acme.test")
        db.add(org)
        db.flush()
        assert org.id is not None
        for number in ("1001", "1002", "1003", "1004", "1005"):
            db.add(Extension(organisation_id=org.id, number=number, secret="s3cret-pw",
                             caller_id_number="+4681234500" if number == "1001" else ""))
        users = [ApiUser(organisation_id=org.id, username=name, password_hash="x",
                         extension=ext)
                 for name, ext in (("anna", "1001"), ("cilla", "1002"), ("dag", "1003"),
                                   ("eva", "1004"), ("olle", ""))]
        db.add_all(users)
        db.flush()
        for user, kind, state in ((users[0], "mobile", "active"), (users[1], "fixed", "active"),
                                  (users[2], "free", "active"), (users[3], "mobile", "frozen"),
                                  (users[4], "fixed", "active")):
            db.add(License(organisation_id=org.id, kind=kind, state=state, user_id=user.id))
        db.add(CallPolicy(organisation_id=org.id, country="DK", max_calls_per_hour=5,
                          international_prefixes="+46, +47"))
        for name, position, patterns in (("world", 2, "+."), ("broken", 0, "+46[9-1]"),
                                         ("denmark", 1, "+45.")):
            db.add(OutboundRoute(organisation_id=org.id, name=name, position=position,
                                 patterns=patterns, trunks="carrier-a"))
        db.add(Profile(organisation_id=org.id, extension="1001", name="Meeting",
                       accept="none", caller_id="+4681234599"))
        db.commit()
        return store, org.id


def test_tenants_know_licenses_policy_and_routes() -> None:
    store, org = _store()
    general = General(max_outbound_calls=20, max_calls_per_hour=100, outside_prefix="0")
    tenant = Directory(store, "pbx.test", policy=general).tenants[org]
    assert tenant.licenses == {"1001": "mobile", "1002": "fixed", "1003": "free"}
    assert "1004" in tenant.unlicensed  # frozen: cannot register or call at all
    assert tenant.may_call_out("1003", HOME) == Refusal(
        403, "A free license makes no external calls", "license")
    assert tenant.may_call_out("1003", EMERGENCY) is None
    assert tenant.may_call_out("1002", HOME) is None
    assert tenant.may_receive_external("1003") is not None
    assert tenant.may_forward_external("1002") is not None
    assert tenant.may_forward_external("1001") is None
    assert tenant.may_call_out("1005", HOME) is None  # nobody's: not bound by a license

    assert tenant.policy == CallPolicyConfig(
        country="DK", outside_prefix="0", max_outbound_calls=20, max_calls_per_hour=5,
        international_prefixes=("+46", "+47"))
    assert tenant.dialling == NumberingPlan(COUNTRIES["DK"], "0")
    assert tenant.policy.max_call_duration == 0  # the node's: no limit
    assert [r.name for r in tenant.routes] == ["denmark", "world"]  # the unreadable one left out

    ext = tenant.extensions["1001"]
    assert tenant.outward_number(ext, NOW) == "+4681234500"
    with Session(store.engine) as db:
        row = db.get(Extension, ext.id)
        assert row is not None
        row.profile_id = db.exec(select(Profile.id)).one()  # Meeting, chosen by hand
        db.add(row)
        db.commit()
    directory = Directory(store, "pbx.test")
    tenant = directory.tenants[org]
    assert tenant.outward_number(tenant.extensions["1001"], NOW) == "+4681234599"
    assert tenant.outward_number(tenant.extensions["1002"], NOW) == ""
    assert directory.default.policy == CallPolicyConfig()  # no [general] given: the defaults
