"""Uploading records through the API with real files: sniffed, sanitised, encrypted."""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import pyvips
from sqlalchemy import text

from tests.files import (
    HTML_PAGE,
    MP4_HEAD,
    PDF,
    SECRET_PLACE,
    SVG_WITH_SCRIPT,
    jpeg_with_secrets,
    png_bomb,
)
from tests.helpers.api import Api
from tests.helpers.items import consent, nothing_stored, stored, upload
from tests.helpers.world import second_child, world
from vault.api.resources import DB, STORE


async def test_a_photo_loses_its_location_and_is_turned_upright(api: Api) -> None:
    w = await world(api)
    await consent(api, w)
    status, body = await upload(
        api,
        w.staff,
        w.child,
        {"kind": "photo", "title": "Zandbak", "taken_at": "2026-11-21T08:30:00Z"},
        jpeg_with_secrets(),
        "IMG_0001.jpg",
    )
    assert status == 201, body
    assert body["kind"] == "photo"
    assert body["children"] == [w.child]
    assert body["variants"] == ["original", "preview", "thumb"]
    assert body["content_type"] == "image/jpeg"
    for variant in body["variants"]:
        data = await stored(api, body["id"], variant)
        assert b"Exif" not in data
        assert b"GPS" not in data
        assert SECRET_PLACE not in data
        assert b"http://ns.adobe.com/xap" not in data
        image = pyvips.Image.jpegload_buffer(data)
        assert not [f for f in image.get_fields() if f.startswith(("exif", "xmp", "iptc", "icc"))]
        assert image.height > image.width  # orientation 6 applied: 64×32 became 32×64
    assert body["size"] == len(await stored(api, body["id"], "original"))
    meta = await api.ok("GET", f"/v1/items/{body['id']}", token=w.parent)
    assert (meta["title"], meta["file_name"], meta["width"], meta["height"]) == (
        "Zandbak",
        "IMG_0001.jpg",
        32,
        64,
    )
    assert meta["taken_at"] == "2026-11-21T08:30:00Z"


async def test_titles_file_names_and_diary_text_are_not_in_the_database_in_clear(api: Api) -> None:
    w = await world(api)
    await consent(api, w)
    await consent(api, w, "diary")
    await upload(
        api,
        w.staff,
        w.child,
        {"kind": "photo", "title": "Verjaardag Noor"},
        jpeg_with_secrets(),
        "noor-jarig.jpg",
    )
    await api.ok(
        "POST",
        f"/v1/children/{w.child}/items",
        {"kind": "diary", "date": "2026-11-21", "text": "Noor heeft goed geslapen"},
        w.staff,
    )
    async with api.client.app[DB].connect() as conn:
        rows = [
            repr(r)
            for t in ("items", "item_blobs")
            for r in (await conn.execute(text(f"SELECT * FROM {t}"))).all()
        ]
    dumped = " ".join(rows)
    for secret in ("Verjaardag", "noor-jarig", "goed geslapen", "2026-11-21T"):
        assert secret not in dumped


