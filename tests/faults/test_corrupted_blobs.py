"""A damaged blob ends its answer cleanly: an error before the headers, or a
closed connection after them, within 2 s; never a client left waiting.

For each damage (a byte flipped in the header, a middle or the last segment,
the blob cut short, two blobs swapped, the blob sealed under another key) on
the local disk and on MinIO: the client gets 500 ``integrity_error`` when the
first segment of what it asked for fails, and a short body and a closed
connection when a later one does; the failure is logged at ERROR with the
item's id, counted in /metrics, and the item is marked for the operator.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from tests.files import PDF
from tests.helpers import damage
from tests.helpers.api import Api
from tests.helpers.items import upload
from tests.helpers.links import link
from tests.helpers.world import World, world
from vault.api.resources import DB, KEYS, STORE
from vault.items import damage as damage_log
from vault.items import service

#: 3 MiB and a bit: 49 segments, streamed (more than delivery's SMALL_BODY).
SIZE = 3 * 1024 * 1024 + 1234
WITHIN = 2.0


def document(seed: int) -> bytes:
    body = bytes((i * 7 + seed) % 251 for i in range(SIZE - len(PDF)))
    return PDF + body


async def observation(api: Api, w: World, seed: int) -> tuple[str, bytes]:
    data = document(seed)
    status, item = await upload(
        api, w.staff, w.child, {"kind": "observation"}, io.BytesIO(data), f"obs-{seed}.pdf"
    )
    assert status == 201, item
    return item["id"], data


async def get(api: Api, path: str, **headers: str) -> tuple[int, bytes, str]:
    """(status, body, how it ended): ``whole``, ``closed`` (short body, closed
    connection) or ``error`` (a JSON error before the body); a hang fails."""
    session: aiohttp.ClientSession = api.client.session
    url = str(api.client.make_url(path))

    async def go() -> tuple[int, bytes, str]:
        async with session.get(url, headers=headers) as answer:
            if answer.content_type == "application/json" and answer.status >= 400:
                body = await answer.read()
                return answer.status, body, "error"
            received = bytearray()
            try:
                async for chunk in answer.content.iter_any():
                    received += chunk
            except aiohttp.ClientPayloadError:
                return answer.status, bytes(received), "closed"
            return answer.status, bytes(received), "whole"

    return await asyncio.wait_for(go(), WITHIN)


async def integrity_count(api: Api) -> float:
    text = await (await api.client.get("/metrics")).text()
    return sum(
        float(m.group(1))
        for m in re.finditer(r"^kluis_integrity_errors_total\{.*\} (\S+)$", text, re.M)
    )


Damage = Callable[[Api, str, str], Awaitable[None]]


async def _blob(api: Api, item_id: str) -> str:
    return (await service.blobs_of(api.client.app[DB], item_id))["original"].blob_key


async def flip_header(api: Api, item_id: str, other: str) -> None:
    await damage.flip_byte(api.client.app[STORE], await _blob(api, item_id), 20)


async def flip_middle(api: Api, item_id: str, other: str) -> None:
    blob = await _blob(api, item_id)
    await damage.flip_byte(api.client.app[STORE], blob, damage.segment_offset(24))


async def flip_last(api: Api, item_id: str, other: str) -> None:
    await damage.flip_byte(api.client.app[STORE], await _blob(api, item_id), -5)


async def cut_short(api: Api, item_id: str, other: str) -> None:
    store = api.client.app[STORE]
    key = await _blob(api, item_id)
    await damage.truncate(store, key, await store.size(key) - 40_000)


async def swapped(api: Api, item_id: str, other: str) -> None:
    await damage.swap(api.client.app[STORE], await _blob(api, item_id), await _blob(api, other))


async def another_key(api: Api, item_id: str, other: str) -> None:
    app = api.client.app
    blob = (await service.blobs_of(app[DB], item_id))["original"]
    key = await app[KEYS].open_item_key(item_id)
    await damage.reseal_under_another_key(
        app[STORE], blob.blob_key, key, item_id, "original", blob.blob_size
    )


#: damage -> what the client of a whole GET sees.
CASES: dict[str, tuple[Damage, str]] = {
    "header": (flip_header, "error"),
    "middle segment": (flip_middle, "closed"),
    "last segment": (flip_last, "closed"),
    "truncated": (cut_short, "closed"),
    "swapped": (swapped, "error"),
    "wrong key": (another_key, "error"),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_a_damaged_blob_ends_the_answer_cleanly(
    served: Api, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    api = served
    w = await world(api)
    item_id, data = await observation(api, w, 1)
    other, _ = await observation(api, w, 2)
    path = await link(api, w.parent, item_id)
    assert await get(api, path) == (200, data, "whole")
    before = await integrity_count(api)
    make_damage, expected = CASES[case]
    await make_damage(api, item_id, other)

    with caplog.at_level(logging.INFO):
        status, body, ending = await get(api, path)
    assert ending == expected, (status, len(body))
    if expected == "error":
        assert status == 500
        assert b'"integrity_error"' in body
    else:
        assert status == 200
        assert len(body) < len(data)
        assert data.startswith(body)  # only what verified
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(item_id in r.getMessage() for r in errors), [r.getMessage() for r in errors]
    assert not any(r.exc_info for r in caplog.records), "no traceback for a damaged blob"
    assert await integrity_count(api) == before + 1
    marked = await damage_log.damaged(api.client.app[DB])
    assert item_id in {d.item_id for d in marked}
    # The service goes on: another item still comes whole, on the same client.
    if case != "swapped":
        other_path = await link(api, w.parent, other)
        assert (await get(api, other_path))[2] == "whole"


async def test_a_range_whose_first_segment_fails_is_refused_before_its_headers(
    served: Api,
) -> None:
    api = served
    w = await world(api)
    item_id, data = await observation(api, w, 3)
    path = await link(api, w.parent, item_id)
    await flip_middle(api, item_id, "")
    start = 24 * damage.SEGMENT + 10
    status, body, ending = await get(api, path, Range=f"bytes={start}-")
    assert (status, ending) == (500, "error")
    # A range before the damage is whole; one that runs into it is cut.
    status, body, ending = await get(api, path, Range=f"bytes=0-{start - 20_000}")
    assert (status, ending, body) == (206, "whole", data[: start - 20_000 + 1])
    # (The store reads 15 segments at a time: the first piece of this range ends
    # before segment 24, the second holds it.)
    status, body, ending = await get(api, path, Range=f"bytes={5 * damage.SEGMENT}-")
    assert (status, ending) == (206, "closed")
    assert data[5 * damage.SEGMENT :].startswith(body)
