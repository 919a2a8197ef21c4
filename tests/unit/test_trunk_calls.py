"""Calls over trunks on the real call control (in-memory harness): a carrier's
call to one of the organisation's numbers needs no credentials; anybody
else's does; calls out go over the route's trunks in order, answer the
carrier's challenge and fail over on 5xx."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from pbx.refusal import Refusal
from pbx.calls.model import Call, TrunkStep
from pbx.config import CallPolicyConfig
from pbx.directory import Tenant
from pbx.events import CallEnded
from pbx.models import Number
from pbx.sdp import SessionDescription
from pbx.sip.flow import Flow
from pbx.sip.message import Request, make_response
from pbx.trunks.settings import TrunkSettings
from tests.harness import SDP_BODY, CallHarness

CARRIER = Flow("UDP", "198.51.100.7", 5060)
SETTINGS = {name: TrunkSettings(name=name, host=f"{name}.carrier.test", username="46812345",
                                password="pw", caller_id="pai")
            for name in ("first", "second")}


@dataclass
class Carrier:
    organisation: int
    settings: TrunkSettings


class Carriers:
    def __init__(self, organisation: int) -> None:
        self.organisation = organisation

    def carrier_of(self, flow: Flow) -> Carrier | None:
        return Carrier(self.organisation, SETTINGS["first"]) if flow.host == CARRIER.host else None

    def flow_to(self, organisation: int, name: str) -> tuple[Carrier, Flow] | None:
        settings = SETTINGS.get(name)
        return (Carrier(organisation, settings), CARRIER) if settings else None


class Planner:
    """Routes every number with a leading 0 over both trunks; 0900 numbers are barred."""

    def is_external(self, tenant: Tenant, number: str) -> bool:
        return number.startswith("0")

    def plan(self, tenant: Tenant, call: Call, number: str, now: float) -> list[TrunkStep] | Refusal:
        if number.startswith("0900"):
            return Refusal(403, "Premium numbers are barred", "route")
        e164 = "+46" + number[1:]
        return [TrunkStep(name, e164, "+46812345000", 30.0) for name in ("first", "second")]


def harness() -> CallHarness:
    calls = CallHarness()
    calls.b2bua.carriers = Carriers(calls.tenant.id)
    calls.b2bua.ringer.carriers = calls.b2bua.carriers
    calls.b2bua.planner = Planner()
    with Session(calls.store.engine) as db:
        db.add(Number(organisation_id=calls.tenant.id, number="+4681234567", target="1002"))
        db.commit()
    calls.directory.reload()
    calls.tenant = calls.directory.default
    return calls


def carrier_invites(calls: CallHarness) -> list[Request]:
    return [m for m, flow in calls.sip.sent
            if isinstance(m, Request) and m.method == "INVITE" and flow == CARRIER]


def carrier_answers(calls: CallHarness, invite: Request, status: int, **headers: str) -> None:
    response = make_response(invite, status, to_tag="pstn")
    for name, value in headers.items():
        response.headers.add(name.replace("_", "-"), value)
    if status == 200:
        response.headers.add("Contact", "<sip:pstn@198.51.100.7>")
        response.headers.add("Content-Type", "application/sdp")
        response.body = ("v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\n"
                         "t=0 0\r\nm=audio 30000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n").encode()
    calls.b2bua.on_response(calls.tx_of(invite), response)


async def test_a_carriers_call_to_our_number_rings_without_credentials() -> None:
    calls = harness()
    calls.register("1002")
    invite = await calls.call("+46701234567", "+4681234567", flow=CARRIER)
    assert 407 not in calls.statuses(invite)
    fork = calls.phones["1002"].invites()[-1]
    assert fork.from_addr.uri.user == "+46701234567"  # the caller ID the carrier gave
    calls.phones["1002"].reply(fork, 200)
    assert calls.statuses(invite)[-1] == 200
    calls.b2bua.end_calls_of(calls.tenant.id, "1002")
    (ended,) = calls.events_of(CallEnded)
    assert (ended.trunk, ended.direction) == ("first", "inbound")  # type: ignore[attr-defined]


async def test_no_open_relay() -> None:
    """A carrier naming a number that is not ours gets 404; a stranger calling
    our number from elsewhere must authenticate (and cannot)."""
    calls = harness()
    calls.register("1002")
    unknown = await calls.call("+46701234567", "+4689999999", flow=CARRIER)
    assert calls.statuses(unknown) == [404]
    stranger = await calls.call("+46701234567", "+4681234567", flow=Flow("UDP", "203.0.113.9",
                                                                        5060))
    assert calls.statuses(stranger) == [407]
    assert calls.phones["1002"].invites() == [] and calls.b2bua.active_calls == 0


async def test_a_call_out_answers_the_challenge_and_fails_over_on_503() -> None:
    calls = harness()
    invite = await calls.call("1001", "0701234567")
    first = carrier_invites(calls)
    assert len(first) == 1 and first[0].uri.user == "+46701234567"
    assert first[0].headers.get("P-Asserted-Identity") == "<sip:+46812345000@first.carrier.test>"
    carrier_answers(calls, first[0], 407,
                    Proxy_Authenticate='Digest realm="carrier", nonce="n1", qop="auth"')
    again = carrier_invites(calls)[-1]
    assert again.cseq.number == 2 and again.call_id == first[0].call_id
    assert "Proxy-Authorization" in again.headers
    carrier_answers(calls, again, 503)
    second = carrier_invites(calls)[-1]
    assert second.uri.host == "second.carrier.test"  # the next trunk of the route
    carrier_answers(calls, second, 200)
    assert calls.statuses(invite)[-1] == 200
    calls.b2bua.end_calls_of(calls.tenant.id, "1001")
    (ended,) = calls.events_of(CallEnded)
    assert (ended.trunk, ended.direction) == ("second", "outbound")  # type: ignore[attr-defined]
    assert any(p.startswith("trunk:first") for p in ended.path)  # type: ignore[attr-defined]


async def test_a_busy_callee_is_not_tried_on_the_next_trunk() -> None:
    calls = harness()
    invite = await calls.call("1001", "0701234567")
    carrier_answers(calls, carrier_invites(calls)[0], 486)
    assert len(carrier_invites(calls)) == 1 and calls.statuses(invite)[-1] == 486


async def test_a_refused_number_gets_the_reason() -> None:
    calls = harness()
    invite = await calls.call("1001", "0900123456")
    final = calls.responses(invite)[-1]
    assert (final.status, final.reason) == (403, "Forbidden - Premium numbers are barred")
    assert carrier_invites(calls) == []


async def test_max_call_duration_ends_an_answered_call() -> None:
    calls = harness()
    calls.directory.policy = CallPolicyConfig(max_call_duration=60)
    calls.directory.reload()
    invite = await calls.call("1001", "0701234567")
    carrier_answers(calls, carrier_invites(calls)[0], 200)
    calls.acked(invite)
    calls.clock.advance(61)
    await calls.settle()
    assert calls.b2bua.active_calls == 0
    (ended,) = calls.events_of(CallEnded)
    assert ended.hangup_by == "max-duration"  # type: ignore[attr-defined]


async def test_the_answer_to_a_carrier_copies_its_record_route() -> None:
    """RFC 3261 §12.1.1: without the carrier's Record-Route in our 200 the far
    end's ACK and BYE would miss the carrier's proxy."""
    calls = harness()
    calls.register("1002")
    routes = {"Record-Route": "<sip:198.51.100.7;lr;ftag=x>, <sip:10.0.0.1;lr>"}
    invite = await calls.call("+46701234567", "+4681234567", flow=CARRIER, headers=routes)
    calls.phones["1002"].reply(calls.phones["1002"].invites()[-1], 200)
    ok = calls.responses(invite)[-1]
    assert ok.status == 200
    assert ok.headers.get_all("Record-Route") == invite.headers.get_all("Record-Route")


async def test_a_trunk_offers_only_its_codecs_in_its_order() -> None:
    calls = harness()
    SETTINGS["first"] = SETTINGS["first"].model_copy(update={"codecs": ("PCMA", "telephone-event")})
    try:
        await calls.call("1001", "0701234567")
        offer = carrier_invites(calls)[0].body.decode()
        assert "m=audio" in offer and " RTP/AVP 8 101" in offer and "PCMU" not in offer
    finally:
        SETTINGS["first"] = SETTINGS["first"].model_copy(update={"codecs": ()})


async def test_a_ring_group_rings_a_mobile_through_the_trunk() -> None:
    """A member that is an external number rings over its route's first trunk,
    beside the desk phones of the others."""
    from pbx.config import RingGroupConfig

    calls = CallHarness(ring_groups=(RingGroupConfig(number="600", members=("1002",
                                                                             "0701234567")),))
    calls.b2bua.carriers = Carriers(calls.tenant.id)
    calls.b2bua.ringer.carriers = calls.b2bua.carriers
    calls.b2bua.planner = Planner()
    calls.register("1002")
    invite = await calls.call("1001", "600")
    assert len(calls.phones["1002"].invites()) == 1
    (mobile,) = carrier_invites(calls)
    assert mobile.uri.user == "+46701234567"
    carrier_answers(calls, mobile, 200)
    assert calls.statuses(invite)[-1] == 200
    assert calls.phones["1002"].requests("CANCEL")


async def test_a_carrier_whose_trunk_requires_srtp_is_answered_in_kind() -> None:
    """Inbound: the carrier's leg follows its trunk's media_encryption, the
    phone's leg its own (plain here)."""
    calls = harness()
    calls.tenant.trunks["first"] = SETTINGS["first"].model_copy(
        update={"media_encryption": "required"})
    calls.register("1002")
    plain = await calls.call("+46701234567", "+4681234567", flow=CARRIER)
    assert calls.statuses(plain) == [488]  # plain RTP refused before anything rings
    assert calls.phones["1002"].invites() == []
    key = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0e"
    savp = (SDP_BODY.format(port=41000).replace("RTP/AVP", "RTP/SAVP").replace(
        "a=sendrecv", f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}\r\na=sendrecv"))
    secure = await calls.call("+46701234567", "+4681234567", flow=CARRIER, body=savp)
    [fork] = calls.phones["1002"].invites()
    assert b"a=crypto" not in fork.body  # the phone, over UDP with mode optional: plain
    calls.phones["1002"].reply(fork, 200)
    ok = calls.responses(secure)[-1]
    assert ok.status == 200
    answer = SessionDescription.parse(ok.body).audio
    assert answer is not None and answer.proto == "RTP/SAVP" and len(answer.crypto) == 1
