"""A full disk under the local blob store: a clean refusal, nothing half-written, recovery.

The store's directory is a small tmpfs the test mounts (root is needed; under
scripts/test a machine that cannot mount fails the test rather than skip it).
Uploads fill it until one is refused; that one answers 503
``storage_unavailable`` with JSON, leaves no record, no listing entry and no
blob behind, and the service stays up. Then the file system grows (an
operator freeing space) and the next upload succeeds without a restart.
Afterwards every acknowledged record reads back whole, the store holds
exactly the live blobs after a sweep, the audit chain verifies, nothing was
logged as an error but the refusals (a 5xx
the fault caused, with the store's reason beside it) and no traceback.

Two fill-and-free cycles in the suite, 10 with ``--faults-long``.
"""

from __future__ import annotations

import io
import logging
import os
import random
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.files import PDF
from tests.helpers.api import Api, start
from tests.helpers.faults import rounds
from tests.helpers.items import upload
from tests.helpers.links import link
from tests.helpers.world import world
from tests.servers import REQUIRE_SERVERS
from vault.api.resources import DB, KEYRING, STORE
from vault.audit.verify import verify as verify_chain
from vault.config import Settings, StorageSettings
from vault.db.schema import item_blobs, items
from vault.items.sweep import sweep
from vault.keys.provider import audit_check

pytestmark = [pytest.mark.localdisk, pytest.mark.sqlite]

RECORD = 2 * 1024 * 1024 + 333
FIRST_SIZE_MB = 9
GROWTH_MB = 6


def _mount(where: Path, size_mb: int, *, again: bool = False) -> subprocess.CompletedProcess[str]:
    options = f"size={size_mb}m,mode=0700" + (",remount" if again else "")
    return subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "disk"
    where.mkdir()
    mounted = _mount(where, FIRST_SIZE_MB)
    if mounted.returncode != 0:
        reason = f"cannot mount a tmpfs for the full-disk test: {mounted.stderr.strip()}"
        if REQUIRE_SERVERS:
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


async def live_blobs(api: Api) -> set[str]:
    async with api.client.app[DB].connect() as conn:
        return set(
            (
                await conn.scalars(
                    select(item_blobs.c.blob_key)
                    .join(items, items.c.id == item_blobs.c.item_id)
                    .where(items.c.destroyed_at.is_(None))
                )
            ).all()
        )


async def test_a_full_disk_refuses_cleanly_and_recovers_when_space_returns(
    small_disk: Path,
    tmp_path: Path,
    aiohttp_client: Any,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings(data_dir=tmp_path / "data", storage=StorageSettings(path=str(small_disk)))
    api = await start(settings, aiohttp_client)
    app = api.client.app
    w = await world(api)
    chance = random.Random(7)
    acknowledged: dict[str, bytes] = {}
    refusals = 0
    size_mb = FIRST_SIZE_MB
    cycles = rounds(request.config, 2, 10)
    with caplog.at_level(logging.INFO):
        for cycle in range(cycles):
            for _attempt in range(50):
                data = PDF + chance.randbytes(RECORD - len(PDF))
                status, item = await upload(
                    api, w.staff, w.child, {"kind": "observation"}, io.BytesIO(data), "o.pdf"
                )
                if status == 201:
                    acknowledged[item["id"]] = data
                    continue
                assert (status, item["error"]["code"]) == (503, "storage_unavailable"), item
                refusals += 1
                break
            else:
                pytest.fail(f"cycle {cycle}: the disk never filled")
            # Nothing half-written: no record, no listing entry, no blob, no temporary file.
            listing = await api.ok("GET", f"/v1/children/{w.child}/items", token=w.staff)
            assert {i["id"] for i in listing["items"]} == set(acknowledged)
            assert os.listdir(small_disk / ".tmp") == []
            stored = {key async for key in app[STORE].list()}
            assert stored == await live_blobs(api), "a refused upload left a blob"
            # The operator frees space: the next upload succeeds, no restart.
            size_mb += GROWTH_MB
            grown = _mount(small_disk, size_mb, again=True)
            assert grown.returncode == 0, grown.stderr
            data = PDF + chance.randbytes(RECORD - len(PDF))
            status, item = await upload(
                api, w.staff, w.child, {"kind": "observation"}, io.BytesIO(data), "o.pdf"
            )
            assert status == 201, item
            acknowledged[item["id"]] = data

    print(f"\nfull disk: {cycles} cycles, {refusals} refusals, {len(acknowledged)} records")
    for item_id, data in acknowledged.items():
        answer = await api.client.get(await link(api, w.parent, item_id))
        assert (answer.status, await answer.read()) == (200, data), item_id
    report = await sweep(app[DB], app[STORE], datetime.now(UTC) + timedelta(days=1), timedelta(0))
    assert report.removed == 0, "no orphan to sweep"
    assert {key async for key in app[STORE].list()} == await live_blobs(api)
    chain = await verify_chain(app[DB], audit_check(app[KEYRING]))
    assert chain.ok, chain.problems
    # Each refusal is the operator's to see (a 5xx the fault caused), and the
    # store says why; nothing else went wrong.
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == ["storage_unavailable on /v1/children/{id}/items: StorageUnavailable"] * (
        refusals
    ), errors
    assert any("No space left on device" in r.getMessage() for r in caplog.records)
    assert not any(r.exc_info for r in caplog.records), "no traceback for a full disk"
