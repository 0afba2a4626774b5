"""Reading and writing items in the database and blob store."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from vault.audit import event
from vault.crypto.envelope import open_item_record
from vault.crypto.handles import ItemKey
from vault.db.idsets import among
from vault.db.reads import Reader
from vault.db.schema import item_blobs, item_children, items
from vault.directory.children import child_facts
from vault.items import pending
from vault.jobs import queue
from vault.jobs.queue import NewJob
from vault.keys.service import KeyService, PreparedItemKey
from vault.policy import Child, Item
from vault.storage import BlobStore

log = logging.getLogger(__name__)
META_LABEL = "meta"


@dataclasses.dataclass(frozen=True)
class StoredBlob:
    variant: str
    blob_key: str
    blob_size: int
    plaintext_size: int
    content_type: str


@dataclasses.dataclass(frozen=True)
class ItemRecord:
    id: str
    kind: str
    children: tuple[str, ...]
    variants: tuple[str, ...]
    size: int
    content_type: str
    created_at: datetime
    uploaded_by: str | None
    destroyed_at: datetime | None = None
    #: Variants a job is still making (vault/jobs/); filled where an answer shows them.
    processing: tuple[str, ...] = ()
    #: 1 at upload; each replaced content (a new file, a diary's new text) is the next.
    version: int = 1
    updated_at: datetime | None = None
    #: Children of ``children`` whose share was destroyed (their key for this
    #: kind): it is no longer their record; it stays for the others.
    gone: frozenset[str] = frozenset()

    @property
    def shown_for(self) -> tuple[str, ...]:
        """The children whose record this is (those of ``children`` not gone)."""
        return tuple(child for child in self.children if child not in self.gone)

    def policy_item(self) -> Item:
        return Item(
            id=self.id,
            kind=self.kind,
            children=self.children,
            created_at=self.created_at,
            uploaded_by=self.uploaded_by,
            destroyed=self.destroyed_at is not None,
            gone=self.gone,
        )


def save(
    keys: KeyService,
    record: ItemRecord,
    sealed_meta: bytes,
    blobs: list[StoredBlob],
    prepared: PreparedItemKey,
    jobs: Sequence[NewJob] = (),
    leased: Sequence[str] = (),
) -> asyncio.Future[None]:
    """Write the item's rows, key wrappings, the jobs that make its other
    variants (vault/items/variants.py) and its ``item.store`` event in one
    transaction: stored and recorded, or neither.

    They go in the audit log's next group commit (:meth:`AuditLog.commit`:
    on SQLite the service's one writer thread, never holding the write lock
    across a trip to the event loop); the future is done once they are
    committed, or failed with :class:`~vault.errors.StorageUnavailable`
    (:class:`~vault.errors.LeaseLost` if a lease on one of the ``leased``
    blob keys ran out and a sweep may have taken the blob)."""

    def rows(conn: Connection) -> None:
        conn.execute(
            insert(items).values(
                id=record.id,
                kind=record.kind,
                created_at=record.created_at,
                uploaded_by=record.uploaded_by,
                content_type=record.content_type,
                size=record.size,
                meta=sealed_meta,
            )
        )
        conn.execute(
            insert(item_children),
            [
                {"item_id": record.id, "child_id": child, "tagged": i > 0}
                for i, child in enumerate(record.children)
            ],
        )
        if blobs:
            conn.execute(
                insert(item_blobs),
                [{"item_id": record.id, **dataclasses.asdict(blob)} for blob in blobs],
            )
        queue.enqueue(conn, record.id, jobs, record.created_at)
        keys.write_item_key(prepared, conn)
        # The blobs' leases go in the same transaction (vault/items/pending.py):
        # if one ran out and a sweep took its blob, nothing is committed.
        pending.release_in(conn, leased)

    stored = event(
        "item.store", children=record.children, item=record.id, kind=record.kind, size=record.size
    )
    return keys.audit.commit(rows, stored)


@dataclasses.dataclass(frozen=True)
class LoadedItem:
    record: ItemRecord
    sealed_meta: bytes
    blobs: dict[str, StoredBlob]


_ITEM = (
    select(
        items,
        item_children.c.child_id.label("owner"),
        item_children.c.destroyed_at.label("share_destroyed_at"),
        item_blobs.c.variant,
        item_blobs.c.blob_key,
        item_blobs.c.blob_size,
        item_blobs.c.plaintext_size,
        item_blobs.c.content_type.label("blob_type"),
    )
    .join(item_children, item_children.c.item_id == items.c.id)
    .outerjoin(item_blobs, item_blobs.c.item_id == items.c.id)
    .where(items.c.id == bindparam("item_id"))
)


def read_item(conn: Connection, item_id: str) -> LoadedItem | None:
    """An item with its owners and blobs, in one query."""
    rows = conn.execute(_ITEM, {"item_id": item_id}).all()
    if not rows:
        return None
    owners = sorted({r.owner for r in rows})
    gone = frozenset(r.owner for r in rows if r.share_destroyed_at is not None)
    blobs = {
        r.variant: StoredBlob(r.variant, r.blob_key, r.blob_size, r.plaintext_size, r.blob_type)
        for r in rows
        if r.variant is not None
    }
    record = _record(rows[0], tuple(owners), tuple(_ordered(blobs)), gone=gone)
    return LoadedItem(record, rows[0].meta, blobs)


async def load(reader: Reader, item_id: str) -> LoadedItem | None:
    return await reader(lambda conn: read_item(conn, item_id))


def _ordered(variants: Any) -> list[str]:
    order = {"original": 0, "preview": 1, "thumb": 2, "web": 3}
    return sorted(variants, key=lambda v: order.get(v, 9))


def _record(
    row: Any,
    owners: tuple[str, ...],
    variants: tuple[str, ...],
    processing: tuple[str, ...] = (),
    *,
    gone: frozenset[str] = frozenset(),
    destroyed_at: datetime | None = None,
) -> ItemRecord:
    return ItemRecord(
        id=row.id,
        kind=row.kind,
        children=owners,
        variants=variants,
        size=row.size,
        content_type=row.content_type,
        created_at=row.created_at,
        uploaded_by=row.uploaded_by,
        destroyed_at=row.destroyed_at or destroyed_at,
        processing=processing,
        version=row.version,
        updated_at=row.updated_at,
        gone=gone,
    )


async def processing(reader: Reader, item_id: str) -> tuple[str, ...]:
    """The variants of the item that a job is still making."""
    found = await reader(lambda conn: queue.pending_variants(conn, [item_id]))
    return tuple(_ordered(found.get(item_id, ())))


async def blobs_of(engine: AsyncEngine, item_id: str) -> dict[str, StoredBlob]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(item_blobs).where(item_blobs.c.item_id == item_id))).all()
    return {
        r.variant: StoredBlob(r.variant, r.blob_key, r.blob_size, r.plaintext_size, r.content_type)
        for r in rows
    }


async def read_meta(keys: KeyService, record: ItemRecord, sealed: bytes) -> dict[str, Any]:
    return open_meta(await keys.open_item_key(record.id), record, sealed)


def open_meta(key: ItemKey, record: ItemRecord, sealed: bytes) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(open_item_record(key, record.id, META_LABEL, sealed))
    return data


class ChildCache:
    """Policy facts of children, loaded once per request."""

    def __init__(self, reader: Reader) -> None:
        self._reader = reader
        self._facts: dict[str, Child | None] = {}

    async def get(self, child_id: str) -> Child | None:
        if child_id not in self._facts:
            self._facts[child_id] = await child_facts(self._reader, child_id)
        return self._facts[child_id]

    async def for_item(self, record: ItemRecord) -> Mapping[str, Child]:
        found = {}
        for child_id in record.children:
            facts = await self.get(child_id)
            if facts is not None:
                found[child_id] = facts
        return found


async def page_for_child(
    engine: AsyncEngine,
    child_id: str,
    kind: str | None,
    before: tuple[datetime, str] | None,
    limit: int,
) -> AsyncIterator[ItemRecord]:
    """The child's items, newest first, after the ``before`` cursor; ``limit``
    rows. A record whose share for this child was destroyed (a group photo the
    others keep) comes as destroyed: for this child it is."""
    query = (
        select(items, item_children.c.destroyed_at.label("share_destroyed_at"))
        .join(item_children, item_children.c.item_id == items.c.id)
        .where(item_children.c.child_id == child_id)
        .order_by(items.c.created_at.desc(), items.c.id.desc())
        .limit(limit)
    )
    if kind is not None:
        query = query.where(items.c.kind == kind)
    if before is not None:
        at, item_id = before
        query = query.where(
            or_(items.c.created_at < at, and_(items.c.created_at == at, items.c.id < item_id))
        )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
        ids = [r.id for r in rows]
        owner_rows = (
            await conn.execute(
                select(
                    item_children.c.item_id,
                    item_children.c.child_id,
                    item_children.c.destroyed_at,
                ).where(item_children.c.item_id.in_(ids))
            )
        ).all()
        blob_rows = (
            await conn.execute(
                select(item_blobs.c.item_id, item_blobs.c.variant).where(
                    item_blobs.c.item_id.in_(ids)
                )
            )
        ).all()
        pending = await conn.run_sync(lambda sync: queue.pending_variants(sync, ids))
    owners: dict[str, list[str]] = {}
    gone: dict[str, set[str]] = {}
    for r in owner_rows:
        owners.setdefault(r.item_id, []).append(r.child_id)
        if r.destroyed_at is not None:
            gone.setdefault(r.item_id, set()).add(r.child_id)
    variants: dict[str, list[str]] = {}
    for r in blob_rows:
        variants.setdefault(r.item_id, []).append(r.variant)
    for row in rows:
        yield _record(
            row,
            tuple(sorted(owners.get(row.id, []))),
            tuple(_ordered(variants.get(row.id, []))),
            tuple(_ordered(pending.get(row.id, ()))),
            gone=frozenset(gone.get(row.id, ())),
            destroyed_at=row.share_destroyed_at,
        )


async def destroy(
    engine: AsyncEngine, store: BlobStore, keys: KeyService, item_id: str, now: datetime
) -> None:
    """Destroy an item: its key first, then the row mark, then its blobs."""
    await keys.destroy_item_key(item_id)
    async with engine.begin() as conn:
        await conn.execute(
            update(items)
            .where(items.c.id == item_id, items.c.destroyed_at.is_(None))
            .values(destroyed_at=now)
        )
    await delete_blobs(engine, store, item_id)


async def delete_blobs(engine: AsyncEngine, store: BlobStore, *item_ids: str) -> None:
    """Delete destroyed items' blobs in a few bounded calls
    (:meth:`~vault.storage.base.BlobStore.delete_many`); any left (storage
    down) keep their rows, and the sweeper retries them."""
    if not item_ids:
        return
    async with engine.connect() as conn:
        keys = (
            await conn.scalars(
                select(item_blobs.c.blob_key).where(among(conn, item_blobs.c.item_id, item_ids))
            )
        ).all()
    gone = await store.delete_many(keys)
    if len(gone) < len(keys):
        log.warning(
            "%d blobs of destroyed items not yet deleted; the sweeper retries",
            len(keys) - len(gone),
        )
    if gone:
        async with engine.begin() as conn:
            await conn.execute(delete(item_blobs).where(among(conn, item_blobs.c.blob_key, gone)))
