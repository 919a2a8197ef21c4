"""SRTP with SDES keys in call control (tests/harness.py): which phone gets
SRTP, which offer is refused, which keys each relay leg is given."""

from __future__ import annotations

import pytest

from pbx.calls.offer_answer import SrtpPolicy
from pbx.sdp import SdpError, SessionDescription
from pbx.sip.flow import Flow
from pbx.sip.message import Request
from pbx.trunks.settings import TrunkSettings
from tests.harness import SDP_BODY, CallHarness

KEY = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0e"
SAVP = (SDP_BODY.format(port=41000).replace("RTP/AVP", "RTP/SAVP")
        .replace("a=sendrecv", f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}\r\na=sendrecv"))


def sdp_of(message: Request) -> SessionDescription:
    return SessionDescription.parse(message.body)


def set_mode(calls: CallHarness, number: str, mode: str) -> None:
    calls.tenant.extensions[number].media_encryption = mode


async def test_a_phone_offering_srtp_gets_srtp_while_the_plain_phone_stays_plain(
        calls: CallHarness) -> None:
    calls.register("1002")
    invite = await calls.call("1001", "1002", body=SAVP)
    [fork] = calls.phones["1002"].invites()
    offer = sdp_of(fork).audio
    assert offer is not None and offer.proto == "RTP/AVP" and not offer.crypto  # UDP: no keys
    calls.phones["1002"].reply(fork, 200)
    ok = calls.responses(invite)[-1]
    assert ok.status == 200
    answer = sdp_of(ok).audio  # type: ignore[arg-type]
    assert answer is not None and answer.proto == "RTP/SAVP"
    [ours] = answer.crypto
    call = next(iter(calls.b2bua.calls.values()))
    a, b = call.a.media, call.b.media  # type: ignore[union-attr]
    assert a.tx_key == ours.key and a.rx_key.key == bytes(range(1, 31))  # type: ignore[union-attr]
    assert b.tx_key is None and b.rx_key is None
    assert a.peer is b  # one relay bridge, each leg protected on its own


async def test_a_phone_that_requires_srtp_refuses_plain_offers_and_gets_savp_offers(
        calls: CallHarness) -> None:
    set_mode(calls, "1001", "required")
    plain = await calls.call("1001", "1002")
    [refusal] = calls.responses(plain)
    assert refusal.status == 488 and "SRTP required" in refusal.headers.get("Warning", "")
    assert calls.b2bua.active_calls == 0

    set_mode(calls, "1002", "required")
    calls.register("1002")
    invite = await calls.call("1003", "1002")
    [fork] = calls.phones["1002"].invites()
    offer = sdp_of(fork).audio
    assert offer is not None and offer.proto == "RTP/SAVP"
    assert [(c.tag, c.key.suite) for c in offer.crypto] == [
        (1, "AES_CM_128_HMAC_SHA1_80"), (2, "AES_CM_128_HMAC_SHA1_32")]
    calls.phones["1002"].reply(fork, 200)  # a plain answer to our SAVP offer: no call
    assert calls.phones["1002"].requests("BYE")
    assert calls.statuses(invite)[-1] == 488

    again = await calls.call("1003", "1002")
    fork = calls.phones["1002"].invites()[-1]
    reply = SAVP.replace("crypto:1 AES_CM_128_HMAC_SHA1_80", "crypto:2 AES_CM_128_HMAC_SHA1_32")
    calls.phones["1002"].reply(fork, 200, body=reply)
    assert calls.statuses(again)[-1] == 200
    b = next(iter(calls.b2bua.calls.values())).b.media  # type: ignore[union-attr]
    assert b.tx_key == sdp_of(fork).audio.crypto[1].key  # type: ignore[union-attr]
    assert b.rx_key.suite == "AES_CM_128_HMAC_SHA1_32"  # type: ignore[union-attr]


async def test_off_refuses_srtp_only_offers_and_answers_best_effort_ones_in_plain(
        calls: CallHarness) -> None:
    set_mode(calls, "1001", "off")
    calls.register("1002")
    savp = await calls.call("1001", "1002", body=SAVP)
    assert calls.statuses(savp) == [488]
    best_effort = await calls.call("1001", "1002", body=SAVP.replace("RTP/SAVP", "RTP/AVP"))
    calls.phones["1002"].reply(calls.phones["1002"].invites()[-1], 200)
    ok = calls.responses(best_effort)[-1]
    assert ok.status == 200 and not sdp_of(ok).audio.crypto  # type: ignore[arg-type,union-attr]


async def test_keys_stay_off_signalling_that_is_not_tls_when_the_node_says_so() -> None:
    calls = CallHarness()
    calls.b2bua.sdp.srtp = SrtpPolicy("optional", require_tls=True)
    set_mode(calls, "1002", "required")
    calls.register("1002")
    invite = await calls.call("1001", "1002", body=SAVP)
    assert calls.statuses(invite) == [488]  # 1001 over UDP: SRTP-only offer cannot be taken
    invite = await calls.call("1001", "1002")  # plain: fine, but 1002 requires SRTP over UDP
    assert calls.phones["1002"].invites() == [] and calls.statuses(invite)[-1] == 488

    calls.phones["1002"].flow = Flow("TLS", "127.0.0.1", 40010)  # it registers over TLS
    calls.register("1002")
    invite = await calls.call("1001", "1002")
    [fork] = calls.phones["1002"].invites()
    assert sdp_of(fork).audio.proto == "RTP/SAVP"  # type: ignore[union-attr]


async def test_an_optional_phone_over_tls_is_offered_best_effort_keys() -> None:
    calls = CallHarness()
    calls.phones["1002"].flow = Flow("TLS", "127.0.0.1", 40010)
    calls.register("1002")
    invite = await calls.call("1001", "1002")
    [fork] = calls.phones["1002"].invites()
    offer = sdp_of(fork).audio
    assert offer is not None and offer.proto == "RTP/AVP" and len(offer.crypto) == 2
    calls.phones["1002"].reply(fork, 200)  # a phone without SRTP ignores the keys
    assert calls.statuses(invite)[-1] == 200
    b = next(iter(calls.b2bua.calls.values())).b.media  # type: ignore[union-attr]
    assert b.tx_key is None


def test_a_carriers_legs_follow_its_trunks_media_encryption() -> None:
    calls = CallHarness()
    offers = calls.b2bua.sdp
    for name, mode in (("plain", "off"), ("best-effort", "optional"), ("secure", "required")):
        calls.tenant.trunks[name] = TrunkSettings(name=name, host="192.0.2.1", auth="ip",
                                                  media_encryption=mode)  # type: ignore[arg-type]
    assert offers.srtp_mode(calls.tenant, "+4681", "TLS", "plain") == "off"
    assert offers.srtp_mode(calls.tenant, "+4681", "TLS", "best-effort") == "optional"
    assert offers.srtp_mode(calls.tenant, "+4681", "TLS", "secure") == "required"
    assert offers.srtp_mode(calls.tenant, "+4681", "TLS", "gone") == "off"  # removed meanwhile
    offers.srtp = SrtpPolicy("optional", require_tls=True)  # keys over TLS only
    assert offers.srtp_mode(calls.tenant, "+4681", "UDP", "best-effort") == "off"
    with pytest.raises(SdpError):
        offers.srtp_mode(calls.tenant, "+4681", "UDP", "secure")
