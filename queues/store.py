"""What queues keep in the store across a restart: callers waiting on hook for
a callback (their place in line) and agents' own choices (logged out, paused).
Blocking: the service calls these in a worker thread, except at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, select

from pbx.models import QueueAgent, QueueCallbackRequest
from pbx.store import Store


@dataclass(frozen=True)
class AgentChoice:
    organisation: int
    extension: str
    logged_in: bool
    pause_reason: str | None


class QueueStore:
    """The queue rows of one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def callbacks(self) -> list[QueueCallbackRequest]:
        """Pending callbacks, oldest place first."""
        with Session(self.store.engine) as db:
            rows = db.exec(select(QueueCallbackRequest)).all()
            return sorted(rows, key=lambda r: (-r.priority, r.joined_at))

    def keep_callback(self, row: QueueCallbackRequest) -> None:
        """Add or update (by ``call_id``) a pending callback."""
        with Session(self.store.engine) as db:
            found = db.exec(select(QueueCallbackRequest).where(
                QueueCallbackRequest.call_id == row.call_id)).first()
            if found is None:
                db.add(QueueCallbackRequest.model_validate(row.model_dump(exclude={"id"})))
            else:
                found.attempts = row.attempts
                db.add(found)
            db.commit()

    def drop_callback(self, call_id: str) -> None:
        with Session(self.store.engine) as db:
            for row in db.exec(select(QueueCallbackRequest).where(
                    QueueCallbackRequest.call_id == call_id)):
                db.delete(row)
            db.commit()

    def agents(self) -> list[AgentChoice]:
        with Session(self.store.engine) as db:
            return [AgentChoice(r.organisation_id, r.extension, r.logged_in, r.pause_reason)
                    for r in db.exec(select(QueueAgent))]

    def keep_agent(self, choice: AgentChoice) -> None:
        with Session(self.store.engine) as db:
            row = db.exec(select(QueueAgent).where(
                QueueAgent.organisation_id == choice.organisation,
                QueueAgent.extension == choice.extension)).first()
            row = row or QueueAgent(organisation_id=choice.organisation,
                                    extension=choice.extension)
            row.logged_in = choice.logged_in
            row.pause_reason = choice.pause_reason
            db.add(row)
            db.commit()
