"""Exports: the whole archive, resumable, only what the guardian may see."""

from __future__ import annotations

import asyncio
import io
import json
import random
import subprocess
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import pyvips
from sqlalchemy import select, update

from tests.files import PDF, mp4_stream
from tests.helpers import damage
from tests.helpers.api import Api, start
from tests.helpers.items import consent, stored, upload
from tests.helpers.memory import RssSampler
from tests.helpers.world import World, second_child, world
from vault.api.resources import DB, KEYS, STORE
from vault.config import Settings
from vault.db.schema import exports
from vault.directory.children import PROFILE
from vault.items import service
from vault.share import export as export_plan

#: Each photo its own flat colour, so a screenshot shows which ones appear.
COLOURS = {"Zandbak": (230, 40, 160), "Schommel": (20, 180, 60)}


def flat_jpeg(colour: tuple[int, int, int], width: int = 320, height: int = 240) -> bytes:
    image = pyvips.Image.black(width, height).new_from_image(list(colour))
    data: bytes = image.copy(interpretation="srgb").cast("uchar").jpegsave_buffer(Q=95)
    return data


async def photo(
    api: Api, w: World, title: str, day: str, child: str | None = None, **meta: Any
) -> str:
    status, item = await upload(
        api,
        w.staff,
        child or w.child,
        {"kind": "photo", "title": title, "taken_at": f"{day}T10:00:00Z", **meta},
        flat_jpeg(COLOURS.get(title, (90, 90, 90))),
        f"{title}.jpg",
    )
    assert status == 201, item
    return str(item["id"])


async def diary(api: Api, w: World, day: str, text: str, photos: list[str]) -> str:
    item = await api.ok(
        "POST",
        f"/v1/children/{w.child}/items",
        {"kind": "diary", "date": day, "text": text, "photo_ids": photos},
        w.staff,
    )
    return str(item["id"])


async def records(api: Api, w: World) -> dict[str, str]:
    api.clock.now = api.clock.now.replace(day=20)
    await consent(api, w)
    await consent(api, w, "diary")
    ids = {
        "zandbak": await photo(api, w, "Zandbak", "2026-11-19"),
        "schommel": await photo(api, w, "Schommel", "2026-11-20"),
    }
    ids["diary19"] = await diary(
        api, w, "2026-11-19", "Noor speelde in de zandbak.", [ids["zandbak"]]
    )
    ids["diary20"] = await diary(api, w, "2026-11-20", "Vandaag <b>geschommeld</b> & gezongen.", [])
    status, invoice = await upload(
        api, w.administration, w.child, {"kind": "invoice", "title": "November"}, PDF, "nov.pdf"
    )
    assert status == 201
    ids["invoice"] = invoice["id"]
    api.clock.now = api.clock.now.replace(day=21)
    return ids


async def export(api: Api, token: str, child: str, **body: Any) -> dict[str, Any]:
    answer = await api.ok("POST", f"/v1/children/{child}/exports", body, token)
    return dict(answer)


async def download(api: Api, url: str, **headers: str) -> tuple[int, Any, bytes]:
    response = await api.client.get(urlsplit(url).path, headers=headers)
    return response.status, response.headers, await response.read()


async def test_a_guardian_downloads_a_complete_archive(api: Api, tmp_path: Path) -> None:
    w = await world(api)
    ids = await records(api, w)
    made = await export(api, w.parent, w.child)
    status, headers, data = await download(api, made["url"])
    assert status == 200
    assert headers["Content-Type"] == "application/zip"
    assert int(headers["Content-Length"]) == made["size"] == len(data)
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None
    names = archive.namelist()
    assert names[:2] == ["index.html", "diary.json"]
    assert "photo/2026-11-19/Zandbak.jpg" in names
    assert "photo/2026-11-20/Schommel.jpg" in names
    assert "invoice/2026-11-20/November.pdf" in names
    # The originals are the sanitised originals the vault keeps.
    assert archive.read("photo/2026-11-19/Zandbak.jpg") == await stored(
        api, ids["zandbak"], "original"
    )
    document = json.loads(archive.read("diary.json"))
    assert document["format"] == "kluis-export"
    assert [e["text"] for e in document["entries"]] == [
        "Noor speelde in de zandbak.",
        "Vandaag <b>geschommeld</b> & gezongen.",
    ]
    assert document["entries"][0]["photo_ids"] == [ids["zandbak"]]
    assert document["consents"]["photo"] is True
    assert {i["id"] for i in document["items"]} == {ids["zandbak"], ids["schommel"], ids["invoice"]}
    page = archive.read("index.html").decode()
    assert "Vandaag &lt;b&gt;geschommeld&lt;/b&gt; &amp; gezongen." in page  # escaped, not markup
    assert "<script" not in page

    # The same bytes every time, and `unzip -t` agrees.
    assert (await download(api, made["url"]))[2] == data
    path = tmp_path / "export.zip"
    path.write_bytes(data)
    tested = await asyncio.to_thread(
        subprocess.run, ["unzip", "-t", str(path)], capture_output=True, text=True, check=False
    )
    assert tested.returncode == 0, tested.stdout
    assert "No errors detected" in tested.stdout


