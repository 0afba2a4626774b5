"""The writer of the audit log: one chain, group commits, fail closed.

``await log.record(*events)`` returns once the events are committed, or
raises :class:`~vault.errors.StorageUnavailable`: callers record *before*
the access or destruction they describe, so if the record cannot be
written, that access does not happen.

Events waiting while a commit is under way are written together in the
next transaction (a group commit), so many concurrent requests share one
fsync. There is one way to append, :func:`append`, on a synchronous
connection, whatever the engine: the service's log on a SQLite file runs it
in a thread of its own on its own connection (one trip to that thread per
group commit, ``executemany`` for the rows); on PostgreSQL, in the CLI, and
inside a caller's transaction (:meth:`AuditLog.append_in`) it runs through
the async engine's ``run_sync``.

A change that must be on the record with its own events (a stored item's
rows) can ride in the group commit too (:meth:`AuditLog.commit`): a
synchronous function of the connection, run in the same transaction before
the events are chained. On SQLite the service's writer is then the only
writer of the hot paths: an upload's transaction no longer holds SQLite's
write lock across trips to the event loop while every link fetch's record
waits for it in SQLite's busy handler (which sleeps up to 100 ms between
tries), and both share one fsync (issue 18, item 7). A change that fails
fails alone: the group is then written again without it. (An earlier writer *process* held SQLite's
write lock while it waited for the service to sign the head, so a service
whose event loop stalled stopped every writer of every process.) Each transaction
first locks and reads the head row in one UPDATE ... RETURNING (the row
lock on PostgreSQL, the write lock on SQLite, before any read), chains the
events onto it, and moves the head with a fresh HMAC under the key
provider's audit MAC key (computed inside the provider: its bytes never come
out). Every ``checkpoint_every`` events a signed
checkpoint is kept as well, and its line goes to the process log: a copy
of the chain's state outside the database.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import logging
import os
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import bindparam, insert, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vault.audit.events import Event, chain, draft_of, head_message
from vault.db.engine import sqlite_file, sqlite_twin, unreachable
from vault.db.schema import (
    audit_checkpoints,
    audit_events,
    audit_head,
    audit_subjects,
    facts_version,
)
from vault.errors import KluisError, StorageUnavailable

log = logging.getLogger(__name__)

#: HMAC-SHA256 of a message under the audit key, computed by the key provider
#: (``KeyProvider.mac``): a plain, thread-safe call, since it runs inside the
#: transaction that moves the head.
Sign = Callable[[bytes], bytes]
#: Whether a tag is the audit key's HMAC of a message (``KeyProvider.verify_mac``).
Check = Callable[[bytes, bytes], bool]
Clock = Callable[[], datetime]
#: A change written in a group commit: a synchronous function of the
#: transaction's connection (no awaits, nothing but SQL); what it returns is ignored.
Change = Callable[[Connection], object]


class _Entry:
    """One caller's part of a group commit: its events, its change (or none)."""

    __slots__ = ("change", "events", "future")

    def __init__(
        self, events: list[Event], change: Change | None, future: asyncio.Future[None]
    ) -> None:
        self.events, self.change, self.future = events, change, future


class AuditUnavailable(StorageUnavailable):
    default_message = "The audit log cannot be written, so nothing was done; try again shortly."


