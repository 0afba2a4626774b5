"""Uploads on the scale setup: a real MinIO and a real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.files import HTML_PAGE, MP4_HEAD, SECRET_PLACE, jpeg_with_secrets
from tests.helpers.api import Api
from tests.helpers.items import consent, nothing_stored, stored, upload
from tests.helpers.world import world
from vault.api.resources import STORE

pytestmark = [pytest.mark.minio, pytest.mark.postgres]


async def test_photo_video_and_deletion_on_minio(api_s3: Api) -> None:
    api = api_s3
    w = await world(api)
    await consent(api, w)
    status, photo = await upload(api, w.staff, w.child, {"kind": "photo"}, jpeg_with_secrets())
    assert status == 201, photo
    assert SECRET_PLACE not in await stored(api, photo["id"], "original")
    payload = MP4_HEAD + bytes(range(256)) * 80_000  # 20 MB: a multipart upload to MinIO

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 1 << 20):
            yield payload[i : i + (1 << 20)]

    status, video = await upload(api, w.staff, w.child, {"kind": "video"}, chunks(), "v.mp4")
    assert status == 201, video
    assert await stored(api, video["id"], "original") == payload
    assert len([k async for k in api.client.app[STORE].list()]) == 4
    for item in (photo, video):
        assert (await api.call("DELETE", f"/v1/items/{item['id']}", w.staff))[0] == 204
    assert [k async for k in api.client.app[STORE].list()] == []


async def test_a_refused_upload_leaves_nothing_on_minio(api_s3: Api) -> None:
    api = api_s3
    w = await world(api)
    await consent(api, w)
    status, _ = await upload(api, w.staff, w.child, {"kind": "photo"}, HTML_PAGE)
    assert status == 415
    await nothing_stored(api)
