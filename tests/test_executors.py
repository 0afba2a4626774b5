"""Each kind of blocking work has its own bounded pool: with asyncio's default
executor taken by something slow, database reads and blob reads and writes
still go on, each on threads of its own kind."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.helpers.data import pattern
from vault.db import create_engine
from vault.db.reads import Reader
from vault.executors import Pool
from vault.storage import LocalDiskStore, new_blob_key

pytestmark = pytest.mark.localdisk


@contextmanager
def default_executor_held() -> Iterator[None]:
    """asyncio's default executor, one thread, held by a job until the end."""
    loop = asyncio.get_running_loop()
    held = ThreadPoolExecutor(1)
    release = threading.Event()
    loop.set_default_executor(held)
    loop.run_in_executor(None, release.wait)
    try:
        yield
    finally:
        release.set()
        held.shutdown(wait=True)


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_database_reads_and_blobs_go_on_while_the_default_executor_is_held(
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'kluis.db'}")
    reader = Reader(engine)
    key = new_blob_key()
    data = pattern(3 * 1024 * 1024)
    try:
        with default_executor_held():

            def read(conn: object) -> tuple[int, str]:
                assert hasattr(conn, "execute")
                one = conn.execute(text("SELECT 1")).scalar_one()
                return one, threading.current_thread().name

            one, thread = await asyncio.wait_for(reader(read), 20)
            assert (one, thread.startswith("kluis-db")) == (1, True)
            store = await asyncio.wait_for(LocalDiskStore.open(tmp_path / "blobs"), 20)
            assert await asyncio.wait_for(store.put(key, chunks(data)), 20) == len(data)

            async def whole() -> bytes:
                return b"".join([part async for part in store.get(key)])

            assert await asyncio.wait_for(whole(), 20) == data
            await asyncio.wait_for(store.delete(key), 20)
    finally:
        reader.dispose()
        await engine.dispose()


async def test_a_pool_never_runs_more_than_its_threads() -> None:
    pool = Pool("kluis-test", 2)
    running = 0
    most = 0
    lock = threading.Lock()
    gate = threading.Barrier(2, timeout=10)

    def work() -> str:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        gate.wait()  # two at once, never a third
        with lock:
            running -= 1
        return threading.current_thread().name

    try:
        names = await asyncio.gather(*(pool.run(work) for _ in range(6)))
    finally:
        pool.shutdown()
    assert most == 2
    assert {name.split("_")[0] for name in names} == {"kluis-test"}