async def test_a_broken_download_resumes_with_identical_bytes(api: Api) -> None:
    w = await world(api)
    await records(api, w)
    made = await export(api, w.parent, w.child)
    _, headers, whole = await download(api, made["url"])
    rng = random.Random(8)
    for offset in sorted(rng.randrange(made["size"]) for _ in range(10)):
        status, part_headers, rest = await download(
            api, made["url"], Range=f"bytes={offset}-", **{"If-Range": headers["ETag"]}
        )
        assert status == 206
        assert part_headers["Content-Range"] == f"bytes {offset}-{made['size'] - 1}/{made['size']}"
        assert rest == whole[offset:]
    assert (await download(api, made["url"], Range=f"bytes={made['size']}-"))[0] == 416


async def test_a_download_resumed_inside_a_large_member_is_byte_identical(api: Api) -> None:
    """A video of several store chunks (15 segments each, vault/storage/base.py):
    ranges that start and end on, beside and between the chunks' edges give
    the bytes of the whole download, and the member's CRC-32 (kept since
    upload) is that of the bytes served."""
    w = await world(api)
    await consent(api, w)
    status, body = await upload(
        api, w.staff, w.child, {"kind": "video", "title": "Lang"}, mp4_stream(4), "v.mp4"
    )
    assert status == 201, body
    made = await export(api, w.parent, w.child)
    _, headers, whole = await download(api, made["url"])
    archive = zipfile.ZipFile(io.BytesIO(whole))
    assert archive.testzip() is None  # the kept CRC-32 matches the bytes served
    info = archive.getinfo("video/2026-11-21/Lang.mp4")
    name_and_extra = len(info.filename.encode()) + len(info.extra)
    data_start = info.header_offset + 30 + name_and_extra
    chunk = 15 * 64 * 1024  # the plaintext of one store chunk
    offsets = [data_start + k * chunk + d for k in range(5) for d in (-1, 0, 1, 4321)]
    for offset in offsets:
        status, _, rest = await download(
            api, made["url"], Range=f"bytes={offset}-", **{"If-Range": headers["ETag"]}
        )
        assert status == 206
        assert rest == whole[offset:], offset
        last = offset + chunk + 17
        status, _, middle = await download(api, made["url"], Range=f"bytes={offset}-{last}")
        assert (status, middle) == (206, whole[offset : last + 1]), offset


async def test_a_member_damaged_midway_ends_the_download_cleanly(api: Api) -> None:
    """A segment of a video that no longer verifies, 2 MiB into it: the
    client gets the archive's bytes up to before it, and a closed connection,
    never a byte that did not verify nor a wait."""
    w = await world(api)
    await consent(api, w)
    status, body = await upload(
        api, w.staff, w.child, {"kind": "video", "title": "Kapot"}, mp4_stream(4), "v.mp4"
    )
    assert status == 201, body
    made = await export(api, w.parent, w.child)
    whole = (await download(api, made["url"]))[2]
    blob = (await service.blobs_of(api.client.app[DB], body["id"]))["original"].blob_key
    await damage.flip_byte(api.client.app[STORE], blob, damage.segment_offset(32))

    async def get() -> tuple[int, bytes, bool]:
        async with api.client.session.get(api.client.make_url(urlsplit(made["url"]).path)) as r:
            received = bytearray()
            try:
                async for chunk in r.content.iter_any():
                    received += chunk
            except aiohttp.ClientPayloadError:
                return r.status, bytes(received), True
            return r.status, bytes(received), False

    status, received, cut = await asyncio.wait_for(get(), 10)
    assert (status, cut) == (200, True)
    assert 0 < len(received) < len(whole)
    assert whole.startswith(received)
    info = zipfile.ZipFile(io.BytesIO(whole)).getinfo("video/2026-11-21/Kapot.mp4")
    assert len(received) <= info.header_offset + 100 + 32 * damage.SEGMENT


