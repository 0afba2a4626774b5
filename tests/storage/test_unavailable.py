"""A store that cannot be reached fails fast and clearly, never hangs."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.helpers.s3 import s3_settings
from tests.servers import MinioServer, free_port
from vault.config import Secret, StorageSettings
from vault.storage import LocalDiskStore, S3Store, StorageUnavailable, new_blob_key


async def one_chunk() -> AsyncIterator[bytes]:
    yield b"data"


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def unreachable(endpoint: str) -> StorageSettings:
    return StorageSettings(
        backend="s3",
        s3_endpoint=endpoint,
        s3_access_key=Secret("x"),
        s3_secret_key=Secret("y"),
        timeout_seconds=1.0,
    )


@pytest.mark.minio
@pytest.mark.parametrize("kind", ["closed port", "silent server"])
async def test_s3_down_fails_fast(kind: str, silent_server: int) -> None:
    port = free_port() if kind == "closed port" else silent_server
    store = S3Store(unreachable(f"127.0.0.1:{port}"))
    for operation in (
        lambda: store.put(new_blob_key(), one_chunk()),
        lambda: store.size(new_blob_key()),
        store.check,
    ):
        started = time.monotonic()
        with pytest.raises(StorageUnavailable):
            await asyncio.wait_for(operation(), 30)
        # One retry with a 1 s timeout: about 2 s, far from a hang.
        assert time.monotonic() - started < 6
    with pytest.raises(StorageUnavailable):
        await S3Store.open(unreachable(f"127.0.0.1:{port}"))


@pytest.mark.minio
async def test_s3_wrong_credentials_is_unavailable(minio_server: MinioServer) -> None:
    settings = s3_settings(minio_server, s3_secret_key=Secret("not-the-secret"))
    with pytest.raises(StorageUnavailable):
        await S3Store.open(settings)


@pytest.mark.minio
async def test_s3_missing_bucket_fails_readiness(minio_server: MinioServer) -> None:
    store = S3Store(s3_settings(minio_server, s3_create_bucket=False))
    with pytest.raises(StorageUnavailable):
        await store.check()


@pytest.mark.minio
async def test_s3_delete_many_that_is_refused_answers_nothing_gone(
    minio_server: MinioServer,
) -> None:
    """The errors of a DeleteObjects answer are read: a bucket that does not
    exist refuses every key, and none is claimed gone (their rows stay for
    the sweeper)."""
    store = S3Store(s3_settings(minio_server, s3_create_bucket=False))
    try:
        assert await store.delete_many([new_blob_key() for _ in range(5)]) == []
    finally:
        await store.close()


@pytest.mark.localdisk
async def test_local_delete_many_answers_only_what_it_removed(tmp_path: Path) -> None:
    store = await LocalDiskStore.open(tmp_path / "blobs")
    keys = [new_blob_key() for _ in range(3)]
    for key in keys:
        await store.put(key, one_chunk())
    # A directory where a blob should be: its unlink fails, the others go.
    stuck = new_blob_key()
    (tmp_path / "blobs" / stuck[0:2] / stuck[2:4] / stuck).mkdir(parents=True)
    assert sorted(await store.delete_many([*keys, stuck])) == sorted(keys)
    assert [k async for k in store.list()] == [stuck]


@pytest.mark.localdisk
async def test_local_root_unusable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_bytes(b"")
    with pytest.raises(StorageUnavailable):
        await LocalDiskStore.open(blocker / "blobs")


@pytest.mark.localdisk
async def test_local_root_removed_under_a_running_store(tmp_path: Path) -> None:
    store = await LocalDiskStore.open(tmp_path / "blobs")
    await store.check()
    (tmp_path / "blobs" / ".tmp").rmdir()
    (tmp_path / "blobs").rmdir()
    (tmp_path / "blobs").write_bytes(b"")  # the root is now a file
    with pytest.raises(StorageUnavailable):
        await store.check()
    with pytest.raises(StorageUnavailable):
        await store.put(new_blob_key(), one_chunk())
