"""The writer of the audit log: one chain, group commits, fail closed.

``await log.record(*events)`` returns once the events are committed, or
raises :class:`~vault.errors.StorageUnavailable`: callers record *before*
the access or destruction they describe, so if the record cannot be
written, that access does not happen.

Events waiting while a commit is under way are written together in the
next transaction (a group commit), so many concurrent requests share one
fsync. On SQLite the whole transaction runs in one trip to the writer's own
thread, on a synchronous connection to the same file (aiosqlite would cross
threads for every statement); on PostgreSQL on the async engine. Each
transaction first locks and reads the head row in one UPDATE ... RETURNING
(the row lock on PostgreSQL, the write lock on SQLite, before any read),
chains the events onto it, and moves the head with a fresh HMAC under the
keyring's audit key. Every ``checkpoint_every`` events a signed
checkpoint is kept as well, and its line goes to the process log: a copy
of the chain's state outside the database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vault.audit.events import Event, head_message, row_of
from vault.crypto.handles import AuditKey
from vault.db.engine import sqlite_twin
from vault.db.schema import (
    audit_checkpoints,
    audit_events,
    audit_head,
    audit_subjects,
    facts_version,
)
from vault.errors import StorageUnavailable

log = logging.getLogger(__name__)

Mac = Callable[[bytes], Awaitable[bytes]]
#: The audit key's MAC as a plain call (:meth:`AuditKey.mac`), for :func:`append`.
BlockingMac = Callable[[bytes], bytes]
Clock = Callable[[], datetime]


class AuditUnavailable(StorageUnavailable):
    default_message = "The audit log cannot be written, so nothing was done; try again shortly."


class AuditLog:
    def __init__(
        self,
        engine: AsyncEngine,
        key: Callable[[], Awaitable[AuditKey]],
        clock: Clock,
        *,
        checkpoint_every: int = 1000,
    ) -> None:
        self._engine = engine
        self._key = key
        self._clock = clock
        self._every = checkpoint_every
        self._pending: list[tuple[list[Event], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._twin: Engine | None = sqlite_twin(engine, pool_size=1)
        self._thread = ThreadPoolExecutor(1, "kluis-audit") if self._twin is not None else None

    async def record(self, *events: Event) -> None:
        """Write ``events`` to the chain; return once committed, else raise."""
        if not events:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((list(events), future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())
        await asyncio.shield(future)

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            events = [ev for group, _ in batch for ev in group]
            try:
                await self._write(events)
            except BaseException as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(AuditUnavailable())
                if isinstance(exc, asyncio.CancelledError):
                    raise
                if isinstance(exc, SQLAlchemyError | OSError | StorageUnavailable):
                    log.error("audit log write failed: %s", type(exc).__name__)
                else:
                    log.exception("audit log write failed")
            else:
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)

    async def _write(self, events: list[Event]) -> None:
        now, key = self._clock(), await self._key()
        if self._twin is None or self._thread is None:
            async with self._engine.begin() as conn:
                await conn.run_sync(append, events, key.mac, now, self._every)
            return
        twin = self._twin

        def write() -> None:
            with twin.begin() as conn:
                append(conn, events, key.mac, now, self._every)

        await asyncio.get_running_loop().run_in_executor(self._thread, write)

    async def append_in(self, conn: AsyncConnection, *events: Event) -> None:
        """Chain ``events`` inside the caller's transaction: they commit with its
        change or not at all (key destruction, a stored item)."""
        if not events:
            return
        key = await self._key()
        try:
            await conn.run_sync(append, list(events), key.mac, self._clock(), self._every)
        except SQLAlchemyError as exc:
            log.error("audit log write failed: %s", type(exc).__name__)
            raise AuditUnavailable() from exc

    async def close(self) -> None:
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        if self._thread is not None:
            self._thread.shutdown(wait=True)
        if self._twin is not None:
            self._twin.dispose()


#: Built once: a statement object memoises its cache key, and the writer
#: runs these on every commit.
_LOCK_FACTS = update(facts_version).where(facts_version.c.id == 1).values(id=1)
_LOCK_HEAD = (
    update(audit_head)
    .where(audit_head.c.id == 1)
    .values(id=1)
    .returning(audit_head.c.seq, audit_head.c.hash)
)
_MOVE_HEAD = (
    update(audit_head)
    .where(audit_head.c.id == 1)
    .values(
        seq=bindparam("new_seq"),
        hash=bindparam("new_hash"),
        mac=bindparam("new_mac"),
        at=bindparam("new_at"),
    )
)
_INSERT_EVENTS = insert(audit_events)
_INSERT_SUBJECTS = insert(audit_subjects)
_INSERT_CHECKPOINT = insert(audit_checkpoints)


def append(
    conn: Connection, events: list[Event], mac: BlockingMac, now: datetime, every: int = 1000
) -> int:
    """Chain ``events`` onto the head inside the caller's transaction; the new head's seq."""
    if conn.dialect.name == "postgresql":
        # Row locks in one order everywhere: the facts version (which a change
        # to a fact table takes through its trigger), then the head. A
        # transaction that changes facts and records it cannot deadlock with
        # one that records first and changes after. (SQLite's write lock is
        # the whole database's: taken once, by the first write.)
        conn.execute(_LOCK_FACTS)
    head = conn.execute(_LOCK_HEAD).one()
    seq, digest = int(head.seq), str(head.hash)
    rows: list[dict[str, Any]] = []
    subjects: list[dict[str, Any]] = []
    checkpoints: list[dict[str, Any]] = []
    for ev in events:
        seq += 1
        row = row_of(seq, digest, ev, ev.at or now)
        digest = row["hash"]
        rows.append(row)
        subjects.extend({"child_id": child, "seq": seq} for child in ev.children)
        if seq % every == 0:
            signature = mac(head_message(seq, digest)).hex()
            checkpoints.append({"seq": seq, "hash": digest, "at": now, "mac": signature})
    conn.execute(_INSERT_EVENTS, rows)
    if subjects:
        conn.execute(_INSERT_SUBJECTS, subjects)
    for point in checkpoints:
        conn.execute(_INSERT_CHECKPOINT, point)
        log.info("audit checkpoint seq=%d hash=%s", point["seq"], point["hash"])
    signature = mac(head_message(seq, digest)).hex()
    conn.execute(
        _MOVE_HEAD, {"new_seq": seq, "new_hash": digest, "new_mac": signature, "new_at": now}
    )
    return seq