async def test_each_guardian_gets_only_what_they_may_see(api: Api) -> None:
    w = await world(api)
    ids = await records(api, w)
    mila, mila_mother = await second_child(api, w)
    group = await photo(api, w, "Samen", "2026-11-20", tagged_children=[mila])
    api.clock.now = api.clock.now.replace(day=21)

    async def contents(token: str) -> set[str]:
        made = await export(api, token, w.child)
        data = (await download(api, made["url"]))[2]
        document = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("diary.json"))
        return {item["id"] for item in document["items"]}

    assert ids["invoice"] in await contents(w.parent)
    separate = await contents(w.co_separate)
    assert ids["invoice"] not in separate
    assert ids["zandbak"] in separate
    assert group in await contents(w.parent)
    # Mila's mother withdraws photo consent: Noor's family no longer gets the group photo.
    await api.ok("PUT", f"/v1/children/{mila}/consents/photo", {"granted": False}, mila_mother)
    assert group not in await contents(w.parent)
    assert ids["zandbak"] in await contents(w.parent)
    # Only the diary, when asked.
    made = await export(api, w.parent, w.child, kinds=["diary"])
    data = (await download(api, made["url"]))[2]
    assert zipfile.ZipFile(io.BytesIO(data)).namelist() == ["index.html", "diary.json"]

    for token, code in [
        (w.staff, "forbidden"),
        (w.stranger_parent, "not_found"),
        (w.manager, "forbidden"),
    ]:
        status, body = await api.call("POST", f"/v1/children/{w.child}/exports", token, {})
        assert body["error"]["code"] == code
    status, body = await api.call(
        "POST", f"/v1/children/{w.child}/exports", w.parent, {"kinds": ["x"]}
    )
    assert (status, body["error"]["code"]) == (400, "invalid_input")
    status, body = await api.call(
        "POST", f"/v1/children/{w.child}/exports", w.parent, {"kinds": []}
    )
    assert (status, body["error"]["code"]) == (400, "invalid_input")
    assert body["error"]["message"].startswith("The field 'kinds' must list at least one entry")


async def test_the_link_is_checked_again_at_every_use(api: Api) -> None:
    w = await world(api)
    ids = await records(api, w)
    made = await export(api, w.parent, w.child)
    assert (await download(api, made["url"]))[0] == 200
    # A record in it destroyed since: the archive cannot be the same any more.
    await api.ok("DELETE", f"/v1/items/{ids['schommel']}", token=w.officer)
    status, _, body = await download(api, made["url"])
    assert (status, json.loads(body)["error"]["code"]) == (410, "destroyed")
    assert "new export" in json.loads(body)["error"]["message"]
    # A fresh export leaves it out and works.
    again = await export(api, w.parent, w.child)
    assert (await download(api, again["url"]))[0] == 200
    # The window closes: 8 weeks after the contract ended.
    await api.ok(
        "PUT",
        f"/v1/children/{w.child}/placement",
        {"start_date": "2024-01-01", "end_date": "2026-11-30"},
    )
    api.clock.now = api.clock.now.replace(year=2027, month=2)
    status, _, body = await download(api, again["url"])
    assert status == 403  # expired or outside the window: either way, nothing
    assert json.loads(body)["error"]["code"] in ("link_expired", "outside_window")
    # A tampered link.
    path = urlsplit(again["url"]).path
    assert (
        await api.client.get(path[:-2] + ("A" if path[-2] != "A" else "B") + path[-1])
    ).status == 403


def refusal(status: int, body: bytes) -> tuple[int, str, str]:
    error = json.loads(body)["error"]
    return status, error["code"], error["message"]


async def replace_file(api: Api, w: World, item_id: str, colour: tuple[int, int, int]) -> None:
    form = aiohttp.FormData()
    form.add_field("file", flat_jpeg(colour, 200, 150), filename="nieuw.jpg")
    status, body = await api.call("PUT", f"/v1/items/{item_id}/file", w.staff, data=form)
    assert status == 200, body


async def test_a_correction_leaves_exports_without_that_record_as_they_are(api: Api) -> None:
    """A diary-only export does not hold the photos: their titles corrected, it
    still downloads, byte for byte (it was deleted with every change before)."""
    w = await world(api)
    ids = await records(api, w)
    made = await export(api, w.parent, w.child, kinds=["diary"])
    status, headers, before = await download(api, made["url"])
    assert status == 200
    await api.ok("PATCH", f"/v1/items/{ids['zandbak']}", {"title": "Het kasteel"}, w.staff)
    status, _, after = await download(api, made["url"])
    assert (status, after) == (200, before)
    status, _, rest = await download(
        api, made["url"], Range="bytes=100-", **{"If-Range": headers["ETag"]}
    )
    assert (status, rest) == (206, before[100:])


