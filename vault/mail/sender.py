"""Delivering the outbox over SMTP: claims, retries with backoff, dead letters.

Any number of senders (one per ``kluis serve`` process) share one outbox.
A sender claims a due row in a short transaction of its own: it marks it
``sending`` with a claim id and a lease, and counts the attempt. On
PostgreSQL the claim skips rows another sender has locked (``FOR UPDATE
SKIP LOCKED``), so senders never wait for each other; on SQLite the write
lock lets one claim at a time, one row per claim. The SMTP conversation
happens outside any transaction, and its outcome is written only if the
claim is still the sender's own: a mail is sent once. (A sender that dies
between the server's "250 OK" and that write leaves the row to be sent
again when its lease ends: SMTP has no way to ask whether a message
arrived. The Message-ID is the row's id, so a reader's client can tell.)

A refusal with a 4xx reply, a server that is down, unreachable, slow or
breaks off: tried again after ``mail.retry_seconds``, twice as long each
time up to an hour, ``mail.max_attempts`` times in all, then dead. A 5xx
reply (a recipient that does not exist, a login refused) is final at once:
dead, visible in ``/metrics`` and ``kluis mail status``, and put back in
line by ``kluis mail retry`` once the cause is fixed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.message
import email.utils
import logging
import re
import ssl
from collections.abc import Callable
from datetime import datetime, timedelta

import aiosmtplib
from sqlalchemy import or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from vault.config import MailSettings
from vault.db.engine import is_sqlite
from vault.db.schema import outbox
from vault.errors import KluisError
from vault.keys.provider import KeyProvider
from vault.mail.messages import Message
from vault.mail.outbox import DEAD, PENDING, SENDING, SENT, forget_sent, open_message
from vault.tokens import new_id

log = logging.getLogger(__name__)

#: Longest wait between two attempts.
MAX_BACKOFF = timedelta(hours=1)
#: A claim not finished within this is due again (a sender that died).
LEASE = timedelta(minutes=10)
#: Rows one PostgreSQL claim takes (SQLite: one).
BATCH = 20
_ADDRESS = re.compile(r"<?[^\s<>]+@[^\s<>]+>?")


class DeliveryFailed(Exception):
    """One attempt failed; ``permanent`` when trying again cannot help."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        # Servers quote the address they refuse; it stays out of logs and status.
        reason = _ADDRESS.sub("<address>", reason)[:200]
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class SmtpTransport:
    """One SMTP conversation per message, with STARTTLS as configured."""

    def __init__(self, settings: MailSettings) -> None:
        self.settings = settings

    def _tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.settings.ca_file or None)

    def mime(self, message: Message, message_id: str) -> email.message.EmailMessage:
        mime = email.message.EmailMessage()
        mime["From"] = self.settings.sender
        mime["To"] = message.to
        mime["Subject"] = message.subject
        mime["Date"] = email.utils.formatdate(usegmt=True)
        domain = email.utils.parseaddr(self.settings.sender)[1].rpartition("@")[2] or "kluis"
        mime["Message-ID"] = f"<{message_id}@{domain}>"
        # Tells mail servers and autoresponders that no one is waiting for an answer.
        mime["Auto-Submitted"] = "auto-generated"
        mime.set_content(message.text)
        mime.add_alternative(message.html, subtype="html")
        return mime

    async def send(self, message: Message, message_id: str) -> None:
        settings = self.settings
        start_tls = {"auto": None, "always": True, "never": False}[settings.starttls]
        client = aiosmtplib.SMTP(
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            timeout=settings.timeout_seconds,
            start_tls=start_tls,
            tls_context=self._tls_context() if start_tls is not False else None,
        )
        try:
            await client.connect()
            if settings.username:
                if client.get_transport_info("sslcontext") is None:
                    raise DeliveryFailed(
                        "the server offers no STARTTLS; the password is not sent in clear"
                    )
                await client.login(settings.username, settings.password.reveal())
            await client.send_message(self.mime(message, message_id))
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryFailed(
                f"{exc.code} {exc.message}", permanent=500 <= exc.code < 600
            ) from None
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [refusal.code for refusal in exc.recipients]
            replies = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
            raise DeliveryFailed(
                f"recipient refused: {replies}",
                permanent=all(500 <= code < 600 for code in codes),
            ) from None
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from None
        finally:
            if client.is_connected:
                with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                    await client.quit()
            client.close()


@dataclasses.dataclass(frozen=True)
class _Claimed:
    id: str
    kind: str
    attempts: int
    sealed: bytes | None = dataclasses.field(repr=False)


