"""Which worker of a node handles a SIP message (``pbx serve --workers N``).

The N workers share the SIP port (SO_REUSEPORT): the kernel hands a packet
to any of them, by a hash of its source.  Call control keeps its state in
memory (dialogs, transactions, queues, conferences, parked calls, presence
subscriptions, the location of phones), so every message must reach the
worker that holds the state it belongs to:

* an organisation has one *home* worker, like it has one node behind
  Kamailio's dispatcher: its REGISTERs, calls, subscriptions, queues and
  conferences all live there, so pickup, transfers, BLF and queues see all
  of the organisation's calls, exactly as in one process;
* what a worker makes (Via branches, dialog tags, Call-IDs) ends in its mark
  (``-w<N>``, :func:`pbx.sip.message.set_origin`): a response names the
  worker of its client transaction, an in-dialog request (To-tag) the
  worker of its dialog;
* an out-of-dialog OPTIONS (a keep-alive ping) is answered where it lands.

Pure: the caller parses, finds the organisation and moves the bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pbx.sip.flow import Flow
from pbx.sip.message import Request, Response

MARK = "-w"


@dataclass(frozen=True, slots=True)
class Workers:
    """This process's place among the node's workers."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"worker {self.index} of {self.count}")

    @property
    def mark(self) -> str:
        """The suffix of what this worker makes ("" when it is alone)."""
        return f"{MARK}{self.index}" if self.count > 1 else ""

    def home(self, organisation: int) -> int:
        """The worker an organisation lives on (organisation 1, the default one, on
        worker 0 with the admin API)."""
        return (organisation - 1) % self.count

    def is_home(self, organisation: int) -> bool:
        return self.home(organisation) == self.index


def worker_of(token: str | None, count: int) -> int | None:
    """The worker a branch, tag or Call-ID we made names; None: not one of ours."""
    if not token:
        return None
    head, mark, number = token.rpartition(MARK)
    if not mark or not head or not number.isdigit():
        return None
    index = int(number)
    return index if index < count else None


def owner(message: Request | Response, flow: Flow, workers: Workers,
          organisation_of: Callable[[Request, Flow], int | None]) -> int | None:
    """The worker that must handle ``message``; None: any (this one).

    ``organisation_of`` names the organisation of an out-of-dialog request
    (the carrier's for a trunk, else by domain), None for a domain we do not
    serve: the refusal needs no state, so it is made where it lands.
    """
    if workers.count == 1:
        return None
    if isinstance(message, Response):
        return worker_of(message.vias[0].branch if message.vias else None, workers.count)
    to_tag = message.to_addr.tag
    if to_tag is not None:
        return worker_of(to_tag, workers.count)
    if message.method == "OPTIONS":
        return None
    organisation = organisation_of(message, flow)
    return workers.home(organisation) if organisation is not None else None


def port_share(low: int, high: int, workers: Workers) -> tuple[int, int]:
    """This worker's slice of the RTP range ``low``-``high``: each worker has a
    media engine of its own and binds only its ports, so RTP reaches it directly."""
    size = (high - low + 1) // workers.count
    size -= size % 2
    if size < 2:
        raise ValueError(f"RTP range {low}-{high} is too small for {workers.count} workers")
    start = low + workers.index * size
    end = high if workers.index == workers.count - 1 else start + size - 1
    return start, end
