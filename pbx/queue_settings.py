"""An ACD queue's settings, with the names operators know from Asterisk's
``queues.conf`` (app_queue) and FreeSWITCH's mod_callcenter.

One model validates a ``[700]`` section with ``type = queue`` in sip.conf, the
row the store keeps (as JSON) and what the admin API shows; the queue
service (``queues/``) runs on it.  The SIP core only carries it: the router
sends a call for the queue's number to the service kind ``queue``.
"""

from __future__ import annotations

from functools import cached_property

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pbx.fields import Listed

QUEUE_STRATEGIES = ("ringall", "linear", "rrmemory", "rrordered", "leastrecent", "fewestcalls",
                    "leasttalktime", "random", "wrandom", "ring-progressively")
MAX_PENALTY = 100


def member_penalty(entry: str) -> tuple[str, int]:
    """``1003:5`` → (``1003``, 5); ``1002`` → (``1002``, 0)."""
    extension, _, penalty = entry.partition(":")
    extension = extension.strip()
    if not extension or not extension.isalnum():
        raise ValueError(f"member {entry!r} is no extension")
    if not penalty:
        return extension, 0
    if not penalty.strip().isdigit() or int(penalty) > MAX_PENALTY:
        raise ValueError(f"member {entry!r}: the penalty must be 0–{MAX_PENALTY}")
    return extension, int(penalty)


class QueueConfig(BaseModel):
    """A queue: ``members = 1002,1003:5`` (extension and penalty, lower rung first)
    and the options below (hyphenated names as in Asterisk's queues.conf)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    number: str = Field(pattern=r"^[0-9A-Za-z_.+-]{1,40}$")
    type: str = "queue"
    name: str = Field("", max_length=200)
    strategy: str = "ringall"
    members: Listed = ()
    timeout: int = Field(15, ge=1, le=600)  # seconds an agent's phones ring
    retry: int = Field(5, ge=0, le=600)  # seconds before the caller is offered again
    wrapuptime: int = Field(0, ge=0, le=3600)  # an agent's rest after a queue call
    maxlen: int = Field(0, ge=0, le=100_000)  # callers waiting at most; 0 = no limit
    joinempty: bool = True  # may a caller join when no agent is logged in and unpaused?
    leavewhenempty: bool = False  # do waiting callers leave when none is?
    maxwait: int = Field(0, ge=0, le=86400)  # seconds before the overflow; 0 = forever
    maxwait_noagents: int = Field(0, ge=0, le=86400)  # the same while no agent is logged in
    overflow: str = Field("", max_length=80)  # another queue, voicemail:NNN, an IVR, a number
    musicclass: str = Field("default", max_length=40)
    announce_position: bool = Field(False, alias="announce-position")
    announce_position_limit: int = Field(0, ge=0, le=1000, alias="announce-position-limit")
    announce_holdtime: bool = Field(False, alias="announce-holdtime")
    announce_frequency: int = Field(0, ge=0, le=3600, alias="announce-frequency")
    periodic_announce: str = Field("queue_periodic", max_length=80, alias="periodic-announce")
    periodic_announce_frequency: int = Field(0, ge=0, le=3600,
                                             alias="periodic-announce-frequency")
    autopause: bool = False  # an agent who lets a call ring out is paused
    ringinuse: bool = False  # agents on a direct call are offered queue calls too
    weight: int = Field(0, ge=0, le=1000)  # agents in several queues serve heavier ones first
    priority_callers: Listed = ()  # caller numbers or DIDs that go ahead of the others
    abandoned_resume: int = Field(0, ge=0, le=3600)  # seconds a returning caller keeps a place
    penalty_wait: int = Field(0, ge=0, le=3600)  # seconds per further penalty tier; 0: when free
    progressive_delay: int = Field(5, ge=1, le=600)  # ring-progressively: next agent after
    callback: bool = False  # "press 1 to be called back, keeping your place"
    callback_attempts: int = Field(3, ge=1, le=10)
    callback_retry: int = Field(60, ge=1, le=3600)  # seconds between callback attempts
    callback_timeout: int = Field(30, ge=5, le=300)  # seconds the caller's phone rings for it
    survey: bool = False  # ask the caller to rate the call (1–5) after the agent hangs up
    survey_timeout: int = Field(10, ge=2, le=120)  # seconds to press a rating
    servicelevel: int = Field(20, ge=1, le=3600)  # seconds: answered within counts as served
    servicelevel_target: int = Field(80, ge=1, le=100)  # per cent, for the staffing advice
    widget: bool = True  # the public wait-time widget may show this queue
    schedule: str = Field("", max_length=80)  # opening hours the widget shows (a schedule)

    @field_validator("strategy")
    @classmethod
    def _strategy(cls, value: str) -> str:
        if value not in QUEUE_STRATEGIES:
            raise ValueError(f"unknown strategy; use one of {', '.join(QUEUE_STRATEGIES)}")
        return value

    @field_validator("members")
    @classmethod
    def _members(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        seen = [member_penalty(entry)[0] for entry in value]
        if len(set(seen)) != len(seen):
            raise ValueError("an extension is listed twice")
        return value

    @cached_property
    def penalties(self) -> dict[str, int]:
        """The members in their configured order, each with their penalty (read
        once: the engine asks on every decision)."""
        return dict(member_penalty(entry) for entry in self.members)
