"""Asking for signed links through the API and fetching them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from tests.files import jpeg_with_secrets
from tests.helpers.api import Api
from tests.helpers.items import consent, upload
from tests.helpers.world import World


async def link(api: Api, token: str, item_id: str, **body: Any) -> str:
    answer = await api.ok("POST", f"/v1/items/{item_id}/links", body, token)
    return urlsplit(answer["url"]).path


async def photo_of(api: Api, w: World, **meta: Any) -> dict[str, Any]:
    await consent(api, w)
    status, item = await upload(
        api, w.staff, w.child, {"kind": "photo", **meta}, jpeg_with_secrets(), "Zandbak-1.jpg"
    )
    assert status == 201, item
    return item


async def fetch(
    api: Api, path: str, method: str = "GET", **headers: str
) -> tuple[int, Mapping[str, str], bytes]:
    response = await api.client.request(method, path, headers=headers)
    return response.status, response.headers, await response.read()
