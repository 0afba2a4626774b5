"""Benchmark: removing a video's metadata as it is stored (run by hand).

    .venv/bin/python -m bench.videometa [--mb 1000] [--rounds 2]

A real MP4 (made by ffmpeg, tagged like a phone's, ``moov`` after ``mdat``)
has its ``mdat`` grown to ``--mb`` MB of random frame data, which keeps it a
valid file. Each measure runs in a fresh child process so its peak resident
memory is its own, streaming the file in 256 KiB chunks (as aiohttp hands an
upload over) into an encrypted blob on local disk:

* plain: the bytes straight into ``encrypt_stream`` and the store (the
  baseline, the same bytes in the same run);
* scrubbed: the same through :func:`vault.media.video.scrub` first;
* scrub only: the scrubber alone, no encryption or disk.

Prints MB/s, CPU seconds and peak RSS for each, and the ratio of scrubbed to
plain. The host is shared: run it twice and quote the spread.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from vault.crypto.handles import ItemKey
from vault.crypto.stream import encrypt_stream
from vault.media.sniff import MP4
from vault.media.video import scrub
from vault.storage import LocalDiskStore, new_blob_key

MB = 1_000_000
CHUNK = 256 * 1024


def make_video(folder: Path, size: int) -> tuple[bytes, int, bytes]:
    """(bytes before the end of mdat's payload, filler length, bytes after) of the file."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.files import phone_video

    data = phone_video(folder, "mp4").read_bytes()
    at = 0
    while at < len(data):
        box, kind = struct.unpack_from(">I4s", data, at)
        if kind == b"mdat":
            break
        at += box
    grow = size - len(data)
    head = data[:at] + struct.pack(">I", box + grow) + data[at + 4 : at + box]
    return head, grow, data[at + box :]


async def source(head: bytes, grow: int, tail: bytes) -> AsyncIterator[bytes]:
    block = os.urandom(CHUNK)
    yield head
    while grow > 0:
        piece = block[: min(CHUNK, grow)]
        grow -= len(piece)
        yield piece
    yield tail


async def child(mode: str, folder: Path, size: int) -> dict[str, float]:
    head, grow, tail = make_video(folder, size)
    store = await LocalDiskStore.open(folder / "blobs")
    key = ItemKey(os.urandom(32))
    stream = source(head, grow, tail)
    started, cpu0 = time.perf_counter(), sum(os.times()[:2])
    if mode == "scrub-only":
        total = 0
        async for piece in scrub(MP4, stream):
            total += len(piece)
        assert total == size
    else:
        body = scrub(MP4, stream) if mode == "scrubbed" else stream
        await store.put(new_blob_key(), encrypt_stream(key, "bench", "original", body))
    seconds = time.perf_counter() - started
    cpu = sum(os.times()[:2]) - cpu0
    await store.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"mb_s": size / MB / seconds, "cpu_s": cpu, "peak_rss_mb": peak}


def run(mode: str, folder: Path, size: int) -> dict[str, float]:
    command = [sys.executable, "-m", "bench.videometa", "--child", mode]
    out = subprocess.run(
        [*command, "--folder", str(folder), "--bytes", str(size)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main(mb: int, rounds: int) -> None:
    size = mb * MB
    with tempfile.TemporaryDirectory(prefix="kluis-videometa-") as tmp:
        folder = Path(tmp)
        make_video(folder, size)  # the ffmpeg fixture, made once
        print(f"MP4 of {mb} MB (moov after mdat), 256 KiB chunks, local disk, child processes")
        for round_ in range(1, rounds + 1):
            results = {m: run(m, folder, size) for m in ("plain", "scrubbed", "scrub-only")}
            for mode, r in results.items():
                print(
                    f"  round {round_} {mode:10s} {r['mb_s']:7.0f} MB/s  "
                    f"CPU {r['cpu_s']:5.1f} s  peak RSS {r['peak_rss_mb']:5.0f} MB"
                )
            ratio = results["scrubbed"]["mb_s"] / results["plain"]["mb_s"]
            print(f"  round {round_} scrubbed / plain: {ratio:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child")
    parser.add_argument("--folder")
    parser.add_argument("--bytes", type=int)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(child(args.child, Path(args.folder), args.bytes))))
    else:
        main(args.mb, args.rounds)