class AuditLog:
    def __init__(
        self,
        engine: AsyncEngine,
        sign: Sign,
        clock: Clock,
        *,
        checkpoint_every: int = 1000,
        own_thread: bool = False,
    ) -> None:
        """``own_thread``: on a SQLite file, commit in a thread of its own on a
        synchronous connection (the service: one trip to that thread per
        group commit, the event loop never waits on the disk); else, and
        always on PostgreSQL, on ``engine``."""
        self._engine = engine
        self._sign = sign
        self._clock = clock
        self._every = checkpoint_every
        self._pending: list[_Entry] = []
        self._writer: asyncio.Task[None] | None = None
        self._sync: Engine | None = sqlite_twin(engine, pool_size=1) if own_thread else None
        self._thread = (
            concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kluis-audit")
            if self._sync is not None
            else None
        )
        database = sqlite_file(engine) if self._sync is not None else None
        self._queue = _WriterQueue(database + "-audit.lock") if database else None

    async def record(self, *events: Event) -> None:
        """Write ``events`` to the chain; return once committed, else raise."""
        if not events:
            return
        await asyncio.shield(self._submit(list(events), None))

    def commit(self, change: Change, *events: Event) -> asyncio.Future[None]:
        """Run ``change`` and chain ``events`` in one transaction of the next
        group commit; the future is done once both are committed (or failed:
        :class:`~vault.errors.StorageUnavailable`, or what ``change`` raised
        if it is not a database error).

        The future is not cancelled with its awaiter: a caller that is
        cancelled while it waits must wait for it to learn whether the change
        was committed (see :func:`vault.items.ingest.ingest_file`)."""
        return self._submit(list(events), change)

    def _submit(self, events: list[Event], change: Change | None) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(_Entry(events, change, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())
        return future

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            changes = [entry for entry in batch if entry.change is not None]
            alone = len(batch) == 1 or not changes
            if await self._try(batch, last=alone) or alone:
                continue
            # The group failed: written again apart, so that a failing change
            # fails alone (and a failing store fails them all again).
            plain = [entry for entry in batch if entry.change is None]
            for group in ([plain] if plain else []) + [[entry] for entry in changes]:
                await self._try(group, last=True)

    async def _try(self, batch: list[_Entry], *, last: bool) -> bool:
        """Write ``batch`` in one transaction; settle its futures if it was
        committed, or if it failed and is not to be tried again (``last``)."""
        try:
            await self._write(batch)
        except asyncio.CancelledError as exc:
            self._failed(batch, exc)
            raise
        except BaseException as exc:
            if last:
                self._failed(batch, exc)
            return False
        for entry in batch:
            if not entry.future.done():
                entry.future.set_result(None)
        return True

    def _failed(self, batch: list[_Entry], exc: BaseException) -> None:
        database = isinstance(exc, SQLAlchemyError | OSError | StorageUnavailable) or unreachable(
            exc
        )
        for entry in batch:
            if entry.future.done():
                continue
            if entry.change is None:
                entry.future.set_exception(AuditUnavailable())
            elif database or not isinstance(exc, Exception):
                entry.future.set_exception(StorageUnavailable())
            else:
                entry.future.set_exception(exc)
        # A change that refused (a lost upload lease) is no failure of the log.
        if isinstance(exc, asyncio.CancelledError) or (
            isinstance(exc, KluisError) and not database
        ):
            return
        if database:
            log.error("audit log write failed: %s", type(exc).__name__)
        else:
            log.exception("audit log write failed")

    async def _write(self, batch: list[_Entry]) -> None:
        now = self._clock()
        if self._thread is None:
            async with self._engine.begin() as conn:
                await conn.run_sync(self._group, batch, now)
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._commit, batch, now)

    def _group(self, conn: Connection, batch: list[_Entry], now: datetime) -> None:
        """The changes, then every event, in the caller's transaction."""
        for entry in batch:
            if entry.change is not None:
                entry.change(conn)
        events = [ev for entry in batch for ev in entry.events]
        if events:
            append(conn, events, self._sign, now, self._every)

    def _commit(self, batch: list[_Entry], now: datetime) -> None:
        """One group commit on the writer thread's own connection."""
        assert self._sync is not None
        with self._queue or contextlib.nullcontext(), self._sync.begin() as conn:
            self._group(conn, batch, now)

    async def append_in(self, conn: AsyncConnection, *events: Event) -> None:
        """Chain ``events`` inside the caller's transaction: they commit with its
        change or not at all (key destruction, a stored item)."""
        if not events:
            return
        try:
            await conn.run_sync(append, list(events), self._sign, self._clock(), self._every)
        except SQLAlchemyError as exc:
            log.error("audit log write failed: %s", type(exc).__name__)
            raise AuditUnavailable() from exc

    async def close(self) -> None:
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        if self._thread is not None:
            self._thread.shutdown(wait=True)
        if self._sync is not None:
            self._sync.dispose()
        if self._queue is not None:
            self._queue.close()


class _WriterQueue:
    """Service writers of the audit log on one SQLite file, in turn.

    Each process's writer thread takes this file lock around its group
    commit. Without it, a writer that finds another process's commit under
    way waits in SQLite's busy handler, which sleeps 1, 2, 5, 10 ms... and
    retries: the lock is mostly free while it sleeps, the other process's
    next batch takes it again, and the waiter's requests (each holding its
    first byte until its event is committed) stall. Two ``--workers``
    served no more than one. A waiter on a file lock is woken the moment it
    is released. (A command's writes, and other writes of the service, still
    take SQLite's lock the usual way; the lock file only orders the
    services' audit commits among themselves.)
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._fd: int | None = None

    def __enter__(self) -> None:
        if self._fd is None:
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *_exc: object) -> None:
        assert self._fd is not None
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


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
    conn: Connection, events: list[Event], mac: Sign, now: datetime, every: int = 1000
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
    moments = [ev.at or now for ev in events]
    drafts = [draft_of(ev, at) for ev, at in zip(events, moments, strict=True)]
    chained = chain(int(head.seq), str(head.hash), drafts, every)
    stored = zip(chained.rows, moments, strict=True)
    conn.execute(_INSERT_EVENTS, [{**row, "at": at} for row, at in stored])
    if chained.subjects:
        conn.execute(_INSERT_SUBJECTS, [{"child_id": c, "seq": s} for c, s in chained.subjects])
    for seq, digest in chained.checkpoints:
        signature = mac(head_message(seq, digest)).hex()
        conn.execute(_INSERT_CHECKPOINT, {"seq": seq, "hash": digest, "at": now, "mac": signature})
        log_checkpoint(seq, digest)
    signature = mac(head_message(chained.seq, chained.digest)).hex()
    conn.execute(
        _MOVE_HEAD,
        {"new_seq": chained.seq, "new_hash": chained.digest, "new_mac": signature, "new_at": now},
    )
    return chained.seq


def log_checkpoint(seq: int, digest: str) -> None:
    """The checkpoint's line in the process log: the chain's state outside the database."""
    log.info("audit checkpoint seq=%d hash=%s", seq, digest)
