"""Turning an upload into an item: sniff, cap, sanitise, encrypt, store.

Files arrive as an async stream of chunks. The first bytes decide the type
(:mod:`vault.media.sniff`); the size cap is enforced while bytes flow.
Videos go through :class:`vault.media.video.Scrubbed` (metadata neutralised
in place, same size; its header tells which variants to make after upload,
queued as jobs with the item's rows) and, like documents, straight through the encrypted stream
into storage without being held; images (capped at tens of MB) are sanitised
in the image pool (:mod:`vault.media.pool`), a JPEG stripped of its metadata
segments as it streams in and kept with its compressed pixels, other types
decoded and re-encoded; each rendition is stored as its own blob.
The blobs are written first; the item's rows (and its key wrappings) only
once every blob is in place. On any failure the blobs written so far are
deleted, and nothing is left that a row names.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import zlib
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine

from vault.config import Settings
from vault.crypto.envelope import seal_item_record
from vault.crypto.handles import ItemKey
from vault.crypto.stream import encrypt_stream
from vault.errors import InvalidInput, StorageUnavailable, TooLarge
from vault.items import service, variants
from vault.items.pending import Leases
from vault.items.service import ItemRecord, StoredBlob
from vault.items.when import answered_taken_at, exif_taken_at
from vault.jobs.queue import NewJob
from vault.keys.service import KeyService, PreparedItemKey
from vault.media import playable
from vault.media.images import Rendition, clean_jpeg, jpeg_variants, reencoded_jpeg, sanitise
from vault.media.jpeg import JpegStripper
from vault.media.pool import IMAGE_POOL, ImagePool
from vault.media.sniff import ACCEPTED, HEAD_SIZE, JPEG, MediaType, accepted
from vault.media.video import Scrubbed
from vault.sizes import size_text
from vault.storage import BlobStore
from vault.tokens import new_id

MB = 1024 * 1024
#: A diary entry's original: its text, as it was written.
TEXT_PLAIN = "text/plain; charset=utf-8"
#: The order an item lists the variants it is stored with.
VARIANT_ORDER = ("original", "preview", "thumb")


@dataclasses.dataclass(frozen=True)
class Context:
    engine: AsyncEngine
    store: BlobStore
    keys: KeyService
    settings: Settings
    #: Where image work runs (never the default executor: memory must return).
    pool: ImagePool = IMAGE_POOL


def size_cap(settings: Settings, media: MediaType) -> int:
    uploads = settings.uploads
    if media.family == "video":
        return uploads.video_max_mb * MB
    if media.family == "image":
        return uploads.photo_max_mb * MB
    return uploads.document_max_mb * MB


def size_cap_of_kind(settings: Settings, kind: str) -> int:
    """The most bytes an upload of ``kind`` can have, whatever type it turns out to be.

    Known as soon as the ``meta`` part is read, so a ``Content-Length`` over
    it is refused before a byte of the file is.
    """
    return max((size_cap(settings, media) for media in ACCEPTED.get(kind, ())), default=0)


def largest_cap(settings: Settings) -> int:
    """The most bytes any upload can have: what the request head is held to."""
    return max(size_cap_of_kind(settings, kind) for kind in ACCEPTED)


async def capped(source: AsyncIterable[bytes], limit: int) -> AsyncIterator[bytes]:
    total = 0
    async for chunk in source:
        total += len(chunk)
        if total > limit:
            raise TooLarge(
                f"The file is larger than the {size_text(limit)} allowed for its type; "
                "nothing was stored."
            )
        yield chunk


async def peek(source: AsyncIterable[bytes]) -> tuple[bytes, AsyncIterator[bytes]]:
    """The first HEAD_SIZE bytes (fewer if the stream is shorter), and the whole stream."""
    iterator = aiter(source)
    head = b""
    while len(head) < HEAD_SIZE:
        try:
            head += await anext(iterator)
        except StopAsyncIteration:
            break

    async def whole() -> AsyncIterator[bytes]:
        if head:
            yield head
        async for chunk in iterator:
            yield chunk

    return head, whole()


class _Counted:
    """Passes a stream through, keeping the size and CRC-32 of what went by."""

    def __init__(self, source: AsyncIterable[bytes]) -> None:
        self.source = source
        self.size = 0
        self.crc = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.source:
            self.size += len(chunk)
            self.crc = zlib.crc32(chunk, self.crc)
            yield chunk


async def one(data: bytes) -> AsyncIterator[bytes]:
    yield data


class Writer:
    """Stores an item's variants, and removes them all if the item fails."""

    def __init__(self, ctx: Context, key: ItemKey, item_id: str, now: datetime) -> None:
        self.ctx, self.key, self.item_id, self.now = ctx, key, item_id, now
        #: The keys it writes under, leased so no sweep takes them before the commit.
        self.leases = Leases(ctx.keys.audit, ctx.settings.uploads.lease_seconds, now)
        self.stored: list[StoredBlob] = []
        #: The plaintext CRC-32 of each stored variant.
        self.crcs: dict[str, int] = {}
        #: The item's rows are committed: its blobs are named, never discarded.
        self.committed = False

    async def put(self, variant: str, mime: str, source: AsyncIterable[bytes]) -> StoredBlob:
        counted = _Counted(source)
        blob_key = await self.leases.key()
        size = await self.ctx.store.put(
            blob_key,
            encrypt_stream(
                self.key, self.item_id, variant, counted, self.ctx.settings.crypto.segment_size
            ),
        )
        blob = StoredBlob(variant, blob_key, size, counted.size, mime)
        self.stored.append(blob)
        self.crcs[variant] = counted.crc
        return blob

    def in_order(self) -> StoredBlob:
        """The stored blobs sorted by :data:`VARIANT_ORDER` (some are stored
        at once, finishing in any order); answers the original."""
        self.stored.sort(key=lambda blob: VARIANT_ORDER.index(blob.variant))
        return self.stored[0]

    async def discard(self) -> None:
        """Remove what a failed item stored (nothing once its rows are committed)."""
        if not self.committed:
            for blob in self.stored:
                # If the store is down, the orphan sweeper removes it later.
                with contextlib.suppress(StorageUnavailable):
                    await self.ctx.store.delete(blob.blob_key)
            await self.leases.drop()
        await self.leases.close()

    async def committed_now(self) -> None:
        """The rows naming the blobs are committed (their leases went with them)."""
        self.committed = True
        await self.leases.close()


