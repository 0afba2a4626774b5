"""A photo shows when it was taken: the EXIF DateTimeOriginal of the upload
becomes the item's ``taken_at`` (unless the uploader gave one), while the
stored files still carry no metadata at all. Every ``taken_at`` answers in
UTC (``…Z``, API.md's convention): a time without a zone, from a camera or
a client, is read in ``uploads.camera_time_zone`` (Europe/Amsterdam), and
the day of a photo (its diary entry, its export folder) is that zone's."""

from __future__ import annotations

import io
import json
import struct
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from PIL import Image
from sqlalchemy import update

from tests.files import camera_heic, camera_jpeg
from tests.helpers.api import Api
from tests.helpers.items import consent, upload
from tests.helpers.world import World, world
from tests.media.tools import exiftool, revealing
from vault.api.resources import DB, KEYS, READER
from vault.crypto.envelope import seal_item_record
from vault.db.schema import items
from vault.items import service

_EXIF_IFD, _DATE_TIME_ORIGINAL, _OFFSET_TIME_ORIGINAL = 0x8769, 0x9003, 0x9011


def photo(kind: str, taken: str, offset: str | None = None) -> bytes:
    """A real photo (``kind`` "JPEG" or "PNG") whose EXIF says when it was
    taken, written by Pillow as a camera writes it."""
    exif = Image.Exif()
    exif[0x010F] = "Apple"
    ifd = exif.get_ifd(_EXIF_IFD)
    ifd[_DATE_TIME_ORIGINAL] = taken
    if offset is not None:
        ifd[_OFFSET_TIME_ORIGINAL] = offset
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 40, 40)).save(out, kind, exif=exif.tobytes())
    return out.getvalue()


async def stored_photo(
    api: Api, w: World, data: bytes, name: str = "p.jpg", **meta: Any
) -> dict[str, Any]:
    status, item = await upload(api, w.staff, w.child, {"kind": "photo", **meta}, data, name)
    assert status == 201, item
    shown: dict[str, Any] = await api.ok("GET", f"/v1/items/{item['id']}", token=w.parent)
    return shown


async def served_clean(api: Api, w: World, item_id: str, folder: Path) -> None:
    """Every variant the parent can fetch has no metadata left, no date either."""
    for variant in ("original", "preview", "thumb"):
        answer = await api.ok("POST", f"/v1/items/{item_id}/links", {"variant": variant}, w.parent)
        response = await api.client.get(urlsplit(answer["url"]).path)
        assert response.status == 200
        out = folder / f"{item_id}-{variant}"
        out.write_bytes(await response.read())
        assert revealing(exiftool(out)) == {}, variant
        assert b"2026:05:01" not in out.read_bytes()


async def test_a_jpeg_shows_when_it_was_taken_and_comes_back_without_metadata(
    api: Api, tmp_path: Path
) -> None:
    w = await world(api)
    await consent(api, w)
    with_offset = await stored_photo(api, w, photo("JPEG", "2026:05:01 10:15:30", "+02:00"))
    assert with_offset["taken_at"] == "2026-05-01T08:15:30Z"
    await served_clean(api, w, with_offset["id"], tmp_path)
    # A camera that does not say its zone: its clock is the camera zone's (summer time).
    phone = await stored_photo(api, w, camera_jpeg(tmp_path).read_bytes())
    assert phone["taken_at"] == "2026-05-01T08:00:00Z"
    await served_clean(api, w, phone["id"], tmp_path)


async def test_the_uploaders_taken_at_wins_over_the_exif_one(api: Api) -> None:
    w = await world(api)
    await consent(api, w)
    data = photo("JPEG", "2026:05:01 10:15:30", "+02:00")
    shown = await stored_photo(api, w, data, taken_at="2026-04-30")
    assert shown["taken_at"] == "2026-04-30"


@pytest.mark.parametrize(
    ("taken", "offset", "expected"),
    [
        ("0000:00:00 00:00:00", None, None),  # a camera without a clock
        ("2026:06:31 10:00:00", None, None),  # no such day
        ("gisteren", None, None),
        ("2026:05:01 10:15:30", "+99:99", "2026-05-01T08:15:30Z"),  # an offset that is none
        ("2026:05:01 10:15:30", "-05:00", "2026-05-01T15:15:30Z"),
    ],
)
async def test_an_unreadable_exif_date_just_gives_none(
    api: Api, taken: str, offset: str | None, expected: str | None
) -> None:
    w = await world(api)
    await consent(api, w)
    shown = await stored_photo(api, w, photo("JPEG", taken, offset))
    assert shown.get("taken_at") == expected


