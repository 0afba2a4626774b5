"""The job queue's rows on both backends: one claimer per job, leases, retries, failure."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from vault.config import JobSettings
from vault.db import create_engine, upgrade
from vault.db.schema import items, jobs
from vault.items.sweep import sweep
from vault.jobs import queue
from vault.jobs.queue import FAILED, QUEUED, RUNNING, LeaseLost, NewJob
from vault.storage import LocalDiskStore, new_blob_key

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SETTINGS = JobSettings(lease_seconds=60, max_attempts=3, retry_seconds=30)
KINDS = ("video.posters", "video.web")


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(db_url)
    await upgrade(engine)
    yield engine
    await engine.dispose()


async def queued(engine: AsyncEngine, n: int, kind: str = "video.posters") -> list[str]:
    """``n`` items, each with one job queued; their item ids."""
    ids = [f"item{i:04d}" for i in range(n)]
    async with engine.begin() as conn:
        for item_id in ids:
            await conn.execute(
                insert(items).values(
                    id=item_id,
                    kind="video",
                    created_at=T0,
                    content_type="video/mp4",
                    size=1,
                    meta=b"",
                )
            )
            await queue.enqueue_in(conn, item_id, [NewJob(kind, ("preview", "thumb"), 0)], T0)
    return ids


async def test_many_claimers_at_once_never_take_the_same_job(engine: AsyncEngine) -> None:
    await queued(engine, 40)
    # Claimers on engines of their own: separate connections, as separate processes have.
    url = engine.url.render_as_string(hide_password=False)
    engines = [create_engine(url), create_engine(url)]
    taken: dict[str, list[str]] = {}

    async def claimer(name: str, on: AsyncEngine) -> None:
        while (job := await queue.claim(on, name, T0, SETTINGS, KINDS)) is not None:
            taken.setdefault(job.id, []).append(name)
            await asyncio.sleep(0)

    try:
        await asyncio.gather(
            *(claimer(f"w{n}", engines[n % 2]) for n in range(6)),
        )
    finally:
        for other in engines:
            await other.dispose()
    assert len(taken) == 40
    assert all(len(names) == 1 for names in taken.values()), taken
    assert len({names[0] for names in taken.values()}) > 1  # the work was shared
    async with engine.connect() as conn:
        states = (await conn.scalars(select(jobs.c.state))).all()
    assert set(states) == {RUNNING}


async def test_a_dead_workers_job_is_retried_after_its_lease_then_fails_after_the_last(
    engine: AsyncEngine,
) -> None:
    (item_id,) = await queued(engine, 1)
    first = await queue.claim(engine, "killed", T0, SETTINGS, KINDS)
    assert first is not None
    assert first.attempts == 1
    assert await queue.claim(engine, "other", T0, SETTINGS, KINDS) is None

    # Within the lease nothing is taken from it; after it, the job is queued after a backoff.
    assert await queue.reap(engine, T0 + timedelta(seconds=59), SETTINGS) == []
    assert await queue.claim(engine, "other", T0 + timedelta(seconds=59), SETTINGS, KINDS) is None
    await queue.reap(engine, T0 + timedelta(seconds=61), SETTINGS)
    (row,) = await queue.listing(engine, [QUEUED])
    assert row.run_after == T0 + timedelta(seconds=61 + 30)
    assert "stopped before it finished" in (row.error or "")
    assert await queue.claim(engine, "other", T0 + timedelta(seconds=90), SETTINGS, KINDS) is None
    second = await queue.claim(engine, "other", T0 + timedelta(seconds=91), SETTINGS, KINDS)
    assert second is not None
    assert (second.id, second.attempts) == (first.id, 2)

    # The first worker, if it still ran somewhere, can change nothing now.
    with pytest.raises(LeaseLost):
        await queue.renew(engine, first, T0 + timedelta(seconds=92), SETTINGS)
    async with engine.begin() as conn:
        with pytest.raises(LeaseLost):
            await queue.done_in(conn, first, T0 + timedelta(seconds=92))

    # A failed attempt waits twice as long; the last attempt's failure is final.
    now = T0 + timedelta(seconds=100)
    assert await queue.fail(engine, second, "ffmpeg was stopped", now, SETTINGS) == QUEUED
    (row,) = await queue.listing(engine, [QUEUED])
    assert row.run_after == now + timedelta(seconds=60)
    third = await queue.claim(engine, "other", now + timedelta(seconds=60), SETTINGS, KINDS)
    assert third is not None
    assert third.attempts == 3
    later = now + timedelta(seconds=60 + 61)
    await queue.reap(engine, later, SETTINGS)
    (row,) = await queue.listing(engine, [FAILED])
    assert (row.item_id, row.attempts) == (item_id, 3)
    assert "in each of 3 attempts" in (row.error or "")
    assert await queue.claim(engine, "other", later + timedelta(days=1), SETTINGS, KINDS) is None


async def test_pending_variants_and_scratch_are_what_queued_and_running_jobs_hold(
    engine: AsyncEngine,
) -> None:
    first, second = await queued(engine, 2)
    job = await queue.claim(engine, "w", T0, SETTINGS, KINDS)
    assert job is not None
    await queue.note_scratch(engine, job, ["blob-a", "blob-b"])
    async with engine.connect() as conn:
        pending = await conn.run_sync(lambda sync: queue.pending_variants(sync, [first, second]))
        scratch = await conn.run_sync(queue.scratch_in_use)
    assert pending == {first: {"preview", "thumb"}, second: {"preview", "thumb"}}
    assert scratch == {"blob-a", "blob-b"}
    assert await queue.fail(engine, job, "refused", T0, SETTINGS, final=True) == FAILED
    async with engine.connect() as conn:
        pending = await conn.run_sync(lambda sync: queue.pending_variants(sync, [first, second]))
    assert set(pending) == {second if job.item_id == first else first}
    assert (await queue.counts(engine))[FAILED] == 1


async def test_the_sweeper_leaves_a_running_jobs_scratch_and_takes_it_once_it_ended(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """A long transcode's staging blob is older than the grace period before any
    row names it; while its job runs it is not an orphan."""
    store = await LocalDiskStore.open(tmp_path / "blobs")

    async def body() -> AsyncIterator[bytes]:
        yield b"staged media data"

    await queued(engine, 1, "video.web")
    job = await queue.claim(engine, "w", T0, SETTINGS, KINDS)
    assert job is not None
    scratch = new_blob_key(T0 - timedelta(hours=3))
    await queue.note_scratch(engine, job, [scratch])
    await store.put(scratch, body())
    later = T0 + timedelta(hours=2)
    report = await sweep(engine, store, later, timedelta(minutes=60))
    assert report.removed == 0
    assert [key async for key in store.list()] == [scratch]

    assert await queue.fail(engine, job, "refused", later, SETTINGS, final=True) == FAILED
    report = await sweep(engine, store, later, timedelta(minutes=60))
    assert report.removed == 1
    assert [key async for key in store.list()] == []
