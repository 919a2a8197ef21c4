"""The notifier's pure parts: which packages and how long (RFC 6665), whose
state a subscription watches, the dialog state of extensions computed from
the B2BUA's calls, and the documents phones parse (RFC 4235, RFC 3842)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from pbx.calls.model import Call, Leg, LegState, Ring
from pbx.directory import Tenant
from pbx.sip.flow import Flow
from pbx.models import Extension
from pbx.sip.dialog import Dialog
from pbx.sip.errors import SipError
from pbx.sip.message import Address, Request
from pbx.sip.parser import parse_message
from pbx.subscriptions import (
    DIALOG, MESSAGE_SUMMARY, DialogState, Package, accepts, dialog_info, extension_dialogs,
    granted_expires, message_summary, parse_event, remaining, resource_for, with_ended,
)

NS = "{urn:ietf:params:xml:ns:dialog-info}"
FLOW = Flow("UDP", "127.0.0.1", 5062)


@pytest.mark.parametrize(("header", "expected"), [
    ("dialog", ("dialog", None)),
    ("Dialog ; id=42", ("dialog", "42")),
    ("message-summary;foo=bar", ("message-summary", None)),
    ("presence", ("presence", None)),
    (None, ("", None)),
])
def test_event_header(header: str | None, expected: tuple[str, str | None]) -> None:
    assert parse_event(header) == expected


@pytest.mark.parametrize(("accept", "ok"), [
    ([], True),  # no Accept: the package's own type
    (["application/dialog-info+xml"], True),
    (["application/xpidf+xml, application/dialog-info+xml;q=0.5"], True),
    (["application/*"], True),
    (["*/*"], True),
    (["application/pidf+xml"], False),
    (["text/plain", "application/simple-message-summary"], False),
])
def test_accept_header(accept: list[str], ok: bool) -> None:
    assert accepts(accept, "application/dialog-info+xml") is ok


@pytest.mark.parametrize(("requested", "granted"), [
    (None, 3600),  # RFC 4235 §3.4 / RFC 3842 §3.4: one hour by default
    (0, 0),  # unsubscribe, or fetch the state once
    (1, None),  # 423 Interval Too Brief
    (59, None),
    (60, 60),
    (600, 600),
    (86400, 3600),  # capped
])
def test_granted_expires(requested: int | None, granted: int | None) -> None:
    assert granted_expires(requested, DIALOG) == granted
    assert granted_expires(requested, MESSAGE_SUMMARY) == granted


def test_remaining_seconds_never_negative() -> None:
    assert remaining(1000.0, 400.2) == 600
    assert remaining(1000.0, 999.9) == 0
    assert remaining(1000.0, 1200.0) == 0


def tenant() -> Tenant:
    exts = {
        "1001": Extension(organisation_id=1, number="1001", secret="s"),
        "1002": Extension(organisation_id=1, number="1002", secret="s", mailbox="2002"),
    }
    return Tenant(1, "acme", "acme.example", extensions=exts)


def test_whose_state_a_subscription_watches() -> None:
    acme = tenant()
    alice, bob = acme.extensions["1001"], acme.extensions["1002"]

    def resource(package: Package, who: Extension, target: str) -> str:
        return resource_for(package, acme, who, target, voicemail_number="133")

    assert resource(DIALOG, alice, "1002") == "1002"
    assert resource(DIALOG, alice, "1001") == "1001"
    with pytest.raises(SipError) as unknown:
        resource(DIALOG, alice, "4711")
    assert unknown.value.status == 404
    # message-summary: one's own mailbox by extension, mailbox or voicemail number
    assert resource(MESSAGE_SUMMARY, alice, "1001") == "1001"
    assert resource(MESSAGE_SUMMARY, bob, "1002") == "2002"
    assert resource(MESSAGE_SUMMARY, bob, "2002") == "2002"
    assert resource(MESSAGE_SUMMARY, bob, "133") == "2002"
    assert resource_for(MESSAGE_SUMMARY, acme, bob, "*98", voicemail_number="*98") == "2002"
    with pytest.raises(SipError) as colleague:
        resource(MESSAGE_SUMMARY, alice, "1002")
    assert colleague.value.status == 403


RFC4235_BASIC = """<?xml version="1.0"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info"
             version="0" state="full" entity="sip:alice@example.com">
  <dialog id="as7d900as8" call-id="a84b4c76e66710"
          local-tag="1928301774" direction="initiator">
    <state>trying</state>
  </dialog>
</dialog-info>
"""


def canonical(document: bytes | str) -> str:
    text = document.decode() if isinstance(document, bytes) else document
    return ET.canonicalize(text.split("?>", 1)[1], strip_text=True)


def test_dialog_info_matches_the_rfc_4235_example() -> None:
    """RFC 4235 §5.1 "Basic Example": Alice's phone has sent an INVITE."""
    trying = DialogState("as7d900as8", "initiator", "trying", "a84b4c76e66710", "1928301774")
    ours = dialog_info("sip:alice@example.com", 0, [trying])
    assert ours.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n')
    assert canonical(ours) == canonical(RFC4235_BASIC)


def test_dialog_info_of_a_ringing_and_an_idle_extension() -> None:
    ringing = DialogState("c1-b", "recipient", "early", "call-1", "", "ft1",
                          "sip:1001@acme.example", 'Alice "A"')
    root = ET.fromstring(dialog_info("sip:1002@acme.example", 3, [ringing]))
    assert root.tag == f"{NS}dialog-info"
    assert root.attrib == {"version": "3", "state": "full", "entity": "sip:1002@acme.example"}
    (dialog,) = root.findall(f"{NS}dialog")
    assert dialog.attrib == {"id": "c1-b", "call-id": "call-1", "remote-tag": "ft1",
                             "direction": "recipient"}
    assert dialog.findtext(f"{NS}state") == "early"
    identity = dialog.find(f"{NS}remote/{NS}identity")
    assert identity is not None and identity.text == "sip:1001@acme.example"
    assert identity.get("display") == 'Alice "A"'  # escaped by the XML writer, read back whole
    target = dialog.find(f"{NS}remote/{NS}target")
    assert target is not None and target.get("uri") == "sip:1001@acme.example"
    idle = ET.fromstring(dialog_info("sip:1002@acme.example", 4, []))
    assert idle.get("version") == "4" and idle.findall(f"{NS}dialog") == []


