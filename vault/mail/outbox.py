"""The outbox: mail kept in the database until it is delivered.

A mail is put in the outbox in the same transaction as what causes it (an
invitation, a sign-in, a contract's end date), so it is sent if and only if
that change commits. Its message (recipient, subject, text, HTML) is sealed
under the key provider's ``mail`` master key with the row's id in the
associated data: an invitation's link in a database backup opens nothing.
Once delivered, the sealed message is dropped and only the row's facts
(kind, times, attempts) stay, for status and metrics.

Statuses: ``pending`` (due at ``next_attempt_at``), ``sending`` (claimed
by one sender until ``lease_until``: a sender that died leaves it due again
then), ``sent``, ``dead`` (given up; ``kluis mail retry`` puts it back).
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vault.crypto._primitives import encode_parts
from vault.db.schema import outbox
from vault.keys.provider import MAIL_KEY, KeyProvider
from vault.mail.messages import Message
from vault.tokens import new_id

PENDING, SENDING, SENT, DEAD = "pending", "sending", "sent", "dead"
STATUSES = (PENDING, SENDING, SENT, DEAD)
#: Delivered rows (without their message) are kept this long, then removed.
KEEP_SENT = timedelta(days=30)


@dataclasses.dataclass(frozen=True)
class Sealed:
    """A message sealed for its outbox row, ready to be put in a transaction."""

    id: str
    kind: str
    sealed: bytes = dataclasses.field(repr=False)


def _aad(row_id: str) -> bytes:
    return encode_parts(b"kluis-outbox-v1", row_id)


async def seal(provider: KeyProvider, kind: str, message: Message) -> Sealed:
    row_id = new_id()
    plain = json.dumps(dataclasses.asdict(message), ensure_ascii=False).encode("utf-8")
    return Sealed(row_id, kind, await provider.wrap(MAIL_KEY, plain, _aad(row_id)))


async def put(conn: AsyncConnection, mail: Sealed, now: datetime) -> None:
    """Put a sealed mail in the outbox, in the caller's transaction."""
    await conn.execute(
        insert(outbox).values(
            id=mail.id,
            kind=mail.kind,
            created_at=now,
            status=PENDING,
            attempts=0,
            next_attempt_at=now,
            sealed=mail.sealed,
        )
    )


async def open_message(provider: KeyProvider, row_id: str, sealed: bytes) -> Message:
    raw = json.loads(await provider.unwrap(MAIL_KEY, sealed, _aad(row_id)))
    return Message(**raw)


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    id: str
    kind: str
    created_at: datetime
    attempts: int
    last_error: str | None


@dataclasses.dataclass(frozen=True)
class Status:
    counts: dict[str, int]
    oldest_pending: datetime | None
    dead: list[DeadLetter]


async def status(engine: AsyncEngine, *, dead_limit: int = 50) -> Status:
    async with engine.connect() as conn:
        counted = select(outbox.c.status, func.count()).group_by(outbox.c.status)
        rows = (await conn.execute(counted)).all()
        oldest = await conn.scalar(
            select(func.min(outbox.c.created_at)).where(outbox.c.status.in_((PENDING, SENDING)))
        )
        dead = (
            await conn.execute(
                select(
                    outbox.c.id,
                    outbox.c.kind,
                    outbox.c.created_at,
                    outbox.c.attempts,
                    outbox.c.last_error,
                )
                .where(outbox.c.status == DEAD)
                .order_by(outbox.c.created_at)
                .limit(dead_limit)
            )
        ).all()
    counts = dict.fromkeys(STATUSES, 0)
    counts.update({str(state): int(n) for state, n in rows})
    return Status(
        counts=counts,
        oldest_pending=oldest,
        dead=[DeadLetter(r.id, r.kind, r.created_at, r.attempts, r.last_error) for r in dead],
    )


async def retry_dead(engine: AsyncEngine, now: datetime, row_id: str | None = None) -> int:
    """Put dead letters (all, or one) back in line with fresh attempts."""
    query = update(outbox).where(outbox.c.status == DEAD, outbox.c.sealed.is_not(None))
    if row_id is not None:
        query = query.where(outbox.c.id == row_id)
    async with engine.begin() as conn:
        result = await conn.execute(
            query.values(status=PENDING, attempts=0, next_attempt_at=now, last_error=None)
        )
    return int(result.rowcount)


async def forget_sent(engine: AsyncEngine, now: datetime) -> int:
    async with engine.begin() as conn:
        result = await conn.execute(
            delete(outbox).where(outbox.c.status == SENT, outbox.c.sent_at < now - KEEP_SENT)
        )
    return int(result.rowcount)
