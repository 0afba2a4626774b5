"""The orphan sweeper, and memory while a large video streams in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from tests.files import MP4_HEAD, jpeg_with_secrets, mp4_stream
from tests.helpers.api import Api
from tests.helpers.items import consent, upload
from tests.helpers.memory import RssSampler
from tests.helpers.world import world
from vault.api.resources import DB, STORE
from vault.items.sweep import sweep
from vault.storage import new_blob_key


async def one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_the_sweeper_removes_only_old_orphans(api: Api) -> None:
    w = await world(api)
    await consent(api, w)
    _, photo = await upload(api, w.staff, w.child, {"kind": "photo"}, jpeg_with_secrets())
    store = api.client.app[STORE]
    now = api.clock.now + timedelta(hours=2)  # the photo's own blobs are old by then
    old_orphan = new_blob_key(now - timedelta(hours=3))
    young_orphan = new_blob_key(now - timedelta(minutes=5))
    foreign = "not-made-by-kluis-0001"
    for key in (old_orphan, young_orphan, foreign):
        await store.put(key, one(b"stray"))
    report = await sweep(api.client.app[DB], store, now, timedelta(hours=1))
    assert (report.checked, report.removed, report.too_young, report.foreign) == (6, 1, 1, 1)
    left = {k async for k in store.list()}
    assert old_orphan not in left
    assert {young_orphan, foreign} <= left
    assert (await api.call("GET", f"/v1/items/{photo['id']}", w.parent))[0] == 200
    assert len(left) == 5


@pytest.mark.slow
async def test_a_1gb_video_upload_keeps_memory_bounded(api: Api) -> None:
    w = await world(api)
    await consent(api, w)
    with RssSampler() as memory:
        status, body = await upload(
            api, w.staff, w.child, {"kind": "video"}, mp4_stream(1024), "long.mp4"
        )
    assert status == 201, body
    assert body["size"] == len(MP4_HEAD) + 1024 * 1024 * 1024
    # Client and server share this process: both stream.
    assert memory.growth_mb < 150, memory.growth_mb
