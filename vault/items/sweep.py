"""The orphan sweeper: removes blobs that no live item names.

Blobs are written before their item's row, so a crash or a failed upload can
leave a blob behind that nothing names, and a destroyed item's blobs may not
all have been deleted if storage was down. The sweeper lists the store and
removes both kinds, but leaves alone:

* blobs an upload under way holds a lease on, whatever their age
  (vault/items/pending.py: its rows are not committed yet);
* blobs younger than the grace period (the age comes from the key, see
  :func:`vault.storage.base.new_blob_key`): a second guard, for writers that
  take no lease;
* keys it did not make (another tool's objects in a shared bucket);
* blobs a job under way is writing (its scratch, vault/jobs/: a long
  transcode's staging blob is older than the grace period before it is named).

Run by ``kluis storage sweep`` and once in the background at every start.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from vault.db.schema import item_blobs, items, pending_blobs
from vault.items import pending
from vault.jobs import queue
from vault.storage import BlobStore
from vault.storage.base import blob_key_created

log = logging.getLogger(__name__)
_BATCH = 500


@dataclasses.dataclass
class SweepReport:
    checked: int = 0
    removed: int = 0
    too_young: int = 0
    foreign: int = 0
    #: Old enough, but an upload under way still holds a lease on them.
    leased: int = 0


async def sweep(
    engine: AsyncEngine, store: BlobStore, now: datetime, grace: timedelta
) -> SweepReport:
    report = SweepReport()
    began = time.monotonic()
    batch: list[str] = []
    async for key in store.list():
        batch.append(key)
        if len(batch) >= _BATCH:
            await _sweep_batch(engine, store, batch, now, grace, report)
            batch = []
    if batch:
        await _sweep_batch(engine, store, batch, now, grace, report)
    await _drop_expired_leases(engine)
    if report.removed:
        # How many and how long: what an operator (and the fault suite) reads
        # to see orphans go, never which keys.
        log.info(
            "sweeper removed %d orphaned blobs of %d checked (%d younger than the grace) in %.2f s",
            report.removed,
            report.checked,
            report.too_young,
            time.monotonic() - began,
        )
    return report


async def _sweep_batch(
    engine: AsyncEngine,
    store: BlobStore,
    keys: list[str],
    now: datetime,
    grace: timedelta,
    report: SweepReport,
) -> None:
    report.checked += len(keys)
    candidates = []
    for key in keys:
        created = blob_key_created(key)
        if created is None:
            report.foreign += 1
        elif now - created < grace:
            report.too_young += 1
        else:
            candidates.append(key)
    if not candidates:
        return
    async with engine.begin() as conn:
        # One write transaction, expired leases first: a writer whose lease
        # this drops cannot commit the rows naming its blob any more (its
        # commit removes the lease and fails if it is gone, see
        # vault/items/pending.py), and one that committed first is seen by
        # the reads after it. Job scratch is read before item blobs: a job
        # names its blob and clears its scratch in one transaction.
        await pending.drop_expired(conn, among=candidates)
        live = set(
            (
                await conn.scalars(
                    select(pending_blobs.c.blob_key).where(pending_blobs.c.blob_key.in_(candidates))
                )
            ).all()
        )
        report.leased += len(live)
        live |= await conn.run_sync(queue.scratch_in_use)
        live |= set(
            (
                await conn.scalars(
                    select(item_blobs.c.blob_key)
                    .join(items, items.c.id == item_blobs.c.item_id)
                    .where(item_blobs.c.blob_key.in_(candidates), items.c.destroyed_at.is_(None))
                )
            ).all()
        )
    removed: list[str] = []
    try:
        for key in candidates:
            if key not in live:
                await store.delete(key)
                removed.append(key)
                report.removed += 1
    finally:
        if removed:
            # The rows of destroyed items that named them.
            async with engine.begin() as conn:
                await conn.execute(delete(item_blobs).where(item_blobs.c.blob_key.in_(removed)))


async def _drop_expired_leases(engine: AsyncEngine) -> None:
    """Leases of writers that died before writing (or of keys they never
    used): nothing more to keep."""
    async with engine.begin() as conn:
        await pending.drop_expired(conn)