def exif_by_hand(*, exif_at: int = 26, date_at: int = 44, entries: int = 1, kind: int = 2) -> bytes:
    """An EXIF payload as a camera lays it out (IFD0 pointing at the EXIF IFD,
    that at its DateTimeOriginal), with the pointers and counts given."""
    tiff = b"II*\x00" + struct.pack("<IH", 8, 1)
    tiff += struct.pack("<HHII", _EXIF_IFD, 4, 1, exif_at) + struct.pack("<I", 0)
    tiff += struct.pack("<H", entries)
    tiff += struct.pack("<HHII", _DATE_TIME_ORIGINAL, kind, 20, date_at) + struct.pack("<I", 0)
    return b"Exif\x00\x00" + tiff + b"2026:05:01 10:15:30\x00"


def with_exif(payload: bytes) -> bytes:
    """A JPEG with ``payload`` as its EXIF APP1 segment, as it was given."""
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (40, 40, 200)).save(out, "JPEG")
    data = out.getvalue()
    return data[:2] + b"\xff\xe1" + struct.pack(">H", 2 + len(payload)) + payload + data[2:]


async def test_an_exif_laid_out_by_hand_is_read(api: Api) -> None:
    w = await world(api)
    await consent(api, w)
    shown = await stored_photo(api, w, with_exif(exif_by_hand()))
    assert shown["taken_at"] == "2026-05-01T08:15:30Z"


@pytest.mark.parametrize(
    "broken",
    [
        {"exif_at": 0xFFFFFF00},  # the EXIF IFD beyond the segment
        {"date_at": 0x7FFFFFF0},  # the date beyond the segment
        {"exif_at": 60},  # the EXIF IFD cut short by the segment's end
        {"entries": 0},  # an EXIF IFD that lists nothing
        {"kind": 7},  # the date not as text
    ],
)
async def test_a_broken_exif_segment_stores_the_photo_without_a_date(
    api: Api, broken: dict[str, int], tmp_path: Path
) -> None:
    w = await world(api)
    await consent(api, w)
    shown = await stored_photo(api, w, with_exif(exif_by_hand(**broken)))
    assert shown.get("taken_at") is None
    await served_clean(api, w, shown["id"], tmp_path)


async def test_png_and_heic_show_when_they_were_taken(api: Api, tmp_path: Path) -> None:
    w = await world(api)
    await consent(api, w)
    png = await stored_photo(api, w, photo("PNG", "2026:05:01 09:00:00", "+01:00"), "p.png")
    assert png["taken_at"] == "2026-05-01T08:00:00Z"
    await served_clean(api, w, png["id"], tmp_path)
    heic = await stored_photo(api, w, camera_heic(tmp_path).read_bytes(), "p.heic")
    assert heic["taken_at"] == "2026-05-01T08:00:00Z"
    await served_clean(api, w, heic["id"], tmp_path)


async def test_the_exif_day_lets_a_later_upload_join_that_days_diary(api: Api) -> None:
    """Uploaded days later, a photo of 1 May belongs in the diary of 1 May."""
    w = await world(api)
    await consent(api, w)
    await consent(api, w, "diary")
    shown = await stored_photo(api, w, photo("JPEG", "2026:05:01 10:15:30", "+02:00"))
    assert not api.clock.now.isoformat().startswith("2026-05-01")
    entry = {"kind": "diary", "date": "2026-05-01", "text": "Zandbak", "photo_ids": [shown["id"]]}
    await api.ok("POST", f"/v1/children/{w.child}/items", entry, w.staff)


async def test_a_new_file_leaves_a_corrected_date_as_it_is(api: Api) -> None:
    w = await world(api)
    await consent(api, w)
    shown = await stored_photo(api, w, photo("JPEG", "2026:05:01 10:15:30", "+02:00"))
    path = f"/v1/items/{shown['id']}"
    await api.ok("PATCH", path, {"taken_at": "2026-05-02"}, w.staff)
    body = aiohttp.FormData()
    body.add_field("file", photo("JPEG", "2026:05:03 08:00:00"), filename="nieuw.jpg")
    status, replaced = await api.call("PUT", f"{path}/file", w.staff, data=body)
    assert status == 200, replaced
    assert (replaced["version"], replaced["taken_at"]) == (2, "2026-05-02")


