"""The store: engine set-up, seeding from the config file, and the queries the
SIP core needs.  Blocking database calls live here and are run in a worker
thread by the asyncio side, never on the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any
from pathlib import Path

from sqlalchemy import delete, event, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, SQLModel, col, create_engine, func, select

from ivr.tree import to_json
from pbx.config import Config
from pbx.location import Binding as Registration
from pbx.models import (
    DEFAULT_ORGANISATION, Binding, Cdr, ConferenceRoom, Extension, Ivr, MailboxSettings,
    Number, Organisation, OutboundRoute, Queue, Recording, RingGroup, SharedMailbox,
    SwitchboardSchedule, TimeCondition, Trunk, Voicemail,
)
from pbx.passwords import hash_password

_NOTIFY = text("SELECT pg_notify(:channel, :payload)")

log = logging.getLogger("pbx.store")


def make_engine(url: str) -> Engine:
    """Create the engine; SQLite gets WAL and a busy timeout so the API and the
    SIP core can share one file safely."""
    if url.startswith("sqlite"):
        memory = url in ("sqlite://", "sqlite:///:memory:")
        if not memory:
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            poolclass=StaticPool if memory else None,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            if not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True)


def add_missing_columns(engine: Engine) -> None:
    """Add the columns a newer version's models have and an older store lacks.

    ``create_all`` makes missing tables but never alters existing ones; new
    columns always have defaults, so adding them is all an upgrade needs.
    """
    existing = inspect(engine)
    with engine.begin() as connection:
        for table in SQLModel.metadata.sorted_tables:
            if not existing.has_table(table.name):
                continue
            present = {column["name"] for column in existing.get_columns(table.name)}
            for column in table.columns:
                if column.name in present:
                    continue
                kind = column.type.compile(dialect=engine.dialect)
                default = column.default.arg if column.default is not None else None
                clause = "" if default is None or callable(default) else f" DEFAULT {default!r}"
                if isinstance(default, bool):
                    clause = f" DEFAULT {int(default)}" if engine.dialect.name == "sqlite" \
                        else f" DEFAULT {str(default).lower()}"
                connection.execute(text(
                    f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind}{clause}'))
                log.info("store: added column %s.%s", table.name, column.name)


def _upsert_insert(engine: Engine):  # type: ignore[no-untyped-def]
    """The dialect's INSERT that knows ON CONFLICT."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


