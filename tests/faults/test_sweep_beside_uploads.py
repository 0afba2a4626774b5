"""A sweep beside a running server never takes the blob of an upload under way.

An upload's blob is stored before the rows that name it are committed. The
rows can wait: for SQLite's write lock (another process writing), for a
PostgreSQL lock, for the audit log's group commit. A sweep that runs then,
as ``kluis storage sweep`` from cron beside ``kluis serve``, sees a blob no
row names. With ``--grace-minutes 0``, or for an upload that took longer
than the grace (the age comes from the key, made when the upload began), it
used to delete the blob, and the client then got 201 for a record that no
longer had its file (the download failed). Each upload now holds a lease on
its blob keys while it writes (vault/items/pending.py); the sweep leaves a
leased blob alone, whatever the grace.

Here the item rows are held back by a lock taken from the test's process
(SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: ``LOCK TABLE items IN EXCLUSIVE
MODE``) once the server streams the file into the store, and the sweep is a
second process. Seen to fail on 9c939c6: the sweep removed the blob, the
upload answered 201 and its link answered 404 instead of the bytes.

When the lease is lost (the server stopped longer than the lease: here with
SIGSTOP), the sweep may take the blob, and then the upload must not be
acknowledged: it answers 503 ``storage_unavailable`` and nothing of it
remains.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.helpers.processes import kluis
from tests.helpers.uploads import big_document, paused_upload, until, vault
from vault.storage import LocalDiskStore

pytestmark = [pytest.mark.localdisk]


@contextlib.asynccontextmanager
async def rows_held_back(db_url: str) -> AsyncIterator[None]:
    """New item rows wait while this is open (reads go on)."""
    if db_url.startswith("sqlite"):
        held = sqlite3.connect(db_url.split(":///", 1)[1], isolation_level=None, timeout=30)
        held.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            held.execute("ROLLBACK")
            held.close()
        return
    engine = create_async_engine(db_url)
    try:
        async with engine.connect() as conn, conn.begin() as tx:
            await conn.execute(text("LOCK TABLE items IN EXCLUSIVE MODE"))
            try:
                yield
            finally:
                await tx.rollback()
    finally:
        await engine.dispose()


async def keys_in(store: LocalDiskStore) -> set[str]:
    return {key async for key in store.list()}


async def sweep_no_grace(env: dict[str, str]) -> str:
    status, out, err = await kluis(env, "storage", "sweep", "--grace-minutes", "0")
    assert status == 0, out + err
    return out


async def test_a_sweep_with_no_grace_keeps_the_blob_of_an_upload_whose_rows_wait(
    tmp_path: Path, db_url: str
) -> None:
    async with vault(tmp_path, db_url) as (env, server, staff, guardian, child, store):
        before = await keys_in(store)
        data = big_document()
        resume = asyncio.Event()
        upload = asyncio.create_task(paused_upload(staff, child, data, resume))
        await asyncio.sleep(1.5)  # the server has the head and streams the file into the store
        async with rows_held_back(db_url):
            resume.set()
            stored = await until(lambda: _new_key(store, before), within=20)
            assert stored, "the upload's blob never appeared in the store"
            sweep = asyncio.create_task(sweep_no_grace(env))

            async def had_its_chance() -> bool:
                # It removed the blob, or it finished and kept it; else it
                # waits (for the lock, on SQLite) until the rows are in.
                return sweep.done() or not await _new_key(store, before)

            await until(had_its_chance, within=8)
        out = await sweep
        status, body = await upload
        assert status == 201, body
        made = await guardian.ok("POST", f"/v1/items/{body['id']}/links", {"ttl_seconds": 600})
        assert await guardian.fetch(made["url"]) == (200, data)
        assert "orphans removed: 0" in out
        assert server.server_errors() == []


async def test_an_upload_whose_lease_was_lost_is_refused_and_leaves_nothing(
    tmp_path: Path, db_url: str
) -> None:
    lease = 2
    async with vault(tmp_path, db_url, KLUIS_UPLOADS_LEASE_SECONDS=str(lease)) as (
        env,
        server,
        staff,
        guardian,
        child,
        store,
    ):
        before = await keys_in(store)
        data = big_document()
        resume = asyncio.Event()
        upload = asyncio.create_task(paused_upload(staff, child, data, resume))
        await asyncio.sleep(1.5)
        assert server.proc is not None
        async with rows_held_back(db_url):
            resume.set()
            assert await until(lambda: _new_key(store, before), within=20)
            # The server stops (a long pause, a frozen VM) with its rows waiting:
            # its lease runs out, and a sweep takes the blob.
            os.kill(server.proc.pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(lease + 1)
            out = await sweep_no_grace(env)
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        assert "orphans removed: 1" in out
        status, body = await upload
        assert (status, body["error"]["code"]) == (503, "storage_unavailable"), body
        listed = await guardian.ok("GET", f"/v1/children/{child}/items")
        assert listed["items"] == []
        assert await keys_in(store) == before
        # Nothing of it lingers for a later sweep either.
        assert "orphans removed: 0" in await sweep_no_grace(env)


async def _new_key(store: LocalDiskStore, before: set[str]) -> bool:
    return bool(await keys_in(store) - before)
