"""A school handover's download limit holds, whatever the requests look like.

Seen before: with ``max_downloads: 1`` three GETs in a row gave 200, 200,
403; eight parallel GETs gave 4 to 8 full downloads; Range requests were
never counted. Then a byte allowance of max_downloads × size made every range
use part of a download: one ``Range: bytes=0-0`` probe (a PDF viewer's) and
the last download was refused as "downloaded as often as it allows". Now a
whole body (200) is a download, claimed before its first byte leaves; ranged
reads (206) use none, are allowed while a download is left, and send in all
at most max_downloads × size bytes (docs/api-notes.md).
"""

from __future__ import annotations

import asyncio
import io
import json
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
    whole = sum(1 for status, _, body in answers if status == 200 and body == REPORT)
    ranged = sum(len(body) for status, _, body in answers if status == 206)
    assert whole <= limit
    assert ranged <= limit * len(REPORT)
    refused = [body for status, _, body in answers if status == 403]
    assert refused, "twenty requests cannot all fit in the budget"
    assert all(b"link_expired" in body and b"new handover" in body for body in refused)
    # Afterwards, nothing more of any shape than the limits allow.
    for headers in ({}, {"Range": "bytes=0-"}, {"Range": "bytes=-10"}) * 4:
        status, _, body = await fetch(api, path, **headers)
        whole += status == 200
        ranged += len(body) if status == 206 else 0
    assert whole <= limit
    assert ranged <= limit * len(REPORT)


async def test_a_range_probe_does_not_cost_the_school_a_download(api: Api) -> None:
    """The scenario found from outside: a 125-byte observation, default 3
    downloads, a viewer's one-byte probe, then the school's three downloads."""
    w = await world(api)
    await consent(api, w, "school_handover")
    status, item = await upload(
        api, w.staff, w.child, {"kind": "observation"}, io.BytesIO(PDF), "overdracht.pdf"
    )
    assert status == 201, item
    answer = await api.ok(
        "POST", f"/v1/items/{item['id']}/handovers", {"recipient": "School"}, w.staff
    )
    path = urlsplit(answer["url"]).path
    status, _, body = await fetch(api, path, Range="bytes=0-0")
    assert (status, body) == (206, PDF[:1])
    for _ in range(3):
        status, _, body = await fetch(api, path)
        assert (status, body) == (200, PDF)
    status, _, body = await fetch(api, path)
    assert status == 403
    error = json.loads(body)["error"]
    assert error["code"] == "link_expired"
    assert "3 times" in error["message"]
    assert "new handover" in error["message"]


@pytest.mark.parametrize("probe", ["bytes=0-3", "bytes=10-20", "bytes=-5", "bytes=100-"])
async def test_with_one_download_any_range_leaves_the_download(api: Api, probe: str) -> None:
    w = await world(api)
    path = await handover(api, w, 1, PDF)
    status, _, body = await fetch(api, path, Range=probe)
    assert status == 206
    assert body
    assert body in PDF
    status, _, body = await fetch(api, path)
    assert (status, body) == (200, PDF)
    # The download is used: no more whole bodies, and no more ranges either.
    for headers in ({}, {"Range": probe}, {"Range": "bytes=0-"}):
        status, _, body = await fetch(api, path, **headers)
        assert status == 403
        assert b"link_expired" in body


async def test_head_and_not_modified_use_nothing(api: Api) -> None:
    w = await world(api)
    path = await handover(api, w, 1, PDF)
    for _ in range(5):
        status, headers, _ = await fetch(api, path, "HEAD")
        assert status == 200
        assert headers["Content-Length"] == str(len(PDF))
        status, _, _ = await fetch(api, path, **{"If-None-Match": headers["ETag"]})
        assert status == 304
    status, _, body = await fetch(api, path)
    assert (status, body) == (200, PDF)
    assert (await fetch(api, path, "HEAD"))[0] == 403  # spent: even a look says so


async def test_ranges_send_at_most_as_many_bytes_as_the_downloads_would(api: Api) -> None:
    """Ranges are not a way round the limit: in all they send at most
    max_downloads × size bytes; then a range is refused with a message that
    says a whole download is still there, and the download still works."""
    w = await world(api)
    path = await handover(api, w, 2)
    size = len(REPORT)
    half = size // 2
    sent = 0
    for _ in range(2):  # two whole copies, in halves
        for header in (f"bytes=0-{half - 1}", f"bytes={half}-"):
            status, _, body = await fetch(api, path, Range=header)
            assert status == 206
            sent += len(body)
    assert sent == 2 * size
    status, _, body = await fetch(api, path, Range="bytes=0-0")
    assert status == 403
    error = json.loads(body)["error"]
    assert error["code"] == "link_expired"
    assert "without a Range" in error["message"]
    assert "2 downloads" in error["message"]
    for _ in range(2):
        status, _, body = await fetch(api, path)
        assert (status, body) == (200, REPORT)
    status, _, body = await fetch(api, path)
    assert status == 403
    assert b"2 times" in body


async def test_parallel_gets_on_the_last_download_give_one_copy(api: Api) -> None:
    """The claim is one conditional UPDATE before the first byte leaves: of
    eight GETs at once on the last download, one is answered 200."""
    w = await world(api)
    path = await handover(api, w, 2)
    status, _, _ = await fetch(api, path, Range="bytes=0-99")
    assert status == 206
    status, _, body = await fetch(api, path)
    assert (status, body) == (200, REPORT)
    answers = await asyncio.gather(*(fetch(api, path) for _ in range(8)))
    assert sorted(status for status, _, _ in answers) == [200] + [403] * 7
    assert [body for status, _, body in answers if status == 200] == [REPORT]


async def test_a_download_cut_short_is_given_back(api: Api) -> None:
    """A whole body that did not all leave (the school's line dropped) is not
    a download: it is given back, and the bytes that went into the network
    (the vault cannot know what arrived) count as ranged bytes, so the school
    resumes with Range and still has its downloads."""
    report = PDF + b"% " + os.urandom(6 * 1024 * 1024).hex().encode() + b"\n%%EOF\n"
    w = await world(api)
    path = await handover(api, w, 2, report)
    response = await api.client.get(path)
    assert response.status == 200
    got = b""
    while len(got) < 64 * 1024:
        got += await response.content.read(64 * 1024 - len(got))
    response.close()  # the line drops

    async def counted() -> tuple[int, int]:
        async with api.client.app[DB].connect() as conn:
            row = (await conn.execute(select(handovers.c.downloads, handovers.c.sent_bytes))).one()
        return int(row.downloads), int(row.sent_bytes)

    for _ in range(200):  # the server notices the hang-up a moment later (10 s at most)
        if (await counted())[0] == 0:
            break
        await asyncio.sleep(0.05)
    downloads, ranged = await counted()
    assert downloads == 0
    assert len(got) <= ranged < len(report)
    status, _, rest = await fetch(api, path, Range=f"bytes={len(got)}-")
    assert status == 206
    assert got + rest == report
    for _ in range(2):
        status, _, body = await fetch(api, path)
        assert (status, body) == (200, report)
    assert (await fetch(api, path))[0] == 403


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
