"""Benchmark: a child's export, 1 GB and 5 GB, against reading the plaintext.

    .venv/bin/python -m bench.export [--sizes 1 5] [--file-mb 250]
    .venv/bin/python -m bench.export --nginx [--gb 1] [--rounds 3] [--quick]

For each size, uploads that many GB of video (files of ``--file-mb``) for one
child through the API, asks for the export as the child's parent and
downloads it over loopback, discarding the bytes: MB/s and the growth of
resident memory while it runs (client and server share the process). Beside
it, in the same run, reads the same plaintext from files on the local disk
(the ceiling: no decryption, no HTTP).

That ceiling is not a fair baseline (page-cache reads, the client in the
server's process: issue 23). :func:`rows`, the ``python -m bench`` table's
row, downloads the export with curl from ``kluis serve`` and compares it with
nginx serving the same ZIP as a plain file, in turns. ``--nginx`` runs that
row alone (with its own small vault: ``--quick``'s setup) and prints every
round's rate and server CPU beside the row; ``--gb`` and ``--rounds`` change
its size and rounds (the table's are 1 GB and 3).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiohttp
import psutil

from bench.ingest import multipart, populate, serve, vault_app, video_source
from bench.table import Goal, Row

if TYPE_CHECKING:
    from bench.serving import Stage

MB = 1_000_000


class Peak:
    def __init__(self) -> None:
        self.process = psutil.Process()
        self.base = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.01)

    def __enter__(self) -> Peak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def one_size(gb: int, file_mb: int, tmp: Path) -> None:
    app = await vault_app(tmp / f"data-{gb}")
    runner, base = await serve(app)
    child, staff, parent = await populate(app)
    block = os.urandom(1 << 20)
    plain = tmp / f"plain-{gb}"
    plain.mkdir()
    count = gb * 1000 // file_mb
    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for i in range(count):
            form = multipart({"kind": "video"}, video_source(file_mb * MB, block), f"v{i}.mp4")
            async with session.post(
                f"{base}/v1/children/{child}/items",
                data=form,
                headers={"Authorization": f"Bearer {staff}"},
            ) as r:
                assert r.status == 201, await r.text()
            with (plain / f"v{i}.mp4").open("wb") as out:
                async for chunk in video_source(file_mb * MB, block):
                    out.write(chunk)
        started = time.perf_counter()
        async with session.post(
            f"{base}/v1/children/{child}/exports",
            json={},
            headers={"Authorization": f"Bearer {parent}"},
        ) as r:
            made = await r.json()
        planned = time.perf_counter() - started
        with Peak() as memory:
            started = time.perf_counter()
            got = 0
            async with session.get(base + urlsplit(made["url"]).path) as r:
                async for chunk in r.content.iter_chunked(1 << 20):
                    got += len(chunk)
            took = time.perf_counter() - started
    await runner.cleanup()
    assert got == made["size"]
    started = time.perf_counter()
    read = 0
    for path in sorted(plain.iterdir()):
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                read += len(chunk)
    bare = time.perf_counter() - started
    rate, plain_rate = got / took / MB, read / bare / MB
    print(
        f"{gb} GB ({count} videos): export {rate:,.0f} MB/s, plaintext from disk "
        f"{plain_rate:,.0f} MB/s: {rate / plain_rate:.0%}; planning {planned * 1000:.0f} ms; "
        f"memory growth while downloading {(memory.peak - memory.base) / MB:.0f} MB "
        f"(peak resident {memory.peak / MB:.0f} MB)"
    )


async def main(sizes: list[int], file_mb: int) -> None:
    for gb in sizes:
        with tempfile.TemporaryDirectory(prefix="kluis-bench-") as tmp:
            await one_size(gb, file_mb, Path(tmp))


async def against_nginx(gb: float, rounds: int, file_mb: int) -> None:
    from bench.serving import stage
    from bench.table import render

    async with stage(True) as served:
        found = await rows(served, gb=gb, rounds=rounds, file_mb=file_mb, verbose=True)
    print(render(found, {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}))


def _curl(url: str, target: str = "/dev/null") -> tuple[int, float]:
    """One download by curl (a process of its own): bytes and seconds."""
    done = subprocess.run(
        ["curl", "-sS", "--fail", "-o", target, "-w", "%{size_download} %{time_total}", url],
        capture_output=True,
        text=True,
        check=True,
    )
    size, seconds = done.stdout.split()
    return int(size), float(seconds)


async def rows(
    stage: Stage,
    *,
    gb: float | None = None,
    rounds: int | None = None,
    file_mb: int | None = None,
    verbose: bool = False,
) -> list[Row]:
    """The table's export row: the child's export downloaded by curl from
    ``kluis serve``, against nginx serving that same ZIP as a plain file
    (issue 23: the old baseline read plaintext from the page cache with the
    client in the server's process, which measures the wrong thing).
    ``gb``, ``rounds``, ``file_mb`` replace the sizes ``stage.quick`` picks;
    ``verbose`` prints each download's rate and server CPU."""
    small = stage.quick and gb is None
    gb = gb or (0.2 if stage.quick else 1.0)
    rounds = rounds or (2 if stage.quick else 3)
    file_mb = file_mb or (100 if stage.quick else 250)
    server = await stage.kluis(1)
    if verbose:
        print(f"kluis serve: pid {server.proc.pid}, load {os.getloadavg()}", flush=True)
    world = stage.world
    block = os.urandom(1 << 20)
    for i in range(round(gb * 1000 / file_mb)):
        form = multipart({"kind": "video"}, video_source(file_mb * MB, block), f"v{i}.mp4")
        async with stage.session.post(
            f"{server.base}/v1/children/{world.child}/items",
            data=form,
            headers={"Authorization": f"Bearer {world.staff}"},
        ) as r:
            assert r.status == 201, await r.text()
    async with stage.session.post(
        f"{server.base}/v1/children/{world.child}/exports",
        json={},
        headers={"Authorization": f"Bearer {world.parent}"},
    ) as r:
        assert r.status in (200, 201), await r.text()
        made = await r.json()
    link = server.base + urlsplit(made["url"]).path
    # The first download (not counted) is the baseline's file: the same ZIP.
    size, _ = await asyncio.to_thread(_curl, link, str(stage.www / "export.zip"))
    assert size == made["size"]
    nginx = stage.nginx(1)
    sides: dict[str, tuple[Callable[[], float], str]] = {
        "nginx": (nginx.cpu, f"{nginx.base}/export.zip"),
        "kluis": (server.cpu, link),
    }
    rates: dict[str, list[float]] = {"nginx": [], "kluis": []}
    cpu: dict[str, list[float]] = {"nginx": [], "kluis": []}
    for n in range(rounds):
        for name in sides if n % 2 == 0 else reversed(list(sides)):
            spent, url = sides[name]
            before = spent()
            got, seconds = await asyncio.to_thread(_curl, url)
            assert got == size
            cpu[name].append((spent() - before) * 1000)
            rates[name].append(got / MB / seconds)
            if verbose:
                print(
                    f"round {n + 1} {name}: {rates[name][-1]:,.0f} MB/s, "
                    f"server CPU {cpu[name][-1]:,.0f} ms, load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
    (stage.www / "export.zip").unlink()
    ratios = [k / b for k, b in zip(rates["kluis"], rates["nginx"], strict=True)]
    kluis, baseline = statistics.mean(rates["kluis"]), statistics.mean(rates["nginx"])
    return [
        Row(
            measure="export of 1 GB, rate",
            unit="MB/s",
            baseline_name="nginx, the same ZIP as a file",
            baseline=baseline,
            kluis=kluis,
            ratio=kluis / baseline,
            spread=(min(ratios), max(ratios)),
            cpu_ms=(statistics.mean(cpu["nginx"]), statistics.mean(cpu["kluis"])),
            goal=Goal(">=", 0.9, ">= 0.9"),
            note=f"{size / MB:,.0f} MB{' (--quick)' if small else ''}, curl, "
            f"{rounds} downloads each in turns; CPU ms per download",
        )
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--file-mb", type=int, default=None)
    parser.add_argument("--nginx", action="store_true", help="the table's row against nginx alone")
    parser.add_argument("--gb", type=float, default=1.0, help="--nginx: the export's size")
    parser.add_argument("--rounds", type=int, default=3, help="--nginx: downloads of each side")
    args = parser.parse_args()
    if args.nginx:
        asyncio.run(against_nginx(args.gb, args.rounds, args.file_mb or 250))
    else:
        asyncio.run(main(args.sizes, args.file_mb or 250))