@pytest.mark.parametrize(
    ("taken", "offset", "expected"),
    [
        ("2026:11:20 14:03:00", "+01:00", "2026-11-20T13:03:00Z"),  # the offset the camera says
        ("2026:11:20 14:03:00", None, "2026-11-20T13:03:00Z"),  # winter: CET, +01:00
        ("2026:07:01 14:03:00", None, "2026-07-01T12:03:00Z"),  # summer: CEST, +02:00
        ("2026:03:29 02:30:00", None, "2026-03-29T01:30:00Z"),  # in the gap: the offset before
        ("2026:10:25 02:30:00", None, "2026-10-25T00:30:00Z"),  # in the fold: the first (+02:00)
    ],
)
async def test_the_exif_time_answers_in_utc(
    api: Api, taken: str, offset: str | None, expected: str
) -> None:
    w = await world(api)
    await consent(api, w)
    shown = await stored_photo(api, w, photo("JPEG", taken, offset))
    assert shown["taken_at"] == expected


@pytest.mark.uploads(camera_time_zone="America/New_York")
async def test_the_camera_zone_is_a_setting(api: Api) -> None:
    w = await world(api)
    await consent(api, w)
    shown = await stored_photo(api, w, photo("JPEG", "2026:11:20 14:03:00"))
    assert shown["taken_at"] == "2026-11-20T19:03:00Z"
    given = await stored_photo(
        api, w, photo("JPEG", "2026:11:20 14:03:00"), taken_at="2026-11-20T09:00:00"
    )
    assert given["taken_at"] == "2026-11-20T14:00:00Z"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2026-11-20T14:03:00Z", "2026-11-20T14:03:00Z"),
        ("2026-11-20T14:03:00+00:00", "2026-11-20T14:03:00Z"),
        ("2026-11-20T15:03:00+01:00", "2026-11-20T14:03:00Z"),
        ("2026-11-20T09:03:00-05:00", "2026-11-20T14:03:00Z"),
        ("2026-11-20T15:03:00", "2026-11-20T14:03:00Z"),  # zone-less: the camera zone's clock
        ("2026-11-20 15:03:00", "2026-11-20T14:03:00Z"),
        ("2026-03-29T02:30:00", "2026-03-29T01:30:00Z"),  # the gap
        ("2026-10-25T02:30:00", "2026-10-25T00:30:00Z"),  # the fold
        ("2026-11-20", "2026-11-20"),  # a day stays a day
    ],
)
async def test_a_clients_taken_at_answers_in_utc(api: Api, given: str, expected: str) -> None:
    w = await world(api)
    await consent(api, w)
    data = photo("JPEG", "2026:05:01 10:15:30", "+02:00")
    shown = await stored_photo(api, w, data, taken_at=given)
    assert shown["taken_at"] == expected
    path = f"/v1/items/{shown['id']}"
    corrected = await api.ok("PATCH", path, {"taken_at": given}, w.staff)
    assert corrected["taken_at"] == expected
    assert (await api.ok("GET", path, token=w.parent))["taken_at"] == expected


async def test_a_correction_answers_in_utc(api: Api) -> None:
    w = await world(api)
    await consent(api, w)
    shown = await stored_photo(api, w, photo("JPEG", "2026:05:01 10:15:30", "+02:00"))
    path = f"/v1/items/{shown['id']}"
    for given, expected in [
        ("2026-05-02T09:00:00", "2026-05-02T07:00:00Z"),
        ("2026-05-02T09:00:00+02:00", "2026-05-02T07:00:00Z"),
        ("2026-05-02T07:00:00Z", "2026-05-02T07:00:00Z"),
    ]:
        corrected = await api.ok("PATCH", path, {"taken_at": given}, w.staff)
        assert corrected["taken_at"] == expected
    status, refused = await api.call("PATCH", path, w.staff, json={"taken_at": "2026-05-02T25:00"})
    assert status == 400
    assert refused["error"]["code"] == "invalid_input"


@pytest.mark.parametrize(
    "given",
    [
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "2026-11-20T14:03:00+25:00",
        # UTC can write it, the organisation's clocks (Amsterdam, 10000-01-01) cannot.
        "9999-12-31T23:59:59Z",
    ],
)
async def test_a_taken_at_utc_cannot_write_is_refused(api: Api, given: str) -> None:
    w = await world(api)
    await consent(api, w)
    status, refused = await upload(
        api,
        w.staff,
        w.child,
        {"kind": "photo", "taken_at": given},
        photo("JPEG", "2026:05:01 10:15:30"),
    )
    assert status == 400, refused
    assert refused["error"]["code"] == "invalid_input"
    assert "taken_at" in refused["error"]["message"]
    shown = await stored_photo(api, w, photo("JPEG", "2026:05:01 10:15:30"))
    status, refused = await api.call(
        "PATCH", f"/v1/items/{shown['id']}", w.staff, json={"taken_at": given}
    )
    assert status == 400, refused
    assert refused["error"]["code"] == "invalid_input"


