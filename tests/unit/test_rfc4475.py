"""RFC 4475 torture messages: valid ones parse (and round-trip), invalid ones
are refused with a reason phrase (answerable requests) or dropped, and none
makes the parser do anything but parse or raise ParseError."""

from __future__ import annotations

import pytest

from pbx.sip.errors import ParseError
from pbx.sip.message import Request, Response
from pbx.sip.parser import StreamFramer, parse_message
from tests.unit.rfc4475 import VECTORS

NAMES = sorted(VECTORS)


def test_the_whole_set_is_here() -> None:
    assert len(VECTORS) == 49


@pytest.mark.parametrize("name", [n for n in NAMES if VECTORS[n][1] == "valid"])
def test_valid_messages_parse_and_round_trip(name: str) -> None:
    message = parse_message(VECTORS[name][0])
    again = parse_message(bytes(message))
    assert type(again) is type(message)

    def fields(m):  # type: ignore[no-untyped-def]
        return [(k, v) for k, v in m.headers if k != "Content-Length"]  # we always write it last

    assert fields(again) == fields(message)
    assert again.body == message.body
    if isinstance(message, Request):
        assert (again.method, str(again.uri)) == (message.method, str(message.uri))  # type: ignore[attr-defined]
    # what every element relies on is readable
    assert message.call_id and message.cseq.number >= 0 and message.vias


@pytest.mark.parametrize("name", [n for n in NAMES if VECTORS[n][1] in ("400", "505")])
def test_invalid_requests_are_answered(name: str) -> None:
    data, expectation = VECTORS[name]
    with pytest.raises(ParseError) as info:
        parse_message(data)
    assert info.value.status == int(expectation)
    assert info.value.request is not None  # a response can be built ...
    assert info.value.reason.startswith(("Bad Request - ", "Version Not Supported"))  # ... with a reason


@pytest.mark.parametrize("name", [n for n in NAMES if VECTORS[n][1] == "drop"])
def test_broken_responses_are_dropped(name: str) -> None:
    """A response nobody can answer: refused without a request to answer, or parsed
    as a response (the transaction layer then finds nothing to match)."""
    try:
        message = parse_message(VECTORS[name][0])
    except ParseError as exc:
        assert exc.request is None
    else:
        assert isinstance(message, Response)


@pytest.mark.parametrize("name", [n for n in NAMES if VECTORS[n][1].startswith("semantic")])
def test_semantic_cases_parse(name: str) -> None:
    """Well-formed messages the server answers on their meaning (416, 420, 415 …)."""
    message = parse_message(VECTORS[name][0])
    assert isinstance(message, Request)


def test_semantic_details() -> None:
    assert parse_message(VECTORS["unkscm"][0]).uri.scheme == "nobodyknowsthisscheme"  # type: ignore[union-attr]
    with pytest.raises(ParseError):
        parse_message(VECTORS["regbadct"][0]).contacts  # addr-spec with headers: not allowed
    assert parse_message(VECTORS["regescrt"][0]).contacts[0].uri.headers


@pytest.mark.parametrize("name", [n for n in NAMES if VECTORS[n][1] == "lenient"])
def test_lenient_cases_parse_or_refuse_cleanly(name: str) -> None:
    try:
        parse_message(VECTORS[name][0])
    except ParseError as exc:
        assert exc.status == 400 and exc.request is not None


def test_details_of_the_tortuous_invite() -> None:
    message = parse_message(VECTORS["wsinv"][0])
    assert message.max_forwards == 68 and message.cseq.number == 9
    assert [v.host for v in message.vias] == ["192.0.2.2", "spindle.example.com", "192.168.255.111"]
    assert message.vias[2].branch == "z9hG4bK30239"
    assert message.to_addr.tag == "1918181833n" and message.from_addr.tag == "98asjd8"
    assert message.headers.get("Subject") == ""
    assert message.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    contact = message.contacts[0]
    assert contact.params["q"] == "0.33" and "secondparam" in contact.params


def test_details_of_the_others() -> None:
    longreq = parse_message(VECTORS["longreq"][0])
    assert len(longreq.vias) == 34 and longreq.to_addr.uri.port == 6000
    dblreq = parse_message(VECTORS["dblreq"][0])
    assert dblreq.body == b"" and dblreq.method == "REGISTER"  # type: ignore[union-attr]
    escnull = parse_message(VECTORS["escnull"][0])
    assert [c.uri.user for c in escnull.contacts] == ["%00", "%00%00"]
    esc02 = parse_message(VECTORS["esc02"][0])
    assert len(esc02.contacts) == 2 and esc02.method == "RE%47IST%45R"  # type: ignore[union-attr]
    semiuri = parse_message(VECTORS["semiuri"][0])
    assert semiuri.uri.user == "user;par=u%40example.net"  # type: ignore[union-attr]
    assert len(semiuri.headers.get_all("Accept")) == 6
    unreason = parse_message(VECTORS["unreason"][0])
    assert unreason.status == 200 and unreason.reason.startswith("= 2**3")  # type: ignore[union-attr]
    assert parse_message(VECTORS["noreason"][0]).reason == ""  # type: ignore[union-attr]
    assert len(parse_message(VECTORS["mpart01"][0]).body) == 553
    assert parse_message(VECTORS["transports"][0]).vias[3].transport == "UNKNOWN"
    assert parse_message(VECTORS["inv2543"][0]).vias[0].branch is None


def test_every_vector_survives_the_stream_framer() -> None:
    """Over TCP the same bytes either frame into messages or are refused; never a crash."""
    for name in NAMES:
        framer = StreamFramer()
        try:
            for message in framer.feed(VECTORS[name][0]):
                try:
                    parse_message(message)
                except ParseError:
                    pass
        except ParseError:
            pass


def test_a_datagram_without_the_empty_line_is_still_answered() -> None:
    """RFC 4475 §3.1.2.15 as some copies carry it: the message ends with ``l: 0``
    CRLF, no empty line.  On UDP the datagram's end ends the headers (§18.3),
    so the request is answered 400 for its unquoted display name, not dropped."""
    data = VECTORS["baddn"][0]
    assert data.endswith(b"l: 0\r\n\r\n")
    with pytest.raises(ParseError) as info:
        parse_message(data[:-2])
    assert info.value.status == 400
    assert info.value.request is not None
    assert info.value.reason.startswith("Bad Request - ")
    # a well-formed request cut the same way is served as it is
    options = VECTORS["zeromf"][0]
    whole, cut = parse_message(options), parse_message(options.rstrip(b"\r\n"))
    assert cut.call_id == whole.call_id and cut.body == b""
