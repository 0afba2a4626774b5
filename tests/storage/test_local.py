"""The local store's writes: nothing a put does to the disk runs on the event
loop (creating, writing, syncing, renaming or discarding its file), whether
the put succeeds, its stream fails or it is cancelled."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.data import pattern
from tests.helpers.page_cache import evict
from tests.helpers.polling import eventually
from vault.storage import LocalDiskStore, cached, local, new_blob_key
from vault.storage.base import READ_CHUNK
from vault.storage.cached import _Openat2

pytestmark = pytest.mark.localdisk

#: The calls a put may make that can wait for the disk. Path methods
#: (exists, unlink, mkdir) come down to these too.
_BY_PATH = ("open", "stat", "unlink", "mkdir", "replace", "rename")
_BY_FD = ("write", "fsync", "close")


@contextmanager
def disk_calls_on_the_loop(root: Path) -> Iterator[list[str]]:
    """Every call under ``root`` (or on a descriptor opened there) made from
    the thread that runs the event loop, by name."""
    loop_thread = threading.get_ident()
    ours: set[int] = set()
    seen: list[str] = []

    def by_path(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(path: Any, *args: Any, **kwargs: Any) -> Any:
            under = isinstance(path, str | os.PathLike) and str(os.fspath(path)).startswith(
                str(root)
            )
            if under and threading.get_ident() == loop_thread:
                seen.append(name)
            result = real(path, *args, **kwargs)
            if under and name == "open":
                ours.add(result)
            return result

        return wrapper

    def by_fd(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(fd: Any, *args: Any, **kwargs: Any) -> Any:
            if fd in ours and threading.get_ident() == loop_thread:
                seen.append(name)
            if name == "close":
                ours.discard(fd)
            return real(fd, *args, **kwargs)

        return wrapper

    with pytest.MonkeyPatch.context() as patch:
        for name in _BY_PATH:
            patch.setattr(os, name, by_path(name, getattr(os, name)))
        for name in _BY_FD:
            patch.setattr(os, name, by_fd(name, getattr(os, name)))
        yield seen


async def chunks(data: bytes, fail: bool = False) -> AsyncIterator[bytes]:
    for i in range(0, len(data), 256 * 1024):
        yield data[i : i + 256 * 1024]
    if fail:
        raise RuntimeError("the upload broke off")


async def test_a_put_waits_for_the_disk_only_in_threads(tmp_path: Path) -> None:
    store = await LocalDiskStore.open(tmp_path / "blobs")
    data = pattern(3 * 1024 * 1024 + 11)
    key = new_blob_key()
    with disk_calls_on_the_loop(store.root) as on_the_loop:
        assert await store.put(key, chunks(data)) == len(data)
    assert on_the_loop == []
    assert b"".join([c async for c in store.get(key)]) == data


async def test_a_failed_put_is_cleared_away_in_a_thread(tmp_path: Path) -> None:
    store = await LocalDiskStore.open(tmp_path / "blobs")
    key = new_blob_key()
    with (
        disk_calls_on_the_loop(store.root) as on_the_loop,
        pytest.raises(RuntimeError, match="broke off"),
    ):
        await store.put(key, chunks(pattern(2 * 1024 * 1024), fail=True))
    assert on_the_loop == []
    assert not await store.exists(key)
    assert os.listdir(store.root / ".tmp") == []


async def test_a_cancelled_put_is_cleared_away_in_a_thread(tmp_path: Path) -> None:
    store = await LocalDiskStore.open(tmp_path / "blobs")
    key = new_blob_key()
    taken = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        block = pattern(256 * 1024)
        for n in range(1_000_000):
            yield block
            if n == 8:  # past the first batch, so a write has gone to a thread
                taken.set()
            await asyncio.sleep(0)

    with disk_calls_on_the_loop(store.root) as on_the_loop:
        task = asyncio.create_task(store.put(key, endless()))
        await taken.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert on_the_loop == []
    assert not await store.exists(key)
    assert os.listdir(store.root / ".tmp") == []


async def test_a_cancelled_put_lets_its_write_finish_before_closing_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closing the descriptor under a thread's write would make the write
    fail, or land in whatever file next gets that descriptor number."""
    store = await LocalDiskStore.open(tmp_path / "blobs")
    in_write = threading.Event()
    outcome: list[str] = []
    real_write = local._write_all

    def slow_write(fd: int, data: Sequence[bytes]) -> None:
        in_write.set()
        time.sleep(0.3)  # a slow disk: the cancellation arrives meanwhile
        try:
            real_write(fd, data)
            outcome.append("written")
        except OSError as exc:
            outcome.append(f"failed: {exc.strerror}")

    monkeypatch.setattr(local, "_write_all", slow_write)
    task = asyncio.create_task(store.put(new_blob_key(), chunks(pattern(2 * 1024 * 1024))))
    assert await asyncio.to_thread(in_write.wait, 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert outcome == ["written"], "the put ended before its thread was done with the file"
    assert os.listdir(store.root / ".tmp") == []


async def test_a_blob_streamed_in_many_odd_pieces_is_stored_byte_for_byte(tmp_path: Path) -> None:
    """Pieces are written as they came (one writev per batch, no gathering
    copy): more pieces than one writev takes, empty ones and large ones all
    land in order."""
    store = await LocalDiskStore.open(tmp_path / "blobs")
    data = pattern(3 * 1024 * 1024 + 7)
    sizes = [1, 0, 3, 65552, 17] * 40 + [100] * 1500

    async def pieces() -> AsyncIterator[bytes]:
        at = 0
        for size in sizes:
            yield data[at : at + size]
            at += size
        yield data[at:]

    key = new_blob_key()
    assert await store.put(key, pieces()) == len(data)
    assert b"".join([c async for c in store.get(key)]) == data


def open_descriptors() -> set[int]:
    return {int(name) for name in os.listdir("/proc/self/fd")}


def blob_chunks(store: LocalDiskStore, key: str) -> AsyncGenerator[bytes, None]:
    reading = store.get(key)
    assert isinstance(reading, AsyncGenerator)
    return reading


async def next_chunk(reading: AsyncGenerator[bytes, None]) -> bytes:
    return await anext(reading)


async def test_gets_cancelled_while_a_thread_opens_the_blob_leave_no_descriptor_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that drops the connection while its cold blob is being opened
    (in a thread: here, a machine without openat2) must not leave that file
    open: a server answering links would run out of descriptors."""
    monkeypatch.setattr(cached, "_openat2", _Openat2("alpha", 64))
    store = await LocalDiskStore.open(tmp_path / "blobs")
    keys = [new_blob_key() for _ in range(20)]
    for key in keys:
        await store.put(key, chunks(pattern(100_000)))
    entered, go_on = threading.Event(), threading.Event()
    real_open_at = local._open_at

    def slow_open_at(path: str, offset: int, size: int) -> tuple[int, bytes]:
        entered.set()
        go_on.wait(30)  # a cold disk: the client hangs up meanwhile
        return real_open_at(path, offset, size)

    monkeypatch.setattr(local, "_open_at", slow_open_at)
    before = open_descriptors()
    for key in keys:
        entered.clear()
        go_on.clear()
        reading = blob_chunks(store, key)
        task = asyncio.create_task(next_chunk(reading))
        assert await asyncio.to_thread(entered.wait, 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        go_on.set()
        await reading.aclose()
    await eventually(
        lambda: open_descriptors() <= before,
        f"descriptors left open: {sorted(open_descriptors() - before)}",
    )
    # The store still reads, the same blobs.
    monkeypatch.setattr(local, "_open_at", real_open_at)
    assert b"".join([c async for c in store.get(keys[0])]) == pattern(100_000)


async def test_a_get_cancelled_during_a_read_in_a_thread_closes_the_file_after_the_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closing the descriptor under a thread's read makes that read fail, or
    read whatever file got the descriptor number meanwhile."""
    store = await LocalDiskStore.open(tmp_path / "blobs")
    data = pattern(20 * 1024 * 1024)
    key = new_blob_key()
    await store.put(key, chunks(data))
    path = store._path(key)
    blob = os.stat(path).st_ino
    loop_thread = threading.get_ident()
    entered, go_on = threading.Event(), threading.Event()
    outcome: list[str] = []
    real_pread = os.pread

    def slow_pread(fd: int, size: int, offset: int) -> bytes:
        parked = (
            threading.get_ident() != loop_thread
            and not entered.is_set()
            and os.fstat(fd).st_ino == blob
        )
        if not parked:
            return real_pread(fd, size, offset)
        entered.set()
        go_on.wait(30)  # a cold disk: the client hangs up meanwhile
        try:
            same = os.fstat(fd).st_ino == blob
            outcome.append("read the blob" if same else "read another file")
        except OSError as exc:
            outcome.append(f"failed: {exc.strerror}")
        return real_pread(fd, size, offset)

    monkeypatch.setattr(os, "pread", slow_pread)
    before = open_descriptors()
    reading = blob_chunks(store, key)
    # Chunk by chunk, each with the file dropped from the page cache first, so
    # that a read goes to a thread (eviction is advice: try until one does).
    for _ in range(len(data) // READ_CHUNK):
        evict(path)
        task = asyncio.create_task(next_chunk(reading))
        await eventually(lambda: task.done() or entered.is_set(), "a chunk read")  # noqa: B023
        if entered.is_set():
            break
    assert entered.is_set(), "no read went to a thread"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    other = os.open(tmp_path / "other", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        go_on.set()
        await eventually(lambda: outcome != [], "the thread's read ended")
    finally:
        os.close(other)
    await reading.aclose()
    assert outcome == ["read the blob"], "the get closed the file under its thread's read"
    await eventually(
        lambda: open_descriptors() <= before,
        f"descriptors left open: {sorted(open_descriptors() - before)}",
    )
