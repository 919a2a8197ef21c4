"""The outbound planner on the real call control (in-memory harness): numbers
as dialled go out over the routes' trunks, written each trunk's way with the
user's caller ID; licenses, toll-fraud limits and the numbering plan refuse
with a reason the phone gets and a call.refused event; emergency calls go
out whatever the limits."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, select

from pbx.events import CallEnded, CallRefused
from pbx.models import (
    ApiUser, CallPolicy, Extension, License, Number, OutboundRoute, Trunk,
)
from pbx.planner import OutboundPlanner
from pbx.sip.flow import Flow
from pbx.sip.message import Request, make_response
from pbx.trunks.settings import TrunkSettings
from tests.harness import CallHarness

CARRIER = Flow("UDP", "198.51.100.7", 5060)
TRUNKS = (
    TrunkSettings(name="carrier-a", host="a.carrier.test", auth="ip", number_format="national",
                  dids=("+4681230000",)),
    TrunkSettings(name="carrier-b", host="b.carrier.test", auth="ip",
                  number_format="e164-noplus"),
)


@dataclass
class Carrier:
    organisation: int
    settings: TrunkSettings


class Carriers:
    """The trunks as call control reaches them: every one up, at the carrier."""

    def __init__(self, organisation: int) -> None:
        self.organisation = organisation

    def carrier_of(self, flow: Flow) -> Carrier | None:
        return None  # these tests call out only

    def flow_to(self, organisation: int, name: str) -> tuple[Carrier, Flow] | None:
        found = {t.name: t for t in TRUNKS}.get(name)
        return (Carrier(organisation, found), CARRIER) if found else None


def harness(**policy: object) -> CallHarness:
    """1001 shows +4681234501 and holds no license (a sip.conf phone); 1002's
    user holds a fixed license, 1003's a free one, 1004's a mobile one."""
    calls = CallHarness()
    org = calls.tenant.id
    with Session(calls.store.engine) as db:
        for trunk in TRUNKS:
            db.add(Trunk(organisation_id=org, name=trunk.name, settings=trunk.model_dump_json()))
        db.add(OutboundRoute(organisation_id=org, name="sweden", position=0,
                             patterns="+46., 112", trunks="carrier-a, carrier-b"))
        db.add(OutboundRoute(organisation_id=org, name="abroad", position=1, patterns="+.",
                             trunks="carrier-b"))
        db.add(Number(organisation_id=org, number="+4681234501", target="1001"))
        ext = db.exec(select(Extension).where(Extension.number == "1001")).one()
        ext.caller_id_number = "+4681234501"
        db.add(ext)
        for extension, kind in (("1002", "fixed"), ("1003", "free"), ("1004", "mobile")):
            user = ApiUser(organisation_id=org, username=f"u{extension}", password_hash="x",
                           extension=extension)
            db.add(user)
            db.flush()
            db.add(License(organisation_id=org, kind=kind, user_id=user.id))
        if policy:
            db.add(CallPolicy(organisation_id=org, **policy))
        db.commit()
    calls.directory.reload()
    calls.tenant = calls.directory.default
    calls.b2bua.carriers = Carriers(org)
    calls.b2bua.ringer.carriers = calls.b2bua.carriers
    calls.b2bua.planner = OutboundPlanner(calls.events)
    return calls


def carrier_invites(calls: CallHarness) -> list[Request]:
    return [m for m, flow in calls.sip.sent
            if isinstance(m, Request) and m.method == "INVITE" and flow == CARRIER]


def carrier_answers(calls: CallHarness, invite: Request, status: int) -> None:
    response = make_response(invite, status, to_tag="pstn")
    if status == 200:
        response.headers.add("Contact", "<sip:pstn@198.51.100.7>")
        response.headers.add("Content-Type", "application/sdp")
        response.body = ("v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\n"
                         "t=0 0\r\nm=audio 30000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n").encode()
    calls.b2bua.on_response(calls.tx_of(invite), response)


def final(calls: CallHarness, invite: Request) -> tuple[int, str]:
    answer = calls.responses(invite)[-1]
    return answer.status, answer.reason


async def test_a_number_as_dialled_goes_out_each_trunks_way_and_fails_over() -> None:
    calls = harness()
    invite = await calls.call("1001", "08-123-45-67")
    (first,) = carrier_invites(calls)
    assert first.uri.user == "081234567" and first.uri.host == "a.carrier.test"  # national
    assert first.from_addr.uri.user == "081234501"  # 1001's number, the trunk's way too
    carrier_answers(calls, first, 503)
    second = carrier_invites(calls)[-1]
    assert (second.uri.user, second.uri.host) == ("4681234567", "b.carrier.test")
    assert second.from_addr.uri.user == "4681234501"
    carrier_answers(calls, second, 200)
    assert calls.statuses(invite)[-1] == 200
    calls.b2bua.end_calls_of(calls.tenant.id, "1001")
    (ended,) = calls.events_of(CallEnded)
    assert (ended.trunk, ended.direction) == ("carrier-b", "outbound")  # type: ignore[attr-defined]


async def test_without_a_number_of_its_own_the_trunks_main_number_shows() -> None:
    calls = harness()
    await calls.call("1002", "+46-8-123-45-67")
    assert carrier_invites(calls)[0].from_addr.uri.user == "081230000"  # carrier-a's first DID


async def test_a_free_license_makes_no_external_calls_but_reaches_112() -> None:
    calls = harness()
    refused = await calls.call("1003", "08-123-45-67")
    assert final(calls, refused) == (403, "Forbidden - A free license makes no external calls")
    assert carrier_invites(calls) == []
    (event,) = calls.events_of(CallRefused)
    assert (event.extension, event.number, event.cause) == (  # type: ignore[attr-defined]
        "1003", "08-123-45-67", "license")
    await calls.call("1003", "112")
    assert [i.uri.user for i in carrier_invites(calls)] == ["112"]


async def test_a_mistyped_extension_is_404_and_a_mistyped_number_says_why() -> None:
    calls = harness()
    extension = await calls.call("1001", "1009")
    assert calls.statuses(extension)[-1] == 404
    number = await calls.call("1001", "081")
    assert final(calls, number) == (
        484, "Address Incomplete - A Swedish number has 6 to 10 digits after 0 or +46, not 2")
    assert calls.events_of(CallRefused)[0].cause == "number"  # type: ignore[attr-defined]
    await calls.call("1001", "+1-212-555-0100")
    assert carrier_invites(calls)[-1].uri.user == "12125550100"  # the abroad route


async def test_international_calls_off_and_emergency_calls_beyond_every_limit() -> None:
    calls = harness(international=False, max_calls_per_hour=1, max_outbound_per_extension=1)
    abroad = await calls.call("1001", "00-45-32-12-34-56")
    assert final(calls, abroad) == (403, "Forbidden - International calls are not allowed")
    await calls.call("1001", "08-123-45-67")  # at home: rings out
    again = await calls.call("1001", "08-123-45-68")
    assert final(calls, again) == (
        403, "Forbidden - Outbound calls at once: the limit per extension is 1")
    for _ in range(3):
        await calls.call("1001", "112")
    assert [i.uri.user for i in carrier_invites(calls)] == ["081234567", "112", "112", "112"]


async def test_calls_at_once_and_an_hour_follow_the_calls_as_they_end() -> None:
    calls = harness(max_calls_per_hour=2, max_outbound_per_extension=1)
    busy = await calls.call("1002", "08-123-45-67")
    carrier_answers(calls, carrier_invites(calls)[-1], 486)  # busy: the call ends at once
    assert calls.statuses(busy)[-1] == 486
    talking = await calls.call("1002", "08-123-45-68")  # the busy one no longer counts
    carrier_answers(calls, carrier_invites(calls)[-1], 200)
    calls.acked(talking)
    second_line = await calls.call("1002", "08-123-45-69")
    assert final(calls, second_line) == (
        403, "Forbidden - Outbound calls at once: the limit per extension is 1")
    calls.b2bua.end_calls_of(calls.tenant.id, "1002")
    third = await calls.call("1002", "08-123-45-69")
    assert final(calls, third) == (
        403, "Forbidden - Outbound calls in an hour: the limit per extension is 2")
    assert len(carrier_invites(calls)) == 2
    calls.clock.advance(3600)
    await calls.call("1002", "08-123-45-69")
    assert len(carrier_invites(calls)) == 3  # an hour on, the first two are out of the window
    assert [e.cause for e in calls.events_of(CallRefused)] == [  # type: ignore[attr-defined]
        "concurrent", "rate"]


async def test_forwarding_to_a_mobile_needs_a_mobile_license() -> None:
    calls = harness()
    with Session(calls.store.engine) as db:
        for number in ("1002", "1004"):
            ext = db.exec(select(Extension).where(Extension.number == number)).one()
            ext.forward_always = "070-123-45-67"
            db.add(ext)
        db.commit()
    calls.directory.reload()
    calls.tenant = calls.directory.default
    fixed = await calls.call("1001", "1002")
    assert final(calls, fixed) == (
        403, "Forbidden - A fixed license does not forward to external numbers; "
             "a mobile license does")
    assert calls.events_of(CallRefused)[0].extension == "1002"  # type: ignore[attr-defined]
    await calls.call("1001", "1004")
    (out,) = carrier_invites(calls)
    assert out.uri.user == "0701234567"
    assert out.from_addr.uri.user == "081234501"  # who calls: 1001
