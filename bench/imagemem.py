"""Benchmark: resident memory of a server after photo uploads (run by hand).

    .venv/bin/python -m bench.imagemem [--photos 100] [--rounds 1] [--format jpeg|heic]

Each configuration starts a fresh ``kluis`` app in a child process (embedded
defaults); this process uploads ``--photos`` 12 MP JPEGs to it over loopback
HTTP, then reads the child's resident memory (psutil). Printed: RSS when
fresh (after start and one small upload, so every module is loaded), after
the uploads, and the growth (goal: within 50 MB of the fresh server). With
``--format heic`` the photos are a 12 MP HEIC made once by ``heif-enc``: the
decode-and-re-encode path, which holds a full decode per photo.

Configurations (how image work runs):

* ``default-executor``: asyncio's default executor, no trim (what issue 23 measured);
* ``arena-2``: the default executor with glibc's ``M_ARENA_MAX`` set to 2;
* ``default-tuned``: the default executor with :func:`vault.media.pool.tune_allocator`;
* ``pool-2-notrim``: the image pool's two threads, without ``malloc_trim``;
* ``pool-2-untuned``: the pool with ``malloc_trim(0)`` after each job, glibc untuned;
* ``pool-2-tuned-notrim``: the pool and the tuning, without the trim;
* ``pool-2``: as shipped: the pool, the trim, and ``tune_allocator`` (a fixed
  2 MiB mmap threshold, a 16 MiB trim threshold, two arenas);
* ``pool-1``: the same with one thread.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import psutil

from bench.ingest import multipart, photo, populate, serve, vault_app

CONFIGS = (
    "default-executor",
    "arena-2",
    "default-tuned",
    "pool-2-notrim",
    "pool-2-untuned",
    "pool-2-tuned-notrim",
    "pool-2",
    "pool-1",
)
TUNED = ("default-tuned", "pool-2-tuned-notrim", "pool-2", "pool-1")


def configure(name: str) -> None:
    from vault.media import pool
    from vault.media.pool import IMAGE_POOL

    if name not in TUNED:
        pool.tune_allocator = lambda: None
    if name in ("default-executor", "arena-2", "default-tuned"):
        # None: run_in_executor then uses asyncio's default executor.
        pool.ImagePool.executor = property(lambda self: None)  # type: ignore[assignment]
        IMAGE_POOL.trim_after = False
    if name == "arena-2":
        ctypes.CDLL("libc.so.6").mallopt(-8, 2)  # M_ARENA_MAX
    if name in ("pool-2-notrim", "pool-2-tuned-notrim"):
        IMAGE_POOL.trim_after = False
    if name == "pool-1":
        IMAGE_POOL.workers = 1


async def server(name: str, data_dir: Path) -> None:
    configure(name)
    app = await vault_app(data_dir)
    runner, base = await serve(app)
    child, token, _ = await populate(app)
    print(json.dumps({"base": base, "child": child, "token": token}), flush=True)
    await asyncio.Event().wait()  # until killed
    await runner.cleanup()


async def upload(session: aiohttp.ClientSession, job: dict[str, str], data: bytes) -> None:
    form = multipart({"kind": "photo"}, data, "p.jpg")
    headers = {"Authorization": f"Bearer {job['token']}"}
    url = f"{job['base']}/v1/children/{job['child']}/items"
    async with session.post(url, data=form, headers=headers) as response:
        assert response.status == 201, await response.text()


async def measure(name: str, photos: int, jpeg: bytes, small: bytes) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory(prefix="kluis-imagemem-") as tmp:
        process = subprocess.Popen(  # noqa: ASYNC220 - started once, read with one readline
            [sys.executable, "-m", "bench.imagemem", "--serve", name, "--data", tmp + "/data"],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stdout is not None
            job = json.loads(process.stdout.readline())
            rss = psutil.Process(process.pid).memory_info
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
                await upload(session, job, small)
                await asyncio.sleep(1)
                fresh = rss().rss / 1e6
                started = time.perf_counter()
                for _ in range(photos):
                    await upload(session, job, jpeg)
                seconds = time.perf_counter() - started
                await asyncio.sleep(2)
                after = rss().rss / 1e6
        finally:
            process.kill()
            process.wait()
    return fresh, after, photos / seconds


def heic(jpeg: bytes) -> bytes:
    with tempfile.TemporaryDirectory(prefix="kluis-imagemem-") as tmp:
        source, target = Path(tmp) / "p.jpg", Path(tmp) / "p.heic"
        source.write_bytes(jpeg)
        subprocess.run(["heif-enc", "-q", "80", "-o", str(target), str(source)], check=True)
        return target.read_bytes()


async def main(photos: int, rounds: int, configs: list[str], kind: str) -> None:
    jpeg, small = photo(), photo(320, 240)
    if kind == "heic":
        jpeg = heic(jpeg)
    print(
        f"{photos} uploads of a 12 MP {kind.upper()} ({len(jpeg) / 1e6:.1f} MB), fresh server each"
    )
    for round_ in range(1, rounds + 1):
        for name in configs:
            fresh, after, rate = await measure(name, photos, jpeg, small)
            print(
                f"  round {round_} {name:17s} fresh {fresh:6.0f} MB  after {after:6.0f} MB  "
                f"growth {after - fresh:+5.0f} MB  ({rate:.1f} photos/s)"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--photos", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--format", choices=("jpeg", "heic"), default="jpeg")
    parser.add_argument("--serve")
    parser.add_argument("--data")
    args = parser.parse_args()
    if args.serve:
        asyncio.run(server(args.serve, Path(args.data)))
    else:
        asyncio.run(main(args.photos, args.rounds, args.configs.split(","), args.format))
