"""The job queue's rows: enqueue, claim, renew, finish, retry, and what is waiting.

Every state change is one guarded statement, so any number of workers in
any number of processes and hosts share the queue through the database:

* **claim**: ``UPDATE jobs SET state='running' … WHERE id = (SELECT id …
  ORDER BY priority, run_after LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING …``.
  On PostgreSQL the row lock makes concurrent claimers skip each other's
  rows; SQLite has one writer at a time, and the statement runs whole under
  its write lock, so claims there are taken one at a time. Either way a job
  is claimed by one worker.
* **lease**: a claimed job carries ``lease_until``; its worker renews it
  (every third of ``jobs.lease_seconds``). Every later change by that
  worker is guarded by ``worker = me AND state = 'running'``: a worker that
  lost its job (its lease ran out and another took it) changes nothing, and
  learns so (:class:`LeaseLost`).
* **expired leases** (the worker was killed, or its host went away) are
  found by any worker (:func:`reap`): the job is queued again after a
  backoff, or ends ``failed`` once it has used ``jobs.max_attempts``.
* **failure**: retried after ``retry_seconds × 2^(attempt-1)``; a failure
  that another attempt cannot mend (the file is damaged) ends ``failed`` at
  once; ``failed`` rows keep their reason and stay until their item goes.

States: ``queued`` → ``running`` → ``done`` | ``failed`` | ``cancelled``
(the item was destroyed meanwhile), and back to ``queued`` for a retry.

May touch: the ``jobs`` table only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import socket
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vault.config import JobSettings
from vault.db.schema import jobs
from vault.errors import StorageUnavailable
from vault.tokens import new_id

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
#: The states of a job still to be finished: its variants are "processing".
PENDING = (QUEUED, RUNNING)
#: The longest wait before a retry, however many attempts came before.
MAX_BACKOFF = timedelta(hours=1)
#: Longest reason kept (the vault's own sentence and ffmpeg's last line).
_REASON = 500


class LeaseLost(Exception):
    """This worker no longer holds the job (its lease ran out, another has it)."""


@dataclasses.dataclass(frozen=True)
class Job:
    id: str
    item_id: str
    kind: str
    variants: tuple[str, ...]
    attempts: int
    worker: str
    #: Blobs an earlier attempt wrote and did not commit: remove them first.
    scratch: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class NewJob:
    kind: str
    variants: tuple[str, ...]
    priority: int


def worker_name() -> str:
    """Who holds a claimed job: host, process and a random part (several workers per process)."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{secrets.token_hex(3)}"


def _split(text: str | None) -> tuple[str, ...]:
    return tuple(part for part in (text or "").split(",") if part)


def _guarded(job: Job) -> Any:
    return and_(jobs.c.id == job.id, jobs.c.worker == job.worker, jobs.c.state == RUNNING)


async def enqueue_in(
    conn: AsyncConnection, item_id: str, new: Sequence[NewJob], now: datetime
) -> None:
    """Queue ``new`` jobs for ``item_id`` in the caller's transaction (with the item's rows)."""
    if new:
        await conn.run_sync(enqueue, item_id, new, now)


def enqueue(conn: Connection, item_id: str, new: Sequence[NewJob], now: datetime) -> None:
    """:func:`enqueue_in` on a synchronous connection (a group commit's change)."""
    if not new:
        return
    conn.execute(
        insert(jobs),
        [
            {
                "id": new_id(),
                "item_id": item_id,
                "kind": job.kind,
                "variants": ",".join(job.variants),
                "state": QUEUED,
                "priority": job.priority,
                "attempts": 0,
                "created_at": now,
                "run_after": now,
            }
            for job in new
        ],
    )


async def cancel_for_item_in(
    conn: AsyncConnection, item_id: str, reason: str, now: datetime
) -> int:
    """Cancel the item's jobs still queued or running, in the caller's transaction
    (its file was replaced): a worker still at one loses it (:class:`LeaseLost`
    at its commit), its scratch left to the sweeper. How many."""
    result = await conn.execute(
        update(jobs)
        .where(jobs.c.item_id == item_id, jobs.c.state.in_(PENDING))
        .values(state=CANCELLED, error=reason[:_REASON], finished_at=now, lease_until=None)
    )
    return int(result.rowcount)


