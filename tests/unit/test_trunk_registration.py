"""A trunk's registration with its carrier, pure: challenge, refresh, back-off."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pbx.sip.message import Request, make_response
from pbx.trunks.registration import BACKOFF_MAX, Registration, State
from pbx.trunks.settings import TrunkSettings, host_port

TRUNK = TrunkSettings(name="carrier", host="sip.carrier.test:5080", username="4681234500",
                      password="s3cret", expiry=600)
SENT_BY = "192.0.2.10:5060"


def registration() -> Registration:
    return Registration(TRUNK, "<sip:4681234500@192.0.2.10:5060;transport=udp>")


def answer(request: Request, status: int, **headers: str):  # type: ignore[no-untyped-def]
    response = make_response(request, status, to_tag="carrier")
    for name, value in headers.items():
        response.headers.add(name.replace("_", "-"), value)
    return response


def test_a_challenge_is_answered_once_then_the_refresh_comes_before_expiry() -> None:
    reg = registration()
    assert reg.due(0.0)
    first = reg.request(SENT_BY, 0.0)
    assert (first.method, str(first.uri), first.cseq.number) == ("REGISTER", "sip:sip.carrier.test:5080", 1)
    assert first.headers.get("Expires") == "600" and "Authorization" not in first.headers
    challenge = 'Digest realm="carrier.test", nonce="abc", qop="auth", algorithm=MD5'
    retry = reg.on_response(answer(first, 401, WWW_Authenticate=challenge), SENT_BY, 0.1)
    assert retry is not None and retry.cseq.number == 2 and retry.call_id == first.call_id
    authorization = retry.headers.get("Authorization") or ""
    assert 'username="4681234500"' in authorization and 'uri="sip:sip.carrier.test:5080"' in authorization
    assert reg.on_response(answer(retry, 200, Contact=f"{reg.contact};expires=300"), SENT_BY,
                           0.2) is None
    assert reg.status.state is State.REGISTERED and reg.status.expires_at == pytest.approx(300.2)
    assert not reg.due(200.0) and reg.due(270.2)  # 90 % of what was granted


def test_wrong_credentials_back_off_and_the_delay_doubles_up_to_its_cap() -> None:
    reg = registration()
    now = 0.0
    delays = []
    for _ in range(8):
        request = reg.request(SENT_BY, now)
        challenged = reg.on_response(answer(request, 401, WWW_Authenticate='Digest realm="r", nonce="n"'),
                                     SENT_BY, now)
        assert challenged is not None
        assert reg.on_response(answer(challenged, 403), SENT_BY, now) is None
        assert reg.status.state is State.FAILED and reg.status.code == 403
        delays.append(reg.next_at - now)
        now = reg.next_at
    assert delays[:4] == [30.0, 60.0, 120.0, 240.0] and delays[-1] == BACKOFF_MAX


def test_silence_is_a_failure_and_a_success_resets_the_back_off() -> None:
    reg = registration()
    reg.request(SENT_BY, 0.0)
    reg.on_timeout(32.0)
    assert reg.status.state is State.FAILED and reg.status.code == 408
    assert reg.status.retry_at == 62.0
    again = reg.request(SENT_BY, 62.0)
    reg.on_response(answer(again, 200, Expires="600"), SENT_BY, 62.5)
    assert reg.failures == 0 and reg.status.expires_at == 662.5


def test_bad_settings_name_what_is_wrong() -> None:
    with pytest.raises(ValidationError, match="needs username and password"):
        TrunkSettings(name="a", host="carrier.test")
    with pytest.raises(ValidationError, match="not an address or CIDR"):
        TrunkSettings(name="a", host="carrier.test", auth="ip", addresses="10.0.0.0/33")
    with pytest.raises(ValidationError, match="not a host"):
        TrunkSettings(name="a", host="carrier test", auth="ip")
    assert host_port("[2001:db8::1]:5070") == ("2001:db8::1", 5070)
    assert host_port("carrier.test", "tls") == ("carrier.test", 5061)
