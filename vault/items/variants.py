"""The jobs that give a video its variants after upload: posters, and ``web`` where needed.

At upload (:mod:`vault.items.ingest`) a video gets, in the transaction that
stores it, a ``video.posters`` job (``preview``, ``thumb``) and, if some
browser cannot play it as it is (:mod:`vault.media.playable`), a
``video.web`` job; the item answers ``"processing": [...]`` until they are
done. A job worker (:mod:`vault.jobs.runner`) runs them here:

1. the item as it is now: destroyed meanwhile, or its key gone, and the job
   is cancelled;
2. ``variants.make`` on the record (the vault's own job reads a child's
   video; fail closed, as every access), then the original, decrypted from
   the store as a stream in an order a pipe reader can use
   (:mod:`vault.media.faststart`), to ffmpeg (:mod:`vault.media.video_variants`);
3. each variant straight into the encrypted stream format, its blob named
   in the job's scratch before a byte is written. ``web`` is stored twice:
   first ffmpeg's media data as it comes (``web-staging``, under the same
   item key), then the final file, its ``moov`` first, from that; the
   staging blob goes once the final one is committed;
4. one transaction: the variants' rows, ``variants.store`` on the record,
   the job done. So a variant is visible exactly when its job is done, and
   a killed attempt leaves only scratch that the next attempt removes.

Failures that another attempt would repeat (ffmpeg refused the file, a
ceiling of the upload settings, a stream the vault cannot reorder) fail
the job at once with the reason; others (storage, a killed or timed-out
ffmpeg) are tried again. The original is served throughout.

May touch: the item's rows and blobs, its key (to open it), the audit log.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterable, AsyncIterator, Sequence

from sqlalchemy import insert, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from vault.audit import SYSTEM, event
from vault.config import Settings
from vault.crypto._primitives import IntegrityError
from vault.crypto.handles import ItemKey
from vault.crypto.stream import decrypt_range, encrypt_stream
from vault.db.schema import item_blobs, items
from vault.errors import Destroyed, StorageUnavailable
from vault.items.service import ItemRecord, StoredBlob, read_item
from vault.jobs import queue
from vault.jobs.queue import NewJob
from vault.jobs.runner import Attempt, Cancelled, Handler, Permanent
from vault.keys.service import KeyService
from vault.media import video_variants
from vault.media.defrag import Malformed
from vault.media.faststart import CannotReorder, moov_first
from vault.media.ffmpeg import MediaToolMissing, Probe, Rejected
from vault.media.pool import IMAGE_POOL, ImagePool
from vault.media.video_variants import TooMuch
from vault.storage import BlobStore, new_blob_key

POSTERS, WEB = "video.posters", "video.web"
#: Posters first: a timeline shows a picture within seconds, whatever transcodes.
_PRIORITY = {POSTERS: 0, WEB: 10}
_KIND_OF = {("preview", "thumb"): POSTERS, ("web",): WEB}
WEB_TYPE = "video/mp4"
#: The variant label the staging blob's stream key is derived under.
_STAGING = "web-staging"


def new_jobs(plan: Sequence[tuple[str, ...]]) -> list[NewJob]:
    """The jobs for a plan of :func:`vault.media.playable.plan`."""
    return [
        NewJob(_KIND_OF[variants], variants, _PRIORITY[_KIND_OF[variants]]) for variants in plan
    ]


@dataclasses.dataclass(frozen=True)
class _Original:
    record: ItemRecord
    blob: StoredBlob
    key: ItemKey
    store: BlobStore

    def read(self, start: int, end: int) -> AsyncIterator[bytes]:
        """Plaintext [start, end) of the stored original."""

        def stored(offset: int, length: int) -> AsyncIterator[bytes]:
            return self.store.get(self.blob.blob_key, offset, length)

        return decrypt_range(
            self.key, self.record.id, "original", stored, self.blob.blob_size, start, end
        )

    def source(self) -> AsyncIterator[bytes]:
        """The whole original, ``moov`` first for MP4 and MOV (a pipe cannot seek)."""
        if self.record.content_type == "video/webm":
            return self.read(0, self.blob.plaintext_size)
        return moov_first(self.read, self.blob.plaintext_size)


@dataclasses.dataclass(frozen=True)
class Workshop:
    engine: AsyncEngine
    store: BlobStore
    keys: KeyService
    settings: Settings
    pool: ImagePool = IMAGE_POOL

    def handlers(self) -> dict[str, Handler]:
        return {POSTERS: self.posters, WEB: self.web}

    # -- the two jobs -------------------------------------------------------------

    async def posters(self, attempt: Attempt) -> None:
        original = await self._open(attempt)
        found = await self._inspect(original)
        try:
            preview, thumb = await video_variants.make_posters(
                original.source, original.record.content_type, found, self.settings, self.pool
            )
        except (Rejected, CannotReorder) as refused:
            raise Permanent(f"no poster could be made: {_reason(refused)}") from None
        blobs = [
            await self._put(attempt, original, "preview", preview.mime, _one(preview.data)),
            await self._put(attempt, original, "thumb", thumb.mime, _one(thumb.data)),
        ]
        await self._commit(attempt, original, blobs)

    async def web(self, attempt: Attempt) -> None:
        original = await self._open(attempt)
        found = await self._inspect(original)
        staging = new_blob_key(attempt.now())
        await attempt.scratch(staging)
        staged = _Counted()

        async def keep(media: AsyncIterable[bytes]) -> None:
            staged.stored = await self.store.put(
                staging, self._encrypt(original, _STAGING, staged.count(media))
            )

        try:
            head = await video_variants.make_web(
                original.source, original.record.content_type, found, self.settings, keep
            )
        except (Rejected, CannotReorder, Malformed) as refused:
            raise Permanent(f"the web rendition could not be made: {_reason(refused)}") from None
        except TooMuch as ceiling:
            raise Permanent(f"no web rendition: {ceiling.reason}") from None

        async def final() -> AsyncIterator[bytes]:
            yield head

            def stored(offset: int, length: int) -> AsyncIterator[bytes]:
                return self.store.get(staging, offset, length)

            async for chunk in decrypt_range(
                original.key, original.record.id, _STAGING, stored, staged.stored
            ):
                yield chunk

        blob = await self._put(attempt, original, "web", WEB_TYPE, final())
        await self._commit(attempt, original, [blob])
        # Named by nothing now; if it cannot go yet, the sweeper removes it.
        with contextlib.suppress(StorageUnavailable):
            await self.store.delete(staging)

    # -- the steps they share ----------------------------------------------------

    async def _open(self, attempt: Attempt) -> _Original:
        job = attempt.job
        try:
            async with self.engine.connect() as conn:
                loaded = await conn.run_sync(lambda sync: read_item(sync, job.item_id))
        except SQLAlchemyError as exc:
            raise StorageUnavailable() from exc
        if loaded is None or loaded.record.destroyed_at is not None:
            raise Cancelled("the item was destroyed before its variants were made")
        blob = loaded.blobs.get("original")
        if blob is None:
            raise Permanent("the item has no stored original")
        await self.keys.audit.record(
            event(
                "variants.make",
                children=loaded.record.shown_for,
                item=job.item_id,
                actor=SYSTEM,
                job=job.id,
                variants=list(job.variants),
                attempt=job.attempts,
            )
        )
        try:
            key = await self.keys.open_item_key(job.item_id)
        except Destroyed:
            raise Cancelled("the item's key was destroyed before its variants were made") from None
        except IntegrityError:
            raise Permanent("the item's key wrappings failed their integrity check") from None
        return _Original(loaded.record, blob, key, self.store)

    async def _inspect(self, original: _Original) -> Probe:
        try:
            return await video_variants.inspect(
                original.source, original.record.content_type, self.settings
            )
        except MediaToolMissing as missing:
            raise Permanent(str(missing)) from None
        except (Rejected, CannotReorder) as refused:
            raise Permanent(f"ffprobe cannot read the video: {_reason(refused)}") from None
        except TooMuch as ceiling:
            raise Permanent(f"no variants: {ceiling.reason}") from None

    def _encrypt(
        self, original: _Original, variant: str, source: AsyncIterable[bytes]
    ) -> AsyncIterator[bytes]:
        return encrypt_stream(
            original.key,
            original.record.id,
            variant,
            source,
            self.settings.crypto.segment_size,
        )

    async def _put(
        self,
        attempt: Attempt,
        original: _Original,
        variant: str,
        mime: str,
        source: AsyncIterable[bytes],
    ) -> StoredBlob:
        key = new_blob_key(attempt.now())
        await attempt.scratch(key)
        counted = _Counted()
        size = await self.store.put(key, self._encrypt(original, variant, counted.count(source)))
        return StoredBlob(variant, key, size, counted.size, mime)

    async def _commit(self, attempt: Attempt, original: _Original, blobs: list[StoredBlob]) -> None:
        """The variants' rows, their record and the job's end: one transaction."""
        record, job = original.record, attempt.job
        try:
            async with self.engine.begin() as conn:
                # Locks the item's row on PostgreSQL: a deletion waits, or came first.
                gone = await conn.scalar(
                    select(items.c.destroyed_at).where(items.c.id == record.id).with_for_update()
                )
                if gone is not None:
                    raise Cancelled("the item was destroyed while its variants were made")
                await self.keys.audit.append_in(
                    conn,
                    event(
                        "variants.store",
                        children=record.shown_for,
                        item=record.id,
                        actor=SYSTEM,
                        job=job.id,
                        variants=[blob.variant for blob in blobs],
                        size=sum(blob.plaintext_size for blob in blobs),
                    ),
                )
                await conn.execute(
                    insert(item_blobs),
                    [{"item_id": record.id, **dataclasses.asdict(blob)} for blob in blobs],
                )
                await queue.done_in(conn, job, attempt.now())
        except SQLAlchemyError as exc:
            raise StorageUnavailable() from exc


class _Counted:
    """Counts the bytes of a stream as they pass (the plaintext size of a variant)."""

    def __init__(self) -> None:
        self.size = 0
        self.stored = 0

    async def count(self, source: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        async for chunk in source:
            self.size += len(chunk)
            yield chunk


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _reason(error: Exception) -> str:
    reason: str = getattr(error, "reason", None) or str(error)
    return reason
