"""Uploads are stored a few at a time; the others wait before their file is read.

With ``uploads.parallel = 1``: while one upload streams in slowly, a second
(small) upload is not answered until the first is done, yet both succeed,
and link fetches and listings are answered at once meanwhile (the waiting
upload holds no slot, and nothing else waits for the slot). Issue 18, item 7:
uploads must not starve link fetches (figures: bench/fetch_latency.py).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.files import PDF
from tests.helpers.api import Api
from tests.helpers.items import form, upload
from tests.helpers.links import link
from tests.helpers.world import world


@pytest.mark.uploads(parallel=1)
async def test_a_second_upload_waits_for_the_slot_while_fetches_go_on(api: Api) -> None:
    w = await world(api)
    status, first_doc = await upload(
        api, w.staff, w.child, {"kind": "observation"}, io.BytesIO(PDF + b"x" * 1000), "a.pdf"
    )
    assert status == 201, first_doc
    path = await link(api, w.parent, first_doc["id"])
    release = asyncio.Event()
    streaming = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        # Enough that the client's buffers pass it on: the server is reading
        # the file, holding the slot, when the upload pauses.
        yield PDF + b"y" * 300_000
        streaming.set()
        await release.wait()
        yield b"y" * 200_000

    slow_upload = asyncio.create_task(
        api.call(
            "POST",
            f"/v1/children/{w.child}/items",
            w.staff,
            data=form({"kind": "observation"}, slow(), "slow.pdf"),
        )
    )
    await asyncio.wait_for(streaming.wait(), 10)
    await asyncio.sleep(0.2)  # the slow upload holds the one slot now
    second = asyncio.create_task(
        upload(api, w.staff, w.child, {"kind": "observation"}, io.BytesIO(PDF + b"z"), "b.pdf")
    )
    # Meanwhile fetches and listings are answered at once.
    for _ in range(3):
        answer = await asyncio.wait_for(api.client.get(path), 5)
        assert answer.status == 200
        await answer.read()
        listing = await asyncio.wait_for(
            api.call("GET", f"/v1/children/{w.child}/items", w.staff), 5
        )
        assert listing[0] == 200
    await asyncio.sleep(0.3)
    assert not second.done(), "the second upload was stored while the slot was taken"
    release.set()
    (status, slow_item), (status_2, second_item) = await asyncio.wait_for(
        asyncio.gather(slow_upload, second), 20
    )
    assert (status, status_2) == (201, 201), (slow_item, second_item)
    listing = await api.ok("GET", f"/v1/children/{w.child}/items", token=w.staff)
    assert {i["id"] for i in listing["items"]} == {
        first_doc["id"],
        slow_item["id"],
        second_item["id"],
    }


@pytest.mark.uploads(parallel=1)
async def test_a_replaced_file_waits_for_the_slot_too(api: Api) -> None:
    # PUT /v1/items/{id}/file (rectification) streams a file like an upload:
    # it takes the same slots, so it cannot get round the bound.
    w = await world(api)
    status, doc = await upload(
        api, w.staff, w.child, {"kind": "observation"}, io.BytesIO(PDF + b"x"), "a.pdf"
    )
    assert status == 201, doc
    release = asyncio.Event()
    streaming = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield PDF + b"y" * 300_000
        streaming.set()
        await release.wait()
        yield b"y" * 200_000

    slow_upload = asyncio.create_task(
        api.call(
            "POST",
            f"/v1/children/{w.child}/items",
            w.staff,
            data=form({"kind": "observation"}, slow(), "slow.pdf"),
        )
    )
    await asyncio.wait_for(streaming.wait(), 10)
    await asyncio.sleep(0.2)
    replacement = aiohttp.FormData()
    replacement.add_field("file", PDF + b"new", filename="b.pdf")
    replace = asyncio.create_task(
        api.call("PUT", f"/v1/items/{doc['id']}/file", w.staff, data=replacement)
    )
    await asyncio.sleep(0.5)
    assert not replace.done(), "the file was replaced while the one slot was taken"
    release.set()
    (status, slow_item), (status_2, replaced) = await asyncio.wait_for(
        asyncio.gather(slow_upload, replace), 20
    )
    assert (status, status_2) == (201, 200), (slow_item, replaced)
    assert replaced["version"] == 2
