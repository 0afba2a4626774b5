"""Media through the API as users get it back: links, exports, a browser."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.api.conftest import Api
from tests.api.test_items import consent, nothing_stored, upload
from tests.api.world import World, world
from tests.files import PHONE_SECRETS, phone_video
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
