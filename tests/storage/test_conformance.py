"""One conformance suite for every BlobStore: local disk and a real MinIO."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator

import pytest

from tests.helpers.data import pattern
from tests.helpers.memory import RssSampler
from vault.storage import BlobNotFound, BlobStore, LocalDiskStore, S3Store, new_blob_key
from vault.storage.base import InvalidBlobKey

SEG = 64 * 1024


async def stream_of(data: bytes, chunk: int = 8192) -> AsyncIterator[bytes]:
    for i in range(0, len(data), chunk):
        yield data[i : i + chunk]


async def read_all(store: BlobStore, key: str, offset: int = 0, length: int | None = None) -> bytes:
    return b"".join([c async for c in store.get(key, offset, length)])


@pytest.mark.parametrize("size", [0, 1, SEG - 1, SEG, SEG + 1])
async def test_round_trip_at_sizes(store: BlobStore, size: int) -> None:
    data = pattern(size)
    key = new_blob_key()
    assert await store.put(key, stream_of(data)) == size
    assert await store.size(key) == size
    assert await store.exists(key)
    assert await read_all(store, key) == data


async def test_ranges_at_every_boundary(store: BlobStore) -> None:
    size = 3 * SEG + 7
    data = pattern(size, seed=1)
    key = new_blob_key()
    await store.put(key, stream_of(data, chunk=SEG))
    offsets = [0, 1, SEG - 1, SEG, SEG + 1, 2 * SEG, size - 1, size, size + 10]
    lengths = [None, 0, 1, 2, SEG - 1, SEG, SEG + 1, 10 * SEG]
    for offset in offsets:
        for length in lengths:
            expected = data[offset:] if length is None else data[offset : offset + length]
            got = await read_all(store, key, offset, length)
            assert got == expected, (offset, length)


async def test_negative_range_is_refused(store: BlobStore) -> None:
    key = new_blob_key()
    await store.put(key, stream_of(b"abc"))
    with pytest.raises(ValueError, match="negative"):
        await read_all(store, key, -1)


async def test_missing_keys(store: BlobStore) -> None:
    key = new_blob_key()
    assert not await store.exists(key)
    with pytest.raises(BlobNotFound):
        await store.size(key)
    with pytest.raises(BlobNotFound):
        await read_all(store, key)
    with pytest.raises(BlobNotFound):
        await read_all(store, key, 5, 0)
    await store.delete(key)  # idempotent: no error
    await store.delete(key)


async def test_delete_removes(store: BlobStore) -> None:
    key = new_blob_key()
    await store.put(key, stream_of(b"to be destroyed"))
    await store.delete(key)
    assert not await store.exists(key)
    assert [k async for k in store.list()] == []


async def test_delete_many_removes_exactly_the_keys_given(store: BlobStore) -> None:
    # More than one request's worth on S3 (1,000 keys) and one trip's on disk (256).
    doomed = [new_blob_key() for _ in range(1100)]
    kept = [new_blob_key() for _ in range(3)]
    await asyncio.gather(*(store.put(k, stream_of(b"x")) for k in doomed[:1050] + kept))
    # Missing keys (the last 50) are gone already: not an error, and answered as gone.
    gone = await store.delete_many(doomed)
    assert sorted(gone) == sorted(doomed)
    assert sorted([k async for k in store.list()]) == sorted(kept)
    assert await store.delete_many([]) == []
    with pytest.raises(InvalidBlobKey):
        await store.delete_many(["../escape"])


async def test_overwrite_replaces_whole_blob(store: BlobStore) -> None:
    key = new_blob_key()
    await store.put(key, stream_of(pattern(SEG * 2, seed=2)))
    await store.put(key, stream_of(b"short"))
    assert await read_all(store, key) == b"short"


@pytest.mark.parametrize(
    "bad", ["../../etc/passwd", "a/b/cdefgh", "short", ".hidden-key", "x" * 129]
)
async def test_invalid_keys_are_refused(store: BlobStore, bad: str) -> None:
    with pytest.raises(InvalidBlobKey):
        await store.put(bad, stream_of(b"x"))
    with pytest.raises(InvalidBlobKey):
        await store.size(bad)


async def test_list_by_prefix(store: BlobStore) -> None:
    keys = [
        "abcd" + new_blob_key(),
        "abce" + new_blob_key(),
        "abzz" + new_blob_key(),
        "99" + new_blob_key(),  # never under "ab" (a random key is, one time in 256)
    ]
    for key in keys:
        await store.put(key, stream_of(b"k"))
    assert sorted([k async for k in store.list()]) == sorted(keys)
    assert sorted([k async for k in store.list("abc")]) == sorted(keys[:2])
    assert [k async for k in store.list("abcd")] == [keys[0]]
    assert sorted([k async for k in store.list("ab")]) == sorted(keys[:3])
    assert [k async for k in store.list("nothing-here")] == []


async def test_concurrent_puts(store: BlobStore) -> None:
    payloads = {new_blob_key(): pattern(SEG + i * 1000, seed=i) for i in range(16)}
    sizes = await asyncio.gather(*(store.put(k, stream_of(v)) for k, v in payloads.items()))
    assert sizes == [len(v) for v in payloads.values()]
    for key, value in payloads.items():
        assert await read_all(store, key) == value


async def test_concurrent_puts_to_one_key_never_mix(store: BlobStore) -> None:
    key = new_blob_key()
    versions = [pattern(3 * SEG, seed=100 + i) for i in range(6)]
    await asyncio.gather(*(store.put(key, stream_of(v, chunk=4096)) for v in versions))
    assert await read_all(store, key) in versions


class Boom(Exception):
    pass


async def failing_stream(good: int) -> AsyncIterator[bytes]:
    data = pattern(good, seed=7)
    for i in range(0, good, SEG):
        yield data[i : i + SEG]
        await asyncio.sleep(0)
    raise Boom()


@pytest.mark.parametrize("good_bytes", [0, 10, 7 * 1024 * 1024])
async def test_failed_put_leaves_nothing(store: BlobStore, good_bytes: int) -> None:
    key = new_blob_key()
    with pytest.raises(Boom):
        await store.put(key, failing_stream(good_bytes))
    assert not await store.exists(key)
    assert [k async for k in store.list()] == []
    await assert_no_partial_uploads(store)


async def test_cancelled_put_leaves_nothing(store: BlobStore) -> None:
    key = new_blob_key()
    under_way = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        chunk = pattern(SEG, seed=9)
        taken = 0
        while True:
            yield chunk
            taken += len(chunk)
            # Past two parts of a multipart upload (5 MiB each in the tests)
            # and many write batches on disk: cancelled in the thick of it.
            if taken >= 12 * 1024 * 1024:
                under_way.set()
            await asyncio.sleep(0.001)

    task = asyncio.create_task(store.put(key, endless()))
    await asyncio.wait_for(under_way.wait(), 60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not await store.exists(key)
    await assert_no_partial_uploads(store)


async def assert_no_partial_uploads(store: BlobStore) -> None:
    if isinstance(store, LocalDiskStore):
        assert os.listdir(store.root / ".tmp") == []
    elif isinstance(store, S3Store):
        client = store._client
        uploads = await asyncio.to_thread(client._list_multipart_uploads, store.bucket)
        assert list(uploads.uploads) == []


@pytest.mark.slow
async def test_100mb_streams_with_bounded_memory(store: BlobStore) -> None:
    size = 100 * 1024 * 1024
    block = pattern(1024 * 1024, seed=11)

    async def source() -> AsyncIterator[bytes]:
        for i in range(size // len(block)):
            # Every MiB differs, so nothing can be deduplicated or cached away.
            yield i.to_bytes(8, "big") + block[8:]

    expected = hashlib.sha256()
    for i in range(size // len(block)):
        expected.update(i.to_bytes(8, "big") + block[8:])

    key = new_blob_key()
    with RssSampler() as put_memory:
        assert await store.put(key, source()) == size
    assert await store.size(key) == size

    digest = hashlib.sha256()
    with RssSampler() as get_memory:
        async for chunk in store.get(key):
            digest.update(chunk)
    assert digest.hexdigest() == expected.hexdigest()
    tail = await read_all(store, key, size - 5, 100)
    assert tail == block[-5:]
    # S3 holds up to (parallel parts + 1) parts of 5 MiB in these tests; the
    # local store about one write batch. Either way far below the 100 MB.
    assert put_memory.growth_mb < 60, put_memory.growth_mb
    assert get_memory.growth_mb < 30, get_memory.growth_mb