async def ingest_file(
    ctx: Context,
    *,
    kind: str,
    owners: Sequence[str],
    uploader: str,
    source: AsyncIterable[bytes],
    meta: dict[str, Any],
    now: datetime,
    before_commit: Callable[[], Awaitable[None]] | None = None,
) -> ItemRecord:
    """Store an uploaded file as a new item of ``kind`` belonging to ``owners``.

    ``before_commit`` runs once every blob is stored and before the item's
    rows are: if it raises, the blobs are removed and nothing is visible.
    """
    media, stream = await sniff(kind, source)
    item_id = new_id()
    prepared = await ctx.keys.prepare_item_key(item_id, [(child, kind) for child in owners])
    writer = Writer(ctx, prepared.key, item_id, now)
    try:
        original, extra, jobs = await write_file(ctx, writer, media, stream)
        if before_commit is not None:
            await before_commit()
        # The original's CRC-32, sealed with the rest, so exports know it up front.
        meta = {
            **with_file_facts(meta, extra, ctx.settings.uploads.camera_zone),
            "crc32": writer.crcs["original"],
        }
        record = ItemRecord(
            id=item_id,
            kind=kind,
            children=tuple(owners),
            variants=tuple(blob.variant for blob in writer.stored),
            size=original.plaintext_size,
            content_type=original.content_type,
            created_at=now,
            uploaded_by=uploader,
            processing=tuple(v for job in jobs for v in job.variants),
        )
        await _commit(ctx, writer, record, meta, prepared, jobs)
    except BaseException:
        await writer.discard()
        raise
    return record


def with_file_facts(meta: dict[str, Any], extra: dict[str, Any], zone: ZoneInfo) -> dict[str, Any]:
    """``meta`` with what :func:`write_file` learnt of the file; the time a
    photo's EXIF says it was taken only as ``taken_at`` where ``meta`` has
    none (what the uploader gave, or a correction, stands). The ``taken_at``
    kept is UTC (:func:`~vault.items.when.normal_taken_at`): an EXIF time
    without OffsetTimeOriginal is the camera's clock in ``zone``
    (``uploads.camera_time_zone``); one UTC or that zone cannot write
    (``0001:01:01 00:00:00`` at ``+01:00``) is ignored, as garbage."""
    facts = {name: value for name, value in extra.items() if name != "taken_at"}
    merged = {**meta, **facts}
    if isinstance(merged.get("taken_at"), str):
        merged["taken_at"] = answered_taken_at(merged["taken_at"], zone)
    elif (taken := exif_taken_at(extra.get("taken_at"), zone)) is not None:
        merged["taken_at"] = taken
    return merged


async def sniff(kind: str, source: AsyncIterable[bytes]) -> tuple[MediaType, AsyncIterator[bytes]]:
    """The type the first bytes say (refused if not accepted for ``kind``), and the stream."""
    head, stream = await peek(source)
    if not head:
        raise InvalidInput("The file is empty; nothing was stored.")
    return accepted(kind, head), stream


async def write_file(
    ctx: Context, writer: Writer, media: MediaType, stream: AsyncIterable[bytes]
) -> tuple[StoredBlob, dict[str, Any], list[NewJob]]:
    """Store a file's variants (sanitised, encrypted, capped); its original,
    what the metadata learns of it (an image's size), and the jobs that make
    the rest after the commit (a video's posters and web rendition). An
    image's EXIF time it was taken comes as ``taken_at`` (ISO 8601), where
    it has one: :func:`with_file_facts` puts it in the metadata."""
    limit = size_cap(ctx.settings, media)
    if media.family == "image":
        size = await _image(ctx, writer, media, capped(stream, limit))
        facts: dict[str, Any] = {"width": size.width, "height": size.height}
        if size.taken_at is not None:
            facts["taken_at"] = size.taken_at
        return writer.in_order(), facts, []
    if media.family == "video":
        scrubbed = Scrubbed(media, capped(stream, limit))
        original = await writer.put("original", media.mime, scrubbed)
        # Posters for every video, and a web rendition for one some browser cannot play:
        # made after the commit by a job worker (vault/items/variants.py).
        return original, {}, variants.new_jobs(playable.plan(scrubbed.facts))
    return await writer.put("original", media.mime, capped(stream, limit)), {}, []


