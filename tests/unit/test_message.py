"""The message model, parser and stream framer (RFC 3261 §7, §18.3, §19, §20, §25)."""

from __future__ import annotations

import pytest

from pbx.sip.errors import ParseError
from pbx.sip.message import URI, Address, CSeq, Headers, Request, Response, Via, make_response
from pbx.sip.parser import StreamFramer, parse_message

REGISTER = (
    b"REGISTER sip:pbx.local SIP/2.0\r\n"
    b"v: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKabc;rport,\r\n"
    b"  SIP/2.0/TCP [2001:db8::1]:5070;branch=z9hG4bKdef\r\n"
    b"f: \"Bob \\\"The\\\" Builder\" <sip:1001@pbx.local>;tag=12\r\n"
    b"t: sip:1001@pbx.local\r\n"
    b"i: abc@host\r\n"
    b"cseq: 7 REGISTER\r\n"
    b"m: <sip:1001@10.0.0.1:5062;transport=udp>;expires=60, sip:1001@10.0.0.2;q=0.5\r\n"
    b"Contact: <sip:1001@10.0.0.3>\r\n"
    b"Subject: first,\r\n\tsecond\r\n"
    b"Max-Forwards: 70\r\n"
    b"X-Custom: kept as is\r\n"
    b"l: 4\r\n\r\nbody"
)


def test_compact_names_folding_and_lists() -> None:
    message = parse_message(REGISTER)
    assert isinstance(message, Request)
    assert message.method == "REGISTER" and str(message.uri) == "sip:pbx.local"
    assert [v.host for v in message.vias] == ["10.0.0.1", "2001:db8::1"]
    assert message.vias[0].branch == "z9hG4bKabc" and "rport" in message.vias[0].params
    assert message.vias[1].port == 5070 and message.vias[1].transport == "TCP"
    assert message.call_id == "abc@host"
    assert message.cseq == CSeq(7, "REGISTER")
    assert message.from_addr.display_name == 'Bob "The" Builder'
    assert message.from_addr.tag == "12"
    assert message.to_addr.uri.user == "1001" and message.to_addr.tag is None
    assert [str(c.uri) for c in message.contacts] == [
        "sip:1001@10.0.0.1:5062;transport=udp", "sip:1001@10.0.0.2", "sip:1001@10.0.0.3",
    ]
    # addr-spec form: ;q belongs to the header, not to the URI (§20.10)
    assert message.contacts[1].params == {"q": "0.5"}
    assert message.contacts[0].params == {"expires": "60"}
    assert message.headers.get("subject") == "first, second"
    assert message.headers.get("x-custom") == "kept as is"
    assert message.max_forwards == 70
    assert message.body == b"body"


def test_round_trip_is_stable() -> None:
    first = parse_message(REGISTER)
    again = parse_message(bytes(first))
    assert bytes(again) == bytes(first)
    assert list(again.headers) == list(first.headers)
    assert b"Content-Length: 4\r\n\r\nbody" in bytes(first)


def test_response_parse_and_empty_reason() -> None:
    raw = (
        b"SIP/2.0 100 \r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n"
        b"To: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n"
    )
    message = parse_message(raw)
    assert isinstance(message, Response) and message.status == 100 and message.reason == ""


@pytest.mark.parametrize(
    "text, user, host, port, params, headers",
    [
        ("sip:alice@atlanta.com", "alice", "atlanta.com", None, {}, ""),
        ("sip:alice:secret@atlanta.com;transport=tcp", "alice", "atlanta.com", None,
         {"transport": "tcp"}, ""),
        ("sips:1212@gateway.com:5061;lr;maddr=10.0.0.1?subject=project%20x&priority=urgent",
         "1212", "gateway.com", 5061, {"lr": None, "maddr": "10.0.0.1"},
         "subject=project%20x&priority=urgent"),
        ("sip:+1-212-555-1212:1234@gateway.com;user=phone", "+1-212-555-1212", "gateway.com",
         None, {"user": "phone"}, ""),
        ("sip:%61lice@[2001:db8::10]:5060", "%61lice", "2001:db8::10", 5060, {}, ""),
        ("sip:user;par=u%40example.net@example.com", "user;par=u%40example.net",
         "example.com", None, {}, ""),
    ],
)
def test_uri_forms(text, user, host, port, params, headers) -> None:
    uri = URI.parse(text)
    assert (uri.user, uri.host, uri.port, uri.params, uri.headers) == (
        user, host, port, params, headers,
    )
    assert str(URI.parse(str(uri))) == str(uri)


