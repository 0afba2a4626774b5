"""The blob store's objects in a backup: a listing file and the objects, streamed.

The listing (``blobs.list``) has one line per object the database copy
names: ``key<TAB>size<TAB>sha256``, the digest over the stored (encrypted)
bytes, so a restore proves each object byte-identical. Objects are files
under ``blobs/ab/cd/<key>``, the local store's layout, whatever the store
(local disk or S3); they hold ciphertext only. Every object is streamed in
the store's chunks, a few at a time, so memory stays flat whatever the size.

This module may touch the store and the backup directory; it opens nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path

from vault.storage import BlobNotFound, BlobStore
from vault.storage.base import check_key

LISTING = "blobs.list"
OBJECTS = "blobs"
PARALLEL = 8


@dataclasses.dataclass(frozen=True)
class Entry:
    key: str
    size: int
    sha256: str


def object_path(root: Path, key: str) -> Path:
    check_key(key)
    return root / OBJECTS / key[:2] / key[2:4] / key


async def copy_out(
    store: BlobStore, keys: Iterable[str], dest: Path, progress: Callable[[int], None]
) -> tuple[list[Entry], list[str]]:
    """Copy each key's object into ``dest``; (the listing, keys the store lacked)."""
    limit = asyncio.Semaphore(PARALLEL)

    async def one(key: str) -> Entry | str:
        async with limit:
            path = object_path(dest, key)
            path.parent.mkdir(parents=True, exist_ok=True)
            digest, size = hashlib.sha256(), 0
            try:
                with path.open("wb") as out:
                    async for chunk in store.get(key):
                        out.write(chunk)
                        digest.update(chunk)
                        size += len(chunk)
                    out.flush()
                    os.fsync(out.fileno())
            except BlobNotFound:
                path.unlink(missing_ok=True)
                return key  # deleted since the database was copied: destroyed meanwhile
            finally:
                progress(1)
            return Entry(key, size, digest.hexdigest())

    results = await asyncio.gather(*(one(key) for key in sorted(set(keys))))
    entries = [r for r in results if isinstance(r, Entry)]
    missing = [r for r in results if isinstance(r, str)]
    with (dest / LISTING).open("w", encoding="ascii") as listing:
        for entry in entries:
            listing.write(f"{entry.key}\t{entry.size}\t{entry.sha256}\n")
    return entries, missing


def read_listing(source: Path) -> list[Entry]:
    entries = []
    for line in (source / LISTING).read_text(encoding="ascii").splitlines():
        key, size, digest = line.split("\t")
        entries.append(Entry(check_key(key), int(size), digest))
    return entries


@dataclasses.dataclass
class PutBack:
    restored: int = 0
    present: int = 0
    #: Objects whose bytes in the backup do not match the listing (not restored).
    damaged: list[str] = dataclasses.field(default_factory=list)


async def copy_in(
    store: BlobStore, entries: list[Entry], source: Path, progress: Callable[[int], None]
) -> PutBack:
    """Put every listed object back into the store (one already there with the
    right size is kept: keys are random and objects never change)."""
    report = PutBack()
    limit = asyncio.Semaphore(PARALLEL)

    async def one(entry: Entry) -> None:
        async with limit:
            try:
                if await store.exists(entry.key) and await store.size(entry.key) == entry.size:
                    report.present += 1
                    return
                digest = hashlib.sha256()
                path = object_path(source, entry.key)

                async def chunks() -> AsyncIterator[bytes]:
                    with path.open("rb") as handle:
                        while chunk := handle.read(1024 * 1024):
                            digest.update(chunk)
                            yield chunk

                size = await store.put(entry.key, chunks())
                if size != entry.size or digest.hexdigest() != entry.sha256:
                    await store.delete(entry.key)
                    report.damaged.append(entry.key)
                    return
                report.restored += 1
            except FileNotFoundError:
                report.damaged.append(entry.key)
            finally:
                progress(1)

    await asyncio.gather(*(one(entry) for entry in entries))
    return report
