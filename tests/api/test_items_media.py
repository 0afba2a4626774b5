"""Media through the API as users get it back: links, exports, a browser."""

from __future__ import annotations

import asyncio
import io
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyvips

from tests.files import PHONE_SECRETS, camera_heic, camera_jpeg, phone_video
from tests.helpers.api import Api
from tests.helpers.items import consent, nothing_stored, upload
from tests.helpers.world import World, world
from tests.media.tools import decodes, exiftool, revealing, streams


async def fetch_link(api: Api, token: str, item_id: str, variant: str = "original") -> bytes:
    answer = await api.ok("POST", f"/v1/items/{item_id}/links", {"variant": variant}, token)
    response = await api.client.get(urlsplit(answer["url"]).path)
    assert response.status == 200
    return await response.read()


async def export_zip(api: Api, w: World) -> zipfile.ZipFile:
    made = await api.ok("POST", f"/v1/children/{w.child}/exports", {}, w.parent)
    response = await api.client.get(urlsplit(made["url"]).path)
    assert response.status == 200
    return zipfile.ZipFile(io.BytesIO(await response.read()))


async def test_a_phone_video_comes_back_clean_through_links_and_the_export(
    api: Api, tmp_path: Path
) -> None:
    w = await world(api)
    await consent(api, w)
    uploaded: dict[str, Any] = {}
    for container in ("mp4", "webm"):
        original = phone_video(tmp_path, container)
        status, item = await upload(
            api, w.staff, w.child, {"kind": "video", "title": container}, original.read_bytes()
        )
        assert status == 201, item
        assert item["size"] == original.stat().st_size
        uploaded[container] = (original, item)

    archive = await export_zip(api, w)
    videos = [n for n in archive.namelist() if n.startswith("video/")]
    assert len(videos) == 2
    for container, (original, item) in uploaded.items():
        served = await fetch_link(api, w.parent, item["id"])
        assert len(served) == original.stat().st_size
        (exported,) = [archive.read(n) for n in videos if n.endswith("." + container)]
        assert exported == served
        out = tmp_path / f"served.{container}"
        out.write_bytes(served)
        assert revealing(exiftool(out)) == {}
        for secret in PHONE_SECRETS:
            assert secret not in served
        assert [s for s in streams(out) if s[0] != "attachment"] == [
            s for s in streams(original) if s[0] != "attachment"
        ]
        decodes(out, "-sseof", "-1")


async def test_a_damaged_video_is_refused_and_nothing_stays(api: Api, tmp_path: Path) -> None:
    w = await world(api)
    await consent(api, w)
    data = phone_video(tmp_path, "mov").read_bytes()
    status, body = await upload(api, w.staff, w.child, {"kind": "video"}, data[:-100], "cut.mov")
    assert status == 415
    assert body["error"]["code"] == "unsupported_type"
    assert "cut short" in body["error"]["message"]
    await nothing_stored(api)


async def test_photos_come_back_without_metadata_in_every_variant(api: Api, tmp_path: Path) -> None:
    w = await world(api)
    await consent(api, w)
    for source in (camera_jpeg(tmp_path, p3=True), camera_heic(tmp_path)):
        status, item = await upload(
            api, w.staff, w.child, {"kind": "photo"}, source.read_bytes(), source.name
        )
        assert status == 201, item
        assert item["content_type"] == "image/jpeg"
        meta = await api.ok("GET", f"/v1/items/{item['id']}", token=w.parent)
        assert (meta["width"], meta["height"]) == (128, 256)
        for variant in ("original", "preview", "thumb"):
            served = await fetch_link(api, w.parent, item["id"], variant)
            out = tmp_path / f"{source.suffix[1:]}-{variant}.jpg"
            out.write_bytes(served)
            assert revealing(exiftool(out)) == {}, (source.name, variant)
            for secret in (b"Zonnestraal", b"Dorpsstraat", b"Utrecht", b"iPhone"):
                assert secret not in served


async def test_a_turned_photo_shows_upright_in_a_browser(
    api: Api, tmp_path: Path, chromium: str
) -> None:
    """Orientation 6 (the phone held upright): the browser shows the left half on top."""
    w = await world(api)
    await consent(api, w)
    status, item = await upload(
        api, w.staff, w.child, {"kind": "photo"}, camera_jpeg(tmp_path).read_bytes(), "p.jpg"
    )
    assert status == 201, item
    urls = []
    for variant in ("original", "preview"):
        answer = await api.ok(
            "POST", f"/v1/items/{item['id']}/links", {"variant": variant}, w.parent
        )
        urls.append(str(api.client.make_url(urlsplit(answer["url"]).path)))
    page = tmp_path / "photo.html"
    page.write_text(
        "<!DOCTYPE html><html><body style='margin:0;background:#0f0'>"
        + "".join(
            f"<img src='{url}' style='position:absolute;top:0;left:{i * 200}px'>"
            for i, url in enumerate(urls)
        )
        + "</body></html>"
    )
    shot = tmp_path / "shot.png"
    process = await asyncio.create_subprocess_exec(
        chromium,
        *("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"),
        *("--disable-background-networking", "--disable-component-update", "--disable-sync"),
        f"--user-data-dir={tmp_path / 'profile'}",
        *("--hide-scrollbars", "--window-size=400,300", "--force-device-scale-factor=1"),
        f"--screenshot={shot}",
        page.as_uri(),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    # The vault's loop keeps serving the two links while the browser runs.
    assert await asyncio.wait_for(process.wait(), 120) == 0
    screen = pyvips.Image.pngload(str(shot))
    for left in (0, 200):
        top, bottom = screen(left + 64, 20), screen(left + 64, 236)
        assert top[0] > 180 > top[2], (left, top)  # red: the picture's left half, now on top
        assert bottom[2] > 180 > bottom[0], (left, bottom)
        assert screen(left + 64, 280)[1] > 200  # below the 256 px tall photo: the page
        assert screen(left + 150, 100)[1] > 200  # right of the 128 px wide photo: the page