def test_a_dialog_that_ended_is_reported_once_as_terminated() -> None:
    early = DialogState("c1-b", "recipient", "early")
    other = DialogState("c2-a", "initiator", "confirmed")
    assert with_ended([early], []) == (DialogState("c1-b", "recipient", "terminated"),)
    assert with_ended([early, other], [other]) == (other, DialogState("c1-b", "recipient",
                                                                      "terminated"))
    assert with_ended([DialogState("c1-b", "recipient", "terminated")], []) == ()
    assert with_ended([], [early]) == (early,)


@pytest.mark.parametrize(("new", "old", "body"), [
    (0, 0, b"Messages-Waiting: no\r\nMessage-Account: sip:1003@pbx.test\r\n"
           b"Voice-Message: 0/0 (0/0)\r\n"),
    (1, 0, b"Messages-Waiting: yes\r\nMessage-Account: sip:1003@pbx.test\r\n"
           b"Voice-Message: 1/0 (0/0)\r\n"),
    (0, 2, b"Messages-Waiting: no\r\nMessage-Account: sip:1003@pbx.test\r\n"
           b"Voice-Message: 0/2 (0/0)\r\n"),
])
def test_message_summary(new: int, old: int, body: bytes) -> None:
    """RFC 3842 §5.2: Messages-Waiting says whether there are new messages."""
    assert message_summary("sip:1003@pbx.test", new, old) == body


# ------------------------------------------------------------ state from calls


def invite(call_id: str, from_tag: str, to: str) -> Request:
    text = (f"INVITE sip:{to}@acme.example SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK1\r\n"
            f"From: <sip:x@acme.example>;tag={from_tag}\r\nTo: <sip:{to}@acme.example>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:x@127.0.0.1:5062>\r\n"
            "Content-Length: 0\r\n\r\n")
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def dialog(call_id: str, local: str, remote: str) -> Dialog:
    return Dialog(call_id, local, remote, Address.parse("<sip:a@x>"), Address.parse("<sip:b@x>"),
                  Address.parse("<sip:b@x>").uri, FLOW)


def call_from_1001_to_1002(call_id: str = "c1", organisation: Tenant | None = None) -> Call:
    call = Call(id=call_id, tenant=organisation or tenant(), dialled="1002",
                caller_number="1001", caller_name="Alice")
    call.a = Leg(call, FLOW, "1001", invite("phone-a", "ta", "1002"), outgoing=False)
    call.ring = Ring(call, owner=None)  # type: ignore[arg-type]
    for n, state in enumerate((LegState.TRYING, LegState.RINGING, LegState.ENDED)):
        # desk, DECT, a refused device
        call.ring.forks.append(Leg(call, FLOW, "1002",
                                   invite(f"fork-{n}", f"ours{n}", "1002"),
                                   outgoing=True, state=state))
    return call


def test_a_ringing_call_is_early_at_both_ends() -> None:
    call = call_from_1001_to_1002()
    assert extension_dialogs([call], 1) == {
        "1001": (DialogState("c1-a", "initiator", "trying", "phone-a", "ta", "",
                             "sip:1002@acme.example"),),
        "1002": (DialogState("c1-b", "recipient", "early", "fork-0", "", "ours0",
                             "sip:1001@acme.example", "Alice"),),  # one dialog, not per device
    }
    call.a.state = LegState.RINGING  # the caller was told it rings (180)
    call.a.dialog = dialog("phone-a", "pbx-a", "ta")
    assert extension_dialogs([call], 1)["1001"] == (
        DialogState("c1-a", "initiator", "early", "phone-a", "ta", "pbx-a",
                    "sip:1002@acme.example"),)


def test_an_answered_call_is_confirmed_and_an_ended_one_gone() -> None:
    call = call_from_1001_to_1002()
    assert call.ring is not None
    answered = call.ring.forks[1]
    answered.dialog = dialog("fork-1", "ours1", "phone-b")
    call.ring, call.b, call.answered_at = None, answered, 10.0
    call.a.dialog = dialog("phone-a", "pbx-a", "ta")  # type: ignore[union-attr]
    assert extension_dialogs([call], 1) == {
        "1001": (DialogState("c1-a", "initiator", "confirmed", "phone-a", "ta", "pbx-a",
                             "sip:1002@acme.example"),),
        "1002": (DialogState("c1-b", "recipient", "confirmed", "fork-1", "phone-b", "ours1",
                             "sip:1001@acme.example", "Alice"),),
    }
    other = Tenant(2, "other", "other.example")
    assert extension_dialogs([call], 2) == {}
    assert extension_dialogs([call_from_1001_to_1002("c2", other)], 1) == {}
    call.ended = True
    assert extension_dialogs([call], 1) == {}


def test_a_call_answered_by_the_pbx_keeps_only_the_caller_busy() -> None:
    """Voicemail or a conference room answered: no b side, the caller is confirmed."""
    call = call_from_1001_to_1002()
    call.ring, call.answered_at = None, 5.0
    assert extension_dialogs([call], 1) == {
        "1001": (DialogState("c1-a", "initiator", "confirmed", "phone-a", "ta", "",
                             "sip:1002@acme.example"),),
    }
