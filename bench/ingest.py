"""Benchmark: ingesting photos and a video through the API (run by hand).

    .venv/bin/python -m bench.ingest [--photos N] [--video-mb MB]

Over loopback HTTP, against a vault on the embedded defaults:

* photos per second: a 12 MP JPEG uploaded, sniffed, stripped of its
  metadata segments (its compressed pixels kept), with a preview decoded by
  shrink-on-load and a thumbnail made from the preview, each of the three
  encrypted and stored; beside the same run's bare libvips shrink-on-load
  thumbnail of the same file (``thumbnail_buffer`` at 320 px, encoded to a
  JPEG, with the operation cache off, as the service runs), as a ratio (goal
  at least 0.5), and beside a bare full decode and Q92 re-encode (what the
  original cost before);
* MB/s for a video upload (1 GB by default), beside a plain aiohttp handler
  that streams the same multipart upload to a file on the same disk.

:func:`rows` gives the ``python -m bench`` table's row: the same photo ratio,
the uploads to ``kluis serve`` in a process of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import pyvips
from aiohttp import web

from bench.table import Goal, Row
from vault.api import create_app
from vault.api.resources import DB, KEYRING, KEYS
from vault.cli import init
from vault.config import Settings
from vault.directory import children, consent, people, places
from vault.directory.sealing import Sealer
from vault.media.images import configure_vips

if TYPE_CHECKING:
    from bench.serving import Stage

MB = 1_000_000
MIB = 1024 * 1024


def photo(width: int = 4000, height: int = 3000) -> bytes:
    xyz = pyvips.Image.xyz(width, height)
    r = (xyz[0] * 255 / width).cast("uchar")
    g = (xyz[1] * 255 / height).cast("uchar")
    noise = pyvips.Image.gaussnoise(width, height, sigma=20, mean=128).cast("uchar")
    image = r.bandjoin([g, noise]).copy(interpretation="srgb")
    data: bytes = image.jpegsave_buffer(Q=90)
    return data


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def vault_app(data_dir: Path) -> web.Application:
    settings = Settings(data_dir=data_dir)
    with contextlib.redirect_stdout(io.StringIO()):
        await init(settings)
    return create_app(settings)


async def populate(app: web.Application) -> tuple[str, str, str]:
    """A child with photo consent, a staff member and a parent; returns
    (child id, staff token, parent token)."""
    engine, keys, now = app[DB], app[KEYS], datetime.now(UTC)
    sealer = Sealer(engine, keys, app[KEYRING])
    location = await places.create_location(engine, sealer, "Bench", now)
    group = await places.create_group(engine, sealer, location, "G", now)
    child = await children.create_child(
        engine, keys, children.Profile("A", "B", datetime(2023, 1, 1).date()), group, now
    )
    staff_id, staff_token = await people.create_person(engine, sealer, "S", None, "staff", now)
    await places.add_staff(engine, group, staff_id)
    parent_id, parent_token = await people.create_person(engine, sealer, "P", None, "guardian", now)
    await children.add_guardian(engine, child, parent_id, "contract_parent", "shared", now)
    await consent.record(engine, child, "photo", True, parent_id, now)
    return child, staff_token, parent_token


def multipart(meta: dict[str, str], data: object, name: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("meta", json.dumps(meta))
    form.add_field("file", data, filename=name)
    return form


async def video_source(size: int, block: bytes) -> AsyncIterator[bytes]:
    """A well-formed MP4 of ``size`` bytes: a file type box, then one ``mdat`` to the end."""
    head = b"\x00\x00\x00\x1cftypisom\x00\x00\x02\x00isomiso2mp41\x00\x00\x00\x00mdat"
    yield head
    sent = len(head)
    while sent < size:
        piece = block[: min(len(block), size - sent)]
        yield piece
        sent += len(piece)


async def plain_upload_app(target: Path) -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        reader = await request.multipart()
        size = 0
        while (part := await reader.next()) is not None:
            if getattr(part, "name", None) != "file":
                await part.read()  # type: ignore[union-attr]
                continue
            with target.open("wb") as out:
                while chunk := await part.read_chunk(256 * 1024):  # type: ignore[union-attr]
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
        return web.json_response({"size": size}, status=201)

    app = web.Application()
    app.router.add_post("/upload", handler)
    return app


def bare_thumbnail(jpeg: bytes) -> bytes:
    """The baseline: a real shrink-on-load thumbnail, written out as a JPEG."""
    data: bytes = pyvips.Image.thumbnail_buffer(jpeg, 320).jpegsave_buffer(Q=80, keep="none")
    return data


def cpu() -> float:
    times = os.times()
    return times.user + times.system


async def main(photos: int, video_mb: int) -> None:
    jpeg = photo()
    # As the service runs: no operation cache (a cached thumbnail is not made at all).
    configure_vips()
    assert pyvips.cache_get_max() == 0
    bare_thumbnail(jpeg)  # warm up the loaders
    started, cpu0 = time.perf_counter(), cpu()
    for _ in range(photos):
        assert len(bare_thumbnail(jpeg)) > 1000
    bare = photos / (time.perf_counter() - started)
    bare_cpu = (cpu() - cpu0) / photos
    started = time.perf_counter()
    for _ in range(photos):
        pyvips.Image.jpegload_buffer(jpeg).jpegsave_buffer(Q=92, keep="none")
    reencode = photos / (time.perf_counter() - started)

    with tempfile.TemporaryDirectory(prefix="kluis-bench-") as tmp:
        app = await vault_app(Path(tmp) / "data")
        runner, base = await serve(app)
        child, token, _ = await populate(app)
        auth = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
            form = multipart({"kind": "photo"}, jpeg, "warm.jpg")
            async with session.post(
                f"{base}/v1/children/{child}/items", data=form, headers=auth
            ) as r:
                assert r.status == 201, await r.text()
            started, cpu0 = time.perf_counter(), cpu()
            for i in range(photos):
                form = multipart({"kind": "photo"}, jpeg, f"p{i}.jpg")
                async with session.post(
                    f"{base}/v1/children/{child}/items", data=form, headers=auth
                ) as r:
                    assert r.status == 201, await r.text()
            ingest = photos / (time.perf_counter() - started)
            ingest_cpu = (cpu() - cpu0) / photos

            size = video_mb * MB
            block = os.urandom(MIB)
            started = time.perf_counter()
            form = multipart({"kind": "video"}, video_source(size, block), "v.mp4")
            async with session.post(
                f"{base}/v1/children/{child}/items", data=form, headers=auth
            ) as r:
                assert r.status == 201, await r.text()
            kluis_video = size / MB / (time.perf_counter() - started)
        await runner.cleanup()

        plain, plain_base = await serve(await plain_upload_app(Path(tmp) / "plain.bin"))
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
            started = time.perf_counter()
            form = multipart({"kind": "video"}, video_source(size, block), "v.mp4")
            async with session.post(f"{plain_base}/upload", data=form) as r:
                assert r.status == 201
            plain_video = size / MB / (time.perf_counter() - started)
        await plain.cleanup()

    print(f"12 MP JPEG ({len(jpeg) / MB:.1f} MB), {photos} photos")
    print(
        f"  bare shrink-on-load thumbnail (320 px, JPEG written, cache off): {bare:7.2f} per "
        f"second, {bare_cpu * 1000:.0f} ms CPU each"
    )
    print(f"  bare full decode + JPEG Q92 re-encode: {reencode:7.2f} per second")
    print(
        f"  Kluis ingest (strip + 2 variants, encrypted, stored, HTTP, client in process): "
        f"{ingest:7.2f} per second, {ingest_cpu * 1000:.0f} ms CPU each"
    )
    print(f"  ratio to the bare thumbnail: {ingest / bare:.2f} (goal >= 0.5)")
    print(f"  ratio to decode + re-encode: {ingest / reencode:.2f}")
    print(f"video upload of {video_mb} MB over loopback")
    print(f"  plain aiohttp multipart to disk: {plain_video:7.0f} MB/s")
    print(f"  Kluis (sniffed, encrypted, stored): {kluis_video:7.0f} MB/s")
    print(f"  ratio: {kluis_video / plain_video:.0%}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--photos", type=int, default=10)
    parser.add_argument("--video-mb", type=int, default=1000)
    args = parser.parse_args()
    asyncio.run(main(args.photos, args.video_mb))


async def rows(stage: Stage) -> list[Row]:
    """The table's ingest row: 12 MP JPEGs uploaded one after another to
    ``kluis serve`` (a process of its own; the client here), against the bare
    shrink-on-load thumbnail of the same file in this process (cache off,
    the JPEG written: the fair baseline of issue 23), in turns of a few
    photos each, the order reversed every round."""
    per, rounds = (2, 2) if stage.quick else (5, 4)
    jpeg = photo()
    configure_vips()
    assert pyvips.cache_get_max() == 0
    server = await stage.kluis(1)
    world = stage.world
    url = f"{server.base}/v1/children/{world.child}/items"
    auth = {"Authorization": f"Bearer {world.staff}"}

    async def upload(name: str) -> None:
        form = multipart({"kind": "photo"}, jpeg, name)
        async with stage.session.post(url, data=form, headers=auth) as r:
            assert r.status == 201, await r.text()

    async def bare_side() -> tuple[float, float]:
        started, cpu0 = time.perf_counter(), cpu()
        for _ in range(per):
            assert len(bare_thumbnail(jpeg)) > 1000
        return time.perf_counter() - started, cpu() - cpu0

    async def kluis_side() -> tuple[float, float]:
        started, cpu0 = time.perf_counter(), server.cpu()
        for i in range(per):
            await upload(f"p{i}.jpg")
        return time.perf_counter() - started, server.cpu() - cpu0

    bare_thumbnail(jpeg)
    await upload("warm.jpg")
    sides = {"bare": bare_side, "kluis": kluis_side}
    took: dict[str, list[tuple[float, float]]] = {"bare": [], "kluis": []}
    for n in range(rounds):
        for name in sides if n % 2 == 0 else reversed(list(sides)):
            took[name].append(await sides[name]())
    count = per * rounds
    bare = count / sum(t for t, _ in took["bare"])
    ingest = count / sum(t for t, _ in took["kluis"])
    ratios = [b / k for (k, _), (b, _) in zip(took["kluis"], took["bare"], strict=True)]
    return [
        Row(
            measure="12 MP JPEG ingest (clean original + 2 variants, encrypted, stored)",
            unit="/s",
            baseline_name="bare shrink-on-load thumbnail",
            baseline=bare,
            kluis=ingest,
            ratio=ingest / bare,
            spread=(min(ratios), max(ratios)),
            cpu_ms=(
                sum(c for _, c in took["bare"]) * 1000 / count,
                sum(c for _, c in took["kluis"]) * 1000 / count,
            ),
            goal=Goal(">=", 0.5, ">= 0.5"),
            note=f"{count} photos of {len(jpeg) / MB:.1f} MB one after another over HTTP, "
            f"{rounds} rounds of {per} in turns",
        )
    ]
