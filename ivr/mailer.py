"""The mailer: transcribes new voicemail messages and sends the outbox.

Thin asyncio glue around :mod:`ivr.outbox` (when a row is due, what an
attempt does to it), :mod:`ivr.voicemail_mail` (the email) and
:mod:`ivr.transcribe` (speech to text).  It wakes when a message is left
(:class:`~pbx.events.VoicemailLeft` on the event bus) and when the next row
falls due, and otherwise sleeps; everything it knows is in the store, so a
restart picks up where it stopped.  A message is transcribed before its
emails go; a transcription that fails or overruns is tried once per run and
the emails go without it.  Database and files are worked on in threads,
speech recognition in a child process: never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import make_msgid, parseaddr
from pathlib import Path

import aiosmtplib
import soundfile
from sqlmodel import Session, col, delete, select

from ivr.outbox import KEEP_DONE, record_dropped, record_failure, record_sent
from ivr.transcribe import TranscriptionError, has_model, transcribe_file
from ivr.voicemail_mail import (
    Notice, compose, display_name, mailbox_owners, recording,
)
from pbx.config import Config
from pbx.events import Event, EventBus, MailboxChanged, VoicemailLeft
from pbx.models import Extension, Organisation, OutboxEmail, Voicemail
from pbx.profiles import zone
from pbx.store import Store
from pbx.voicemail import discard_message

log = logging.getLogger("ivr.mailer")

PORTS = {"starttls": 587, "tls": 465, "none": 25}  # RFC 6409, RFC 8314, RFC 5321
SMTP_TIMEOUT = 60.0  # seconds for each step of an SMTP conversation
STOP_GRACE = 10.0  # seconds a send under way gets to finish when the PBX stops
POLL = 30.0  # seconds between looks at the outbox: other workers and nodes leave messages too
TRANSCRIBE_SECONDS = 120.0  # a transcription may take this long, plus 4 s a second of message


@dataclass(frozen=True, slots=True)
class Delivery:
    """An outbox row made ready to send: its email, or why there is none."""

    row_id: int
    recipient: str
    email: EmailMessage | None
    dropped: str = ""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a delivery attempt did to its row (for the log and the event bus)."""

    state: str
    attempts: int
    due_at: float
    deleted: tuple[int, str] | None  # (organisation, mailbox) of a message deleted once sent