async def claim(
    engine: AsyncEngine, worker: str, now: datetime, settings: JobSettings, kinds: Iterable[str]
) -> Job | None:
    """The most urgent job due now, now running under ``worker``'s lease; None if none."""
    due = (
        select(jobs.c.id)
        .where(jobs.c.state == QUEUED, jobs.c.run_after <= now, jobs.c.kind.in_(list(kinds)))
        .order_by(jobs.c.priority, jobs.c.run_after, jobs.c.created_at)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    statement = (
        update(jobs)
        .where(jobs.c.id == due, jobs.c.state == QUEUED)
        .values(
            state=RUNNING,
            worker=worker,
            lease_until=now + timedelta(seconds=settings.lease_seconds),
            attempts=jobs.c.attempts + 1,
        )
        .returning(
            jobs.c.id, jobs.c.item_id, jobs.c.kind, jobs.c.variants, jobs.c.attempts, jobs.c.scratch
        )
    )
    async with _begin(engine) as conn:
        row = (await conn.execute(statement)).first()
    if row is None:
        return None
    return Job(
        row.id,
        row.item_id,
        row.kind,
        _split(row.variants),
        row.attempts,
        worker,
        _split(row.scratch),
    )


async def renew(engine: AsyncEngine, job: Job, now: datetime, settings: JobSettings) -> None:
    """Move the job's lease on; :class:`LeaseLost` if it is no longer this worker's."""
    async with _begin(engine) as conn:
        result = await conn.execute(
            update(jobs)
            .where(_guarded(job))
            .values(lease_until=now + timedelta(seconds=settings.lease_seconds))
        )
    if result.rowcount != 1:
        raise LeaseLost()


async def note_scratch(engine: AsyncEngine, job: Job, keys: Sequence[str]) -> None:
    """Record blobs this attempt is about to write (before writing them)."""
    async with _begin(engine) as conn:
        result = await conn.execute(
            update(jobs).where(_guarded(job)).values(scratch=",".join(keys) or None)
        )
    if result.rowcount != 1:
        raise LeaseLost()


async def done_in(conn: AsyncConnection, job: Job, now: datetime) -> None:
    """Mark the job done in the caller's transaction, which commits its work;
    :class:`LeaseLost` (roll it back) if the job is no longer this worker's."""
    result = await conn.execute(
        update(jobs)
        .where(_guarded(job))
        .values(state=DONE, finished_at=now, lease_until=None, scratch=None, error=None)
    )
    if result.rowcount != 1:
        raise LeaseLost()


def backoff(attempts: int, settings: JobSettings) -> timedelta:
    wait = timedelta(seconds=settings.retry_seconds * 2 ** max(0, attempts - 1))
    return min(wait, MAX_BACKOFF)


async def fail(
    engine: AsyncEngine,
    job: Job,
    reason: str,
    now: datetime,
    settings: JobSettings,
    *,
    final: bool = False,
) -> str:
    """Record a failed attempt: queued again after the backoff, or ``failed``
    (``final``, or no attempt left). Returns the state the job is in."""
    state = FAILED if final or job.attempts >= settings.max_attempts else QUEUED
    values: dict[str, Any] = {"state": state, "error": reason[:_REASON], "lease_until": None}
    if state == FAILED:
        values.update(finished_at=now)
    else:
        values.update(run_after=now + backoff(job.attempts, settings), worker=None)
    async with _begin(engine) as conn:
        result = await conn.execute(update(jobs).where(_guarded(job)).values(**values))
    if result.rowcount != 1:
        raise LeaseLost()
    return state


async def cancel(engine: AsyncEngine, job: Job, reason: str, now: datetime) -> None:
    async with _begin(engine) as conn:
        await conn.execute(
            update(jobs)
            .where(_guarded(job))
            .values(state=CANCELLED, error=reason[:_REASON], finished_at=now, lease_until=None)
        )


async def release(engine: AsyncEngine, job: Job, now: datetime) -> None:
    """Give a job back at once, its attempt not counted (this worker is stopping)."""
    async with _begin(engine) as conn:
        await conn.execute(
            update(jobs)
            .where(_guarded(job))
            .values(
                state=QUEUED,
                run_after=now,
                worker=None,
                lease_until=None,
                attempts=jobs.c.attempts - 1,
            )
        )


async def reap(engine: AsyncEngine, now: datetime, settings: JobSettings) -> list[str]:
    """Jobs whose lease ran out go back to the queue after the backoff, or end
    ``failed`` after their last attempt; finished rows past ``keep_days`` go.
    Returns the scratch blobs of the jobs that ended here (to be removed)."""
    expired = and_(jobs.c.state == RUNNING, jobs.c.lease_until < now)
    left: list[str] = []
    async with _begin(engine) as conn:
        rows = (
            await conn.execute(
                select(jobs.c.id, jobs.c.attempts, jobs.c.scratch, jobs.c.worker)
                .where(expired)
                .with_for_update(skip_locked=True)
            )
        ).all()
        for row in rows:
            stopped = f"its worker ({row.worker}) stopped before it finished"
            if row.attempts >= settings.max_attempts:
                values: dict[str, Any] = {
                    "state": FAILED,
                    "finished_at": now,
                    "error": f"{stopped}, in each of {row.attempts} attempts",
                }
                left.extend(_split(row.scratch))
            else:
                values = {
                    "state": QUEUED,
                    "run_after": now + backoff(row.attempts, settings),
                    "worker": None,
                    "error": f"{stopped}; tried again",
                }
            await conn.execute(
                update(jobs).where(jobs.c.id == row.id, expired).values(lease_until=None, **values)
            )
        await conn.execute(
            delete(jobs).where(
                jobs.c.state.in_((DONE, CANCELLED)),
                jobs.c.finished_at < now - timedelta(days=settings.keep_days),
            )
        )
    return left


# -- what is waiting -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class JobRow:
    id: str
    item_id: str
    kind: str
    state: str
    attempts: int
    created_at: datetime
    run_after: datetime
    lease_until: datetime | None
    worker: str | None
    finished_at: datetime | None
    error: str | None


async def listing(engine: AsyncEngine, states: Sequence[str], limit: int = 100) -> list[JobRow]:
    """Jobs in ``states``, the oldest first."""
    async with _connect(engine) as conn:
        rows = (
            await conn.execute(
                select(jobs)
                .where(jobs.c.state.in_(list(states)))
                .order_by(jobs.c.created_at, jobs.c.id)
                .limit(limit)
            )
        ).all()
    return [
        JobRow(
            r.id,
            r.item_id,
            r.kind,
            r.state,
            r.attempts,
            r.created_at,
            r.run_after,
            r.lease_until,
            r.worker,
            r.finished_at,
            r.error,
        )
        for r in rows
    ]


async def counts(engine: AsyncEngine) -> dict[str, int]:
    """Jobs per state, every state present (0 where none)."""
    async with _connect(engine) as conn:
        rows = (await conn.execute(select(jobs.c.state, func.count()).group_by(jobs.c.state))).all()
    found = {state: int(n) for state, n in rows}
    return {state: found.get(state, 0) for state in (QUEUED, RUNNING, DONE, FAILED, CANCELLED)}


def pending_variants(conn: Connection, item_ids: Sequence[str]) -> dict[str, set[str]]:
    """The variants queued or being made, per item."""
    if not item_ids:
        return {}
    rows = conn.execute(
        select(jobs.c.item_id, jobs.c.variants).where(
            jobs.c.item_id.in_(list(item_ids)), jobs.c.state.in_(PENDING)
        )
    ).all()
    found: dict[str, set[str]] = {}
    for item_id, variants in rows:
        found.setdefault(item_id, set()).update(_split(variants))
    return found


def scratch_in_use(conn: Connection) -> set[str]:
    """Blobs that jobs still queued or running may be writing (the sweeper leaves them)."""
    rows = conn.execute(
        select(jobs.c.scratch).where(jobs.c.state.in_(PENDING), jobs.c.scratch.is_not(None))
    ).scalars()
    return {key for text in rows for key in _split(text)}


# -- the database's failures, as the vault's ------------------------------------


@contextlib.asynccontextmanager
async def _guarded_by(context: Any) -> AsyncIterator[AsyncConnection]:
    try:
        async with context as conn:
            yield conn
    except (SQLAlchemyError, OSError) as exc:
        raise StorageUnavailable("The database is unreachable; nothing was changed.") from exc


def _begin(engine: AsyncEngine) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
    """A transaction whose driver errors are the vault's ``StorageUnavailable``."""
    return _guarded_by(engine.begin())


def _connect(engine: AsyncEngine) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
    return _guarded_by(engine.connect())
