"""Benchmark: media through signed links against plain files (run by hand).

    .venv/bin/python -m bench.links [--seconds S] [--clients N] [--video-mb MB]

With N concurrent clients over loopback, for a fixed time each:

* thumbnails (about 30 KB) through links, beside the same bytes served
  unencrypted by aiohttp's FileResponse in the same run, as a ratio;
* 5 MB originals, likewise;
* time to first byte of a 64 KiB Range at the end of a large video against
  one at its start (the offset should not matter).

Every link request does the whole work of a real one: verify the token, load
the caller and the item, ask the policy, unwrap the keys, decrypt.
Goals (issue 6): >= 60% of the plain rate for thumbnails, >= 80% for large
originals, first byte independent of the offset.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pyvips
from aiohttp import web

from bench.ingest import multipart, populate, serve, vault_app, video_source

MB = 1_000_000


def photo_jpeg() -> bytes:
    """A 1600×1200 photo whose stored thumb variant is about 30 KB."""
    noise = pyvips.Image.gaussnoise(1600, 1200, sigma=80, mean=128).cast("uchar")
    image = noise.bandjoin([noise, noise]).copy(interpretation="srgb")
    data: bytes = image.jpegsave_buffer(Q=85)
    return data


async def hammer(
    session: aiohttp.ClientSession, urls: list[str], seconds: float, clients: int
) -> float:
    """Requests per second over ``seconds`` with ``clients`` loops."""
    done = 0
    stop = time.perf_counter() + seconds

    async def loop(offset: int) -> None:
        nonlocal done
        i = offset
        while time.perf_counter() < stop:
            async with session.get(urls[i % len(urls)]) as response:
                await response.read()
                assert response.status == 200, response.status
            done += 1
            i += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop(k) for k in range(clients)))
    return done / (time.perf_counter() - started)


async def first_byte(session: aiohttp.ClientSession, url: str, start: int) -> float:
    began = time.perf_counter()
    headers = {"Range": f"bytes={start}-{start + 65535}"}
    async with session.get(url, headers=headers) as response:
        assert response.status == 206
        await response.content.readany()
        elapsed = time.perf_counter() - began
        await response.read()
    return elapsed


async def main(seconds: float, clients: int, video_mb: int) -> None:
    photo = photo_jpeg()
    original = os.urandom(5 * MB)
    with tempfile.TemporaryDirectory(prefix="kluis-bench-") as tmp:
        app = await vault_app(Path(tmp) / "data")
        runner, base = await serve(app)
        child, token, _ = await populate(app)
        auth = {"Authorization": f"Bearer {token}"}
        timeout = aiohttp.ClientTimeout(total=None)
        connector = aiohttp.TCPConnector(limit=clients * 2)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:

            async def upload(kind: str, data: object, name: str) -> str:
                form = multipart({"kind": kind}, data, name)
                async with session.post(
                    f"{base}/v1/children/{child}/items", data=form, headers=auth
                ) as r:
                    assert r.status == 201, await r.text()
                    return str((await r.json())["id"])

            async def links(item_ids: list[str], variant: str) -> list[str]:
                body = {
                    "items": [{"item_id": i, "variant": variant} for i in item_ids],
                    "ttl_seconds": 3600,
                }
                async with session.post(f"{base}/v1/links", json=body, headers=auth) as r:
                    answer = await r.json()
                return [base + urlsplit(entry["url"]).path for entry in answer["links"]]

            photos = [await upload("photo", photo, f"t{i}.jpg") for i in range(20)]
            thumb_urls = await links(photos, "thumb")
            async with session.get(thumb_urls[0]) as r:
                thumb_bytes = await r.read()
            thumb_size = len(thumb_bytes)
            pdf = b"%PDF-1.4\n" + original
            documents = [await upload("observation", pdf, f"d{i}.pdf") for i in range(4)]
            document_urls = await links(documents, "original")
            video = await upload("video", video_source(video_mb * MB, os.urandom(1 << 20)), "v.mp4")
            [video_url] = await links([video], "original")

            kluis_thumbs = await hammer(session, thumb_urls, seconds, clients)
            kluis_large = await hammer(session, document_urls, seconds, clients)
            size = video_mb * MB
            starts = [await first_byte(session, video_url, 0) for _ in range(20)]
            ends = [await first_byte(session, video_url, size - 65536) for _ in range(20)]
        await runner.cleanup()

        plain_dir = Path(tmp) / "plain"
        plain_dir.mkdir()
        (plain_dir / "thumb.jpg").write_bytes(thumb_bytes)
        (plain_dir / "large.bin").write_bytes(pdf)
        plain_app = web.Application()

        async def file(request: web.Request) -> web.FileResponse:
            return web.FileResponse(plain_dir / request.match_info["name"])

        plain_app.router.add_get("/{name}", file)
        plain_runner, plain_base = await serve(plain_app)
        connector = aiohttp.TCPConnector(limit=clients * 2)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            plain_thumbs = await hammer(session, [f"{plain_base}/thumb.jpg"], seconds, clients)
            plain_large = await hammer(session, [f"{plain_base}/large.bin"], seconds, clients)
        await plain_runner.cleanup()

    print(f"{clients} concurrent clients, {seconds:.0f} s each, loopback")
    print(
        f"thumbnails ({thumb_size / 1000:.0f} KB): plain {plain_thumbs:7.0f}/s, "
        f"through links {kluis_thumbs:7.0f}/s, ratio {kluis_thumbs / plain_thumbs:.0%}"
    )
    print(
        f"5 MB originals: plain {plain_large:7.1f}/s, through links {kluis_large:7.1f}/s, "
        f"ratio {kluis_large / plain_large:.0%}"
    )
    print(
        f"first byte of a 64 KiB Range in a {video_mb} MB video: "
        f"at the start {statistics.median(starts) * 1000:.1f} ms, "
        f"at the end {statistics.median(ends) * 1000:.1f} ms (medians of 20)"
    )
    print(
        json.dumps(
            {
                "thumbs_ratio": round(kluis_thumbs / plain_thumbs, 3),
                "large_ratio": round(kluis_large / plain_large, 3),
            }
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--video-mb", type=int, default=1000)
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.clients, args.video_mb))