@pytest.mark.parametrize(
    ("name", "kind", "data", "status", "code"),
    [
        ("svg with script", "photo", SVG_WITH_SCRIPT, 415, "unsupported_type"),
        ("html named .jpg", "photo", HTML_PAGE, 415, "unsupported_type"),
        ("pdf as photo", "photo", PDF, 415, "unsupported_type"),
        ("jpeg as video", "video", b"\xff\xd8\xff" + b"\x00" * 100, 415, "unsupported_type"),
        ("empty file", "photo", b"", 400, "invalid_input"),
        ("truncated jpeg", "photo", "truncated", 415, "unsupported_type"),
        ("jpeg header only", "photo", b"\xff\xd8\xff\xe0" + b"\x00" * 60, 415, "unsupported_type"),
        # Well formed to the strip, refused by the decode of the variants, which
        # runs while the original is already being stored: nothing of it may stay.
        ("jpeg without its tables", "photo", "no tables", 415, "unsupported_type"),
    ],
)
async def test_bad_files_are_refused_and_nothing_is_stored(
    api: Api, name: str, kind: str, data: Any, status: int, code: str
) -> None:
    w = await world(api)
    await consent(api, w)
    if data == "truncated":
        full = pyvips.Image.xyz(800, 600)[0].cast("uchar").jpegsave_buffer(Q=95)
        data = full[: len(full) // 2]
    elif data == "no tables":
        data = without_quantisation_tables(
            pyvips.Image.xyz(800, 600)[0].cast("uchar").jpegsave_buffer(Q=95)
        )
    got, body = await upload(api, w.staff, w.child, {"kind": kind}, data, "photo.jpg")
    assert (got, body["error"]["code"]) == (status, code), body
    assert body["error"]["message"]
    await nothing_stored(api)


def without_quantisation_tables(jpeg: bytes) -> bytes:
    """``jpeg`` (segments up to its first scan, then the scan) without its DQT segments."""
    out, at = bytearray(jpeg[:2]), 2
    while jpeg[at + 1] != 0xDA:
        end = at + 2 + int.from_bytes(jpeg[at + 2 : at + 4], "big")
        if jpeg[at + 1] != 0xDB:
            out += jpeg[at:end]
        at = end
    return bytes(out + jpeg[at:])


async def test_a_decompression_bomb_is_refused_fast(api: Api, tmp_path: Path) -> None:
    w = await world(api)
    await consent(api, w)
    bomb = png_bomb(tmp_path / "bomb.png")
    started = asyncio.get_running_loop().time()
    status, body = await upload(
        api, w.staff, w.child, {"kind": "photo"}, bomb.read_bytes(), "bomb.png"
    )
    assert (status, body["error"]["code"]) == (413, "too_large")
    assert "50000×50000" in body["error"]["message"]
    assert asyncio.get_running_loop().time() - started < 5
    await nothing_stored(api)


async def test_a_photo_over_its_cap_is_refused_in_bytes_and_mib(api: Api) -> None:
    # The cap is 40 MiB: 41,943,040 bytes. A refusal names it so, whichever
    # check refuses (the request's length or the file as it streams), and
    # never mixes MB (10^6) and MiB (2^20).
    w = await world(api)
    await consent(api, w)
    photo = jpeg_with_secrets()
    cap = "41,943,040 bytes (40 MiB)"
    for size in (40 * 1024 * 1024 + 1, 42_500_000):
        status, body = await upload(
            api, w.staff, w.child, {"kind": "photo"}, io.BytesIO(photo + bytes(size - len(photo)))
        )
        message = body["error"]["message"]
        assert (status, body["error"]["code"]) == (413, "too_large"), size
        assert cap in message, message
        assert " MB" not in message, message
        said = re.search(r"is ([\d,]+) bytes \((\d+\.\d) MiB\)", message)
        # Over the cap by a byte, refused as it streams; 42.5e6 bytes, by the
        # request's length (the file and the multipart around it).
        assert (said is not None) == (size == 42_500_000), message
        if said:
            sent = int(said.group(1).replace(",", ""))
            assert size < sent < size + 1024
            assert said.group(2) == f"{sent / 1024 / 1024:.1f}"
    await nothing_stored(api)


@pytest.mark.uploads(video_max_mb=5)
async def test_the_size_cap_is_enforced_while_streaming(api: Api) -> None:
    w = await world(api)
    await consent(api, w)
    sent = 0

    async def endless_video() -> AsyncIterator[bytes]:
        nonlocal sent
        yield MP4_HEAD
        chunk = b"\x00" * (1024 * 1024)
        for _ in range(100):  # 100 MB against a 5 MB cap
            sent += len(chunk)
            yield chunk

    status, body = await upload(
        api, w.staff, w.child, {"kind": "video"}, endless_video(), "clip.mp4"
    )
    assert (status, body["error"]["code"]) == (413, "too_large")
    assert "5,242,880 bytes (5 MiB)" in body["error"]["message"]
    await nothing_stored(api)


async def test_a_video_streams_into_encrypted_storage(api: Api) -> None:
    w = await world(api)
    await consent(api, w)
    payload = MP4_HEAD + bytes(range(256)) * 40_000  # about 10 MB

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 300_000):
            yield payload[i : i + 300_000]

    status, body = await upload(
        api, w.staff, w.child, {"kind": "video", "title": "Dansen"}, chunks(), "dans.mp4"
    )
    assert status == 201, body
    assert (body["variants"], body["content_type"], body["size"]) == (
        ["original"],
        "video/mp4",
        len(payload),
    )
    assert await stored(api, body["id"], "original") == payload
    raw = b"".join(
        [c async for k in api.client.app[STORE].list() async for c in api.client.app[STORE].get(k)]
    )
    assert bytes(range(256)) * 4 not in raw  # only ciphertext at rest