async def test_a_correction_that_changes_nothing_leaves_the_record_and_exports_alone(
    api: Api,
) -> None:
    """A diary entry's text sent again as it is, a photo's title as it is:
    the record keeps its version, and an export holding both still
    downloads, byte for byte."""
    w = await world(api)
    ids = await records(api, w)
    made = await export(api, w.parent, w.child)
    status, _, before = await download(api, made["url"])
    assert status == 200
    entry = await api.ok("GET", f"/v1/items/{ids['diary20']}", token=w.staff)
    same = await api.ok("PATCH", f"/v1/items/{ids['diary20']}", {"text": entry["text"]}, w.staff)
    assert (same["version"], same["text"]) == (entry["version"], entry["text"])
    picture = await api.ok("GET", f"/v1/items/{ids['zandbak']}", token=w.staff)
    again = await api.ok(
        "PATCH", f"/v1/items/{ids['zandbak']}", {"title": picture["title"]}, w.staff
    )
    assert again["version"] == picture["version"]
    status, _, after = await download(api, made["url"])
    assert (status, after) == (200, before)


async def test_a_record_changed_since_the_export_stops_its_link(api: Api) -> None:
    """A title corrected, a file replaced, a diary entry deleted since the
    export was made: its bytes are not what the archive would be now, so the
    link answers 410 `destroyed` and says to ask for a new one, on GET, on
    HEAD and on a resumed range alike."""
    w = await world(api)
    ids = await records(api, w)

    async def refused(url: str) -> None:
        status, _, body = await download(api, url)
        status, code, message = refusal(status, body)
        assert (status, code) == (410, "destroyed")
        assert "new export" in message
        head = await api.client.head(urlsplit(url).path)
        assert head.status == 410

    # A photo's title corrected.
    made = await export(api, w.parent, w.child)
    assert (await download(api, made["url"]))[0] == 200
    await api.ok("PATCH", f"/v1/items/{ids['zandbak']}", {"title": "Het kasteel"}, w.staff)
    await refused(made["url"])
    status, _, body = await download(api, made["url"])
    assert "changed since" in refusal(status, body)[2]
    # A photo's file replaced; a resumed download gets the refusal, not other bytes.
    made = await export(api, w.parent, w.child)
    status, headers, whole = await download(api, made["url"])
    assert status == 200
    await replace_file(api, w, ids["schommel"], (10, 10, 200))
    await refused(made["url"])
    status, _, body = await download(
        api, made["url"], Range=f"bytes={len(whole) // 2}-", **{"If-Range": headers["ETag"]}
    )
    assert refusal(status, body)[:2] == (410, "destroyed")
    # A diary entry (only in diary.json and index.html) deleted.
    made = await export(api, w.parent, w.child, kinds=["diary"])
    assert (await download(api, made["url"]))[0] == 200
    await api.ok("DELETE", f"/v1/items/{ids['diary20']}", token=w.officer)
    await refused(made["url"])
    # A diary entry's text corrected.
    made = await export(api, w.parent, w.child, kinds=["diary"])
    await api.ok("PATCH", f"/v1/items/{ids['diary19']}", {"text": "Anders."}, w.staff)
    await refused(made["url"])
    # A fresh export has the records as they are now.
    made = await export(api, w.parent, w.child)
    data = (await download(api, made["url"]))[2]
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert "photo/2026-11-19/Het kasteel.jpg" in archive.namelist()
    assert [e["text"] for e in json.loads(archive.read("diary.json"))["entries"]] == ["Anders."]


