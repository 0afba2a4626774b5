"""The local store reads on the event loop only what the kernel has in memory;
anything that would wait for the disk goes to a thread, and either way the
bytes come back whole and right."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.helpers.page_cache import evict
from vault.storage import cached, local
from vault.storage.cached import _Openat2, open_cached, openat2_number, read_cached
from vault.storage.local import LocalDiskStore

pytestmark = pytest.mark.localdisk


#: Eviction is advice, and a read that finds a page missing starts the
#: kernel's readahead, so on a busy host the pages can be back by the next
#: read: the tests evict and read again until a read meets the cold file,
#: checking whatever comes back meanwhile, up to this many seconds.
EVICTION_DEADLINE = 10


def test_a_file_in_the_page_cache_is_read_without_waiting(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    data = os.urandom(300_000)
    path.write_bytes(data)
    fd = open_cached(path)
    assert fd is not None, "a file just written is in the lookup cache"
    try:
        assert read_cached(fd, 100_000, 50_000) == data[50_000:150_000]
        assert read_cached(fd, 100_000, 250_000) == data[250_000:]  # short at the end
        assert read_cached(fd, 10, 300_000) == b""
        deadline = time.monotonic() + EVICTION_DEADLINE
        while True:
            evict(path)
            cold = read_cached(fd, 100_000, 0)
            if cold is None or time.monotonic() > deadline:
                break
            assert cold == data[: len(cold)]  # what the readahead brought back so far
        assert cold is None, "evicted pages must not be waited for"
    finally:
        os.close(fd)


def test_a_missing_file_is_missing(tmp_path: Path) -> None:
    (tmp_path / "absent").write_bytes(b"x")
    (tmp_path / "absent").unlink()  # the lookup cache now knows it is gone
    with pytest.raises(FileNotFoundError):
        open_cached(tmp_path / "absent")


def test_openat2_is_called_only_by_a_number_known_for_the_machine() -> None:
    assert openat2_number("x86_64", 64) == 437
    assert openat2_number("aarch64", 64) == 437
    # Another call has 437 there, or the number is not this one.
    for machine in ("alpha", "ia64", "mips64", "parisc64", "ppc64le", "riscv64", "s390x"):
        assert openat2_number(machine, 64) is None, machine
    # A 32-bit process on a 64-bit kernel (x32: 0x40000000 + 437; i386; arm).
    assert openat2_number("x86_64", 32) is None
    assert openat2_number("aarch64", 32) is None


async def test_on_an_unknown_machine_blobs_are_opened_in_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"x")
    assert _Openat2("alpha", 64)(os.fsencode(path)) is None  # no system call made
    monkeypatch.setattr(cached, "_openat2", _Openat2("alpha", 64))
    store = await LocalDiskStore.open(tmp_path / "blobs")
    data = os.urandom(100_000)

    async def source() -> AsyncIterator[bytes]:
        yield data

    key = "ef" * 16
    await store.put(key, source())
    hops: list[str] = []
    submit = local._submit

    def counted(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        hops.append(getattr(fn, "__name__", "?"))
        return submit(fn, *args, **kwargs)

    monkeypatch.setattr(local, "_submit", counted)
    assert b"".join([chunk async for chunk in store.get(key)]) == data
    assert hops == ["_open_at"], "opened and first read in one trip to a thread"
    await store.close()


async def test_hot_reads_stay_on_the_loop_and_cold_ones_go_to_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await LocalDiskStore.open(tmp_path / "blobs")
    small, large = os.urandom(100_000), os.urandom(3 * 1024 * 1024 + 5)
    keys = {"ab" * 16: small, "cd" * 16: large}
    for key, data in keys.items():

        async def source(data: bytes = data):  # type: ignore[no-untyped-def]
            yield data

        await store.put(key, source())
    hops: list[str] = []
    submit = local._submit

    def counted(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        hops.append(getattr(fn, "__name__", "?"))
        return submit(fn, *args, **kwargs)

    monkeypatch.setattr(local, "_submit", counted)

    async def read(key: str, offset: int = 0, length: int | None = None) -> bytes:
        return b"".join([chunk async for chunk in store.get(key, offset, length)])

    for key in keys:
        await read(key)  # in the page cache now, if the put's writes were not
    hops.clear()
    assert await read("ab" * 16) == small
    assert await read("ab" * 16, 1000, 5000) == small[1000:6000]
    assert await read("cd" * 16) == large
    assert await read("cd" * 16, 1_000_000, 2_500_000) == large[1_000_000:3_500_000]
    assert hops == [], "a blob in memory is read without a trip to a thread"

    deadline = time.monotonic() + EVICTION_DEADLINE
    while True:
        hops.clear()
        evict(store._path("ab" * 16))
        assert await read("ab" * 16) == small
        if hops or time.monotonic() > deadline:
            break
    assert len(hops) == 1, "a blob on disk only is read in one trip to a thread"
    await store.close()