def test_other_schemes_are_opaque() -> None:
    uri = URI.parse("tel:+46-8-123456")
    assert uri.scheme == "tel" and str(uri) == "tel:+46-8-123456"


@pytest.mark.parametrize(
    "text",
    ["sip:", "sip:alice@", "sip:alice@host:99999", "sip:alice@ho st", "nocolon", "sip:@host",
     "sip:alice@[::1"],
)
def test_bad_uris(text: str) -> None:
    with pytest.raises(ParseError):
        URI.parse(text)


def test_address_forms() -> None:
    a = Address.parse('"A \\\\ B" <sip:a@b;lr>;tag=x;foo="quoted;semi"')
    assert a.display_name == "A \\ B" and a.uri.params == {"lr": None}
    assert a.params == {"tag": "x", "foo": '"quoted;semi"'}
    b = Address.parse("Anonymous Caller <sip:c@d>")
    assert b.display == "Anonymous Caller" and str(b) == "Anonymous Caller <sip:c@d>"
    with pytest.raises(ParseError):
        Address.parse('"unterminated <sip:a@b>')
    with pytest.raises(ParseError):
        Address.parse("<sip:a@b")


def test_via_with_spaces_and_ipv6() -> None:
    via = Via.parse("SIP / 2.0 / UDP   [::1] : 5070 ;branch=z9hG4bKx;received=1.2.3.4")
    assert (via.transport, via.host, via.port) == ("UDP", "::1", 5070)
    assert via.params["received"] == "1.2.3.4"
    assert str(via) == "SIP/2.0/UDP [::1]:5070;branch=z9hG4bKx;received=1.2.3.4"
    assert Via.parse("SIP/2.0/TLS h").sent_by == ("h", 5061)


def test_headers_multimap() -> None:
    headers = Headers([("Require", "a, b"), ("k", "c"), ("Require", "d")])
    assert headers.get_all("require") == ["a", "b", "d"]
    assert headers.get_all("Supported") == ["c"]
    headers.set("Require", "x")
    assert headers.get_all("Require") == ["x"]
    headers.remove("supported")
    assert "Supported" not in headers
    # the auth headers contain commas but are single values
    auth = Headers([("WWW-Authenticate", 'Digest realm="r", nonce="n"')])
    assert auth.get_all("WWW-Authenticate") == ['Digest realm="r", nonce="n"']


def test_cache_follows_changes() -> None:
    message = parse_message(REGISTER)
    assert message.call_id == "abc@host"
    message.headers.set("Call-ID", "other")
    assert message.call_id == "other"


