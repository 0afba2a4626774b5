"""Migration 0020s on a vault whose erasures left a child's group photos its
record (before the share of a child could be destroyed): after ``kluis init``
they are gone for that child and whole for the others, on SQLite and
PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.files import jpeg_with_secrets
from tests.helpers.api import start
from tests.helpers.items import consent, upload
from tests.helpers.world import second_child, world
from vault.config import DatabaseSettings, Settings
from vault.db import create_engine
from vault.db.migrate import downgrade


async def test_group_photos_of_a_child_erased_before_are_no_longer_its(
    db_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    settings = Settings(data_dir=tmp_path / "data", database=DatabaseSettings(url=db_url))
    api = await start(settings, aiohttp_client)
    w = await world(api)
    await consent(api, w)
    mila, mother = await second_child(api, w)
    meta = {"kind": "photo", "tagged_children": [mila]}
    status, group = await upload(api, w.staff, w.child, meta, jpeg_with_secrets())
    assert status == 201
    await api.ok("POST", f"/v1/children/{w.child}/erasure", {"categories": ["photo"]}, w.parent)
    await api.client.close()

    # Back to 0019b: the erasure as it was then, Noor's share not marked.
    engine = create_engine(db_url)
    try:
        await downgrade(engine, "0019b")
    finally:
        await engine.dispose()

    api = await start(settings, aiohttp_client)  # 'kluis init' migrates
    page = await api.ok("GET", f"/v1/children/{w.child}/items", token=w.parent)
    assert [(i["id"], i.get("destroyed")) for i in page["items"]] == [(group["id"], True)]
    status, body = await api.call("GET", f"/v1/items/{group['id']}", w.parent)
    assert (status, body["error"]["code"]) == (410, "destroyed")
    assert (await api.ok("GET", f"/v1/items/{group['id']}", token=mother))["children"] == [mila]
    tags = {"tagged_children": [mila, w.child]}  # the erasure is not undone
    status, body = await api.call("PATCH", f"/v1/items/{group['id']}", w.staff, tags)
    assert (status, body["error"]["code"]) == (409, "conflict")
    await api.client.close()
