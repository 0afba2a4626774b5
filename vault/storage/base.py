"""The blob store seam: one small async protocol, one class per backend.

Blobs are opaque, immutable byte strings named by keys the vault makes itself
(:func:`new_blob_key`): random, unguessable, carrying nothing about a child.
What a store holds is always ciphertext; a store never sees a key or a name.

Backends translate their own failures at this boundary: a missing blob is
:class:`BlobNotFound`, anything that means "the store cannot be reached or
cannot write" is :class:`~vault.errors.StorageUnavailable`. No vendor exception
crosses it.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from vault.errors import KluisError, StorageUnavailable

__all__ = [
    "BlobNotFound",
    "BlobStore",
    "InvalidBlobKey",
    "StorageUnavailable",
    "check_key",
    "new_blob_key",
]

#: Letters, digits, ``-`` and ``_``; at least 8 so the local store can shard on
#: the first four characters; never a path separator or a leading dot.
_KEY_RE = re.compile(r"^[A-Za-z0-9_-]{8,128}$")

#: Size of the chunks a store yields when reading: 15 whole segments of the
#: stored format at its default size (64 KiB + a 16-byte tag, vault/crypto/
#: stream.py), so a read that starts on a segment (every decrypting read
#: does) hands over whole segments and nothing is carried to the next chunk;
#: and below 1 MiB, glibc's mmap threshold as vault/media/pool.py fixes it.
#: A buffer of 1 MiB or more is mapped afresh and unmapped when freed: a page
#: fault per 4 KiB each time, which cost about 40% of the CPU of serving a
#: 1 GB export when chunks were 1 MiB (docs/operations.md, "Exports").
READ_CHUNK = 15 * (64 * 1024 + 16)


class BlobNotFound(KluisError):
    status, code = 404, "not_found"
    default_message = "The stored object does not exist."


class InvalidBlobKey(KluisError):
    code = "internal_error"
    default_message = "A blob key has an invalid form."


def new_blob_key(now: datetime | None = None) -> str:
    """A fresh blob key: 24 random hex characters (96 bits), then 8 of time.

    The suffix is the creation time (Unix seconds, hex), so the orphan sweeper
    can tell a blob's age from its name alone and leave uploads in progress
    alone; the random prefix keeps the local store's shards even.
    """
    moment = now or datetime.now(UTC)
    return secrets.token_hex(12) + f"{int(moment.timestamp()) & 0xFFFFFFFF:08x}"


def blob_key_created(key: str) -> datetime | None:
    """When a key made by :func:`new_blob_key` was made; None for other keys."""
    if len(key) != 32:
        return None
    try:
        return datetime.fromtimestamp(int(key[24:], 16), UTC)
    except ValueError:
        return None


def check_key(key: str) -> str:
    if not _KEY_RE.fullmatch(key):
        raise InvalidBlobKey()
    return key


def check_range(offset: int, length: int | None) -> None:
    if offset < 0 or (length is not None and length < 0):
        raise ValueError("offset and length must not be negative")


@runtime_checkable
class BlobStore(Protocol):
    """Async blob storage. Every method may raise ``StorageUnavailable``."""

    async def put(self, key: str, stream: AsyncIterable[bytes]) -> int:
        """Store the stream under ``key`` and return its size in bytes.

        Atomic: readers see the whole blob or nothing; a failure (including a
        failing or cancelled input stream) leaves nothing behind.
        """
        ...

    def get(self, key: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """Yield the bytes ``[offset, offset + length)`` of the blob.

        ``length=None`` reads to the end; a range past the end yields what
        exists. Raises ``BlobNotFound`` (before the first chunk) if absent.
        """
        ...

    async def size(self, key: str) -> int:
        """The blob's size in bytes; ``BlobNotFound`` if absent."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def delete(self, key: str) -> None:
        """Remove the blob; deleting a missing blob is not an error."""
        ...

    async def delete_many(self, keys: Sequence[str]) -> list[str]:
        """Remove many blobs in a few bounded, parallel calls (a retention
        batch); the keys that are gone now, missing ones included.

        A blob that cannot be deleted now (the store is down, it refused) is
        left out of the answer and logged, never raised: the caller keeps its
        row for the orphan sweeper to retry.
        """
        ...

    def list(self, prefix: str = "") -> AsyncIterator[str]:
        """Yield the keys that start with ``prefix``, in no particular order."""
        ...

    async def check(self) -> None:
        """Raise ``StorageUnavailable`` unless the store is reachable and writable."""
        ...

    async def close(self) -> None: ...
