"""Benchmark: link answers' latency while a job transcodes a video (run by hand).

    .venv/bin/python -m bench.joblatency [--seconds 20] [--clients 4] [--rounds 2]

One vault app with one job worker (``create_app(settings, jobs=1)``, as
``kluis serve --jobs 1`` runs), clients in a separate process fetching a
thumbnail through its signed link, one request at a time each, over
loopback. Each round measures, in turn:

* quiet: no job running (the baseline, in the same run);
* transcoding: while the ``web`` job of a 1080p HEVC clip of ``--seconds``
  runs (its ffmpeg at ``video.nice``), until it is done.

Prints p50 and p99 latency and the rate of each, and p99 busy / quiet.
The host is shared: run it twice and quote the spread.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from bench.ingest import multipart, populate, serve
from bench.serving import photo_jpeg
from bench.transcode import make_clip
from vault.api import create_app
from vault.cli import init
from vault.config import Settings


def _clients(
    url: str, seconds: float, clients: int, out: multiprocessing.Queue[list[float]]
) -> None:
    async def run() -> list[float]:
        found: list[float] = []
        deadline = time.monotonic() + seconds
        async with aiohttp.ClientSession() as session:

            async def one() -> None:
                while time.monotonic() < deadline:
                    started = time.perf_counter()
                    async with session.get(url) as answer:
                        await answer.read()
                        assert answer.status == 200
                    found.append(time.perf_counter() - started)

            await asyncio.gather(*(one() for _ in range(clients)))
        return found

    out.put(asyncio.run(run()))


async def load(url: str, seconds: float, clients: int) -> list[float]:
    queue: multiprocessing.Queue[list[float]] = multiprocessing.Queue()
    process = multiprocessing.Process(target=_clients, args=(url, seconds, clients, queue))
    process.start()
    found = await asyncio.to_thread(queue.get)
    await asyncio.to_thread(process.join)
    return found


def line(label: str, found: list[float], seconds: float) -> float:
    p50 = statistics.median(found) * 1000
    p99 = statistics.quantiles(found, n=100)[98] * 1000
    print(f"  {label:>12}: p50 {p50:6.1f} ms, p99 {p99:6.1f} ms, {len(found) / seconds:6.0f}/s")
    return p99


async def main(seconds: int, clients: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="kluis-bench-") as tmp:
        clip = make_clip(Path(tmp), seconds).read_bytes()
        settings = Settings(data_dir=Path(tmp) / "data")
        with contextlib.redirect_stdout(io.StringIO()):
            await init(settings)
        app = create_app(settings, jobs=1)
        runner, base = await serve(app)
        try:
            child, staff, parent = await populate(app)
            async with aiohttp.ClientSession() as session:

                async def upload(kind: str, data: bytes, name: str) -> dict[str, object]:
                    form = multipart({"kind": kind}, data, name)
                    async with session.post(
                        f"{base}/v1/children/{child}/items",
                        data=form,
                        headers={"Authorization": f"Bearer {staff}"},
                    ) as answer:
                        assert answer.status == 201, await answer.text()
                        item: dict[str, object] = await answer.json()
                        return item

                async def item(item_id: object) -> dict[str, Any]:
                    async with session.get(
                        f"{base}/v1/items/{item_id}", headers={"Authorization": f"Bearer {parent}"}
                    ) as answer:
                        found: dict[str, Any] = await answer.json()
                        return found

                photo = await upload("photo", photo_jpeg(), "p.jpg")
                async with session.post(
                    f"{base}/v1/items/{photo['id']}/links",
                    json={"variant": "thumb", "ttl_seconds": 3600},
                    headers={"Authorization": f"Bearer {parent}"},
                ) as answer:
                    url = base + urlsplit((await answer.json())["url"]).path
                print(f"thumbnail links, {clients} clients; a 1080p HEVC clip of {seconds} s")
                for round_ in range(1, rounds + 1):
                    print(f"round {round_}")
                    quiet = line("quiet", await load(url, 10, clients), 10)
                    video = await upload("video", clip, "IMG_0001.MOV")
                    started = time.monotonic()
                    busy: list[float] = []
                    while "web" in (await item(video["id"])).get("processing", []):
                        busy += await load(url, 5, clients)
                    took = time.monotonic() - started
                    p99 = line("transcoding", busy, took)
                    print(
                        f"  the job took {took:.1f} s; p99 transcoding / quiet: {p99 / quiet:.2f}"
                    )
        finally:
            await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.clients, args.rounds))
