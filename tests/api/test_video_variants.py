"""A video's posters and web rendition (issue 24): made by the job queue after upload.

Real clips made by ffmpeg, real ffmpeg making the variants, judged by
ffprobe and exiftool. The app runs no job worker of its own here
(``create_app`` defaults to ``jobs=0``): each test drains the queue where it
wants the work done, so what a client sees before and after is certain.
"""

from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pyvips
from sqlalchemy import select

from tests.files import PHONE_SECRETS, hevc_video, phone_video
from tests.helpers.api import Api
from tests.helpers.chromium import play
from tests.helpers.items import consent, upload
from tests.helpers.links import fetch, link
from tests.helpers.world import World, world
from tests.media.tools import decodes, exiftool, revealing
from vault.api.jobs import RUNNER
from vault.api.resources import DB
from vault.db.schema import jobs


async def drain(api: Api) -> int:
    return await api.client.app[RUNNER].drain()


async def jobs_of(api: Api, item_id: str) -> list[Any]:
    async with api.client.app[DB].connect() as conn:
        return list(
            (
                await conn.execute(
                    select(jobs).where(jobs.c.item_id == item_id).order_by(jobs.c.priority)
                )
            ).all()
        )


async def served(api: Api, w: World, item_id: str, variant: str) -> bytes:
    status, _, body = await fetch(api, await link(api, w.parent, item_id, variant=variant))
    assert status == 200, (variant, status)
    return body


def top_boxes(data: bytes) -> list[bytes]:
    found, at = [], 0
    while at + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, at)
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, at + 8)
        found.append(kind)
        at += size
    assert at == len(data)
    return found


async def test_an_h264_mp4_gains_posters_and_no_web_rendition(api: Api, tmp_path: Path) -> None:
    w = await world(api)
    await consent(api, w)
    original = phone_video(tmp_path, "mp4")
    status, item = await upload(api, w.staff, w.child, {"kind": "video"}, original.read_bytes())
    assert status == 201, item
    assert item["variants"] == ["original"]
    assert item["processing"] == ["preview", "thumb"]

    # While the posters are made: a link to one is 409, the original links at once.
    status, body = await api.call(
        "POST", f"/v1/items/{item['id']}/links", w.parent, {"variant": "thumb"}
    )
    assert status == 409, body
    assert body["error"]["code"] == "conflict"
    assert "try again shortly" in body["error"]["message"]
    batch = await api.ok(
        "POST", "/v1/links", {"items": [{"item_id": item["id"], "variant": "preview"}]}, w.parent
    )
    assert batch["links"][0]["error"]["code"] == "conflict"
    assert len(await served(api, w, item["id"], "original")) == original.stat().st_size

    assert await drain(api) == 1
    meta = await api.ok("GET", f"/v1/items/{item['id']}", token=w.parent)
    assert meta["variants"] == ["original", "preview", "thumb"]
    assert "processing" not in meta
    page = await api.ok("GET", f"/v1/children/{w.child}/items", token=w.parent)
    assert page["items"][0]["variants"] == ["original", "preview", "thumb"]
    assert "processing" not in page["items"][0]

    for variant, longest in (("preview", 320), ("thumb", 320)):
        data = await served(api, w, item["id"], variant)
        image = pyvips.Image.new_from_buffer(data, "")
        assert image.get("vips-loader") == "jpegload_buffer"
        assert (image.width, image.height) == (longest, 240)
        # A frame of the test picture (colour bars), not a black or grey one.
        assert image.deviate() > 40
        out = tmp_path / f"{variant}.jpg"
        out.write_bytes(data)
        assert revealing(exiftool(out)) == {}
        for secret in PHONE_SECRETS:
            assert secret not in data
    # An MP4 with H.264 and AAC plays in every browser as it is: no web rendition.
    status, body = await api.call(
        "POST", f"/v1/items/{item['id']}/links", w.parent, {"variant": "web"}
    )
    assert status == 404, body
    assert [row.state for row in await jobs_of(api, item["id"])] == ["done"]