async def test_retagging_a_photo_stops_only_the_exports_it_changes(api: Api) -> None:
    """A change of tags alone leaves the record's bytes as they were: Noor's
    export with the group photo still downloads; Mila's, once she is untagged
    from it, holds a record that is no longer hers to see and stops."""
    w = await world(api)
    await records(api, w)
    mila, mother = await second_child(api, w)
    group = await photo(api, w, "Samen", "2026-11-20", tagged_children=[mila])
    noors = await export(api, w.parent, w.child)
    status, _, before = await download(api, noors["url"])
    assert status == 200
    milas = await export(api, mother, mila)
    status, _, data = await download(api, milas["url"])
    assert status == 200
    document = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("diary.json"))
    assert [item["id"] for item in document["items"]] == [group]
    await api.ok("PATCH", f"/v1/items/{group}", {"tagged_children": []}, w.staff)
    status, _, after = await download(api, noors["url"])
    assert (status, after) == (200, before)
    status, _, body = await download(api, milas["url"])
    status, code, message = refusal(status, body)
    assert (status, code) == (404, "not_found")
    assert "new export" in message
    # Tagged again: the same record, the same bytes.
    await api.ok("PATCH", f"/v1/items/{group}", {"tagged_children": [mila]}, w.staff)
    assert (await download(api, milas["url"]))[2] == data


async def test_an_export_of_the_older_format_asks_for_a_new_one(api: Api) -> None:
    """A manifest without stamps (made before them) cannot tell whether its
    records changed: refused, not served unchecked (it lives 24 h at most)."""
    w = await world(api)
    await records(api, w)
    made = await export(api, w.parent, w.child)
    app = api.client.app
    async with app[DB].begin() as conn:
        row = (await conn.execute(select(exports))).one()
        plan = export_plan.Plan.from_json(
            await app[KEYS].open_value(w.child, PROFILE, f"export:{row.id}", row.manifest)
        )
        old = json.dumps(json.loads(plan.to_json())["entries"]).encode()
        sealed = await app[KEYS].seal_value(w.child, PROFILE, f"export:{row.id}", old)
        await conn.execute(update(exports).values(manifest=sealed))
    status, _, body = await download(api, made["url"])
    status, code, message = refusal(status, body)
    assert (status, code) == (410, "destroyed")
    assert "new export" in message


CHANGED = "A record in this export was changed since it was made; ask for a new export."


def page(data: bytes) -> str:
    return zipfile.ZipFile(io.BytesIO(data)).read("index.html").decode()


async def test_a_childs_name_corrected_since_the_export_stops_its_link(api: Api) -> None:
    """The child's first name is on index.html and in diary.json, and is no
    record: corrected by the administration since the export was made, the
    old link answers 410 like a changed record (GET, HEAD, a resumed range)
    instead of the old name; a new export has the corrected one. Corrections
    the archive does not show (last name, birth date, group) leave it byte
    for byte."""
    w = await world(api)
    await records(api, w)
    made = await export(api, w.parent, w.child)
    status, headers, before = await download(api, made["url"])
    assert status == 200
    assert "<h1>Dagboek van Noor</h1>" in page(before)
    await api.ok(
        "PATCH",
        f"/v1/children/{w.child}",
        {"last_name": "de Vries", "birth_date": "2023-04-03", "group_id": w.other_group},
    )
    assert (await download(api, made["url"]))[::2] == (200, before)
    await api.ok("PATCH", f"/v1/children/{w.child}", {"first_name": "Nora"})
    status, _, body = await download(api, made["url"])
    assert status == 410, "served again: " + page(body).split("<h1>")[1][:20]
    assert refusal(status, body) == (410, "destroyed", CHANGED)
    assert (await api.client.head(urlsplit(made["url"]).path)).status == 410
    status, _, body = await download(
        api, made["url"], Range=f"bytes={len(before) // 2}-", **{"If-Range": headers["ETag"]}
    )
    assert refusal(status, body) == (410, "destroyed", CHANGED)
    # A new export shows the corrected name, on the page and in diary.json.
    again = await export(api, w.parent, w.child)
    status, _, data = await download(api, again["url"])
    assert status == 200
    assert "<title>Dagboek van Nora</title>" in page(data)
    assert "Dagboek van Noor" not in page(data)
    document = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("diary.json"))
    assert document["child"] == {"id": w.child, "first_name": "Nora"}
    # Corrected back: the name the old export shows is the child's again.
    await api.ok("PATCH", f"/v1/children/{w.child}", {"first_name": "Noor"})
    assert (await download(api, made["url"]))[::2] == (200, before)


