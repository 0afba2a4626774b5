"""Uploading records through the API, and reading what was stored straight
from the blob store (decrypted) to check what the API did with it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from sqlalchemy import func, select, text

from tests.helpers.api import Api
from tests.helpers.world import World
from vault.api.resources import DB, KEYS, STORE
from vault.crypto.stream import decrypt_range
from vault.db.schema import item_blobs, items
from vault.items import service


def form(meta: dict[str, Any], data: bytes | Any, filename: str = "upload.bin") -> aiohttp.FormData:
    body = aiohttp.FormData()
    body.add_field("meta", json.dumps(meta), content_type="application/json")
    # The client's content type claims a JPEG whatever the bytes: it must not matter.
    body.add_field("file", data, filename=filename, content_type="image/jpeg")
    return body


async def upload(
    api: Api, token: str, child: str, meta: dict[str, Any], data: Any, filename: str = "x.jpg"
) -> tuple[int, Any]:
    return await api.call(
        "POST", f"/v1/children/{child}/items", token, data=form(meta, data, filename)
    )


async def consent(api: Api, w: World, kind: str = "photo", child: str | None = None) -> None:
    await api.ok(
        "PUT", f"/v1/children/{child or w.child}/consents/{kind}", {"granted": True}, w.parent
    )


async def stored(api: Api, item_id: str, variant: str) -> bytes:
    """Decrypt a stored variant straight from the blob store."""
    app = api.client.app
    blob = (await service.blobs_of(app[DB], item_id))[variant]
    key = await app[KEYS].open_item_key(item_id)

    def read(offset: int, length: int) -> AsyncIterator[bytes]:
        return app[STORE].get(blob.blob_key, offset, length)

    return b"".join([p async for p in decrypt_range(key, item_id, variant, read, blob.blob_size)])


async def nothing_stored(api: Api) -> None:
    app = api.client.app
    async with app[DB].connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(items)) == 0
        assert await conn.scalar(select(func.count()).select_from(item_blobs)) == 0
        assert await conn.scalar(text("SELECT count(*) FROM item_keys")) == 0
    assert [k async for k in app[STORE].list()] == []
    assert (await api.client.get("/healthz")).status == 200