async def reseal_taken_at(api: Api, item_id: str, taken_at: str) -> None:
    """Write the item's metadata as the vault did before taken_at was UTC."""
    app = api.client.app
    loaded = await service.load(app[READER], item_id)
    assert loaded is not None
    key = await app[KEYS].open_item_key(item_id)
    meta = {**service.open_meta(key, loaded.record, loaded.sealed_meta), "taken_at": taken_at}
    sealed = seal_item_record(key, item_id, service.META_LABEL, json.dumps(meta).encode())
    async with app[DB].begin() as conn:
        await conn.execute(update(items).where(items.c.id == item_id).values(meta=sealed))


@pytest.mark.parametrize(
    ("old", "expected"),
    [
        ("2026-11-20T14:03:00", "2026-11-20T13:03:00Z"),  # an EXIF time without offset
        ("2026-11-20T14:03:00+01:00", "2026-11-20T13:03:00Z"),  # an EXIF time with one
        ("2026-11-20T13:03:00+00:00", "2026-11-20T13:03:00Z"),  # a client's Z
    ],
)
async def test_a_record_stored_before_answers_in_utc_too(api: Api, old: str, expected: str) -> None:
    w = await world(api)
    await consent(api, w)
    shown = await stored_photo(api, w, photo("JPEG", "2026:05:01 10:15:30", "+02:00"))
    await reseal_taken_at(api, shown["id"], old)
    again = await api.ok("GET", f"/v1/items/{shown['id']}", token=w.parent)
    assert again["taken_at"] == expected


async def diary_with(api: Api, w: World, day: str, photo_id: str) -> tuple[int, Any]:
    entry = {"kind": "diary", "date": day, "text": "Laat op", "photo_ids": [photo_id]}
    return await api.call("POST", f"/v1/children/{w.child}/items", w.staff, json=entry)


@pytest.mark.parametrize(
    ("taken_at", "day", "not_day"),
    [
        ("2026-11-20T22:30:00Z", "2026-11-20", "2026-11-21"),  # 23:30 in Amsterdam
        ("2026-11-20T23:30:00Z", "2026-11-21", "2026-11-20"),  # 00:30 the next day
        ("2026-11-20T23:30:00", "2026-11-20", "2026-11-21"),  # the camera zone's 23:30
        ("2026-11-21T00:30:00+01:00", "2026-11-21", "2026-11-20"),
    ],
)
async def test_a_photo_near_midnight_belongs_to_its_local_days_diary(
    api: Api, taken_at: str, day: str, not_day: str
) -> None:
    w = await world(api)
    await consent(api, w)
    await consent(api, w, "diary")
    shown = await stored_photo(api, w, photo("JPEG", "2026:05:01 10:15:30"), taken_at=taken_at)
    status, refused = await diary_with(api, w, not_day, shown["id"])
    assert status == 400, refused
    assert refused["error"]["code"] == "invalid_input"
    status, entry = await diary_with(api, w, day, shown["id"])
    assert status == 201, entry


async def test_an_old_record_and_one_without_a_date_are_of_their_local_day(api: Api) -> None:
    w = await world(api)
    await consent(api, w)
    await consent(api, w, "diary")
    # Stored before taken_at was UTC: 23:30 UTC with its offset, 00:30 in Amsterdam.
    old = await stored_photo(api, w, photo("JPEG", "2026:05:01 10:15:30"))
    await reseal_taken_at(api, old["id"], "2026-11-20T23:30:00+00:00")
    assert (await diary_with(api, w, "2026-11-20", old["id"]))[0] == 400
    assert (await diary_with(api, w, "2026-11-21", old["id"]))[0] == 201
    # No EXIF date: the day it was added, 23:30 UTC on the 21st being the 22nd here.
    api.clock.now = datetime(2026, 11, 21, 23, 30, tzinfo=UTC)
    status, item = await upload(api, w.staff, w.child, {"kind": "photo"}, with_exif(b"Exif\0\0"))
    assert status == 201, item
    assert (await diary_with(api, w, "2026-11-21", item["id"]))[0] == 400
    assert (await diary_with(api, w, "2026-11-22", item["id"]))[0] == 201