def smtp_failure(exc: Exception) -> tuple[str, bool]:
    """A failed send as (what the log and the row say, whether it is final): a
    5xx to the recipient or the message is (RFC 5321 §4.2.1); a refused login,
    a missing STARTTLS, a dead server or a 4xx are worth another try."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [refusal.code for refusal in exc.recipients]
        return f"recipient refused: {'; '.join(str(r) for r in exc.recipients)}", \
            bool(codes) and min(codes) >= 500
    permanent = isinstance(exc, (aiosmtplib.SMTPRecipientRefused, aiosmtplib.SMTPDataError)) \
        and exc.code >= 500
    return f"{type(exc).__name__}: {exc}".strip(), permanent


class Mailer:
    """Sends the voicemail outbox over SMTP; one task per PBX node."""

    def __init__(self, store: Store, events: EventBus, config: Config, *,
                 clock: Callable[[], float] = time.time) -> None:
        general = config.general
        self.store = store
        self.events = events
        self.clock = clock
        self.language = general.language
        self.attach = general.voicemail_attach
        self.delete = general.voicemail_delete
        self.sender = general.smtp_from or f"PBX Voicemail <voicemail@{general.realm}>"
        self.msgid_domain = general.realm
        self.smtp: dict[str, object] | None = None
        if general.smtp_host:
            login = {"username": general.smtp_user, "password": general.smtp_password} \
                if general.smtp_user else {}
            self.smtp = {
                "hostname": general.smtp_host,
                "port": general.smtp_port or PORTS[general.smtp_security],
                "use_tls": general.smtp_security == "tls",
                "start_tls": general.smtp_security == "starttls",
                "validate_certs": general.smtp_verify,
                "timeout": SMTP_TIMEOUT,
                **login,
            }
        self._wake = asyncio.Event()
        self._stopping = False
        self._transcription: asyncio.Future[str | None] | None = None  # the one under way
        self._left: set[int] = set()  # messages announced on the bus, to transcribe
        self._tried: set[int] = set()  # messages whose transcription was tried in this run
        self._task: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------- life cycle

    def start(self) -> None:
        self.events.subscribe(self._on_event)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop after the send under way (at most :data:`STOP_GRACE` seconds; a
        transcription is given up at once); whatever is not sent stays in the
        outbox for the next start."""
        self.events.unsubscribe(self._on_event)
        self._stopping = True
        if self._transcription is not None:
            self._transcription.cancel()  # kills the child
        self.wake()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
                await asyncio.wait_for(self._task, STOP_GRACE)

    def wake(self) -> None:
        """Look at the outbox now (a message was left, a test moved time)."""
        self._wake.set()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, VoicemailLeft):
            self._left.add(event.message_id)
            self.wake()

    async def _run(self) -> None:
        if self.smtp is None and (waiting := await asyncio.to_thread(self._pending_count)):
            log.warning("voicemail email: smtp_host is not set; %d email(s) wait in the outbox",
                        waiting)
        while not self._stopping:
            self._wake.clear()
            try:
                next_due = await self._work()
            except Exception:
                log.exception("voicemail email: the outbox pass failed; again in 30 s")
                next_due = self.clock() + 30
            if self._stopping:
                return
            timeout = POLL if next_due is None else min(POLL, max(0.0, next_due - self.clock()))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _work(self) -> float | None:
        """One pass: transcribe what waits for it, send what is due; returns
        when the next row falls due (None: nothing pending)."""
        for message_id in sorted(self._left | await asyncio.to_thread(self._untranscribed)):
            if self._stopping:
                return None
            self._left.discard(message_id)
            await self._transcribe(message_id)
        if self.smtp is None:
            return None
        for row_id in await asyncio.to_thread(self._due, self.clock()):
            if self._stopping:
                return None
            await self._deliver(row_id)
        return await asyncio.to_thread(self._next_due)

    # ------------------------------------------------------------- transcripts

    async def _transcribe(self, message_id: int) -> None:
        """Transcribe one message (a child process), once per run; on failure or
        overrun its emails go without a transcript."""
        self._tried.add(message_id)
        found = await asyncio.to_thread(self._untranscribed_file, message_id)
        if found is None:
            return
        path, duration = found
        started = time.monotonic()
        limit = TRANSCRIBE_SECONDS + 4 * duration
        self._transcription = asyncio.ensure_future(transcribe_file(path, limit))
        try:
            text = await self._transcription
        except TranscriptionError as exc:
            log.error("voicemail %d: no transcript: %s", message_id, exc)
            return
        except asyncio.CancelledError:
            if self._stopping:  # stop() killed it
                return
            raise
        finally:
            self._transcription = None
        if text is None:
            log.error("voicemail %d: no transcript: it took over %.0f s", message_id, limit)
            return
        await asyncio.to_thread(self._store_transcript, message_id, text)
        log.info("voicemail %d: transcribed in %.1f s (%d words)", message_id,
                 time.monotonic() - started, len(text.split()))

    def _untranscribed_file(self, message_id: int) -> tuple[Path, float] | None:
        """The message's WAV and length, unless it is gone, has its transcript,
        or is in a language without a model."""
        with Session(self.store.engine) as db:
            message = db.get(Voicemail, message_id)
            if message is None or message.transcript is not None \
                    or not has_model(self._language(db, message.organisation_id)):
                return None
            return Path(message.path), message.duration

    def _language(self, db: Session, organisation: int | None) -> str:
        """The organisation's language, else the node's (``[general] language``)."""
        org = db.get(Organisation, organisation) if organisation is not None else None
        return (org.language if org is not None else "") or self.language

    def _waits(self, db: Session, message: Voicemail) -> bool:
        """Whether the message's emails wait for its transcript: none yet, its
        language has a model, and it has not been tried in this run."""
        return message.transcript is None and message.id not in self._tried \
            and has_model(self._language(db, message.organisation_id))

    def _store_transcript(self, message_id: int, text: str) -> None:
        with Session(self.store.engine) as db:
            message = db.get(Voicemail, message_id)
            if message is not None:  # unless deleted meanwhile
                message.transcript = text
                db.add(message)
                db.commit()

    def _untranscribed(self) -> set[int]:
        """Messages with an email to send that wait for their transcript."""
        with Session(self.store.engine) as db:
            messages = db.exec(select(Voicemail).join(
                OutboxEmail, col(OutboxEmail.voicemail_id) == col(Voicemail.id)).where(
                col(OutboxEmail.state) == "pending", col(Voicemail.transcript).is_(None)
            ).distinct()).all()
            return {m.id for m in messages if m.id is not None and self._waits(db, m)}

    # ----------------------------------------------------------------- sending

    def _due(self, now: float) -> list[int]:
        """Rows due by ``now``, oldest first, except those whose message waits
        for its transcript; done rows past :data:`KEEP_DONE` go."""
        with Session(self.store.engine) as db:
            db.exec(delete(OutboxEmail).where(  # type: ignore[call-overload]
                col(OutboxEmail.state) != "pending", col(OutboxEmail.created_at) < now - KEEP_DONE))
            db.commit()
            rows = db.exec(select(OutboxEmail, Voicemail).join(
                Voicemail, col(Voicemail.id) == col(OutboxEmail.voicemail_id), isouter=True,
            ).where(col(OutboxEmail.state) == "pending", col(OutboxEmail.due_at) <= now)
                .order_by(col(OutboxEmail.due_at), col(OutboxEmail.id))).all()
            return [row.id for row, message in rows if row.id is not None
                    and not (message is not None and self._waits(db, message))]

    def _next_due(self) -> float | None:
        with Session(self.store.engine) as db:
            return db.exec(select(OutboxEmail.due_at).where(col(OutboxEmail.state) == "pending")
                           .order_by(col(OutboxEmail.due_at)).limit(1)).first()

    def _pending_count(self) -> int:
        with Session(self.store.engine) as db:
            return len(db.exec(select(OutboxEmail.id).where(
                col(OutboxEmail.state) == "pending")).all())

    async def _deliver(self, row_id: int) -> None:
        delivery = await asyncio.to_thread(self._prepare, row_id)
        error, permanent = "", False
        if delivery.email is not None:
            assert self.smtp is not None
            try:
                await aiosmtplib.send(  # type: ignore[call-overload]
                    delivery.email, sender=parseaddr(self.sender)[1],
                    recipients=[delivery.recipient], **self.smtp)
            except (aiosmtplib.SMTPException, OSError) as exc:
                error, permanent = smtp_failure(exc)
        outcome = await asyncio.to_thread(self._record, row_id, error, permanent,
                                          delivery.dropped, self.clock())
        if delivery.dropped:
            log.info("voicemail email %d to %s dropped: %s", row_id, delivery.recipient,
                     delivery.dropped)
        elif outcome.state == "sent":
            log.info("voicemail email %d sent to %s (attempt %d)", row_id, delivery.recipient,
                     outcome.attempts)
        elif outcome.state == "failed":
            log.error("voicemail email %d to %s failed for good (attempt %d): %s", row_id,
                      delivery.recipient, outcome.attempts, error)
        else:
            log.warning("voicemail email %d to %s: attempt %d failed (%s); again in %.0f s",
                        row_id, delivery.recipient, outcome.attempts, error,
                        outcome.due_at - self.clock())
        if outcome.deleted is not None:
            organisation, mailbox = outcome.deleted
            self.events.publish(MailboxChanged(organisation, mailbox, self.clock()))

    def _prepare(self, row_id: int) -> Delivery:
        """The row's email (its Message-ID made once and kept), with the
        recording converted as ``voicemail_attach`` says."""
        with Session(self.store.engine) as db:
            row = db.get(OutboxEmail, row_id)
            assert row is not None
            message = db.get(Voicemail, row.voicemail_id)
            if message is None:
                return Delivery(row_id, row.recipient, None, "the message was deleted first")
            if not row.message_id:
                row.message_id = make_msgid("voicemail", domain=self.msgid_domain)
                db.add(row)
                db.commit()
            organisation = db.get(Organisation, message.organisation_id)
            caller = db.exec(select(Extension).where(
                col(Extension.organisation_id) == message.organisation_id,
                col(Extension.number) == message.caller)).first()
            notice = Notice(
                message_id=row.voicemail_id, mailbox=message.mailbox, caller=message.caller,
                caller_name=display_name(caller.display_name) if caller is not None else "",
                received=datetime.fromtimestamp(
                    message.created_at, zone(organisation.timezone if organisation else "")),
                duration=message.duration, transcript=message.transcript,
                language=self._language(db, message.organisation_id),
                callback_number=message.callback_number)
            recipient, msgid, path = row.recipient, row.message_id, Path(message.path)
        name = f"voicemail-{notice.message_id}-{notice.received:%Y%m%d-%H%M%S}"
        try:
            attachment = recording(path, self.attach, name)
        except (OSError, soundfile.LibsndfileError) as exc:
            log.error("voicemail %d: the recording cannot be attached: %s", notice.message_id, exc)
            attachment = None
        email = compose(notice, sender=self.sender, recipient=recipient, msgid=msgid,
                        attachment=attachment,
                        missing_recording=attachment is None and self.attach != "none")
        return Delivery(row_id, recipient, email)

    def _record(self, row_id: int, error: str, permanent: bool, dropped: str,
                now: float) -> Outcome:
        """Count the attempt on the row; once a message has no email left to
        send and one went, delete it if ``voicemail_delete`` says so."""
        with Session(self.store.engine) as db:
            row = db.get(OutboxEmail, row_id)
            assert row is not None
            if dropped:
                record_dropped(row, dropped)
            elif error:
                record_failure(row, now, error, permanent=permanent)
            else:
                record_sent(row, now)
            db.add(row)
            db.commit()
            outcome = Outcome(row.state, row.attempts, row.due_at, None)
            message = db.get(Voicemail, row.voicemail_id)
            if row.state != "sent" or message is None or not self._delete_after(db, message):
                return outcome
            assert message.organisation_id is not None
            deleted = (message.organisation_id, message.mailbox)
            discard_message(db, message)
            log.info("voicemail %d deleted: emailed (voicemail_delete)", row.voicemail_id)
            return Outcome(outcome.state, outcome.attempts, outcome.due_at, deleted)

    def _delete_after(self, db: Session, message: Voicemail) -> bool:
        """Whether the message goes now: every email of it is done and
        ``voicemail_delete`` (its extension's, else ``[general]``) is yes."""
        if message.organisation_id is None or db.exec(select(OutboxEmail.id).where(
                col(OutboxEmail.voicemail_id) == message.id,
                col(OutboxEmail.state) == "pending")).first() is not None:
            return False
        owners = mailbox_owners(db, message.organisation_id, message.mailbox)
        return next((ext.voicemail_delete for ext in owners if ext.voicemail_delete is not None),
                    self.delete)