async def _image(
    ctx: Context, writer: Writer, media: MediaType, stream: AsyncIterable[bytes]
) -> _Size:
    """Store an image's three renditions. A JPEG's metadata is stripped as
    its bytes arrive, and its clean original is encrypted and stored while
    the image pool makes the variants from it (independent work: on two
    cores it overlaps)."""
    max_pixels = ctx.settings.uploads.max_pixels
    if media == JPEG:
        stripper = JpegStripper()
        async for chunk in stream:
            stripper.feed(chunk)
        stripped = stripper.close()
        clean = await ctx.pool.run(clean_jpeg, stripped, max_pixels)
        if clean is not None:
            _, (preview, thumb) = await together(
                writer.put("original", JPEG.mime, one(clean.data)),
                ctx.pool.run(jpeg_variants, clean),
            )
            await _variants(writer, preview, thumb)
            return _Size(clean.width, clean.height, stripped.taken_at)
        image = await ctx.pool.run(reencoded_jpeg, stripped, max_pixels)
    else:
        data = bytearray()
        async for chunk in stream:
            data += chunk
        image = await ctx.pool.run(sanitise, bytes(data), media, max_pixels)
    await together(
        writer.put("original", image.original.mime, one(image.original.data)),
        _variants(writer, image.preview, image.thumb),
    )
    return _Size(image.width, image.height, image.taken_at)


async def _variants(writer: Writer, preview: Rendition, thumb: Rendition) -> None:
    await together(
        writer.put("preview", preview.mime, one(preview.data)),
        writer.put("thumb", thumb.mime, one(thumb.data)),
    )


@dataclasses.dataclass(frozen=True)
class _Size:
    width: int
    height: int
    taken_at: str | None = None


async def together(*steps: Awaitable[Any]) -> list[Any]:
    """Run ``steps`` at once and wait for every one of them, also when one
    fails (so a caller that then removes what was stored sees all of it);
    raises the first failure in the order given. Cancelled, it cancels the
    steps and waits for them before passing the cancellation on."""
    tasks = [asyncio.ensure_future(step) for step in steps]
    try:
        await asyncio.wait(tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
        raise
    # Every failure is looked at (asyncio would log the others as never retrieved).
    failures = [task.exception() for task in tasks if not task.cancelled()]
    for failure in failures:
        if failure is not None:
            raise failure
    return [task.result() for task in tasks]


async def ingest_text(
    ctx: Context,
    *,
    kind: str,
    owners: Sequence[str],
    uploader: str,
    meta: dict[str, Any],
    now: datetime,
) -> ItemRecord:
    """Store a diary entry: its text sealed in the item's record, and the same
    text as its ``original`` (UTF-8 plain text, sealed like any blob), so an
    entry can be linked like every other record."""
    item_id = new_id()
    prepared = await ctx.keys.prepare_item_key(item_id, [(child, kind) for child in owners])
    text = str(meta.get("text", "")).encode("utf-8")
    writer = Writer(ctx, prepared.key, item_id, now)
    try:
        original = await writer.put("original", TEXT_PLAIN, one(text))
        record = ItemRecord(
            id=item_id,
            kind=kind,
            children=tuple(owners),
            variants=("original",),
            size=original.plaintext_size,
            content_type=TEXT_PLAIN,
            created_at=now,
            uploaded_by=uploader,
        )
        meta = {**meta, "crc32": writer.crcs["original"]}
        await _commit(ctx, writer, record, meta, prepared)
    except BaseException:
        await writer.discard()
        raise
    return record


async def _commit(
    ctx: Context,
    writer: Writer,
    record: ItemRecord,
    meta: dict[str, Any],
    prepared: PreparedItemKey,
    jobs: Sequence[NewJob] = (),
) -> None:
    sealed = seal_item_record(
        prepared.key, record.id, service.META_LABEL, json.dumps(meta).encode("utf-8")
    )
    saved = service.save(
        ctx.keys, record, sealed, writer.stored, prepared, jobs, leased=writer.leases.keys
    )
    try:
        await asyncio.shield(saved)
    except asyncio.CancelledError:
        # Cancelled (the client went away) while the group commit may be
        # writing the rows: wait to know, so that a committed item keeps
        # its blobs (stored, its answer lost) and an uncommitted one does not.
        await asyncio.wait([saved])
        writer.committed = not saved.cancelled() and saved.exception() is None
        raise
    await writer.committed_now()
