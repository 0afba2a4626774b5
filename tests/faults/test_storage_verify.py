"""``kluis storage verify`` reads every blob and lists the damaged items.

Damage found while serving is on record too, and a blob put back whole
(restored from a backup) is cleared by the next verify.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.helpers import damage
from tests.helpers.organisation import document, organisation
from tests.helpers.processes import initialised, kluis, kluis_env
from vault.storage import LocalDiskStore

pytestmark = [pytest.mark.localdisk, pytest.mark.sqlite]


def blob_key(data: Path, item_id: str, variant: str = "original") -> str:
    with sqlite3.connect(data / "kluis.db") as db:
        row = db.execute(
            "SELECT blob_key FROM item_blobs WHERE item_id = ? AND variant = ?", (item_id, variant)
        ).fetchone()
    return str(row[0])


async def test_storage_verify_lists_what_fails_and_clears_what_was_restored(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    env = kluis_env(KLUIS_DATA_DIR=str(data))
    async with initialised(env, tmp_path / "server.log") as (_, admin):
        staff, guardian, children = await organisation(admin)
        ids = []
        for n in range(5):
            status, item = await staff.upload(
                children[n % 3], {"kind": "observation"}, document(f"v{n}"), f"o{n}.pdf"
            )
            assert status == 201, item
            ids.append(item["id"])
        store = await LocalDiskStore.open(data / "blobs")
        flipped, gone, served = ids[0], ids[1], ids[2]
        kept = await damage.read_blob(store, blob_key(data, flipped))
        await damage.flip_byte(store, blob_key(data, flipped), -3)
        await store.delete(blob_key(data, gone))
        await damage.flip_byte(store, blob_key(data, served), 30)
        link = await guardian.ok("POST", f"/v1/items/{served}/links", {})
        assert (await guardian.fetch(link["url"]))[0] == 500

    status, out, err = await kluis(env, "storage", "verify")
    assert status == 1, (out, err)
    assert "blobs checked: 5 " in out
    assert "damaged (do not authenticate): 2" in out
    assert "missing from the store: 1" in out
    listed = [line for line in out.splitlines() if line.startswith("  item ")]
    assert sorted(line.split()[1] for line in listed) == sorted([flipped, gone, served])
    assert any(f"item {gone} original: missing" in line for line in listed)
    assert "blobs [" in err  # the progress bar, on stderr
    assert "5/5" in err

    # Put one back as it was (a restore): the next verify clears it.
    async def whole() -> AsyncIterator[bytes]:
        yield kept

    await store.put(blob_key(data, flipped), whole())
    status, out, _ = await kluis(env, "storage", "verify")
    assert status == 1
    assert "whole now (restored): 1" in out
    listed = [line.split()[1] for line in out.splitlines() if line.startswith("  item ")]
    assert sorted(listed) == sorted([gone, served])