class MailSender:
    """Delivers due outbox rows; ``run_once`` for one pass, ``run`` forever."""

    def __init__(
        self,
        engine: AsyncEngine,
        provider: KeyProvider,
        settings: MailSettings,
        clock: Callable[[], datetime],
        *,
        transport: SmtpTransport | None = None,
        observe: Callable[[str], None] | None = None,
    ) -> None:
        self._engine, self._provider, self._settings = engine, provider, settings
        self._clock = clock
        self._transport = transport or SmtpTransport(settings)
        self._observe = observe or (lambda outcome: None)
        self._batch = 1 if is_sqlite(engine.url.render_as_string()) else BATCH
        self._last_cleanup: datetime | None = None

    def backoff(self, attempts: int) -> timedelta:
        wait = timedelta(seconds=self._settings.retry_seconds * 2 ** max(0, attempts - 1))
        return min(wait, MAX_BACKOFF)

    async def run_once(self) -> int:
        """Deliver every row due now; how many were delivered."""
        delivered = 0
        while True:
            claim = new_id()
            rows = await self._claim(claim, self._clock())
            if not rows:
                break
            for row in rows:
                delivered += await self._deliver(row, claim)
        await self._cleanup()
        return delivered

    async def run(self) -> None:
        """Deliver forever; a database or key problem is logged and retried."""
        while True:
            try:
                await self.run_once()
            except (KluisError, OSError, SQLAlchemyError) as exc:
                log.warning("mail sender: %s; trying again shortly", type(exc).__name__)
            except Exception:
                log.exception("mail sender failed; trying again shortly")
            await asyncio.sleep(self._settings.poll_seconds)

    async def _claim(self, claim: str, now: datetime) -> list[_Claimed]:
        due = (
            select(outbox.c.id)
            .where(
                or_(
                    (outbox.c.status == PENDING) & (outbox.c.next_attempt_at <= now),
                    (outbox.c.status == SENDING) & (outbox.c.lease_until <= now),
                )
            )
            .order_by(outbox.c.next_attempt_at)
            .limit(self._batch)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        async with self._engine.begin() as conn:
            rows = (
                await conn.execute(
                    update(outbox)
                    .where(outbox.c.id.in_(due))
                    .values(
                        status=SENDING,
                        claim=claim,
                        lease_until=now + LEASE,
                        attempts=outbox.c.attempts + 1,
                    )
                    .returning(outbox.c.id, outbox.c.kind, outbox.c.attempts, outbox.c.sealed)
                )
            ).all()
        return [_Claimed(r.id, r.kind, r.attempts, r.sealed) for r in rows]

    async def _deliver(self, row: _Claimed, claim: str) -> int:
        try:
            if row.sealed is None:
                raise DeliveryFailed("the message is gone", permanent=True)
            message = await open_message(self._provider, row.id, row.sealed)
            await self._transport.send(message, row.id)
        except DeliveryFailed as failure:
            await self._failed(row, claim, failure)
            return 0
        except KluisError as exc:  # the mail key cannot open it
            await self._failed(row, claim, DeliveryFailed(exc.code, permanent=True))
            return 0
        now = self._clock()
        async with self._engine.begin() as conn:
            done = await conn.execute(
                update(outbox)
                .where(outbox.c.id == row.id, outbox.c.claim == claim)
                .values(status=SENT, sent_at=now, sealed=None, lease_until=None, last_error=None)
            )
        if done.rowcount == 0:
            log.warning("mail %s was delivered after its claim ran out", row.kind)
        self._observe("sent")
        return 1

    async def _failed(self, row: _Claimed, claim: str, failure: DeliveryFailed) -> None:
        now = self._clock()
        dead = failure.permanent or row.attempts >= self._settings.max_attempts
        values: dict[str, object] = {"last_error": failure.reason, "lease_until": None}
        if dead:
            values["status"] = DEAD
        else:
            values.update(status=PENDING, next_attempt_at=now + self.backoff(row.attempts))
        async with self._engine.begin() as conn:
            await conn.execute(
                update(outbox).where(outbox.c.id == row.id, outbox.c.claim == claim).values(values)
            )
        log.warning(
            "mail %s attempt %d failed (%s)%s",
            row.kind,
            row.attempts,
            failure.reason,
            ": given up" if dead else "",
        )
        self._observe("dead" if dead else "retry")

    async def _cleanup(self) -> None:
        now = self._clock()
        if self._last_cleanup is None or now - self._last_cleanup > timedelta(hours=1):
            self._last_cleanup = now
            await forget_sent(self._engine, now)
