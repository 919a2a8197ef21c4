"""The door every request passes (pbx.sip.validate): broken headers that call
control and dialogs rely on get their 400 at once, with a reason naming the
header; Require gets 420 for what we do not do, Session-Expires 422 below 90 s;
and whatever passes can be used without a ParseError later."""

from __future__ import annotations

import random

import pytest

from pbx.sip.dialog import Dialog
from pbx.sip.errors import ParseError, SipError
from pbx.sip.flow import Flow
from pbx.sip.message import Replaces, Request, SessionExpires, make_response
from pbx.sip.parser import parse_message
from pbx.sip.validate import SUPPORTED, check_request
from tests.unit.rfc4475 import VECTORS

HEAD = (
    "{method} sip:1002@pbx.test SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bK{method}1;rport\r\n"
    "From: <sip:1001@pbx.test>;tag=caller1\r\n"
    "To: <sip:1002@pbx.test>\r\n"
    "Call-ID: door-1@192.0.2.7\r\n"
    "CSeq: 1 {method}\r\n"
    "Max-Forwards: 70\r\n"
)


def request(method: str, *headers: str) -> Request:
    text = HEAD.format(method=method) + "".join(f"{h}\r\n" for h in headers)
    message = parse_message((text + "Content-Length: 0\r\n\r\n").encode())
    assert isinstance(message, Request)
    return message


def refused(method: str, *headers: str) -> SipError:
    with pytest.raises(SipError) as caught:
        check_request(request(method, *headers))
    return caught.value


CONTACT = "Contact: <sip:1001@192.0.2.7:5062>"


def test_a_plain_invite_passes() -> None:
    check_request(request("INVITE", CONTACT))
    check_request(request("INVITE"))  # no Contact: tolerated, the From URI stands in


@pytest.mark.parametrize(
    "contact, reason",
    [
        ("sip:1001@127.0.0.1?x=y", "Malformed Contact"),  # headers need <> (§20.10)
        ("<sip:1001@127.0.0.1", "Malformed Contact"),  # unbalanced <
        ("<http://example.com/phone>", "Contact is not a SIP URI"),
        ("<sip:1001@127.0.0.1> junk", "Malformed Contact"),
        ("<sip:1001@127.0.0.1:99999>", "Malformed Contact"),
        ("*", "Malformed Contact"),  # only a REGISTER may say *
        ("<sip:1001@192.0.2.7>, <sip:1001@192.0.2.8>", "More than one Contact"),
    ],
)
@pytest.mark.parametrize("method", ["INVITE", "SUBSCRIBE", "REFER", "NOTIFY", "UPDATE"])
def test_dialog_requests_need_one_sip_contact(method: str, contact: str, reason: str) -> None:
    error = refused(method, f"Contact: {contact}", "Refer-To: <sip:1003@pbx.test>")
    assert isinstance(error, ParseError)
    assert (error.status, error.reason) == (400, f"Bad Request - {reason}")


def test_a_contact_nobody_uses_is_no_reason_to_refuse() -> None:
    """A BYE or INFO with a quirky Contact still ends the call or carries the key."""
    for method in ("BYE", "INFO", "OPTIONS"):
        check_request(request(method, "Contact: <sip:1001@127.0.0.1"))


def test_register_contacts() -> None:
    check_request(request("REGISTER", "Contact: *", "Expires: 0"))
    check_request(request("REGISTER", CONTACT, "Contact: <sip:1001@192.0.2.8>;expires=60"))
    error = refused("REGISTER", CONTACT, "Contact: sip:1001@192.0.2.8?x=y")
    assert error.reason == "Bad Request - Malformed Contact"


@pytest.mark.parametrize("name", ["Record-Route", "Route"])
def test_route_sets(name: str) -> None:
    check_request(request("INVITE", CONTACT, f"{name}: <sip:proxy.example.com;lr>, <sip:p2;lr>"))
    assert refused("INVITE", CONTACT, f"{name}: <sip:proxy.example.com;lr").reason == (
        f"Bad Request - Malformed {name}")
    assert refused("INVITE", CONTACT, f"{name}: <tel:+4681234567>").reason == (
        f"Bad Request - {name} is not a SIP URI")


def test_replaces() -> None:
    good = request("INVITE", CONTACT, "Replaces: abc@192.0.2.9;to-tag=t1;from-tag=f1;early-only")
    check_request(good)
    assert good.replaces == Replaces("abc@192.0.2.9", "t1", "f1", early_only=True)
    assert request("INVITE", CONTACT).replaces is None
    twice = refused("INVITE", CONTACT, "Replaces: a;to-tag=t1;from-tag=f1",
                    "Replaces: b;to-tag=t2;from-tag=f2")
    assert (twice.status, twice.reason) == (400, "Bad Request - Multiple Replaces headers")
    assert refused("INVITE", CONTACT, "Replaces: abc;to-tag=t1").reason == (
        "Bad Request - Replaces needs to-tag and from-tag")
    assert refused("INVITE", CONTACT, "Replaces: ;to-tag=t1;from-tag=f1").reason == (
        "Bad Request - Malformed Replaces")
    assert refused("BYE", "Replaces: a;to-tag=t1;from-tag=f1").reason == (
        "Bad Request - Replaces in BYE")