def test_make_response_copies_and_tags() -> None:
    request = parse_message(REGISTER)
    assert isinstance(request, Request)
    response = make_response(request, 200, to_tag="t1")
    assert response.to_addr.tag == "t1" and response.call_id == "abc@host"
    assert [v.branch for v in response.vias] == ["z9hG4bKabc", "z9hG4bKdef"]
    assert response.headers.get("Contact") is None
    assert make_response(request, 100, to_tag="t1").to_addr.tag is None
    tagged = parse_message(bytes(response))
    assert make_response(tagged, 200, to_tag="t2").to_addr.tag == "t1"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "raw, reason, answerable",
    [
        (b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n"
         b"To: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 BYE\r\n\r\n", "CSeq method", True),
        (b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n"
         b"To: <sip:a@b>\r\nTo: <sip:c@b>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n", "Multiple To", True),
        (b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n"
         b"To: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 10\r\n\r\nshort",
         "Content-Length larger", True),
        (b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n"
         b"To: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: -3\r\n\r\n",
         "Content-Length", True),
        (b"OPTIONS sip:a@b SIP/2.0\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\n"
         b"CSeq: 1 OPTIONS\r\n\r\n", "Missing Via", False),
        (b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n"
         b"To: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 99999999999 OPTIONS\r\n\r\n", "CSeq", True),
        (b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n"
         b"To: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 300\r\n\r\n",
         "Max-Forwards", True),
        (b"OPTIONS  sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n"
         b"To: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n", "request line", True),
        (b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nno colon here\r\n\r\n",
         "header line", True),
        (b"\x00\x01\x02garbage", "request line", False),
        # a bad line before the Via and CSeq: still answered, the 400 copies them
        (b"OPTIONS sip:a@b SIP/2.0\r\n: no name\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
         b"From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n",
         "header line", True),
        (b"OPT\x00IONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
         b"From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n",
         "request line", True),
        # digits that are not ASCII: "²".isdigit() is true but int() refuses it
        ("OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n"
         "To: <sip:a@b>\r\nCall-ID: x\r\nCSeq: \u00b2 OPTIONS\r\n\r\n".encode(), "CSeq", True),
        ("OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n"
         "To: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: \u00b2\r\n\r\n".encode(),
         "Max-Forwards", True),
        ("OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n"
         "To: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: \u00b2\r\n\r\n".encode(),
         "Content-Length", True),
        ("OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h:5\u00b2;branch=z9hG4bK1\r\n"
         "From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n".encode(),
         "port", True),
        ("SIP/2.0 2\u00b20 OK\r\n\r\n".encode(), "status line", False),
        (b"SIP/2.0 2000 OK\r\n\r\n", "status line", False),
    ],
)
def test_invalid_messages(raw: bytes, reason: str, answerable: bool) -> None:
    with pytest.raises(ParseError) as info:
        parse_message(raw)
    assert info.value.status == 400
    assert reason in info.value.reason
    assert (info.value.request is not None) == answerable
    if answerable:
        response = make_response(info.value.request, 400, info.value.reason)
        assert bytes(response).startswith(b"SIP/2.0 400 Bad Request - ")


def test_bad_version_is_505() -> None:
    raw = (b"OPTIONS sip:a@b SIP/7.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n"
           b"To: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n")
    with pytest.raises(ParseError) as info:
        parse_message(raw)
    assert info.value.status == 505 and info.value.request is not None


def test_udp_extra_bytes_after_content_length_are_dropped() -> None:
    raw = REGISTER + b"trailing junk"
    assert parse_message(raw).body == b"body"


def test_framer_splits_any_chunking() -> None:
    stream = b"\r\n\r\n" + REGISTER + b"\r\n" + REGISTER + b"\r\n\r\n"
    for size in (1, 2, 3, 7, 64, len(stream)):
        framer = StreamFramer()
        messages: list[bytes] = []
        for i in range(0, len(stream), size):
            messages.extend(framer.feed(stream[i : i + size]))
        assert [parse_message(m).body for m in messages] == [b"body", b"body"]
        assert framer.keepalive_pings == 2


def test_framer_rejects_broken_framing() -> None:
    with pytest.raises(ParseError):
        StreamFramer().feed(b"OPTIONS sip:a SIP/2.0\r\nContent-Length: x\r\n\r\n")
    with pytest.raises(ParseError):
        StreamFramer().feed(b"A" * 70000)


def test_rewrite_top_via_keeps_the_others() -> None:
    message = parse_message(REGISTER)
    message.vias[0].params["received"] = "192.0.2.7"
    message.rewrite_top_via()
    again = parse_message(bytes(message))
    assert again.vias[0].params["received"] == "192.0.2.7"
    assert [v.branch for v in again.vias] == ["z9hG4bKabc", "z9hG4bKdef"]


@pytest.mark.parametrize("length, reason", [("12x", "Malformed Content-Length"),
                                            ("99999999", "Body too large")])
def test_a_stream_broken_by_its_content_length_still_answers_the_request(
        length: str, reason: str) -> None:
    """The connection must close (no resynchronising), but the request that
    broke it can hear why first."""
    head = (f"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n"
            f"To: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: {length}\r\n\r\n")
    with pytest.raises(ParseError) as info:
        StreamFramer().feed(head.encode())
    assert reason in info.value.reason
    assert isinstance(info.value.request, Request) and info.value.request.call_id == "x"
    with pytest.raises(ParseError) as info:  # no Via: nothing to answer
        StreamFramer().feed(head.replace("Via: SIP/2.0/TCP h;branch=z9hG4bK1\r\n", "").encode())
    assert info.value.request is None
