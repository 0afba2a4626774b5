"""Leases on blobs being written: what keeps the orphan sweeper off an upload under way.

A blob is stored before the rows that name it are committed (vault/items/ingest.py),
and those rows can wait: for the database's write lock, for the audit log's group
commit, for a long upload's last byte. Without more, a sweep in that window (by
``kluis storage sweep`` beside a running server, or another instance's) would see a
blob no row names and remove it, and the client would then be told its record was
stored. So a writer holds a lease on every key it writes:

* **taken** before the first byte of the blob: a row in ``pending_blobs`` with
  ``lease_until`` = now + ``uploads.lease_seconds``, committed (keys are taken
  three at a time, an image's three renditions, in one commit);
* **renewed** every third of that while the writer lives, by a task of its own;
* **released** in the transaction that commits the rows naming the blobs
  (:func:`release_in`). If a lease is gone by then, that transaction fails
  (:class:`LeaseLost`, answered 503 ``storage_unavailable``): the sweeper may
  have taken the blob, and a record without its file is never acknowledged;
* **dropped** by the sweeper once expired (the writer died, or stopped longer
  than the lease), in the same transaction in which it checks that no row names
  the blob, before it deletes the blob (vault/items/sweep.py).

Lease times are the wall clock of the host (a lease says that a process is
alive), never the vault's clock, which tests and ``--now`` set to other days.
Instances on several hosts must keep their clocks within a fraction of the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.audit.log import AuditLog
from vault.db.schema import pending_blobs
from vault.errors import LeaseLost, StorageUnavailable
from vault.storage import new_blob_key

log = logging.getLogger(__name__)

#: Keys leased in one commit: an image's original, preview and thumbnail.
_AT_ONCE = 3


def wall_clock() -> datetime:
    return datetime.now(UTC)


class Leases:
    """The keys one writer leases, and the task that keeps them."""

    def __init__(self, audit: AuditLog, seconds: float, now: datetime) -> None:
        self._audit = audit
        self._seconds = seconds
        #: The vault's time, put in the keys (the sweeper's grace reads it).
        self._now = now
        #: Every key leased (released, or dropped, together).
        self.keys: list[str] = []
        self._free: list[str] = []
        self._taking = asyncio.Lock()
        self._renewer: asyncio.Task[None] | None = None

    async def key(self) -> str:
        """A fresh blob key, leased: nothing is written under it before this returns."""
        async with self._taking:
            if not self._free:
                keys = [new_blob_key(self._now) for _ in range(_AT_ONCE)]
                until = wall_clock() + timedelta(seconds=self._seconds)
                rows = [{"blob_key": key, "lease_until": until} for key in keys]
                # Known before the commit, so that a writer cancelled meanwhile drops them.
                self.keys += keys
                await asyncio.shield(self._audit.commit(lambda conn: _insert(conn, rows)))
                self._free += keys
                if self._renewer is None:
                    self._renewer = asyncio.create_task(self._renew())
            return self._free.pop(0)

    async def close(self) -> None:
        """Stop renewing (the rows are committed, or the blobs removed)."""
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None

    async def drop(self) -> None:
        """Remove the leases of a writer that failed (its blobs are removed)."""
        await self.close()
        if self.keys:
            # If the database is down, they expire, and a sweep drops them.
            with contextlib.suppress(StorageUnavailable):
                await asyncio.shield(
                    self._audit.commit(functools.partial(_forget, keys=list(self.keys)))
                )

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self._seconds / 3)
            until = wall_clock() + timedelta(seconds=self._seconds)
            renewal = functools.partial(_renew, keys=list(self.keys), until=until)
            try:
                await asyncio.shield(self._audit.commit(renewal))
            except Exception as exc:  # tried again next turn; a lost lease fails the commit
                log.warning("could not renew an upload's lease: %s", type(exc).__name__)


def _insert(conn: Connection, rows: list[dict[str, object]]) -> None:
    conn.execute(insert(pending_blobs), rows)


def _forget(conn: Connection, keys: Sequence[str]) -> int:
    """Remove the leases on ``keys``; how many there were."""
    return conn.execute(delete(pending_blobs).where(pending_blobs.c.blob_key.in_(keys))).rowcount


def _renew(conn: Connection, keys: Sequence[str], until: datetime) -> None:
    conn.execute(
        update(pending_blobs).where(pending_blobs.c.blob_key.in_(keys)).values(lease_until=until)
    )


def release_in(conn: Connection, keys: Sequence[str]) -> None:
    """Remove the leases on ``keys`` in the caller's transaction; :class:`LeaseLost`
    if any of them is gone (then the caller's transaction must roll back)."""
    if not keys:
        return
    if _forget(conn, keys) != len(keys):
        log.warning("an upload's lease ran out before its record was committed: refused")
        raise LeaseLost()


async def drop_expired(conn: AsyncConnection, among: Sequence[str] | None = None) -> None:
    """Remove the leases that ran out (of ``among`` only, if given), in the
    caller's transaction: their writers can no longer commit rows naming
    those blobs (:func:`release_in` fails), so the blobs may go."""
    expired = pending_blobs.c.lease_until < wall_clock()
    if among is not None:
        expired = expired & pending_blobs.c.blob_key.in_(among)
    await conn.execute(delete(pending_blobs).where(expired))
