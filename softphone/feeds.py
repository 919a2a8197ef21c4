"""What the softphone page is told besides its own calls, pushed over its
WebSocket as it happens (never polled):

- ``presence`` (``colleagues``: a list of ``{extension, display_name, line,
  profile, until}``, as ``GET /api/presence`` shows them; ``full``: true for
  the first, complete list, then only the extensions that changed);
- ``voicemail``: a message of one of the user's mailboxes was left, marked or
  deleted (the page reloads its list);
- ``history``: a call of the user's ended (the page reloads its call history).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from admin_api.presence import shown
from pbx.events import CallEnded, Event, MailboxChanged
from pbx.presence import PresenceStatus
from pbx.server import SipServer
from pbx.voicemail import lamp_mailboxes

Tell = Callable[..., None]  # PageSession.tell(kind, **fields)


def follow(sip: SipServer, organisation: int, extension: str,
           tell: Tell) -> Callable[[], None]:
    """Tell the page its colleagues' presence now and every change after, and
    when its mailboxes or call history change; returns what stops it."""
    tenant = sip.directory.tenants[organisation]
    ext = tenant.extensions.get(extension)
    mailboxes = lamp_mailboxes(tenant.mailboxes, ext) if ext is not None else ()

    def colleagues(statuses: list[PresenceStatus]) -> list[dict[str, Any]]:
        current = sip.directory.tenants.get(organisation, tenant)
        return [shown(current, status).model_dump(mode="json") for status in statuses]

    def on_event(event: Event) -> None:
        if isinstance(event, MailboxChanged) and event.organisation == organisation \
                and event.mailbox in mailboxes:
            tell("voicemail")
        elif isinstance(event, CallEnded) and event.organisation == organisation \
                and extension in (event.caller, event.dialled, event.answered_by):
            tell("history")

    statuses = sip.presence.statuses(organisation)
    tell("presence", full=True, colleagues=colleagues([statuses[n] for n in sorted(statuses)]))
    unfollow = sip.presence.follow(
        organisation, lambda changed: tell("presence", full=False, colleagues=colleagues(changed)))
    sip.events.subscribe(on_event)

    def stop() -> None:
        unfollow()
        sip.events.unsubscribe(on_event)

    return stop
