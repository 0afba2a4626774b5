"""The ZIP layout: what zipfile and unzip accept, ZIP64 included, and ranges."""

from __future__ import annotations

import asyncio
import subprocess
import zipfile
import zlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from vault.share.zipstream import Entry, layout, produce

WHEN = datetime(2026, 11, 21, 9, 30, 12, tzinfo=UTC)


def files() -> dict[str, bytes]:
    return {
        "index.html": b"<p>hallo</p>",
        "photo/2026-11-21/Zandbak é.jpg": bytes(range(256)) * 300,
        "empty.txt": b"",
    }


async def whole(force64: bool) -> tuple[bytes, int]:
    contents = files()
    entries = [
        Entry(name, len(data), zlib.crc32(data), WHEN, ref=name) for name, data in contents.items()
    ]
    parts, size = layout(entries, force64=force64)

    async def read(entry: Entry, offset: int, length: int) -> AsyncIterator[bytes]:
        assert entry.ref is not None
        yield contents[entry.ref][offset : offset + length]

    return b"".join([c async for c in produce(parts, 0, size, read)]), size


@pytest.mark.parametrize("force64", [False, True])
async def test_archives_read_back_with_zipfile_and_unzip(force64: bool, tmp_path: Path) -> None:
    data, size = await whole(force64)
    assert len(data) == size
    path = tmp_path / "a.zip"
    path.write_bytes(data)
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        for name, content in files().items():
            assert archive.read(name) == content
            info = archive.getinfo(name)
            assert info.compress_type == zipfile.ZIP_STORED
            assert info.date_time == (2026, 11, 21, 9, 30, 12)
    tested = await asyncio.to_thread(
        subprocess.run, ["unzip", "-t", str(path)], capture_output=True, text=True, check=False
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


async def test_any_range_is_the_same_bytes_as_the_whole() -> None:
    data, size = await whole(False)
    contents = files()
    entries = [Entry(n, len(d), zlib.crc32(d), WHEN, ref=n) for n, d in contents.items()]
    parts, _ = layout(entries)

    async def read(entry: Entry, offset: int, length: int) -> AsyncIterator[bytes]:
        assert entry.ref is not None
        yield contents[entry.ref][offset : offset + length]

    for start, end in [(0, 1), (5, 100), (100, size), (size - 1, size), (30, 30)]:
        assert b"".join([c async for c in produce(parts, start, end, read)]) == data[start:end]


async def test_offsets_and_sizes_past_4_gib_use_zip64(tmp_path: Path) -> None:
    """A 4.5 GiB entry (zeros, written sparse) and a small one after it."""
    big = 4 * 1024**3 + 512 * 1024**2
    zeros = bytes(1024 * 1024)
    crc = 0
    for _ in range(big // len(zeros)):
        crc = zlib.crc32(zeros, crc)
    tail = b"after the big one"
    entries = [
        Entry("big.bin", big, crc, WHEN, ref="big"),
        Entry("small.txt", len(tail), zlib.crc32(tail), WHEN, data=tail),
    ]
    parts, size = layout(entries)
    path = tmp_path / "big.zip"
    with path.open("wb") as out:
        for part in parts:
            out.seek(part.offset)
            if part.data is not None:
                out.write(part.data)
        out.truncate(size)
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("big.bin")
        assert (info.file_size, info.CRC) == (big, crc)
        assert archive.getinfo("small.txt").header_offset > 0xFFFFFFFF
        assert archive.read("small.txt") == tail