def test_refer_to() -> None:
    check_request(request("REFER", CONTACT, "Refer-To: <sip:1003@pbx.test>"))
    attended = ("Refer-To: <sip:1003@pbx.test?Replaces=abc%40192.0.2.9%3Bto-tag%3Dt1"
                "%3Bfrom-tag%3Df1>")
    check_request(request("REFER", CONTACT, attended))
    assert refused("REFER", CONTACT).reason == "Bad Request - Missing Refer-To"
    assert refused("REFER", CONTACT, "Refer-To: <sip:1003@pbx.test>",
                   "Refer-To: <sip:1004@pbx.test>").reason == "Bad Request - Multiple Refer-To headers"
    assert refused("REFER", CONTACT, "Refer-To: <sip:1003@pbx.test").reason == (
        "Bad Request - Malformed Refer-To")
    assert refused("REFER", CONTACT, "Refer-To: <sip:1003@pbx.test?Replaces=abc%3Bto-tag%3Dt1>"
                   ).reason == "Bad Request - Malformed Refer-To"


def test_session_expires() -> None:
    asked = request("INVITE", CONTACT, "Supported: timer", "Session-Expires: 1800;refresher=UAS")
    check_request(asked)
    assert asked.session_expires == SessionExpires(1800, "uas")
    check_request(request("INVITE", CONTACT, "Session-Expires: 60"))  # no timer support: ignored
    small = refused("INVITE", CONTACT, "Supported: timer", "Session-Expires: 60")
    assert (small.status, small.reason, small.headers) == (
        422, "Session Interval Too Small", (("Min-SE", "90"),))
    assert refused("INVITE", CONTACT, "Session-Expires: soon").reason == (
        "Bad Request - Malformed Session-Expires")
    assert refused("UPDATE", CONTACT, "Session-Expires: 90;refresher=nobody").reason == (
        "Bad Request - Malformed Session-Expires refresher")


@pytest.mark.parametrize(
    "headers, unsupported",
    [
        (["Require: timer"], None),  # RFC 4028 is implemented
        (["Require: timer, path"], None),
        (["Require: replaces", "Replaces: a;to-tag=t;from-tag=f"], None),
        (["Require: replaces"], "replaces"),  # nothing to replace
        (["Require: 100rel"], "100rel"),
        (["Require: timer, foo", "Proxy-Require: bar"], "foo, bar"),
    ],
)
def test_require(headers: list[str], unsupported: str | None) -> None:
    if unsupported is None:
        check_request(request("INVITE", CONTACT, *headers))
        return
    error = refused("INVITE", CONTACT, *headers)
    assert (error.status, error.reason, error.headers) == (
        420, "Bad Extension", (("Unsupported", unsupported),))


def test_ack_and_cancel_carry_no_requirements() -> None:
    check_request(request("ACK", "Require: foo"))
    check_request(request("CANCEL", "Require: foo"))


def test_what_options_advertises() -> None:
    assert SUPPORTED == ("path", "replaces", "timer")


def test_whatever_passes_can_be_used() -> None:
    """Mangled INVITEs either fail at the door or every accessor call control and
    dialogs use works on them, and the dialog they create builds its requests."""
    rng = random.Random(3261)
    base = (HEAD.format(method="INVITE") + CONTACT + ";expires=60\r\n"
            "Record-Route: <sip:proxy.example.com;lr>\r\n"
            "Replaces: abc@192.0.2.9;to-tag=t1;from-tag=f1\r\n"
            "Session-Expires: 1800;refresher=uac\r\nSupported: timer\r\n"
            "Content-Length: 0\r\n\r\n")
    alphabet = "<>;:@,?=\" *a1\u00b2"
    passed = 0
    for _ in range(3000):
        text = list(base)
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(base) - 4)
            if rng.random() < 0.5:
                del text[at]
            else:
                text.insert(at, rng.choice(alphabet))
        try:
            message = parse_message("".join(text).encode())
            assert isinstance(message, Request)
            check_request(message)
        except (SipError, AssertionError):
            continue
        passed += 1
        used = (message.contacts, message.replaces, message.session_expires)  # none raises
        if not used[0]:
            continue  # no Contact at all: call control falls back to the From URI
        response = make_response(message, 200, to_tag="uas1")
        dialog = Dialog.as_uas(message, response, Flow("UDP", "192.0.2.7", 5062))
        bye = dialog.create_request("BYE", "192.0.2.1:5060")
        assert bye.uri.scheme in ("sip", "sips") and bytes(bye).startswith(b"BYE sip")
    assert passed > 300  # the mangling leaves enough to pass


def test_the_error_becomes_the_phones_answer() -> None:
    invite = request("INVITE", "Contact: <sip:1001@127.0.0.1", "Require: timer")
    with pytest.raises(SipError) as caught:
        check_request(invite)
    response = make_response(invite, caught.value.status, caught.value.reason, to_tag="x")
    assert bytes(response).startswith(b"SIP/2.0 400 Bad Request - Malformed Contact\r\n")


def test_rfc4475_requests_at_the_door() -> None:
    """The torture requests the parser takes pass the door, but for the one whose
    Contact is an addr-spec with headers (regbadct), and the one asking for
    extensions nobody supports (bext01)."""
    refused = {}
    for name, (data, _) in sorted(VECTORS.items()):
        try:
            message = parse_message(data)
        except ParseError:
            continue
        if not isinstance(message, Request):
            continue
        try:
            check_request(message)
        except SipError as exc:
            refused[name] = (exc.status, exc.reason)
    assert refused == {"regbadct": (400, "Bad Request - Malformed Contact"),
                       "bext01": (420, "Bad Extension")}