async def test_documents_by_the_administration(api: Api) -> None:
    w = await world(api)
    status, body = await upload(
        api, w.administration, w.child, {"kind": "invoice", "title": "Nov"}, PDF, "f.pdf"
    )
    assert status == 201, body
    assert (body["content_type"], body["variants"]) == ("application/pdf", ["original"])
    assert await stored(api, body["id"], "original") == PDF
    # A scanned contract as a photo is sanitised like any image.
    status, body = await upload(
        api, w.administration, w.child, {"kind": "contract"}, jpeg_with_secrets(), "scan.jpg"
    )
    assert status == 201
    assert body["variants"] == ["original", "preview", "thumb"]
    assert SECRET_PLACE not in await stored(api, body["id"], "original")


@pytest.mark.parametrize(
    ("who", "kind", "code"),
    [
        ("staff", "invoice", "forbidden"),
        ("parent", "photo", "forbidden"),
        ("administration", "photo", "forbidden"),
        ("officer", "observation", "forbidden"),
        ("other_staff", "photo", "not_found"),
        ("inspector", "medical", "forbidden"),
    ],
)
async def test_roles_add_only_their_kinds(api: Api, who: str, kind: str, code: str) -> None:
    w = await world(api)
    await consent(api, w)
    status, body = await upload(
        api,
        getattr(w, who),
        w.child,
        {"kind": kind},
        PDF if kind != "photo" else jpeg_with_secrets(),
    )
    assert (status, body["error"]["code"]) == ({"forbidden": 403, "not_found": 404}[code], code)
    await nothing_stored(api)


async def test_photos_need_consent_for_every_child_shown(api: Api) -> None:
    w = await world(api)
    status, body = await upload(api, w.staff, w.child, {"kind": "photo"}, jpeg_with_secrets())
    assert (status, body["error"]["code"]) == (403, "consent_missing")
    await nothing_stored(api)
    await consent(api, w)
    # A second child of the same group, without consent, tagged in the photo.
    second = (
        await api.ok(
            "POST",
            "/v1/children",
            {
                "first_name": "Mila",
                "last_name": "de Vries",
                "birth_date": "2023-06-01",
                "group_id": w.group,
            },
        )
    )["id"]
    status, body = await upload(
        api, w.staff, w.child, {"kind": "photo", "tagged_children": [second]}, jpeg_with_secrets()
    )
    assert (status, body["error"]["code"]) == (403, "consent_missing")
    # A child of another group cannot be tagged by this group's staff.
    status, body = await upload(
        api,
        w.staff,
        w.child,
        {"kind": "photo", "tagged_children": [w.other_group_child]},
        jpeg_with_secrets(),
    )
    assert (status, body["error"]["code"]) == (404, "not_found")
    await nothing_stored(api)


async def test_a_group_photo_belongs_to_each_child_and_follows_consent(api: Api) -> None:
    w = await world(api)
    second, second_parent = await second_child(api, w)
    await consent(api, w)
    status, body = await upload(
        api, w.staff, w.child, {"kind": "photo", "tagged_children": [second]}, jpeg_with_secrets()
    )
    assert status == 201, body
    assert sorted(body["children"]) == sorted([w.child, second])
    for token in (w.parent, second_parent, w.staff):
        assert (await api.call("GET", f"/v1/items/{body['id']}", token))[0] == 200
    listing = await api.ok("GET", f"/v1/children/{second}/items", token=second_parent)
    assert [i["id"] for i in listing["items"]] == [body["id"]]
    # Mila's mother withdraws: Noor's family no longer sees the photo; Mila's still does.
    api.clock.now += timedelta(minutes=5)
    await api.ok("PUT", f"/v1/children/{second}/consents/photo", {"granted": False}, second_parent)
    status, answer = await api.call("GET", f"/v1/items/{body['id']}", w.parent)
    assert (status, answer["error"]["code"]) == (403, "consent_missing")
    assert (await api.call("GET", f"/v1/items/{body['id']}", second_parent))[0] == 200
    assert (await api.ok("GET", f"/v1/children/{w.child}/items", token=w.parent))["items"] == []


