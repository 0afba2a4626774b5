"""Another process opening the blob store never breaks an upload under way.

A local store writes each blob under ``.tmp/`` and renames it into place
when it is whole. Opening the store used to clear ``.tmp/`` of everything
(meant for the writes a crash left behind), so any second process that
opened it, ``kluis retention run`` from cron or a second ``kluis serve``
starting, removed the files of uploads the running server was still
writing: the upload then answered 503 ``storage_unavailable`` and the user
had to send it again. Two servers starting at once could also fail, one
removing the other's probe file between listing and unlinking it. Seen to
fail on 04218eb: 503 instead of 201.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from tests.helpers.processes import kluis
from tests.helpers.uploads import big_document, paused_upload, until, vault
from vault.storage import local


async def test_a_retention_run_beside_the_server_leaves_its_upload_under_way_alone(
    tmp_path: Path, db_url: str
) -> None:
    async with vault(tmp_path, db_url) as (env, server, staff, guardian, child, _store):
        writes = tmp_path / "data" / "blobs" / local._TMP
        data = big_document()
        resume = asyncio.Event()
        upload = asyncio.create_task(paused_upload(staff, child, data, resume))

        async def writing() -> bool:
            return any(name.endswith(".part") for name in os.listdir(writes))

        assert await until(writing, within=20), "the upload never began writing its blob"
        status, out, err = await kluis(env, "retention", "run")
        assert status == 0, out + err
        resume.set()
        status, body = await upload
        assert status == 201, body
        made = await guardian.ok("POST", f"/v1/items/{body['id']}/links", {"ttl_seconds": 600})
        assert await guardian.fetch(made["url"]) == (200, data)
        assert server.server_errors() == []


async def test_opening_the_store_still_clears_what_a_crash_left_long_ago(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    await local.LocalDiskStore.open(root)
    left, fresh = root / local._TMP / "left.part", root / local._TMP / "fresh.part"
    left.write_bytes(b"x")
    fresh.write_bytes(b"y")
    old = time.time() - local.STALE_WRITE_SECONDS - 60
    os.utime(left, (old, old))
    await local.LocalDiskStore.open(root)
    assert sorted(p.name for p in (root / local._TMP).iterdir()) == ["fresh.part"]


async def test_opening_the_store_clears_the_writes_of_ended_processes_at_once(
    tmp_path: Path,
) -> None:
    root = tmp_path / "blobs"
    await local.LocalDiskStore.open(root)
    writes = root / local._TMP
    ended = await asyncio.create_subprocess_exec("true")
    await ended.wait()
    mine = f"{local._HOST}-{os.getpid()}-a.part"
    gone = f"{local._HOST}-{ended.pid}-b.part"
    elsewhere = f"0000abcd-{ended.pid}-c.part"
    for name in (mine, gone, elsewhere):
        (writes / name).write_bytes(b"x")
    await local.LocalDiskStore.open(root)
    assert sorted(os.listdir(writes)) == sorted([mine, elsewhere])
