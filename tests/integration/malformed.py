"""Malformed INVITEs, generated: the classic malformed-request suites (PROTOS
c07-sip, the RFC 4475 kinds) as mutations of one well-formed INVITE, each
reproducible from its seed.  A mutation breaks one thing (a header, the
request line, the framing, the SDP) or piles a few on top of each other."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

JUNK = ["<", ">", "<<", "<sip:", "\"", "\\", ";", ";;", "=", "@", ":", "%", "%zz", "\x00", "\x7f",
        "\xff", "é", " ", "\t", ",", "?", "&", "[", "]", "[::1", "sip:", "sips:", "tel:", "*",
        "<>", "\"\"", "a" * 300, "1" * 40, "-1", "0x10", "NaN", "∞"]


@dataclass
class Invite:
    """A request in parts, so one mutation can break one part."""

    method: str
    uri: str
    version: str
    headers: list[tuple[str, str]]
    body: str
    content_length: str | None = None  # None: the body's length
    raw_tail: bytes = b""  # appended after the body (junk past Content-Length)
    labels: list[str] = field(default_factory=list)

    def set(self, name: str, value: str) -> None:
        for i, (existing, _) in enumerate(self.headers):
            if existing.lower() == name.lower():
                self.headers[i] = (existing, value)
                return
        self.headers.append((name, value))

    def get(self, name: str) -> str:
        return next((v for n, v in self.headers if n.lower() == name.lower()), "")

    def drop(self, name: str) -> None:
        self.headers = [(n, v) for n, v in self.headers if n.lower() != name.lower()]

    def encode(self, authorization: str | None) -> bytes:
        body = self.body.encode("utf-8", "surrogateescape")
        lines = [f"{self.method} {self.uri} {self.version}"]
        lines += [f"{name}: {value}" for name, value in self.headers]
        if authorization is not None:
            lines.append(f"Proxy-Authorization: {authorization}")
        length = str(len(body)) if self.content_length is None else self.content_length
        lines.append(f"Content-Length: {length}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")
        return head + body + self.raw_tail


def base_invite(target: str, caller: str, domain: str, via: str, contact: str, call_id: str,
                cseq: int, sdp: str) -> Invite:
    """The well-formed INVITE every mutation starts from."""
    return Invite("INVITE", f"sip:{target}@{domain}", "SIP/2.0", [
        ("Via", via), ("Max-Forwards", "70"),
        ("From", f"\"User {caller}\" <sip:{caller}@{domain}>;tag={call_id[:8]}"),
        ("To", f"<sip:{target}@{domain}>"), ("Call-ID", call_id), ("CSeq", f"{cseq} INVITE"),
        ("Contact", contact), ("Content-Type", "application/sdp"),
    ], sdp)


Mutation = Callable[[Invite, random.Random], None]


def _junk(rng: random.Random) -> str:
    return "".join(rng.choice(JUNK) for _ in range(rng.randint(1, 4)))


def _splice(text: str, rng: random.Random) -> str:
    """``text`` with junk inserted at, or a piece cut from, a random place."""
    at = rng.randint(0, len(text))
    if rng.random() < 0.5:
        return text[:at] + _junk(rng) + text[at:]
    return text[:at] + text[at + rng.randint(1, 8):]


def contact(invite: Invite, rng: random.Random) -> None:
    uri = invite.get("Contact").strip("<>")
    invite.set("Contact", rng.choice([
        f"<{uri}", f"{uri}>", f"<{uri}> junk", f"<{uri}>;", f"<{uri}>;=x", f"<<{uri}>>",
        f"{uri}?x=y", "*", "<>", "<sip:>", "<sip:@>", "<http://127.0.0.1/>", _junk(rng),
        f"<{uri}>, <{uri}>", f"\"unterminated <{uri}>", f"<{uri};transport=>",
        f"<{uri}:99999>", f"<{_splice(uri, rng)}>", f"<{uri}>" + ";p" * 2000,
    ]))


def request_uri(invite: Invite, rng: random.Random) -> None:
    invite.uri = rng.choice([
        invite.uri + " junk", invite.uri + ">", "<" + invite.uri + ">", "sip:", "sip:@",
        invite.uri + ";", invite.uri + "?", _splice(invite.uri, rng), "tel:+46" + "9" * 40,
        invite.uri.replace("sip:", "sip:" + "a" * 4000), invite.uri + ":0", "%%%",
    ])


def from_to(invite: Invite, rng: random.Random) -> None:
    name = rng.choice(["From", "To"])
    value = invite.get(name)
    invite.set(name, rng.choice([
        value.replace("<", "", 1), value.replace(">", "", 1), value + " junk", value + ";tag",
        value + ";tag=a;tag=b", "\"unterminated " + value, _splice(value, rng), "",
        value.replace("sip:", "x-sip:"), "Name, With Comma " + value.split(" ", 2)[-1],
    ]))


def via(invite: Invite, rng: random.Random) -> None:
    value = invite.get("Via")
    invite.set("Via", rng.choice([
        value.replace("SIP/2.0/", "SIP/2.0"), value.replace("SIP/2.0", "SIP/3.0"),
        value + ";rport=99999", value.replace(";branch=", ";branch"), value + ";received",
        value.replace(":", ":x", 1), _splice(value, rng), value + ", " + _junk(rng),
    ]))


def cseq(invite: Invite, rng: random.Random) -> None:
    number = (invite.get("CSeq").split() or ["1"])[0]
    invite.set("CSeq", rng.choice([
        "INVITE", number, f"{number} BYE", f"-{number} INVITE", f"{number}{'9' * 12} INVITE",
        f"x{number} INVITE", f"{number} INVITE extra", f"{number}\tINVITE", "", "² INVITE",
        f"{number} invite",
    ]))


def call_id(invite: Invite, rng: random.Random) -> None:
    invite.set("Call-ID", rng.choice(["", "@", "a b", "x" * 5000, _junk(rng)]))


def max_forwards(invite: Invite, rng: random.Random) -> None:
    invite.set("Max-Forwards", rng.choice(["", "-1", "256", "70 70", "x", "99999999999", "²"]))


def content_length(invite: Invite, rng: random.Random) -> None:
    size = len(invite.body.encode("utf-8", "surrogateescape"))
    invite.content_length = rng.choice([
        str(size + rng.randint(1, 500)), str(max(size - rng.randint(1, 40), 0)), "-1", "x",
        "", f"{size} {size}", "9" * 20, "0",
    ])
    if rng.random() < 0.3:
        invite.headers.append(("l", str(size + 1)))


def content_type(invite: Invite, rng: random.Random) -> None:
    if rng.random() < 0.3:
        invite.drop("Content-Type")
    else:
        invite.set("Content-Type", rng.choice([
            "application/sdp;", "text/plain", "application", "/", "", "application/sdp; x=\"",
            "multipart/mixed;boundary=x",
        ]))


def sdp(invite: Invite, rng: random.Random) -> None:
    lines = invite.body.split("\r\n")
    kind = rng.randrange(7)
    if kind == 0:  # a line deleted
        del lines[rng.randrange(len(lines))]
    elif kind == 1:  # a line broken
        i = rng.randrange(len(lines))
        lines[i] = _splice(lines[i], rng)
    elif kind == 2:  # a field out of range or not a number
        lines = [line.replace("m=audio 40000", rng.choice(
            ["m=audio 99999", "m=audio -1", "m=audio x", "m=audio 40000/0", "m=audio"]))
            .replace("RTP/AVP 0 8 101", rng.choice(
                ["RTP/AVP", "RTP/AVP x", "RTP/AVP 300", "UDP/TLS/RTP/SAVPF 0", "RTP/AVP 0 0 0"]))
            for line in lines]
    elif kind == 3:  # c= broken
        lines = [rng.choice(["c=IN IP4", "c=IN IP6 127.0.0.1", "c=IN IP4 999.1.1.1", "c=",
                             "c=IN IP4 127.0.0.1/0/x"]) if line.startswith("c=") else line
                 for line in lines]
    elif kind == 4:  # rtpmap and fmtp junk
        lines.append(rng.choice(["a=rtpmap:", "a=rtpmap:0", "a=rtpmap:x PCMU/8000",
                                 "a=rtpmap:0 PCMU/x", "a=fmtp:101", "a=ptime:x", "a=ptime:0",
                                 "a=rtcp:99999", "a=" + "x" * 5000]))
    elif kind == 5:  # bytes that are not SDP
        lines = [_junk(rng) for _ in range(rng.randint(1, 5))]
    else:  # truncated
        text = "\r\n".join(lines)
        invite.body = text[: rng.randrange(len(text) + 1)]
        return
    invite.body = "\r\n".join(lines)


def oversize(invite: Invite, rng: random.Random) -> None:
    kind = rng.randrange(3)
    if kind == 0:
        invite.headers.append(("X-Big", "x" * rng.choice([4000, 20000, 40000])))
    elif kind == 1:
        invite.headers += [(f"X-H{i}", "y") for i in range(rng.choice([200, 2000]))]
    else:
        invite.headers += [("Via", invite.get("Via"))] * rng.choice([50, 300])


def other_header(invite: Invite, rng: random.Random) -> None:
    """A header call control may read later: it must be checked at the door or ignored."""
    name = rng.choice(["Record-Route", "Route", "Require", "Proxy-Require", "Supported",
                       "Session-Expires", "Min-SE", "Replaces", "P-Asserted-Identity",
                       "Remote-Party-ID", "Diversion", "History-Info", "Privacy", "Expires",
                       "Allow", "Accept", "Alert-Info", "Call-Info", "Referred-By", "Timestamp",
                       "User-Agent", "Event", "Subject", "Priority", "Date", "Organization"])
    value = rng.choice([_junk(rng), "<sip:x@127.0.0.1", "<sip:x@127.0.0.1> junk", "", "1;x",
                        "-5", "a" * 3000, "<tel:1>;refresher=x", "<sip:1@h>, <", "\"", "0"])
    invite.headers.append((name, value))


def header_syntax(invite: Invite, rng: random.Random) -> None:
    """Lines that are not headers at all."""
    at = rng.randrange(1, len(invite.headers) + 1)
    invite.headers.insert(at, rng.choice([
        ("", "empty name"), ("No Colon", ""), ("Bad Name", "x"), ("X-Fold", "a\r\n b"),
        ("X-Null", "\x00"), ("X-CR", "a\rb"),
    ]))


def request_line(invite: Invite, rng: random.Random) -> None:
    kind = rng.randrange(4)
    if kind == 0:
        invite.version = rng.choice(["SIP/2.1", "SIP/2", "HTTP/1.1", "SIP/2.0 extra", ""])
    elif kind == 1:
        invite.method = rng.choice(["INV ITE", "INVITE\x00", "invite", "INVITE;"])
    elif kind == 2:
        invite.uri = invite.uri.replace(" ", "") + "  "
    else:
        invite.uri = ""


def missing(invite: Invite, rng: random.Random) -> None:
    name = rng.choice(["Via", "From", "To", "Call-ID", "CSeq", "Contact", "Max-Forwards"])
    invite.drop(name)
    invite.labels.append(f"no {name}")


def junk_after_body(invite: Invite, rng: random.Random) -> None:
    invite.raw_tail = rng.choice([b"\r\n", b"junk", b"\x00" * 10, b"\r\n\r\nINVITE x SIP/2.0"])


MUTATIONS: dict[str, Mutation] = {
    f.__name__: f for f in (
        contact, request_uri, from_to, via, cseq, call_id, max_forwards, content_length,
        content_type, sdp, oversize, other_header, header_syntax, request_line, missing,
        junk_after_body,
    )
}

# Mutations that break stream framing (a TCP connection cannot resynchronise
# after them: the PBX closes it), sent over UDP only.
BREAKS_FRAMING = frozenset({"content_length", "oversize", "junk_after_body", "header_syntax"})


def pick(rng: random.Random) -> list[str]:
    """One to three mutations, by name."""
    return rng.sample(sorted(MUTATIONS), rng.choice([1, 1, 1, 2, 3]))


def mutate(invite: Invite, rng: random.Random, names: list[str]) -> Invite:
    """``invite`` broken by the mutations ``names``; ``invite.labels`` lists them."""
    for name in names:
        MUTATIONS[name](invite, rng)
        invite.labels.append(name)
    return invite