async def test_diary_entries(api: Api) -> None:
    w = await world(api)
    status, body = await api.call(
        "POST",
        f"/v1/children/{w.child}/items",
        w.staff,
        {"kind": "diary", "date": "2026-11-21", "text": "Goed gegeten."},
    )
    assert (status, body["error"]["code"]) == (403, "consent_missing")
    await consent(api, w, "diary")
    await consent(api, w)
    _, photo = await upload(api, w.staff, w.child, {"kind": "photo"}, jpeg_with_secrets())
    entry = await api.ok(
        "POST",
        f"/v1/children/{w.child}/items",
        {
            "kind": "diary",
            "date": "2026-11-21",
            "text": "Goed gegeten.",
            "photo_ids": [photo["id"]],
        },
        w.staff,
    )
    # API.md: ["original"], the entry's text, linkable like any record.
    assert (entry["kind"], entry["variants"]) == ("diary", ["original"])
    assert (entry["size"], entry["content_type"]) == (13, "text/plain; charset=utf-8")
    link = await api.ok("POST", f"/v1/items/{entry['id']}/links", {}, w.co_separate)
    response = await api.client.get(urlsplit(link["url"]).path)
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert (await response.read()).decode() == "Goed gegeten."
    read = await api.ok("GET", f"/v1/items/{entry['id']}", token=w.co_separate)
    assert (read["text"], read["date"], read["photo_ids"]) == (
        "Goed gegeten.",
        "2026-11-21",
        [photo["id"]],
    )
    status, body = await api.call(
        "POST",
        f"/v1/children/{w.child}/items",
        w.staff,
        {"kind": "diary", "date": "2026-11-20", "text": "x", "photo_ids": [photo["id"]]},
    )
    assert (status, body["error"]["code"]) == (400, "invalid_input")
    status, body = await api.call(
        "POST",
        f"/v1/children/{w.child}/items",
        w.staff,
        {"kind": "diary", "date": "2026-11-21", "text": "BSN 111222333"},
    )
    assert (status, body["error"]["code"]) == (422, "bsn_not_stored")
    status, body = await api.call(
        "POST",
        f"/v1/children/{w.child}/items",
        w.staff,
        {"kind": "diary", "date": "2026-11-21", "text": "x" * 20_001},
    )
    assert status == 400


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"kind": "selfie"}, "kind"),
        ({"kind": "photo", "colour": "red"}, "colour"),
        ({"kind": "photo", "taken_at": "yesterday"}, "taken_at"),
        ({"kind": "photo", "bsn": "111222333"}, "citizen service number"),
        ({"kind": "photo", "title": "BSN 111.222.333"}, "citizen service number"),
        ({"kind": "diary"}, "JSON"),
    ],
)
async def test_bad_meta_is_refused(api: Api, meta: dict[str, Any], message: str) -> None:
    w = await world(api)
    await consent(api, w)
    status, body = await upload(api, w.staff, w.child, meta, jpeg_with_secrets())
    assert status in (400, 422)
    assert message in body["error"]["message"]
    await nothing_stored(api)


async def test_multipart_out_of_order_is_refused(api: Api) -> None:
    w = await world(api)
    await consent(api, w)
    body = aiohttp.FormData()
    body.add_field("file", jpeg_with_secrets(), filename="a.jpg")
    body.add_field("meta", json.dumps({"kind": "photo"}))
    status, answer = await api.call("POST", f"/v1/children/{w.child}/items", w.staff, data=body)
    assert (status, answer["error"]["code"]) == (400, "invalid_input")
    status, answer = await api.call(
        "POST",
        f"/v1/children/{w.child}/items",
        w.staff,
        data=b"raw",
        headers={"Content-Type": "application/octet-stream"},
    )
    assert status == 400
    await nothing_stored(api)


