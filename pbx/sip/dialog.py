"""SIP dialogs (RFC 3261 §12), pure.

A dialog is the state two user agents share after an INVITE is answered:
tags, CSeq counters, the route set and the remote target.  The B2BUA holds
one dialog per call leg and asks it to build in-dialog requests (BYE,
re-INVITE, REFER, NOTIFY, the ACK for a 2xx) and to check incoming ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pbx.sip.flow import Flow
from pbx.sip.errors import SipError
from pbx.sip.message import URI, Address, Headers, Request, Response, new_branch

DialogId = tuple[str, str, str]  # Call-ID, local tag, remote tag
# requests whose Contact moves the remote target (RFC 3261 §12.2, RFC 6665 §4.1.2.1, §4.2.1.2)
TARGET_REFRESH = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY"})


def _route_set(message: Request | Response, reverse: bool) -> list[str]:
    routes = message.headers.get_all("Record-Route")
    return list(reversed(routes)) if reverse else routes


def _contact_uri(message: Request | Response) -> URI:
    contacts = message.contacts
    if not contacts:
        raise SipError(400, "Bad Request - Missing Contact")
    return contacts[0].uri


@dataclass(slots=True)
class Dialog:
    """One side's view of a dialog, and where to send its requests (``dest``)."""

    call_id: str
    local_tag: str
    remote_tag: str
    local: Address
    remote: Address
    remote_target: URI
    dest: Flow
    route_set: list[str] = field(default_factory=list)
    local_cseq: int = 1
    remote_cseq: int | None = None
    terminated: bool = False

    @property
    def id(self) -> DialogId:
        return (self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def as_uas(cls, request: Request, response: Response, dest: Flow) -> Dialog:
        """The dialog a UAS creates by answering ``request`` with ``response`` (§12.1.1)."""
        local = response.to_addr
        if local.tag is None:
            raise ValueError("a dialog-creating response needs a To tag")
        return cls(
            call_id=request.call_id,
            local_tag=local.tag,
            remote_tag=request.from_addr.tag or "",
            local=local,
            remote=request.from_addr,
            remote_target=_contact_uri(request),
            dest=dest,
            route_set=_route_set(request, reverse=False),
            local_cseq=0,
            remote_cseq=request.cseq.number,
        )

    @classmethod
    def as_uac(cls, request: Request, response: Response, dest: Flow) -> Dialog:
        """The dialog a UAC gets from a 1xx-with-tag or 2xx to ``request`` (§12.1.2)."""
        remote = response.to_addr
        return cls(
            call_id=request.call_id,
            local_tag=request.from_addr.tag or "",
            remote_tag=remote.tag or "",
            local=request.from_addr,
            remote=remote,
            remote_target=_contact_uri(response),
            dest=dest,
            route_set=_route_set(response, reverse=True),
            local_cseq=request.cseq.number,
        )

    def create_request(
        self,
        method: str,
        sent_by: str,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        headers: list[tuple[str, str]] | None = None,
        cseq: int | None = None,
    ) -> Request:
        """An in-dialog request (§12.2.1.1); ``sent_by`` is our ``host:port`` for Via.

        ACK and CANCEL reuse a CSeq number (``cseq``); everything else takes
        the next one.
        """
        if cseq is None:
            self.local_cseq += 1
            cseq = self.local_cseq
        uri = self.remote_target
        routes = list(self.route_set)
        if routes and ";lr" not in routes[0]:
            # strict router (RFC 2543): it goes in the Request-URI (§12.2.1.1)
            uri = Address.parse(routes.pop(0)).uri
            routes.append(f"<{self.remote_target}>")
        hdrs = Headers()
        hdrs.add("Via", f"SIP/2.0/{self.dest.transport} {sent_by};branch={new_branch()};rport")
        hdrs.add("Max-Forwards", "70")
        for route in routes:
            hdrs.add("Route", route)
        hdrs.add("From", str(self.local))
        hdrs.add("To", str(self.remote))
        hdrs.add("Call-ID", self.call_id)
        hdrs.add("CSeq", f"{cseq} {method}")
        for name, value in headers or []:
            hdrs.add(name, value)
        if content_type is not None:
            hdrs.add("Content-Type", content_type)
        return Request(method, uri, hdrs, body)

    def receive_request(self, request: Request) -> None:
        """Check an in-dialog request's CSeq order (§12.2.2) and follow target refreshes."""
        number = request.cseq.number
        if request.method not in ("ACK", "CANCEL"):
            if self.remote_cseq is not None and number <= self.remote_cseq:
                raise SipError(500, "Server Internal Error - CSeq out of order")
            self.remote_cseq = number
        if request.method in TARGET_REFRESH and request.contacts:
            self.remote_target = request.contacts[0].uri


def request_dialog_id(request: Request) -> DialogId:
    """The id a UAS files an in-dialog request under: (Call-ID, To tag, From tag)."""
    return (request.call_id, request.to_addr.tag or "", request.from_addr.tag or "")
