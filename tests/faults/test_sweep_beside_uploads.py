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
import secrets
import signal
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.helpers.organisation import document, organisation
from tests.helpers.processes import Client, Server, kluis, kluis_env
from vault.storage import LocalDiskStore

pytestmark = [pytest.mark.localdisk]

PIECE = 64 * 1024


def big_document() -> bytes:
    """A PDF of about 2 MB (its head sniffs as PDF; the rest is a comment)."""
    return document("slow") + b"% " + secrets.token_hex(1_000_000).encode() + b"\n"


async def paused_upload(
    client: Client, child: str, data: bytes, resume: asyncio.Event
) -> tuple[int, Any]:
    """An observation upload that sends the first half of the file, then waits for ``resume``."""

    async def pieces() -> AsyncIterator[bytes]:
        half = len(data) // 2
        for at in range(0, len(data), PIECE):
            if at >= half:
                await resume.wait()
            yield data[at : at + PIECE]

    return await client.upload_pieces(child, {"kind": "observation"}, pieces(), "o.pdf")


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


async def until(check: Any, within: float) -> bool:
    """Poll ``check()`` (async) until true or ``within`` s passed; whether it came true."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def sweep_no_grace(env: dict[str, str]) -> str:
    status, out, err = await kluis(env, "storage", "sweep", "--grace-minutes", "0")
    assert status == 0, out + err
    return out


@contextlib.asynccontextmanager
async def vault(
    tmp_path: Path, db_url: str, **settings: str
) -> AsyncIterator[tuple[dict[str, str], Server, Client, Client, str, LocalDiskStore]]:
    """A running server with an organisation: (env, server, staff, guardian, a child, store)."""
    data = tmp_path / "data"
    env = kluis_env(KLUIS_DATA_DIR=str(data), KLUIS_DATABASE_URL=db_url, **settings)
    status, out, err = await kluis(env, "init")
    assert status == 0, err
    server = await Server(env, tmp_path / "server.log").start()
    store = await LocalDiskStore.open(data / "blobs")
    try:
        async with aiohttp.ClientSession() as session:
            admin = Client(session, server.base, out.strip().splitlines()[-1])
            staff, guardian, children = await organisation(admin)
            yield env, server, staff, guardian, children[0], store
    finally:
        await server.stop()
        await store.close()


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