async def test_listing_newest_first_with_kinds_and_cursor(api: Api) -> None:
    w = await world(api)
    await consent(api, w)
    await consent(api, w, "diary")
    made = []
    for i in range(5):
        api.clock.now += timedelta(minutes=1)
        _, body = await upload(
            api, w.staff, w.child, {"kind": "photo", "title": f"p{i}"}, jpeg_with_secrets()
        )
        made.append(body["id"])
    api.clock.now += timedelta(minutes=1)
    diary = await api.ok(
        "POST",
        f"/v1/children/{w.child}/items",
        {"kind": "diary", "date": "2026-11-21", "text": "t"},
        w.staff,
    )
    api.clock.now += timedelta(minutes=1)
    _, invoice = await upload(api, w.administration, w.child, {"kind": "invoice"}, PDF)
    page = await api.ok("GET", f"/v1/children/{w.child}/items?limit=3", token=w.parent)
    assert [i["id"] for i in page["items"]] == [invoice["id"], diary["id"], made[4]]
    rest = await api.ok(
        "GET", f"/v1/children/{w.child}/items?limit=3&cursor={page['next_cursor']}", token=w.parent
    )
    assert [i["id"] for i in rest["items"]] == [made[3], made[2], made[1]]
    photos = await api.ok(
        "GET", f"/v1/children/{w.child}/items?kind=photo&limit=50", token=w.parent
    )
    assert [i["id"] for i in photos["items"]] == made[::-1]
    assert photos["next_cursor"] is None
    # Staff see no invoices; a separate-household co-parent neither; the administration only them.
    staff_view = await api.ok("GET", f"/v1/children/{w.child}/items", token=w.staff)
    assert invoice["id"] not in [i["id"] for i in staff_view["items"]]
    separate = await api.ok("GET", f"/v1/children/{w.child}/items", token=w.co_separate)
    assert invoice["id"] not in [i["id"] for i in separate["items"]]
    admin_view = await api.ok("GET", f"/v1/children/{w.child}/items", token=w.administration)
    assert [i["id"] for i in admin_view["items"]] == [invoice["id"]]
    assert (await api.call("GET", f"/v1/items/{invoice['id']}", w.staff))[0] == 404
    for bad in ("limit=0", "limit=abc", "kind=selfie", "cursor=%%%"):
        assert (await api.call("GET", f"/v1/children/{w.child}/items?{bad}", w.parent))[0] == 400
    assert (await api.call("GET", f"/v1/children/{w.child}/items", w.other_staff))[0] == 404


async def test_deleting_destroys_the_key_and_the_blobs(api: Api) -> None:
    w = await world(api)
    await consent(api, w)
    _, photo = await upload(api, w.staff, w.child, {"kind": "photo"}, jpeg_with_secrets())
    _, late = await upload(api, w.staff, w.child, {"kind": "photo"}, jpeg_with_secrets())
    assert (await api.call("DELETE", f"/v1/items/{photo['id']}", w.parent))[1]["error"][
        "code"
    ] == "forbidden"
    assert (await api.call("DELETE", f"/v1/items/{photo['id']}", w.staff))[0] == 204
    status, body = await api.call("GET", f"/v1/items/{photo['id']}", w.parent)
    assert (status, body["error"]["code"]) == (410, "destroyed")
    listing = await api.ok("GET", f"/v1/children/{w.child}/items", token=w.parent)
    [tombstone] = [i for i in listing["items"] if i["id"] == photo["id"]]
    assert {k: v for k, v in tombstone.items() if k != "created_at"} == {
        "id": photo["id"],
        "kind": "photo",
        "destroyed": True,
    }
    keys = [k async for k in api.client.app[STORE].list()]
    assert len(keys) == 3  # only the other photo's three variants remain
    api.clock.now += timedelta(hours=25)
    status, body = await api.call("DELETE", f"/v1/items/{late['id']}", w.staff)
    assert (status, body["error"]["code"]) == (403, "forbidden")
    assert (await api.call("DELETE", f"/v1/items/{late['id']}", w.officer))[0] == 204
    assert [k async for k in api.client.app[STORE].list()] == []
