"""``kluis storage verify``: read every live blob's segments and say which fail.

For each item that is not destroyed, the item key is opened (through any of
its children's live keys) and each of its blobs is decrypted whole, its
plaintext thrown away: every segment authenticates, or the blob is damaged
(``integrity``), or the store lacks it (``missing``). Findings go on record in
``damaged_blobs`` (vault/items/damage.py) beside those found while serving; a
blob on record that now verifies (restored from a backup) is cleared.

Bounded: a few blobs at a time, each streamed (a 2 GB video is never held).
May touch: the blob store (reads only) and ``damaged_blobs``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from vault.crypto._primitives import IntegrityError
from vault.crypto.handles import ItemKey
from vault.crypto.stream import DamagedBlob, decrypt_range
from vault.db.schema import item_blobs, items
from vault.errors import Destroyed
from vault.items import damage
from vault.keys.service import KeyService
from vault.storage import BlobNotFound, BlobStore

#: Blobs read at once; each holds about one store chunk (1 MiB).
PARALLEL = 4
_PAGE = 200


@dataclasses.dataclass
class VerifyReport:
    checked: int = 0
    bytes: int = 0
    damaged: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    missing: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    #: Items whose keys were destroyed while the verification ran.
    skipped: int = 0
    cleared: int = 0


async def blob_count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        total = await conn.scalar(
            select(func.count())
            .select_from(item_blobs.join(items, items.c.id == item_blobs.c.item_id))
            .where(items.c.destroyed_at.is_(None))
        )
    return int(total or 0)


async def verify(
    engine: AsyncEngine,
    store: BlobStore,
    keys: KeyService,
    now: datetime,
    progress: Callable[[int], None] | None = None,
) -> VerifyReport:
    report = VerifyReport()
    on_record = {d.blob_key for d in await damage.damaged(engine)}
    limit = asyncio.Semaphore(PARALLEL)

    async def check(item_id: str, key: ItemKey, variant: str, blob_key: str, size: int) -> None:
        async with limit:
            reason = await _read_whole(store, key, item_id, variant, blob_key, size)
        report.checked += 1
        report.bytes += size
        if reason is None:
            if blob_key in on_record:
                await damage.clear(engine, blob_key)
                report.cleared += 1
        else:
            (report.damaged if reason == "integrity" else report.missing).append((item_id, variant))
            await damage.report(
                engine,
                item_id,
                variant,
                reason=reason,
                found_by="verify",
                now=now,
                blob_key=blob_key,
            )
        if progress is not None:
            progress(1)

    after = ""
    while True:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(
                        item_blobs.c.item_id,
                        item_blobs.c.variant,
                        item_blobs.c.blob_key,
                        item_blobs.c.blob_size,
                    )
                    .join(items, items.c.id == item_blobs.c.item_id)
                    .where(items.c.destroyed_at.is_(None), item_blobs.c.item_id > after)
                    .order_by(item_blobs.c.item_id, item_blobs.c.variant)
                    .limit(_PAGE)
                )
            ).all()
        if not rows:
            return report
        # A page ends at an item boundary, so an item is never split.
        last = rows[-1].item_id
        if len(rows) == _PAGE and rows[0].item_id != last:
            rows = [r for r in rows if r.item_id != last]
        after = rows[-1].item_id
        jobs = []
        for item_id in dict.fromkeys(r.item_id for r in rows):
            try:
                key = await keys.open_item_key(item_id)
            except Destroyed:
                report.skipped += 1
                continue
            except IntegrityError:
                # Its key's wrapping does not open: none of its blobs can be read.
                for r in rows:
                    if r.item_id == item_id:
                        report.checked += 1
                        report.damaged.append((item_id, r.variant))
                        await damage.report(
                            engine,
                            item_id,
                            r.variant,
                            reason="integrity",
                            found_by="verify",
                            now=now,
                            blob_key=r.blob_key,
                        )
                        if progress is not None:
                            progress(1)
                continue
            jobs += [
                check(item_id, key, r.variant, r.blob_key, int(r.blob_size))
                for r in rows
                if r.item_id == item_id
            ]
        await asyncio.gather(*jobs)


async def _read_whole(
    store: BlobStore, key: ItemKey, item_id: str, variant: str, blob_key: str, size: int
) -> str | None:
    """None if every segment authenticates; else what is wrong."""

    def read(offset: int, length: int) -> AsyncIterator[bytes]:
        return store.get(blob_key, offset, length)

    chunks = decrypt_range(key, item_id, variant, read, size)
    try:
        async for _ in chunks:
            pass
    except DamagedBlob:
        return "integrity"
    except BlobNotFound:
        return "missing"
    finally:
        await chunks.aclose()
    return None
