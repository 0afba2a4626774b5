"""A photo shows when it was taken: the EXIF DateTimeOriginal of the upload
becomes the item's ``taken_at`` (unless the uploader gave one), while the
stored files still carry no metadata at all."""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from PIL import Image

from tests.files import camera_heic, camera_jpeg
from tests.helpers.api import Api
from tests.helpers.items import consent, upload
from tests.helpers.world import World, world
from tests.media.tools import exiftool, revealing

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
    assert with_offset["taken_at"] == "2026-05-01T10:15:30+02:00"
    await served_clean(api, w, with_offset["id"], tmp_path)
    # A camera that does not say its zone: its clock's time, with no zone invented.
    phone = await stored_photo(api, w, camera_jpeg(tmp_path).read_bytes())
    assert phone["taken_at"] == "2026-05-01T10:00:00"
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
        ("2026:05:01 10:15:30", "+99:99", "2026-05-01T10:15:30"),  # an offset that is none
        ("2026:05:01 10:15:30", "-05:00", "2026-05-01T10:15:30-05:00"),
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
    assert shown["taken_at"] == "2026-05-01T10:15:30"


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
    assert png["taken_at"] == "2026-05-01T09:00:00+01:00"
    await served_clean(api, w, png["id"], tmp_path)
    heic = await stored_photo(api, w, camera_heic(tmp_path).read_bytes(), "p.heic")
    assert heic["taken_at"] == "2026-05-01T10:00:00"
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
