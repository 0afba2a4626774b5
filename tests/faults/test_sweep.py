"""Orphans are swept while the server runs, by one worker only; ``--grace-minutes 0`` counts."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.helpers.polling import eventually
from tests.helpers.processes import Server, kluis, kluis_env
from vault.storage import LocalDiskStore, new_blob_key

pytestmark = [pytest.mark.localdisk, pytest.mark.sqlite]


async def stray() -> AsyncIterator[bytes]:
    yield b"left behind by a crash"


async def orphans(store: LocalDiskStore, age: timedelta, n: int) -> list[str]:
    keys = [new_blob_key(datetime.now(UTC) - age) for _ in range(n)]
    for key in keys:
        await store.put(key, stray())
    return keys


async def left(store: LocalDiskStore) -> set[str]:
    return {key async for key in store.list()}


async def gone(store: LocalDiskStore, keys: list[str], within: float = 30) -> None:
    deadline = time.monotonic() + within
    while set(keys) & await left(store):
        assert time.monotonic() < deadline, "orphans were not swept while the server ran"
        await asyncio.sleep(0.05)


async def test_a_running_server_sweeps_old_orphans_with_one_worker(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = kluis_env(KLUIS_DATA_DIR=str(data), KLUIS_UPLOADS_SWEEP_INTERVAL_MINUTES="0.01")
    status, _, err = await kluis(env, "init")
    assert status == 0, err
    store = await LocalDiskStore.open(data / "blobs")
    at_start = await orphans(store, timedelta(hours=2), 3)
    young = await orphans(store, timedelta(minutes=1), 2)
    server = await Server(env, tmp_path / "server.log", "--workers", "2").start()
    try:
        await gone(store, at_start)
        later = await orphans(store, timedelta(hours=3), 4)  # a crash while it runs
        await gone(store, later)
        assert set(young) <= await left(store)  # an upload may still be under way
        await eventually(
            lambda: server.output().count("sweeper removed") >= 2, "two sweeps removed orphans"
        )
    finally:
        await server.stop()
    sweepers = {
        m.group(1)
        for m in re.finditer(r"\[worker (\d+) \d+\] vault\.items\.sweep", server.output())
    }
    assert sweepers == {"0"}
    assert server.server_errors() == []


async def young_orphans(
    tmp_path: Path, count: int
) -> tuple[dict[str, str], LocalDiskStore, list[str]]:
    """A fresh vault (``kluis init``) with ``count`` orphans 5 s old in its
    local store: its environment, the store and their keys."""
    data = tmp_path / "data"
    env = kluis_env(KLUIS_DATA_DIR=str(data))
    status, _, err = await kluis(env, "init")
    assert status == 0, err
    store = await LocalDiskStore.open(data / "blobs")
    return env, store, await orphans(store, timedelta(seconds=5), count)


async def test_storage_sweep_honours_grace_minutes_zero(tmp_path: Path) -> None:
    env, store, young = await young_orphans(tmp_path, 3)
    status, out, _ = await kluis(env, "storage", "sweep")
    assert status == 0
    assert "orphans removed: 0" in out
    assert "younger than the grace period: 3" in out
    status, out, _ = await kluis(env, "storage", "sweep", "--grace-minutes", "0")
    assert status == 0
    assert "orphans removed: 3" in out
    assert not set(young) & await left(store)


async def test_storage_sweep_refuses_a_negative_grace(tmp_path: Path) -> None:
    env, store, young = await young_orphans(tmp_path, 2)
    status, out, err = await kluis(env, "storage", "sweep", "--grace-minutes", "-1")
    assert status == 2, out  # a usage error, as argparse answers any other
    assert "--grace-minutes" in err
    assert "0 or more" in err
    assert set(young) <= await left(store)