async def test_an_export_made_before_name_stamps_is_checked_by_its_page(api: Api) -> None:
    """An export planned by the previous version has no stamp of its pages:
    it still downloads byte for byte, and the name in its diary.json is what
    a correction is checked against."""
    w = await world(api)
    await records(api, w)
    made = await export(api, w.parent, w.child)
    status, headers, before = await download(api, made["url"])
    app = api.client.app
    async with app[DB].begin() as conn:
        row = (await conn.execute(select(exports))).one()
        label = f"export:{row.id}"
        document = json.loads(await app[KEYS].open_value(w.child, PROFILE, label, row.manifest))
        assert document.pop("pages")
        sealed = await app[KEYS].seal_value(w.child, PROFILE, label, json.dumps(document).encode())
        await conn.execute(update(exports).values(manifest=sealed))
    assert (await download(api, made["url"]))[::2] == (200, before)
    status, _, rest = await download(
        api, made["url"], Range="bytes=100-", **{"If-Range": headers["ETag"]}
    )
    assert (status, rest) == (206, before[100:])
    await api.ok("PATCH", f"/v1/children/{w.child}", {"first_name": "Nora"})
    status, _, body = await download(api, made["url"])
    assert refusal(status, body) == (410, "destroyed", CHANGED)


async def test_a_childs_name_destroyed_takes_the_export_with_it(api: Api) -> None:
    """A child's name goes only with its profile key (the longest term): the
    plan is sealed under that key, so a link still alive then shows nothing."""
    w = await world(api)
    await records(api, w)
    made = await export(api, w.parent, w.child)
    assert (await download(api, made["url"]))[0] == 200
    await api.ok(
        "PUT",
        f"/v1/children/{w.child}/placement",
        {"start_date": "2024-01-01", "end_date": "2026-11-30"},
    )
    report = await api.ok("POST", "/v1/retention/run", {"now": "2034-01-10T12:00:00Z"}, w.officer)
    assert report["destroyed"]
    for headers in ({}, {"Range": "bytes=100-"}):
        status, _, body = await download(api, made["url"], **headers)
        status, code, message = refusal(status, body)
        assert (status, code) == (410, "destroyed")
        assert "Noor" not in message
    again = await api.call("POST", f"/v1/children/{w.child}/exports", w.parent, {})
    assert again[0] in (403, 410)


async def test_the_offline_diary_opens_in_a_browser(
    api: Api, tmp_path: Path, chromium: str
) -> None:
    w = await world(api)
    await records(api, w)
    made = await export(api, w.parent, w.child)
    data = (await download(api, made["url"]))[2]
    folder = tmp_path / "unzipped"
    zipfile.ZipFile(io.BytesIO(data)).extractall(folder)
    index = folder / "index.html"
    shot = Path("artifacts") / "export-index.png"
    shot.parent.mkdir(exist_ok=True)
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--allow-file-access-from-files",
    ]
    dom = await asyncio.to_thread(
        subprocess.run,
        [chromium, *flags, "--dump-dom", index.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Noor speelde in de zandbak." in dom.stdout
    assert "19 november 2026" in dom.stdout
    assert "20 november 2026" in dom.stdout
    done = await asyncio.to_thread(
        subprocess.run,
        [
            "chromium",
            *flags,
            f"--screenshot={shot.resolve()}",
            "--window-size=1000,1400",
            index.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert shot.exists(), done.stderr[-2000:]
    # Both photos are drawn: their flat colours are on the screen.
    image = pyvips.Image.new_from_file(str(shot)).extract_band(0, n=3)
    for colour in COLOURS.values():
        mask = (image - list(colour)).abs().bandor() < 12
        found = mask.avg() / 255 * image.width * image.height
        assert found > 2000, f"a photo of colour {colour} is not on the page"


@pytest.mark.slow
@pytest.mark.sqlite
@pytest.mark.localdisk
async def test_a_2gb_export_keeps_memory_bounded(tmp_path: Path, aiohttp_client: Any) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    api = await start(settings, aiohttp_client)
    w = await world(api)
    await consent(api, w)
    for name in ("eerste", "tweede"):
        status, body = await upload(
            api, w.staff, w.child, {"kind": "video", "title": name}, mp4_stream(1024), "v.mp4"
        )
        assert status == 201, body
    made = await export(api, w.parent, w.child)
    assert made["size"] > 2 * 1024**3
    path = tmp_path / "export.zip"
    with RssSampler() as memory, path.open("wb") as out:
        response = await api.client.get(urlsplit(made["url"]).path)
        assert response.status == 200
        async for chunk in response.content.iter_chunked(1024 * 1024):
            out.write(chunk)
    assert path.stat().st_size == made["size"]
    # Client and server share this process: both stream.
    assert memory.growth_mb < 150, memory.growth_mb
    with zipfile.ZipFile(path) as archive:
        assert await asyncio.to_thread(archive.testzip) is None
        assert sorted(archive.namelist())[-2:] == [
            "video/2026-11-21/eerste.mp4",
            "video/2026-11-21/tweede.mp4",
        ]
