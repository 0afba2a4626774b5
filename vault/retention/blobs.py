"""A retention run's blob deletes, behind its batches.

A batch's blobs are deleted from the store (``BlobStore.delete_many``, bounded
and parallel) while the next batch's database work runs, and the rows of the
blobs that went are removed in that next batch's transaction, just before it
commits: one fewer commit per batch, and the store's work (unlinks, S3 calls)
off the run's path.

Nothing is deleted sooner than before: only blobs of a batch already
committed, whose keys are gone. The next batch waits for those deletes before
it commits, so a failure there (or a kill) stops the run with that batch
wholly destroyed and the next untouched, as when the deletes ran in line; a
blob that could not be deleted keeps its row, and the orphan sweeper retries
it. The transaction waits only for store calls and reads, never for another
connection's write (on SQLite it holds the write lock).

May touch: ``item_blobs`` (reads; deletes rows of blobs gone), the blob store.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vault.db.idsets import among
from vault.db.schema import item_blobs
from vault.keys.service import DestroyedChildKey
from vault.storage import BlobStore

log = logging.getLogger(__name__)


class BlobsBehind:
    """At most one batch's blob deletes in flight; use as ``async with``."""

    def __init__(self, engine: AsyncEngine, store: BlobStore) -> None:
        self.engine, self.store = engine, store
        self._task: asyncio.Task[list[str]] | None = None

    @staticmethod
    async def keys_of(conn: AsyncConnection, destroyed: Sequence[DestroyedChildKey]) -> list[str]:
        """The blob keys of the items that went with ``destroyed`` (read in
        the transaction that destroyed them)."""
        doomed = [item for key in destroyed for item, _ in key.items]
        if not doomed:
            return []
        rows = await conn.scalars(
            select(item_blobs.c.blob_key).where(among(conn, item_blobs.c.item_id, doomed))
        )
        return list(rows.all())

    async def settle(self, conn: AsyncConnection) -> None:
        """Wait for the previous batch's deletes and remove the rows of the
        blobs that went, in the caller's transaction; its error, if any,
        stops that transaction."""
        task, self._task = self._task, None
        if task is not None:
            await _forget(conn, await task)

    def start(self, keys: list[str]) -> None:
        """Delete ``keys`` from the store, behind the caller (after
        :meth:`settle`: one batch at a time)."""
        assert self._task is None, "settle() the previous batch first"
        if keys:
            self._task = asyncio.create_task(_delete(self.store, keys))

    async def __aenter__(self) -> BlobsBehind:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            if self._task is not None:
                async with self.engine.begin() as conn:
                    await self.settle(conn)
            return
        # The run failed or was cancelled: stop deleting (what is left keeps
        # its rows, for the sweeper) and let the run's own error through.
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def _delete(store: BlobStore, keys: list[str]) -> list[str]:
    gone = await store.delete_many(keys)
    if len(gone) < len(keys):
        log.warning(
            "%d blobs of destroyed items not yet deleted; the sweeper retries",
            len(keys) - len(gone),
        )
    return gone


async def _forget(conn: AsyncConnection, gone: list[str]) -> None:
    if gone:
        await conn.execute(delete(item_blobs).where(among(conn, item_blobs.c.blob_key, gone)))
