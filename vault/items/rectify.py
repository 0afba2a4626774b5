"""Rectification of a record: its metadata corrected, its content replaced,
its tagged children changed, with nothing of the previous version kept readable.

* **Metadata** (a title, ``taken_at``) is sealed again under the item's key;
  the old sealed metadata is overwritten in the same row. A change that
  leaves every field as it was (the tags alone) keeps the sealed bytes.
* **Content** (a replaced file, a diary entry's new text) gets a new random
  item key: the new blobs are written under it first, then one transaction
  swaps the item's rows (blobs, key wrappings, sealed metadata, the sealed
  recipients of its handovers, ``version`` + 1), and only then are the old
  blobs deleted (any a storage outage leaves are orphans the sweeper
  removes). A replaced video's jobs are queued anew in that transaction
  (posters, and a web rendition where a browser needs one); the old
  version's jobs still queued or running are cancelled there, so no
  variant of the old file is ever stored beside the new one. The old item
  key's wrappings are deleted with the swap, so the live vault holds
  nothing that opens the old blobs; copies of the database taken before
  the swap open them only while their live epoch's master key lives (the
  backup window, docs/crypto.md), as with any destruction.
* **Tagged children**: a child added is a record added for that child (the
  caller asks the policy for it), the item key wrapped under its key; a
  child removed loses its wrapping and its row at once.

Exports are left as they are: an archive is a frozen copy, and its plan
holds a stamp of each record's sealed metadata and original
(:func:`vault.share.export.stamp`), so a link to an archive holding a
record changed here refuses it (410, "ask for a new export") instead of
handing the old version out, while an export without that record keeps
working. That is also why unchanged metadata is not sealed anew: a new nonce
would be a new stamp for the same bytes. A rectification that lost a race
with another (the version moved meanwhile) is a ``Conflict``, and what it
wrote is removed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, exists, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.audit import Event
from vault.crypto.envelope import open_item_record, seal_item_record
from vault.crypto.handles import ItemKey
from vault.db.schema import (
    child_keys,
    handovers,
    item_blobs,
    item_children,
    item_keys,
    item_untags,
    items,
)
from vault.errors import Conflict
from vault.items import pending, service
from vault.items.ingest import (
    TEXT_PLAIN,
    Context,
    Writer,
    one,
    sniff,
    with_file_facts,
    write_file,
)
from vault.items.service import ItemRecord, LoadedItem, StoredBlob
from vault.jobs import queue
from vault.jobs.queue import NewJob
from vault.keys.service import PreparedItemKey

_REPLACED = "the item's file was replaced before its variants were made"
_RACED = "The record was changed by someone else a moment ago; reload it and try again."


@dataclasses.dataclass(frozen=True)
class Changes:
    """What a rectification changes; ``None`` for a field means: unchanged."""

    #: New values of sealed metadata fields (a value None removes the field).
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: A diary entry's new text (its content: a new version).
    text: str | None = None
    #: The new set of tagged children.
    tagged: Sequence[str] | None = None


async def tagged_of(ctx: Context, item_id: str) -> tuple[list[str], list[str]]:
    """The item's children: (the ones it was posted for, the tagged ones);
    not those whose share was destroyed (they stay as the record of it)."""
    async with ctx.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(item_children.c.child_id, item_children.c.tagged).where(
                    item_children.c.item_id == item_id, item_children.c.destroyed_at.is_(None)
                )
            )
        ).all()
    return (
        sorted(r.child_id for r in rows if not r.tagged),
        sorted(r.child_id for r in rows if r.tagged),
    )


async def rectify(
    ctx: Context, loaded: LoadedItem, changes: Changes, audit: Sequence[Event], now: datetime
) -> ItemRecord:
    """Apply ``changes`` to the item; its record as it is now. ``audit``: the
    call's events, appended in the transaction of the change with what it did
    (never a value, old or new)."""
    record = loaded.record
    old_key = await ctx.keys.open_item_key(record.id)
    meta = service.open_meta(old_key, record, loaded.sealed_meta)
    for name, value in changes.meta.items():
        if value is None:
            meta.pop(name, None)
        else:
            meta[name] = value
    if changes.text is None or changes.text == meta.get("text"):
        # The same text sent again is no new version: the record stays as it
        # is, and so do the exports that hold it.
        return await _swap(ctx, loaded, old_key, old_key, meta, None, changes.tagged, audit, now)
    key = (await ctx.keys.prepare_item_key(record.id, await ctx.keys.item_owners(record.id))).key
    writer = Writer(ctx, key, record.id, now)
    try:
        text = changes.text.encode("utf-8")
        original = await writer.put("original", TEXT_PLAIN, one(text))
        meta = {**meta, "text": changes.text, "crc32": writer.crcs["original"]}
        content = (original, writer.stored)
        return await _swap(
            ctx, loaded, old_key, key, meta, content, changes.tagged, audit, now, writer=writer
        )
    except BaseException:
        await writer.discard()
        raise


async def replace_file(
    ctx: Context,
    loaded: LoadedItem,
    source: AsyncIterable[bytes],
    file_name: str | None,
    audit: Sequence[Event],
    now: datetime,
    before_commit: Callable[[], Awaitable[None]] | None = None,
) -> ItemRecord:
    """Store a new file as the item's next version (same kind, type sniffed).
    ``before_commit`` runs once the new blobs are stored, as in an upload."""
    record = loaded.record
    media, stream = await sniff(record.kind, source)
    old_key = await ctx.keys.open_item_key(record.id)
    meta = service.open_meta(old_key, record, loaded.sealed_meta)
    key = (await ctx.keys.prepare_item_key(record.id, await ctx.keys.item_owners(record.id))).key
    writer = Writer(ctx, key, record.id, now)
    try:
        # A video's posters (and web rendition) are made anew by the jobs queued in the swap.
        original, extra, jobs = await write_file(ctx, writer, media, stream)
        if before_commit is not None:
            await before_commit()
        for name in ("width", "height"):
            meta.pop(name, None)
        meta = {
            **with_file_facts(meta, extra, ctx.settings.uploads.camera_zone),
            "file_name": file_name,
            "crc32": writer.crcs["original"],
        }
        content = (original, writer.stored)
        return await _swap(
            ctx, loaded, old_key, key, meta, content, None, audit, now, jobs, writer=writer
        )
    except BaseException:
        await writer.discard()
        raise


async def _swap(
    ctx: Context,
    loaded: LoadedItem,
    old_key: ItemKey,
    key: ItemKey,
    meta: dict[str, Any],
    content: tuple[StoredBlob, list[StoredBlob]] | None,
    tagged: Sequence[str] | None,
    audit: Sequence[Event],
    now: datetime,
    jobs: Sequence[NewJob] = (),
    *,
    writer: Writer | None = None,
) -> ItemRecord:
    """One transaction: the item's rows as the rectification leaves them
    (with new content, written by ``writer``, whose blob leases go in it, and
    the jobs that make its other variants); the record, ``processing`` the
    variants those jobs make."""
    record = loaded.record
    new_content = content is not None
    primary, was_tagged = await tagged_of(ctx, record.id)
    wanted = (
        was_tagged if tagged is None else [c for c in dict.fromkeys(tagged) if c not in primary]
    )
    added = [c for c in wanted if c not in was_tagged]
    if any(child in record.gone for child in added) or await _erased_since_untag(
        ctx, record, added
    ):
        # An erasure (or the end of the term) took the record from that child
        # (or its key, which the record was under before the child was untagged,
        # is destroyed since): tagging it again would undo that, and revive
        # what was issued before.
        raise Conflict(
            "A child in 'tagged_children' had this record destroyed (erased on request, "
            "or at the end of its term); it cannot be tagged in it again. Leave it out."
        )
    removed = [c for c in was_tagged if c not in wanted]
    owners = [pair for pair in await ctx.keys.item_owners(record.id) if pair[0] not in removed]
    # The wrappings the item keeps: all anew for new content, else those of added children.
    rewrap = owners if new_content else []
    prepared: PreparedItemKey = await ctx.keys.wrap_item_key_for(
        record.id, key, [*rewrap, *((child, record.kind) for child in added)]
    )
    if not prepared.rows and not owners:
        raise Conflict("No child's key would open the record any more; delete it instead.")
    version = record.version + 1 if new_content else record.version
    children = [*primary, *wanted]
    values: dict[str, Any] = {"version": version, "updated_at": now}
    if new_content or meta != service.open_meta(old_key, record, loaded.sealed_meta):
        # Only then: the same fields sealed anew would stop exports whose bytes are the same.
        plain = json.dumps(meta).encode("utf-8")
        values["meta"] = seal_item_record(key, record.id, service.META_LABEL, plain)
    if content is not None:
        original, _ = content
        values.update(size=original.plaintext_size, content_type=original.content_type)
    async with ctx.engine.begin() as conn:
        done = {"version": version, "content": new_content}
        done.update(added=len(added), removed=len(removed))
        await ctx.keys.audit.append_in(
            conn,
            *(
                dataclasses.replace(
                    ev,
                    children=tuple(sorted({*ev.children, *record.shown_for, *children})),
                    detail={**ev.detail, **done},
                )
                for ev in audit
            ),
        )
        result = await conn.execute(
            update(items)
            .where(
                items.c.id == record.id,
                items.c.version == record.version,
                items.c.destroyed_at.is_(None),
            )
            .values(**values)
        )
        if result.rowcount != 1:
            raise Conflict(_RACED)
        await _children(conn, record, added, removed)
        if writer is not None:
            await conn.run_sync(pending.release_in, writer.leases.keys)
        if new_content:
            await conn.execute(delete(item_keys).where(item_keys.c.item_id == record.id))
            await conn.execute(delete(item_blobs).where(item_blobs.c.item_id == record.id))
            assert content is not None
            await conn.execute(
                insert(item_blobs),
                [{"item_id": record.id, **dataclasses.asdict(blob)} for blob in content[1]],
            )
            await _reseal_handovers(conn, record.id, old_key, key)
            # The old version's variants are not to be made any more; the new one's are.
            await queue.cancel_for_item_in(conn, record.id, _REPLACED, now)
            await queue.enqueue_in(conn, record.id, jobs, now)
        if prepared.rows:
            await ctx.keys.commit_item_key(prepared, conn)
    if writer is not None:
        # Named now: whatever fails below must not remove the new version's blobs.
        await writer.committed_now()
    if new_content:
        await _delete_old(ctx, loaded)
    async with ctx.engine.connect() as conn:
        fresh = await conn.run_sync(lambda sync: service.read_item(sync, record.id))
    assert fresh is not None
    return dataclasses.replace(
        fresh.record, processing=tuple(v for job in jobs for v in job.variants)
    )


async def _erased_since_untag(ctx: Context, record: ItemRecord, added: Sequence[str]) -> bool:
    """Whether a child of ``added`` was untagged from the record while its key
    of the record's kind opened it, and that key is destroyed since."""
    if not added:
        return False
    async with ctx.engine.connect() as conn:
        found = await conn.scalar(
            select(item_untags.c.child_key_id)
            .join(child_keys, child_keys.c.id == item_untags.c.child_key_id)
            .where(
                item_untags.c.item_id == record.id,
                child_keys.c.child_id.in_(added),
                child_keys.c.category == record.kind,
                child_keys.c.destroyed_at.is_not(None),
            )
            .limit(1)
        )
    return found is not None


