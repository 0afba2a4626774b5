"""Encrypted streams into and out of real storage, with bounded memory."""

from __future__ import annotations

import collections
import hashlib
import os
import random
import resource
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.helpers.memory import RssSampler
from vault.crypto import IntegrityError
from vault.crypto._primitives import TAG_SIZE
from vault.crypto.handles import ItemKey
from vault.crypto.stream import (
    DEFAULT_SEGMENT_SIZE,
    HEADER_SIZE,
    MAX_SEGMENTS,
    _Segments,
    ciphertext_size,
    decrypt_range,
    encrypt_stream,
    plaintext_size,
)
from vault.media import pool
from vault.storage import BlobStore, LocalDiskStore, new_blob_key

MIB = 1024 * 1024


@pytest.mark.slow
async def test_encrypt_into_storage_and_read_ranges_back(store: BlobStore) -> None:
    size = 150 * MIB + 12345
    key = ItemKey(os.urandom(32))
    block = os.urandom(MIB)
    expected = hashlib.sha256()

    async def upload() -> AsyncIterator[bytes]:
        sent = 0
        while sent < size:
            piece = block[: min(MIB, size - sent)]
            yield piece
            sent += len(piece)

    for start in range(0, size, MIB):
        expected.update(block[: min(MIB, size - start)])
    blob_key = new_blob_key()
    with RssSampler() as memory:
        stored = await store.put(blob_key, encrypt_stream(key, "video-1", "original", upload()))
    assert stored == ciphertext_size(size) == await store.size(blob_key)
    assert memory.growth_mb < 60, memory.growth_mb

    def read(offset: int, length: int) -> AsyncIterator[bytes]:
        return store.get(blob_key, offset, length)

    digest = hashlib.sha256()
    with RssSampler() as memory:
        async for piece in decrypt_range(key, "video-1", "original", read, stored):
            digest.update(piece)
    assert digest.hexdigest() == expected.hexdigest()
    assert memory.growth_mb < 40, memory.growth_mb

    rng = random.Random(3)
    for _ in range(20):
        start = rng.randrange(0, size)
        end = min(size, start + rng.randrange(1, 3 * DEFAULT_SEGMENT_SIZE))
        got = b"".join(
            [p async for p in decrypt_range(key, "video-1", "original", read, stored, start, end)]
        )
        want = bytearray()
        position = start
        while position < end:
            offset = position % MIB
            take = min(end - position, MIB - offset)
            want += block[offset : offset + take]
            position += take
        assert got == bytes(want)


async def _stored(store: BlobStore, key: ItemKey, size: int) -> tuple[str, int]:
    async def upload() -> AsyncIterator[bytes]:
        block = os.urandom(MIB)
        for start in range(0, size, MIB):
            yield block[: min(MIB, size - start)]

    blob_key = new_blob_key()
    return blob_key, await store.put(blob_key, encrypt_stream(key, "v-1", "original", upload()))


async def test_a_decrypting_read_takes_whole_segments_below_the_mmap_threshold(
    store: BlobStore,
) -> None:
    """The chunks a store hands to decryption, and the plaintext pieces that
    come out, stay below the size glibc maps afresh for every buffer (a page
    fault per 4 KiB: vault/storage/base.py), and a read from a segment's start
    takes whole segments, so no piece of one is carried to the next chunk."""
    key = ItemKey(os.urandom(32))
    size = 5 * MIB + 777
    blob_key, stored = await _stored(store, key, size)
    full = DEFAULT_SEGMENT_SIZE + TAG_SIZE
    chunks: list[int] = []

    async def read(offset: int, length: int) -> AsyncIterator[bytes]:
        async for chunk in store.get(blob_key, offset, length):
            if offset >= HEADER_SIZE:
                chunks.append(len(chunk))
            yield chunk

    for start in (0, 3 * DEFAULT_SEGMENT_SIZE, 3 * DEFAULT_SEGMENT_SIZE + 5):
        chunks.clear()
        pieces = [len(p) async for p in decrypt_range(key, "v-1", "original", read, stored, start)]
        assert sum(pieces) == size - start
        assert max(pieces) < pool.MMAP_THRESHOLD, pieces
        assert max(chunks) < pool.MMAP_THRESHOLD, chunks
        assert all(n % full == 0 for n in chunks[:-1]), chunks


@pytest.mark.localdisk
async def test_reading_a_large_blob_does_not_fault_in_fresh_memory_per_chunk(
    tmp_path: Path,
) -> None:
    """With the allocator as ``kluis serve`` tunes it, decrypting 48 MiB while
    a few pieces are still in flight (as a socket's buffer holds them) reuses
    the same heap: before, every 1 MiB buffer was a fresh mapping, 512 page
    faults per MiB read and decrypted (about 40% of an export's CPU)."""
    pool.tune_allocator()
    store = await LocalDiskStore.open(tmp_path / "blobs")
    key = ItemKey(os.urandom(32))
    size = 48 * MIB
    blob_key, stored = await _stored(store, key, size)

    def read(offset: int, length: int) -> AsyncIterator[bytes]:
        return store.get(blob_key, offset, length)

    async for _ in decrypt_range(key, "v-1", "original", read, stored):
        pass  # the file in the page cache, the heap warm
    in_flight: collections.deque[bytes] = collections.deque(maxlen=3)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    async for piece in decrypt_range(key, "v-1", "original", read, stored):
        in_flight.append(piece)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert faults / 48 < 64, f"{faults / 48:.0f} page faults per MiB"


def test_the_segment_counter_is_capped() -> None:
    state = _Segments.fresh(ItemKey(bytes(32)), "i", "v", DEFAULT_SEGMENT_SIZE)
    with pytest.raises(ValueError, match="counter exhausted"):
        state.seal(MAX_SEGMENTS, b"x", last=True)
    too_long = HEADER_SIZE + MAX_SEGMENTS * (DEFAULT_SEGMENT_SIZE + 16) + 17
    with pytest.raises(IntegrityError):
        plaintext_size(too_long)
