"""Destroyed means destroyed, backups included (ARCHITECTURE.md, guarantee 2).

The whole life of two children's records, with backups taken along the way:
the database and the blobs copied while the records were readable. Once the
child's key is destroyed and its epoch's master key with it (and the old live
epoch after the backup window), nothing in any copy decrypts any more, while
the other child's records, still under contract, stay readable.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers.certificates import certify
from tests.helpers.s3 import s3_settings
from tests.servers import MinioServer, PostgresServer
from vault.audit.log import AuditLog
from vault.crypto.stream import decrypt_range, encrypt_stream
from vault.db import create_engine, upgrade
from vault.db.schema import child_keys
from vault.keys import EpochDestroyed, KeyProvider
from vault.keys.provider import audit_sign
from vault.keys.rotation import rotate
from vault.keys.service import KeyDestroyed, KeyService, _dek_aad
from vault.storage import BlobStore, LocalDiskStore, S3Store

WINDOW = timedelta(days=35)
PHOTO = b"\xff\xd8 the photo of child one, taken in the garden " * 5000

Backup = Callable[[str], Awaitable[None]]  # take a named copy
Restore = Callable[[str], Awaitable[tuple[AsyncEngine, dict[str, bytes]]]]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def store_item(keys: KeyService, store: BlobStore, item: str, child: str) -> None:
    key = await keys.create_item_key(item, [(child, "photo")])

    async def body() -> AsyncIterator[bytes]:
        for i in range(0, len(PHOTO), 50_000):
            yield PHOTO[i : i + 50_000]

    await store.put(item, encrypt_stream(key, item, "original", body()))


async def read_item(keys: KeyService, blobs: dict[str, bytes], item: str) -> bytes:
    key = await keys.open_item_key(item)
    blob = blobs[item]

    async def read(offset: int, length: int) -> AsyncIterator[bytes]:
        yield blob[offset : offset + length]

    return b"".join([p async for p in decrypt_range(key, item, "original", read, len(blob))])


async def snapshot(store: BlobStore) -> dict[str, bytes]:
    return {key: b"".join([c async for c in store.get(key)]) async for key in store.list()}


async def life_of_the_records(
    engine: AsyncEngine, ring: KeyProvider, store: BlobStore, backup: Backup, restore: Restore
) -> None:
    clock = Clock(datetime(2026, 11, 15, tzinfo=UTC))
    keys = KeyService(engine, ring, AuditLog(engine, audit_sign(ring), clock), clock)
    await store_item(keys, store, "item-child-one", "child-1")
    await store_item(keys, store, "item-child-two", "child-2")
    await backup("while-both-contracts-run")

    # Child one's contract ends on 2026-11-10: photos are destroyed a year later.
    await keys.schedule_child_key("child-1", "photo", date(2027, 11, 10))
    await backup("after-the-contract-ended")

    for now in (datetime(2026, 12, 2, tzinfo=UTC), datetime(2027, 1, 6, tzinfo=UTC)):
        clock.now = now
        await rotate(keys, ring, now, WINDOW, certify=certify(now, "epoch"))

    # The retention term ends: the key first, then the blob.
    clock.now = datetime(2027, 11, 10, tzinfo=UTC)
    await keys.destroy_child_key("child-1", "photo", certify(clock.now, "retention"))
    await store.delete("item-child-one")
    # The month is over: the shred epoch's master key goes.
    clock.now = datetime(2027, 12, 1, tzinfo=UTC)
    report = await rotate(keys, ring, clock.now, WINDOW, certify=certify(clock.now, "epoch"))
    assert "shred-2027-11" in report.destroyed_epochs
    destroyed = {e.name for e in await ring.list_keys() if e.destroyed}
    assert {"live-2026-11", "shred-2027-11"} <= destroyed

    # The live vault: child two's photo is still there and readable.
    assert await read_item(keys, await snapshot(store), "item-child-two") == PHOTO

    for name in ("while-both-contracts-run", "after-the-contract-ended"):
        old_engine, old_blobs = await restore(name)
        try:
            assert "item-child-one" in old_blobs  # the copy still has the ciphertext...
            assert PHOTO[:40] not in old_blobs["item-child-one"]  # ...and only ciphertext
            old_keys = KeyService(
                old_engine, ring, AuditLog(old_engine, audit_sign(ring), clock), clock
            )
            with pytest.raises(KeyDestroyed):
                await read_item(old_keys, old_blobs, "item-child-one")
            # Every wrapped child key in the copy is noise now, not just the one.
            async with old_engine.connect() as conn:
                rows = (await conn.execute(select(child_keys))).all()
            assert rows
            for row in rows:
                assert row.wrapped is not None
                with pytest.raises(EpochDestroyed):
                    await ring.unwrap(
                        row.epoch,
                        row.wrapped,
                        _dek_aad(row.id, row.child_id, row.category, row.epoch),
                    )
        finally:
            await old_engine.dispose()


@pytest.mark.sqlite
@pytest.mark.localdisk
async def test_copies_of_the_database_file_and_blob_directory(
    tmp_path: Path, provider: KeyProvider
) -> None:
    data = tmp_path / "data"
    engine = create_engine(f"sqlite+aiosqlite:///{data / 'kluis.db'}")
    await upgrade(engine)
    ring = provider
    store = await LocalDiskStore.open(data / "blobs")

    async def backup(name: str) -> None:
        # A cold copy of the data directory, as a nightly backup would take it.
        await engine.dispose()
        shutil.copytree(data, tmp_path / "backups" / name)

    async def restore(name: str) -> tuple[AsyncEngine, dict[str, bytes]]:
        copy = tmp_path / "backups" / name
        old_store = await LocalDiskStore.open(copy / "blobs")
        return create_engine(f"sqlite+aiosqlite:///{copy / 'kluis.db'}"), await snapshot(old_store)

    try:
        await life_of_the_records(engine, ring, store, backup, restore)
    finally:
        await engine.dispose()


@pytest.mark.postgres
@pytest.mark.minio
async def test_pg_dumps_and_bucket_snapshots(
    tmp_path: Path,
    postgres_server: PostgresServer,
    minio_server: MinioServer,
    provider: KeyProvider,
) -> None:
    url = postgres_server.create_database()
    engine = create_engine(url)
    await upgrade(engine)
    ring = provider
    store = await S3Store.open(s3_settings(minio_server))
    bucket_copies: dict[str, dict[str, bytes]] = {}
    database = url.rsplit("/", 1)[1]
    pg = ["-h127.0.0.1", f"-p{postgres_server.port}", f"-U{postgres_server.user}"]

    async def backup(name: str) -> None:
        dump = tmp_path / f"{name}.sql"
        await asyncio.to_thread(
            subprocess.run,
            [f"{postgres_server.bindir}/pg_dump", *pg, "-f", str(dump), database],
            check=True,
        )
        bucket_copies[name] = await snapshot(store)

    async def restore(name: str) -> tuple[AsyncEngine, dict[str, bytes]]:
        restored_url = postgres_server.create_database()
        await asyncio.to_thread(
            subprocess.run,
            [
                f"{postgres_server.bindir}/psql",
                *pg,
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-f",
                str(tmp_path / f"{name}.sql"),
                restored_url.rsplit("/", 1)[1],
            ],
            check=True,
            capture_output=True,
            env={**os.environ, "PGOPTIONS": "--client-min-messages=warning"},
        )
        return create_engine(restored_url), bucket_copies[name]

    try:
        await life_of_the_records(engine, ring, store, backup, restore)
    finally:
        await engine.dispose()
        await store.close()