class Store:
    """The PBX's persistent state, shared by the SIP core and the admin API."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        SQLModel.metadata.create_all(self.engine)
        add_missing_columns(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def seed(self, config: Config) -> None:
        """Create the default organisation and the extensions, ring groups,
        conference rooms, numbers, schedules, time conditions, IVRs, trunks, outbound
        routes (new ones after the routes there, in file order), shared mailboxes and
        mailbox settings (PINs hashed) of the config file.

        Existing ones are left as they are: once seeded, the store (and the
        admin API that edits it) owns them.
        """
        with Session(self.engine) as session:
            org = session.exec(
                select(Organisation).where(Organisation.slug == DEFAULT_ORGANISATION)
            ).first()
            if org is None:
                org = Organisation(
                    slug=DEFAULT_ORGANISATION, name="Default", domain=config.general.realm
                )
                session.add(org)
                session.flush()
            assert org.id is not None
            known = set(
                session.exec(
                    select(Extension.number).where(Extension.organisation_id == org.id)
                ).all()
            )
            for ext in config.extensions:
                if ext.number in known:
                    continue
                display = ext.callerid
                session.add(
                    Extension(
                        organisation_id=org.id,
                        number=ext.number,
                        secret=ext.secret,
                        display_name=display,
                        mailbox=ext.mailbox,
                        mwi_unsolicited=ext.mwi_unsolicited,
                        context=ext.context,
                        dnd=ext.dnd,
                        forward_always=ext.forward_always,
                        forward_busy=ext.forward_busy,
                        forward_noanswer=ext.forward_noanswer,
                        ring_timeout=ext.ring_timeout,
                        record=ext.record,
                        record_on_demand=ext.record_on_demand,
                        voicemail=ext.voicemail,
                        email=ext.email,
                        voicemail_delete=ext.voicemail_delete,
                        media_encryption=ext.media_encryption,
                    )
                )
                log.info("seeded extension %s", ext.number)
            groups = set(
                session.exec(select(RingGroup.number).where(RingGroup.organisation_id == org.id)).all()
            )
            for group in config.ring_groups:
                if group.number in groups:
                    continue
                session.add(
                    RingGroup(
                        organisation_id=org.id,
                        number=group.number,
                        name=group.name,
                        strategy=group.strategy,
                        members=",".join(group.members),
                        member_timeout=group.member_timeout,
                        timeout=group.timeout,
                        fallback=group.fallback,
                    )
                )
                log.info("seeded ring group %s", group.number)
            rooms = set(session.exec(
                select(ConferenceRoom.number).where(ConferenceRoom.organisation_id == org.id)
            ).all())
            for room in config.conferences:
                if room.number not in rooms:
                    session.add(ConferenceRoom(
                        organisation_id=org.id, number=room.number, name=room.name,
                        pin=room.pin, moderator_pin=room.moderator_pin, record=room.record,
                    ))
                    log.info("seeded conference room %s", room.number)
            numbers = set(
                session.exec(select(Number.number).where(Number.organisation_id == org.id)).all()
            )
            for entry in config.numbers:
                if entry.number not in numbers:
                    session.add(Number(organisation_id=org.id, number=entry.number,
                                       target=entry.target))
                    log.info("seeded number %s → %s", entry.number, entry.target)
            schedules = set(session.exec(select(SwitchboardSchedule.name).where(
                SwitchboardSchedule.organisation_id == org.id)).all())
            for schedule in config.schedules:
                if schedule.name not in schedules:
                    session.add(SwitchboardSchedule(
                        organisation_id=org.id, name=schedule.name,
                        definition=schedule.definition.model_dump_json()))
                    log.info("seeded schedule %s", schedule.name)
            conditions = set(session.exec(select(TimeCondition.number).where(
                TimeCondition.organisation_id == org.id)).all())
            for condition in config.time_conditions:
                if condition.number not in conditions:
                    session.add(TimeCondition(
                        organisation_id=org.id, number=condition.number, name=condition.name,
                        schedule=condition.schedule, open_target=condition.open,
                        closed_target=condition.closed))
                    log.info("seeded time condition %s (%s: %s / %s)", condition.number,
                             condition.schedule, condition.open, condition.closed)
            ivrs = {name for row in session.exec(select(Ivr).where(Ivr.organisation_id == org.id))
                    for name in (row.number, row.name)}
            for tree in config.ivrs:
                if tree.number not in ivrs and tree.name not in ivrs:
                    session.add(Ivr(organisation_id=org.id, number=tree.number, name=tree.name,
                                    tree=to_json(tree)))
                    log.info("seeded IVR %s on %s", tree.name, tree.number)
            queues = set(session.exec(select(Queue.number).where(
                Queue.organisation_id == org.id)).all())
            for queue in config.queues:
                if queue.number not in queues:
                    session.add(Queue(organisation_id=org.id, number=queue.number,
                                      name=queue.name, settings=queue.model_dump_json()))
                    log.info("seeded queue %s (%s, %d members)", queue.number, queue.strategy,
                             len(queue.members))
            trunks = set(session.exec(select(Trunk.name).where(Trunk.organisation_id == org.id)))
            for trunk in config.trunks:
                if trunk.name not in trunks:
                    session.add(Trunk(organisation_id=org.id, name=trunk.name,
                                      settings=trunk.model_dump_json()))
                    log.info("seeded trunk %s (%s, %s)", trunk.name, trunk.host, trunk.auth)
            shared = set(session.exec(select(SharedMailbox.number).where(
                SharedMailbox.organisation_id == org.id)).all())
            for box in config.mailboxes:
                if box.number not in shared:
                    session.add(SharedMailbox(organisation_id=org.id, number=box.number,
                                              name=box.name, members=",".join(box.members),
                                              email=box.email))
                    log.info("seeded shared mailbox %s (%s)", box.number, ", ".join(box.members))
            settled = set(session.exec(select(MailboxSettings.mailbox).where(
                MailboxSettings.organisation_id == org.id)).all())
            wanted = [(ext.mailbox or ext.number, ext.voicemail_pin, ext.pin_from_own_device,
                       ext.voicemail_operator) for ext in config.extensions]
            wanted += [(box.number, box.pin, box.pin_from_own_device, box.operator)
                       for box in config.mailboxes]
            for mailbox, pin, own_device, operator in wanted:
                if mailbox not in settled and (pin or own_device or operator):
                    settled.add(mailbox)
                    session.add(MailboxSettings(
                        organisation_id=org.id, mailbox=mailbox, operator=operator,
                        pin_hash=hash_password(pin) if pin else "",
                        pin_from_own_device=own_device))
                    log.info("seeded the settings of mailbox %s", mailbox)
            routes = {r.name: r.position for r in session.exec(select(OutboundRoute).where(
                OutboundRoute.organisation_id == org.id))}
            position = max(routes.values(), default=-1)
            for route in config.routes:
                if route.name not in routes:
                    position += 1
                    session.add(OutboundRoute(
                        organisation_id=org.id, name=route.name, position=position,
                        patterns=", ".join(route.patterns), trunks=", ".join(route.trunks),
                        strip=route.strip, prepend=route.prepend, caller_id=route.callerid))
                    log.info("seeded outbound route %s (%s → %s)", route.name,
                             ", ".join(route.patterns), ", ".join(route.trunks))
            session.commit()

    def rows(self, *models: type[SQLModel]) -> list[list[Any]]:
        """Every row of each table, in one session (detached copies: the
        directory keeps them in memory)."""
        with Session(self.engine) as session:
            return [list(session.exec(select(model)).all()) for model in models]

    def add_cdr(self, cdr: Cdr) -> None:
        with Session(self.engine) as session:
            session.add(cdr)
            session.commit()

    def add_recording(self, recording: Recording) -> None:
        with Session(self.engine) as session:
            session.add(recording)
            session.commit()

    def recordings(self, limit: int = 100) -> list[Recording]:
        with Session(self.engine) as session:
            query = select(Recording).order_by(Recording.id.desc()).limit(limit)  # type: ignore[union-attr]
            return list(session.exec(query).all())

    def expire_recordings(self, now: float) -> list[str]:
        """Delete the records past their retention date; returns their file paths to remove."""
        with Session(self.engine) as session:
            old = list(session.exec(select(Recording).where(Recording.retain_until <= now)).all())
            for recording in old:
                session.delete(recording)
            session.commit()
            return [recording.path for recording in old]

    def mailbox_counts(self, organisation: int, *mailboxes: str) -> tuple[int, int]:
        """The new (unheard) and old messages of mailboxes together, for a
        message-waiting lamp (one's own and the shared ones one is member of)."""
        with Session(self.engine) as session:
            rows = session.exec(
                select(col(Voicemail.heard), func.count())
                .where(col(Voicemail.organisation_id) == organisation,
                       col(Voicemail.mailbox).in_(mailboxes))
                .group_by(col(Voicemail.heard))
            ).all()
        counts = {bool(heard): count for heard, count in rows}
        return counts.get(False, 0), counts.get(True, 0)

    def cdrs(self, limit: int = 100) -> list[Cdr]:
        """The newest call records first."""
        with Session(self.engine) as session:
            query = select(Cdr).order_by(Cdr.id.desc()).limit(limit)  # type: ignore[union-attr]
            return list(session.exec(query).all())

    def load_bindings(self, now: float) -> list[Registration]:
        """The registrations still valid at wall-clock ``now`` (for a restart)."""
        with Session(self.engine) as session:
            session.exec(delete(Binding).where(Binding.expires_at <= now))  # type: ignore[call-overload]
            session.commit()
            rows = session.exec(select(Binding)).all()
            return [Registration(**row.model_dump()) for row in rows]

    def notify(self, channel: str, payload: str) -> None:
        """PostgreSQL ``NOTIFY`` (for the cluster's other nodes, pbx/cluster.py)."""
        with self.engine.begin() as connection:
            connection.execute(_NOTIFY, {"channel": channel, "payload": payload})

    def bindings_of(self, aors: Sequence[str] | None, now: float) -> list[Registration]:
        """The registrations of ``aors`` (None: of all) still valid at ``now``."""
        query = select(Binding).where(Binding.expires_at > now)
        with Session(self.engine) as session:
            if aors is None:
                rows = list(session.exec(query).all())
            else:
                rows = [row for start in range(0, len(aors), 500)
                        for row in session.exec(query.where(
                            Binding.aor.in_(aors[start:start + 500]))).all()]  # type: ignore[attr-defined]
            return [Registration(**row.model_dump()) for row in rows]

    def save_bindings(self, upserts: Iterable[Registration], removals: Iterable[str],
                      notify: tuple[str, str] | None = None) -> None:
        """Write a batch of changed and removed bindings in one transaction.

        One multi-row ``INSERT … ON CONFLICT DO UPDATE`` (SQLite and PostgreSQL
        both have it) instead of an ORM merge per row: a registration storm
        must not hold the interpreter in the database thread.  ``notify``
        (channel, payload): a PostgreSQL ``NOTIFY`` sent in the same
        transaction, so listeners hear of the batch only once it is there.
        """
        columns = list(Binding.model_fields)
        rows = [{name: getattr(binding, name) for name in columns} for binding in upserts]
        removal_ids = list(removals)
        with self.engine.begin() as connection:
            if removal_ids:
                connection.execute(delete(Binding).where(Binding.id.in_(removal_ids)))  # type: ignore[attr-defined]
            if rows:
                insert = _upsert_insert(self.engine)(Binding)
                update = {name: insert.excluded[name] for name in columns if name != "id"}
                connection.execute(
                    insert.on_conflict_do_update(index_elements=["id"], set_=update), rows
                )
            if notify is not None:
                connection.execute(_NOTIFY, {"channel": notify[0], "payload": notify[1]})