async def test_hevc_in_mov_gains_a_web_rendition_in_h264_aac_moov_first(
    api: Api, tmp_path: Path, chromium: str
) -> None:
    w = await world(api)
    await consent(api, w)
    original = hevc_video(tmp_path)
    status, item = await upload(
        api, w.staff, w.child, {"kind": "video"}, original.read_bytes(), "IMG_0001.MOV"
    )
    assert status == 201, item
    assert item["content_type"] == "video/quicktime"
    assert item["processing"] == ["preview", "thumb", "web"]

    assert await drain(api) == 2
    meta = await api.ok("GET", f"/v1/items/{item['id']}", token=w.parent)
    assert meta["variants"] == ["original", "preview", "thumb", "web"]
    web = await served(api, w, item["id"], "web")
    assert top_boxes(web) == [b"ftyp", b"moov", b"mdat"]
    out = tmp_path / "web.mp4"
    out.write_bytes(web)
    probe = _probe(out)
    video = next(s for s in probe if s["codec_type"] == "video")
    audio = next(s for s in probe if s["codec_type"] == "audio")
    assert (video["codec_name"], video["profile"], video["pix_fmt"]) == ("h264", "High", "yuv420p")
    assert (video["width"], video["height"]) == (320, 240)
    assert audio["codec_name"] == "aac"
    assert abs(float(video["duration"]) - 2.0) < 0.1
    decodes(out, "-ss", "0")
    decodes(out, "-sseof", "-1")
    assert revealing(exiftool(out)) == {}
    # No encoder's name or settings: x264's SEI, the sample entry's compressor
    # name, the AAC encoder's first-frame string, the muxer's tag.
    for name in (b"x264", b"Lavc", b"Lavf"):
        assert name not in web, name

    # The web variant's link answers ranges like any other.
    path = await link(api, w.parent, item["id"], variant="web")
    status, headers, part = await fetch(api, path, Range="bytes=0-99")
    assert status == 206
    assert headers["Content-Type"] == "video/mp4"
    assert part == web[:100]

    # It plays in a browser, through its link: the position moves, no error.
    url = str(api.client.make_url(await link(api, w.parent, item["id"], variant="web")))
    outcome = await play(chromium, url, tmp_path / "profile")
    assert outcome.startswith("played "), outcome


async def test_h264_in_mov_gets_a_web_rendition_with_its_picture_copied(
    api: Api, tmp_path: Path
) -> None:
    """Firefox plays no QuickTime: an older phone's H.264 MOV gets an MP4 around
    the same picture (not encoded again), its sound encoded to AAC."""
    w = await world(api)
    await consent(api, w)
    original = phone_video(tmp_path, "mov")
    status, item = await upload(api, w.staff, w.child, {"kind": "video"}, original.read_bytes())
    assert status == 201, item
    assert item["processing"] == ["preview", "thumb", "web"]
    assert await drain(api) == 2
    web = await served(api, w, item["id"], "web")
    assert top_boxes(web) == [b"ftyp", b"moov", b"mdat"]
    out = tmp_path / "web.mp4"
    out.write_bytes(web)
    frames = [_frame_sizes(path) for path in (original, out)]
    # The same H.264 frames; the first lost the encoder's settings (an SEI message).
    assert frames[0][1:] == frames[1][1:]
    assert frames[1][0] < frames[0][0]
    assert b"x264" in original.read_bytes()
    assert b"x264" not in web
    assert [s["codec_name"] for s in _probe(out)] == ["h264", "aac"]
    decodes(out, "-ss", "0")
    assert revealing(exiftool(out)) == {}
    for secret in PHONE_SECRETS:
        assert secret not in web


async def test_a_video_whose_frames_do_not_decode_ends_failed_and_the_original_serves(
    api: Api, tmp_path: Path
) -> None:
    w = await world(api)
    await consent(api, w)
    data = bytearray(phone_video(tmp_path, "mp4", faststart=True).read_bytes())
    # The container is whole (the upload accepts it); the frames are noise.
    at = data.index(b"mdat") + 4
    data[at:] = bytes((n * 151 + 7) % 251 for n in range(len(data) - at))
    status, item = await upload(api, w.staff, w.child, {"kind": "video"}, bytes(data))
    assert status == 201, item
    assert item["processing"] == ["preview", "thumb"]

    assert await drain(api) == 1
    (job,) = await jobs_of(api, item["id"])
    assert job.state == "failed"
    assert job.attempts == 1  # ffmpeg refused the file: another attempt would too
    assert job.error.startswith("no poster could be made")
    meta = await api.ok("GET", f"/v1/items/{item['id']}", token=w.parent)
    assert meta["variants"] == ["original"]
    assert "processing" not in meta
    kept = await served(api, w, item["id"], "original")
    assert len(kept) == len(data)
    assert kept[at:] == data[at:]  # the frames as uploaded (only metadata was cleared)
    status, body = await api.call(
        "POST", f"/v1/items/{item['id']}/links", w.parent, {"variant": "thumb"}
    )
    assert status == 404, body