async def _children(
    conn: AsyncConnection, record: ItemRecord, added: list[str], removed: list[str]
) -> None:
    if added:
        await conn.execute(
            insert(item_children),
            [{"item_id": record.id, "child_id": c, "tagged": True} for c in added],
        )
    if removed:
        await conn.execute(
            delete(item_children).where(
                item_children.c.item_id == record.id, item_children.c.child_id.in_(removed)
            )
        )
        keys_of_removed = select(child_keys.c.id).where(
            and_(child_keys.c.child_id.in_(removed), child_keys.c.category == record.kind)
        )
        # Kept: if one of these keys is destroyed later (an erasure), the child
        # is not tagged in the record again (see _erased_since_untag).
        under = select(item_keys.c.item_id, item_keys.c.child_key_id).where(
            item_keys.c.item_id == record.id,
            item_keys.c.child_key_id.in_(keys_of_removed),
            ~exists().where(
                item_untags.c.item_id == item_keys.c.item_id,
                item_untags.c.child_key_id == item_keys.c.child_key_id,
            ),
        )
        await conn.execute(insert(item_untags).from_select(["item_id", "child_key_id"], under))
        await conn.execute(
            delete(item_keys).where(
                item_keys.c.item_id == record.id, item_keys.c.child_key_id.in_(keys_of_removed)
            )
        )


async def _reseal_handovers(
    conn: AsyncConnection, item_id: str, old_key: ItemKey, key: ItemKey
) -> None:
    """A handover's recipient is sealed under the item's key: under the new one now."""
    rows = (
        await conn.execute(
            select(handovers.c.id, handovers.c.recipient).where(handovers.c.item_id == item_id)
        )
    ).all()
    for row in rows:
        label = f"handover:{row.id}"
        recipient = open_item_record(old_key, item_id, label, row.recipient)
        await conn.execute(
            update(handovers)
            .where(handovers.c.id == row.id)
            .values(recipient=seal_item_record(key, item_id, label, recipient))
        )


async def _delete_old(ctx: Context, loaded: LoadedItem) -> None:
    """The previous version's blobs; any left (storage down) are orphans the sweeper removes."""
    for blob in loaded.blobs.values():
        with contextlib.suppress(Exception):  # a blob no row names is the sweeper's
            await ctx.store.delete(blob.blob_key)