async def test_an_export_files_a_photo_under_its_local_day(api: Api) -> None:
    w = await world(api)
    await consent(api, w)
    late = await stored_photo(api, w, photo("JPEG", "2026:11:21 00:30:00"), "laat.jpg")
    early = await stored_photo(
        api, w, photo("JPEG", "2026:05:01 10:15:30"), "vroeg.jpg", taken_at="2026-11-20T22:30:00Z"
    )
    old = await stored_photo(api, w, photo("JPEG", "2026:05:01 10:15:30"), "oud.jpg")
    await reseal_taken_at(api, old["id"], "2026-11-20T23:45:00+00:00")
    made = await api.ok("POST", f"/v1/children/{w.child}/exports", {}, w.parent)
    response = await api.client.get(urlsplit(made["url"]).path)
    assert response.status == 200
    archive = zipfile.ZipFile(io.BytesIO(await response.read()))
    names = archive.namelist()
    assert "photo/2026-11-21/laat.jpg" in names  # 23:30Z on the 20th
    assert "photo/2026-11-20/vroeg.jpg" in names  # 23:30 in Amsterdam
    assert "photo/2026-11-21/oud.jpg" in names
    # The archive's file times are the camera zone's clock, as its folders.
    assert archive.getinfo("photo/2026-11-21/laat.jpg").date_time == (2026, 11, 21, 0, 30, 0)
    document = json.loads(archive.read("diary.json"))
    taken = {item["id"]: item["taken_at"] for item in document["items"]}
    assert taken == {
        late["id"]: "2026-11-20T23:30:00Z",
        early["id"]: "2026-11-20T22:30:00Z",
        old["id"]: "2026-11-20T23:45:00Z",
    }


async def test_an_export_survives_a_stored_moment_beyond_the_local_clock(api: Api) -> None:
    """A taken_at an older version stored that Amsterdam's clocks cannot write
    (10000-01-01 there): the photo is filed under the day it was added, its
    taken_at kept in diary.json as stored; the export does not fail."""
    w = await world(api)
    await consent(api, w)
    shown = await stored_photo(api, w, photo("JPEG", "2026:05:01 10:15:30"), "ver.jpg")
    added = datetime.fromisoformat(shown["created_at"]).astimezone(ZoneInfo("Europe/Amsterdam"))
    await reseal_taken_at(api, shown["id"], "9999-12-31T23:59:59Z")
    made = await api.ok("POST", f"/v1/children/{w.child}/exports", {}, w.parent)
    response = await api.client.get(urlsplit(made["url"]).path)
    assert response.status == 200
    archive = zipfile.ZipFile(io.BytesIO(await response.read()))
    assert f"photo/{added.date().isoformat()}/ver.jpg" in archive.namelist()
    document = json.loads(archive.read("diary.json"))
    assert [item["taken_at"] for item in document["items"]] == ["9999-12-31T23:59:59Z"]
    again = await api.ok("GET", f"/v1/items/{shown['id']}", token=w.parent)
    assert again["taken_at"] == "9999-12-31T23:59:59Z"


@pytest.mark.parametrize(
    ("taken", "offset"),
    [
        ("0001:01:01 00:00:00", "+01:00"),
        ("0001:01:01 00:00:00", "+14:00"),
        ("9999:12:31 23:59:59", "-01:00"),
        ("9999:12:31 23:00:00", "-12:00"),
        ("9999:12:31 23:59:59", None),  # UTC can write it (22:59:59Z), not that it is garbage
    ],
)
async def test_an_exif_time_utc_or_the_local_clock_cannot_write_is_ignored(
    api: Api, taken: str, offset: str | None
) -> None:
    w = await world(api)
    await consent(api, w)
    shown = await stored_photo(api, w, photo("JPEG", taken, offset), "oud.jpg")
    if offset is None:
        assert shown["taken_at"] == "9999-12-31T22:59:59Z"
        return
    assert "taken_at" not in shown or shown["taken_at"] is None, shown
    listed = await api.ok("GET", f"/v1/children/{w.child}/items", token=w.parent)
    assert [item.get("taken_at") for item in listed["items"]] == [None]
    made = await api.ok("POST", f"/v1/children/{w.child}/exports", {}, w.parent)
    response = await api.client.get(urlsplit(made["url"]).path)
    archive = zipfile.ZipFile(io.BytesIO(await response.read()))
    document = json.loads(archive.read("diary.json"))
    assert [item.get("taken_at") for item in document["items"]] == [None]