async def test_a_video_deleted_before_its_job_ran_is_cancelled(api: Api, tmp_path: Path) -> None:
    w = await world(api)
    await consent(api, w)
    original = phone_video(tmp_path, "mp4")
    status, item = await upload(api, w.staff, w.child, {"kind": "video"}, original.read_bytes())
    assert status == 201, item
    status, _ = await api.call("DELETE", f"/v1/items/{item['id']}", w.staff)
    assert status == 204
    assert await drain(api) == 1
    (job,) = await jobs_of(api, item["id"])
    assert job.state == "cancelled"


def _frame_sizes(path: Path) -> list[int]:
    out = subprocess.run(
        [
            *("ffprobe", "-v", "error", "-select_streams", "v:0"),
            *("-show_entries", "packet=size", "-of", "csv=p=0", str(path)),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    return [int(line) for line in out.decode().split()]


def _probe(path: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    streams: list[dict[str, Any]] = json.loads(out)["streams"]
    return streams


async def _replace(api: Api, token: str, item_id: str, data: bytes, name: str) -> dict[str, Any]:
    form = aiohttp.FormData()
    form.add_field("file", data, filename=name, content_type="application/octet-stream")
    status, body = await api.call("PUT", f"/v1/items/{item_id}/file", token, data=form)
    assert status == 200, body
    return dict(body)


async def test_a_replaced_video_gets_its_variants_made_anew(api: Api, tmp_path: Path) -> None:
    w = await world(api)
    await consent(api, w)
    first = phone_video(tmp_path, "mp4")
    status, item = await upload(api, w.staff, w.child, {"kind": "video"}, first.read_bytes())
    assert status == 201, item
    assert await drain(api) == 1
    old_thumb = await served(api, w, item["id"], "thumb")

    # Replaced by a clip some browsers cannot play: posters and a web rendition to make.
    replaced = await _replace(api, w.staff, item["id"], hevc_video(tmp_path).read_bytes(), "b.MOV")
    assert replaced["version"] == 2
    assert replaced["variants"] == ["original"]
    assert replaced["processing"] == ["preview", "thumb", "web"]
    status, body = await api.call(
        "POST", f"/v1/items/{item['id']}/links", w.parent, {"variant": "thumb"}
    )
    assert status == 409, body

    assert await drain(api) == 2
    meta = await api.ok("GET", f"/v1/items/{item['id']}", token=w.parent)
    assert meta["variants"] == ["original", "preview", "thumb", "web"]
    assert "processing" not in meta
    thumb = await served(api, w, item["id"], "thumb")
    assert pyvips.Image.new_from_buffer(thumb, "").get("vips-loader") == "jpegload_buffer"
    assert thumb != old_thumb
    out = tmp_path / "replaced-web.mp4"
    out.write_bytes(await served(api, w, item["id"], "web"))
    assert abs(float(_probe(out)[0]["duration"]) - 2.0) < 0.1  # the new clip's, not the old
    assert [row.state for row in await jobs_of(api, item["id"])] == ["done", "done", "done"]


async def test_a_video_replaced_before_its_posters_were_made_gets_the_new_ones_only(
    api: Api, tmp_path: Path
) -> None:
    w = await world(api)
    await consent(api, w)
    first = phone_video(tmp_path, "webm")
    status, item = await upload(api, w.staff, w.child, {"kind": "video"}, first.read_bytes())
    assert status == 201, item
    second = phone_video(tmp_path, "mp4", seconds=2)
    replaced = await _replace(api, w.staff, item["id"], second.read_bytes(), "b.mp4")
    assert replaced["processing"] == ["preview", "thumb"]
    # The first version's jobs (posters and a web rendition of the WebM) never run.
    assert await drain(api) == 1
    states = sorted(
        (row.kind, row.state, row.error or "") for row in await jobs_of(api, item["id"])
    )
    assert [(kind, state) for kind, state, _ in states] == [
        ("video.posters", "cancelled"),
        ("video.posters", "done"),
        ("video.web", "cancelled"),
    ]
    assert "replaced" in states[0][2]
    meta = await api.ok("GET", f"/v1/items/{item['id']}", token=w.parent)
    assert meta["variants"] == ["original", "preview", "thumb"]
    assert len(await served(api, w, item["id"], "preview")) > 0
