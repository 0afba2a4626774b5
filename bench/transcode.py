"""Benchmark: a video's ``web`` rendition, as the job makes it (run by hand).

    .venv/bin/python -m bench.transcode [--seconds 20] [--rounds 2]

A 1080p HEVC clip in MOV (an iPhone's format, ``moov`` last; ffmpeg's
``testsrc2`` picture, which moves, and a tone) is made once. Each round then
runs, each in a fresh child process (so peak memory is its own):

* bare ffmpeg (the baseline): file to file, the same H.264/AAC settings
  (CRF 23, ``veryfast``, 2 threads, ``+faststart``) at the same niceness;
* Kluis: the original encrypted on local disk, decrypted as a stream in
  ``moov``-first order into ffmpeg's pipe (under the job's limits and
  niceness), the fragmented output into an encrypted staging blob, the
  final MP4 (``moov`` first) into its encrypted blob: the ``video.web``
  job's media path, without the database.

Prints seconds of transcode per minute of video, CPU seconds, the peak
resident memory of ffmpeg and of the Python process, and the ratio of
Kluis's time to the bare one. The host is shared: run it twice, quote the
spread.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path

from vault.config import Settings
from vault.crypto.handles import ItemKey
from vault.crypto.stream import decrypt_range, encrypt_stream
from vault.media import video_variants
from vault.media.faststart import moov_first
from vault.storage import LocalDiskStore, new_blob_key

SEGMENT = 64 * 1024


def make_clip(folder: Path, seconds: int) -> Path:
    path = folder / f"hevc-1080p-{seconds}s.mov"
    subprocess.run(
        [
            *("ffmpeg", "-nostdin", "-loglevel", "error", "-y"),
            *("-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate=30:duration={seconds}"),
            *("-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"),
            *("-c:v", "libx265", "-preset", "fast", "-x265-params", "log-level=error"),
            *("-tag:v", "hvc1", "-pix_fmt", "yuv420p", "-c:a", "aac", str(path)),
        ],
        check=True,
    )
    return path


def bare(source: Path, out: Path) -> None:
    subprocess.run(
        [
            # At the job's niceness, so the two compete for the host alike.
            *("nice", "-n", str(Settings().video.nice)),
            *("ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-threads", "2", "-i", str(source)),
            *("-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-profile:v", "high"),
            *("-pix_fmt", "yuv420p", "-threads", "2", "-c:a", "aac", "-b:a", "128k"),
            *("-movflags", "+faststart", str(out)),
        ],
        check=True,
    )


async def kluis(source: Path, folder: Path) -> int:
    settings = Settings()
    store = await LocalDiskStore.open(folder / "blobs")
    key = ItemKey(os.urandom(32))
    item = "bench-item"
    data = await asyncio.to_thread(source.read_bytes)

    async def original() -> AsyncIterator[bytes]:
        for at in range(0, len(data), 256 * 1024):
            yield data[at : at + 256 * 1024]

    blob = new_blob_key()
    stored = await store.put(blob, encrypt_stream(key, item, "original", original(), SEGMENT))

    def read(start: int, end: int) -> AsyncIterator[bytes]:
        def get(offset: int, length: int) -> AsyncIterator[bytes]:
            return store.get(blob, offset, length)

        return decrypt_range(key, item, "original", get, stored, start, end)

    def feed() -> AsyncIterator[bytes]:
        return moov_first(read, len(data))

    found = await video_variants.inspect(feed, "video/quicktime", settings)
    staging = new_blob_key()
    staged = 0

    async def keep(media: AsyncIterable[bytes]) -> None:
        nonlocal staged
        staged = await store.put(staging, encrypt_stream(key, item, "staging", media, SEGMENT))

    head = await video_variants.make_web(feed, "video/quicktime", found, settings, keep)

    async def final() -> AsyncIterator[bytes]:
        yield head

        def get(offset: int, length: int) -> AsyncIterator[bytes]:
            return store.get(staging, offset, length)

        async for chunk in decrypt_range(key, item, "staging", get, staged):
            yield chunk

    await store.put(new_blob_key(), encrypt_stream(key, item, "web", final(), SEGMENT))
    await store.delete(staging)
    return len(head)


def child(kind: str, source: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        started, cpu = time.perf_counter(), time.process_time()
        if kind == "bare":
            bare(source, Path(tmp) / "out.mp4")
        else:
            asyncio.run(kluis(source, Path(tmp)))
        wall = time.perf_counter() - started
        own_cpu = time.process_time() - cpu
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        json.dumps(
            {
                "wall": wall,
                "cpu": own_cpu + children.ru_utime + children.ru_stime,
                "ffmpeg_rss_mb": children.ru_maxrss / 1024,
                "python_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


def measure(kind: str, source: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.transcode", "--child", kind, str(source)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        source = make_clip(Path(tmp), args.seconds)
        per_minute = 60 / args.seconds
        print(f"1080p30 HEVC MOV, {args.seconds} s, {source.stat().st_size / 1e6:.1f} MB")
        for round_ in range(1, args.rounds + 1):
            results = {kind: measure(kind, source) for kind in ("bare", "kluis")}
            for kind, r in results.items():
                print(
                    f"round {round_} {kind:>5}: {r['wall'] * per_minute:6.1f} s per minute of "
                    f"video, CPU {r['cpu'] * per_minute:6.1f} s per minute, ffmpeg peak "
                    f"{r['ffmpeg_rss_mb']:.0f} MB, Python peak {r['python_rss_mb']:.0f} MB"
                )
            ratio = results["kluis"]["wall"] / results["bare"]["wall"]
            print(f"round {round_} ratio kluis / bare (time): {ratio:.2f}")


if __name__ == "__main__":
    main()
