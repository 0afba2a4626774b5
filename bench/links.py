"""Benchmark: media through signed links against plain files (run by hand).

    .venv/bin/python -m bench.links [--seconds S] [--clients N] [--video-mb MB]
                                    [--same-process]

With N concurrent clients over loopback, for a fixed time each, the clients
in a separate process (``--same-process``: in the server's own event loop,
as this bench did before; the client's work then slows the server):

* thumbnails (about 30 KB) through links, beside the same bytes served
  unencrypted by aiohttp's FileResponse in the same run, as a ratio;
* 5 MB originals, likewise;
* time to first byte of a 64 KiB Range at the end of a large video against
  one at its start (the offset should not matter).

Every link request does the whole work of a real one: verify the token, load
the caller and the item, ask the policy, write the audit event, unwrap the
keys, decrypt. Beside each rate, the server process's CPU time (all its
threads) per request.
Goals (issue 6): >= 60% of the plain rate for thumbnails, >= 80% for large
originals, first byte independent of the offset.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
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
    """Requests per second over ``seconds`` with ``clients`` loops (in this loop)."""
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


def _load(urls: list[str], seconds: float, clients: int) -> float:
    """The load from a process of its own: requests per second."""

    async def run() -> float:
        connector = aiohttp.TCPConnector(limit=clients * 2)
        timeout = aiohttp.ClientTimeout(total=None)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            await hammer(session, urls, min(1.0, seconds), clients)  # warm the connections
            return await hammer(session, urls, seconds, clients)

    return asyncio.run(run())


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Load:
    """Drives the clients, in another process or (``same_process``) in this loop,
    and counts this process's CPU time per request."""

    def __init__(self, session: aiohttp.ClientSession, seconds: float, clients: int, same: bool):
        self.session, self.seconds, self.clients, self.same = session, seconds, clients, same
        context = multiprocessing.get_context("spawn")
        self.pool = None if same else context.Pool(1)

    async def run(self, urls: list[str]) -> tuple[float, float]:
        """(requests per second, server CPU milliseconds per request)."""
        if self.pool is None:
            await hammer(self.session, urls, min(1.0, self.seconds), self.clients)
        before = _cpu()
        if self.pool is None:
            rate = await hammer(self.session, urls, self.seconds, self.clients)
            spent = _cpu() - before
        else:
            pending = self.pool.apply_async(_load, (urls, self.seconds, self.clients))
            rate = await asyncio.to_thread(pending.get)
            # The warm-up second ran too; it is counted at the same rate.
            spent = (_cpu() - before) * self.seconds / (self.seconds + min(1.0, self.seconds))
        return rate, spent * 1000 / max(1.0, rate * self.seconds)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool.join()


async def first_byte(session: aiohttp.ClientSession, url: str, start: int) -> float:
    began = time.perf_counter()
    headers = {"Range": f"bytes={start}-{start + 65535}"}
    async with session.get(url, headers=headers) as response:
        assert response.status == 206
        await response.content.readany()
        elapsed = time.perf_counter() - began
        await response.read()
    return elapsed


async def main(seconds: float, clients: int, video_mb: int, same: bool) -> None:
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

            load = Load(session, seconds, clients, same)
            kluis_thumbs, kluis_thumbs_cpu = await load.run(thumb_urls)
            kluis_large, kluis_large_cpu = await load.run(document_urls)
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
            load.session = session
            plain_thumbs, plain_thumbs_cpu = await load.run([f"{plain_base}/thumb.jpg"])
            plain_large, plain_large_cpu = await load.run([f"{plain_base}/large.bin"])
        await plain_runner.cleanup()
        load.close()

    where = "in the server's loop" if same else "in a separate process"
    print(f"{clients} concurrent clients {where}, {seconds:.0f} s each, loopback")
    print(
        f"thumbnails ({thumb_size / 1000:.0f} KB): plain {plain_thumbs:7.0f}/s, "
        f"through links {kluis_thumbs:7.0f}/s, ratio {kluis_thumbs / plain_thumbs:.0%}; "
        f"server CPU per request {plain_thumbs_cpu:.2f} / {kluis_thumbs_cpu:.2f} ms"
    )
    print(
        f"5 MB originals: plain {plain_large:7.1f}/s, through links {kluis_large:7.1f}/s, "
        f"ratio {kluis_large / plain_large:.0%}; "
        f"server CPU per request {plain_large_cpu:.2f} / {kluis_large_cpu:.2f} ms"
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
    parser.add_argument("--same-process", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.clients, args.video_mb, args.same_process))
