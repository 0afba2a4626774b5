"""Damaging stored blobs the ways disks, operators and attackers do.

Each function rewrites one blob through the store's own interface, so the same
damage is done on the local disk and on MinIO: a byte flipped at an offset, the
tail cut off, two blobs' contents swapped, the plaintext sealed again under a
key that is not the item's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from vault.crypto._primitives import TAG_SIZE
from vault.crypto.envelope import new_item_key
from vault.crypto.handles import ItemKey
from vault.crypto.stream import HEADER_SIZE, decrypt_range, encrypt_stream
from vault.storage import BlobStore

SEGMENT = 64 * 1024


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def read_blob(store: BlobStore, key: str) -> bytes:
    return b"".join([chunk async for chunk in store.get(key)])


async def flip_byte(store: BlobStore, key: str, offset: int) -> None:
    """One bit changed at ``offset`` (negative: from the end)."""
    data = bytearray(await read_blob(store, key))
    data[offset] ^= 0x01
    await store.put(key, _one(bytes(data)))


def segment_offset(index: int, within: int = 100) -> int:
    """The stored offset of a byte inside segment ``index`` (default segment size)."""
    return HEADER_SIZE + index * (SEGMENT + TAG_SIZE) + within


async def truncate(store: BlobStore, key: str, keep: int) -> None:
    data = await read_blob(store, key)
    await store.put(key, _one(data[:keep]))


async def swap(store: BlobStore, first: str, second: str) -> None:
    """The two blobs' contents exchanged, as two files swapped on a disk."""
    a, b = await read_blob(store, first), await read_blob(store, second)
    await store.put(first, _one(b))
    await store.put(second, _one(a))


async def reseal_under_another_key(
    store: BlobStore, key: str, item_key: ItemKey, item_id: str, variant: str, size: int
) -> None:
    """The blob's plaintext sealed again, same item and variant, under a fresh key."""

    def read(offset: int, length: int) -> AsyncIterator[bytes]:
        return store.get(key, offset, length)

    plaintext = b"".join([p async for p in decrypt_range(item_key, item_id, variant, read, size)])
    sealed = b"".join(
        [c async for c in encrypt_stream(new_item_key(), item_id, variant, _one(plaintext))]
    )
    await store.put(key, _one(sealed))
