"""A school handover's download limit holds, whatever the requests look like.

Seen before: with ``max_downloads: 1`` three GETs in a row gave 200, 200,
403; eight parallel GETs gave 4 to 8 full downloads; Range requests were
never counted. Now a handover holds a budget of max_downloads × size bytes,
claimed before the first byte of each answer leaves (docs/api-notes.md).
"""

from __future__ import annotations

import asyncio
import io
import os
import random
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from tests.files import PDF
from tests.helpers.api import Api
from tests.helpers.items import consent, upload
from tests.helpers.links import fetch
from tests.helpers.world import World, world
from vault.api.resources import DB
from vault.db.schema import handovers

#: An observation of a few segments, so ranges of it are real ranges.
REPORT = PDF + b"% " + os.urandom(150_000).hex().encode() + b"\n%%EOF\n"


async def handover(api: Api, w: World, max_downloads: int, report: bytes = REPORT) -> str:
    await consent(api, w, "school_handover")
    status, item = await upload(
        api, w.staff, w.child, {"kind": "observation"}, io.BytesIO(report), "overdracht.pdf"
    )
    assert status == 201, item
    answer = await api.ok(
        "POST",
        f"/v1/items/{item['id']}/handovers",
        {"recipient": "Basisschool De Regenboog", "max_downloads": max_downloads},
        w.staff,
    )
    return urlsplit(answer["url"]).path


def a_request(rng: random.Random) -> dict[str, str]:
    """A GET of any shape a browser or a download manager sends."""
    size = len(REPORT)
    shape = rng.choice(["plain", "from-start", "suffix", "middle", "rest"])
    if shape == "plain":
        return {}
    if shape == "from-start":
        return {"Range": "bytes=0-"}
    if shape == "suffix":
        return {"Range": f"bytes=-{rng.randrange(1, size)}"}
    start = rng.randrange(0, size - 1)
    if shape == "middle":
        return {"Range": f"bytes={start}-{rng.randrange(start, size)}"}
    return {"Range": f"bytes={start}-"}


@pytest.mark.parametrize("limit", [1, 3])
async def test_twenty_parallel_fetches_of_any_shape_never_give_more_than_the_limit(
    api: Api, limit: int
) -> None:
    w = await world(api)
    path = await handover(api, w, limit)
    rng = random.Random(limit)
    shapes = [a_request(rng) for _ in range(20)]
    answers = await asyncio.gather(*(fetch(api, path, **headers) for headers in shapes))
    sent = sum(len(body) for status, _, body in answers if status in (200, 206))
    whole = sum(1 for status, _, body in answers if status == 200 and body == REPORT)
    assert sent <= limit * len(REPORT)
    assert whole <= limit
    refused = [body for status, _, body in answers if status == 403]
    assert refused, "twenty requests cannot all fit in the budget"
    assert all(b"link_expired" in body and b"ask the childcare" in body for body in refused)
    # Afterwards, nothing more of any shape.
    for headers in ({}, {"Range": "bytes=0-"}, {"Range": "bytes=-10"}):
        status, _, body = await fetch(api, path, **headers)
        if status in (200, 206):
            sent += len(body)
    assert sent <= limit * len(REPORT)


async def test_requests_one_after_the_other_count_what_they_send(api: Api) -> None:
    w = await world(api)
    path = await handover(api, w, 1)
    half = len(REPORT) // 2
    # A broken download resumes with Range within the same one download.
    status, _, first = await fetch(api, path, Range=f"bytes=0-{half - 1}")
    assert status == 206
    status, _, rest = await fetch(api, path, Range=f"bytes={half}-")
    assert status == 206
    assert first + rest == REPORT
    status, _, body = await fetch(api, path)
    assert status == 403
    assert b"link_expired" in body
    status, _, body = await fetch(api, path, Range="bytes=0-0")
    assert status == 403
    assert (await fetch(api, path, "HEAD"))[0] == 403  # spent: even a look says so


async def test_a_download_cut_short_gives_back_what_did_not_leave(api: Api) -> None:
    """Bytes that went into the network count as sent (the vault cannot know
    what arrived); what never left is given back, so a school whose line
    dropped resumes, using at most one more of its downloads."""
    report = PDF + b"% " + os.urandom(6 * 1024 * 1024).hex().encode() + b"\n%%EOF\n"
    w = await world(api)
    path = await handover(api, w, 2, report)
    response = await api.client.get(path)
    assert response.status == 200
    got = b""
    while len(got) < 64 * 1024:
        got += await response.content.read(64 * 1024 - len(got))
    response.close()  # the line drops

    async def sent_bytes() -> int:
        async with api.client.app[DB].connect() as conn:
            return int(await conn.scalar(select(handovers.c.sent_bytes)) or 0)

    for _ in range(200):  # the server notices the hang-up a moment later (10 s at most)
        if await sent_bytes() < len(report):
            break
        await asyncio.sleep(0.05)
    assert len(got) <= await sent_bytes() < len(report)  # given back what did not leave
    status, _, rest = await fetch(api, path, Range=f"bytes={len(got)}-")
    assert status == 206
    assert got + rest == report
    status, _, _ = await fetch(api, path)  # no whole third copy fits in the rest
    assert status == 403


async def test_a_cached_copy_is_never_shown_without_asking_again(api: Api) -> None:
    """A browser keeps the bytes (no-cache) but must revalidate; after consent is
    withdrawn its revalidation with the old ETag is refused, not 304."""
    w = await world(api)
    path = await handover(api, w, 3)
    status, headers, body = await fetch(api, path)
    assert status == 200
    assert headers["Cache-Control"] == "private, no-cache"
    etag = headers["ETag"]
    status, _, _ = await fetch(api, path, **{"If-None-Match": etag})
    assert status == 304
    await api.ok(
        "PUT", f"/v1/children/{w.child}/consents/school_handover", {"granted": False}, w.parent
    )
    status, _, body = await fetch(api, path, **{"If-None-Match": etag})
    assert status == 403
    assert b"consent_missing" in body
