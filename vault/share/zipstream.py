"""A ZIP archive laid out before its first byte: stored entries, ZIP64 when needed.

Everything about the archive (names, sizes, CRC-32s, times, order) is known
up front, so its exact size is known, every byte has one fixed offset, and
any range of it can be produced on its own: a resumed download gets the same
bytes as the first. Entries are *stored* (no compression: photos and videos
do not shrink) with their CRC-32 in the local header, so there are no data
descriptors. ZIP64 extra fields are used per entry only where a size or an
offset does not fit in 32 bits, and the ZIP64 end records only where the
archive needs them (APPNOTE 6.3.x, sections 4.3.x and 4.5.3).
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from datetime import datetime

_LIMIT32 = 0xFFFFFFFF
_LIMIT16 = 0xFFFF
_UTF8 = 0x0800
_FILE_ATTR = 0o100644 << 16  # a regular file, rw-r--r--


@dataclasses.dataclass(frozen=True)
class Entry:
    name: str
    size: int
    crc: int
    modified: datetime
    #: The bytes of a small generated file; None for content read by ``source``.
    data: bytes | None = None
    #: What the caller's reader needs to produce the content (an item id).
    ref: str | None = None


@dataclasses.dataclass(frozen=True)
class Part:
    offset: int
    length: int
    data: bytes | None  # a header, or a generated file's bytes
    entry: Entry | None  # content the reader produces


def dos_time(moment: datetime) -> tuple[int, int]:
    year = min(max(moment.year, 1980), 2107)
    date = ((year - 1980) << 9) | (moment.month << 5) | moment.day
    time = (moment.hour << 11) | (moment.minute << 5) | (moment.second // 2)
    return time, date


def _local_header(entry: Entry, name: bytes, force64: bool) -> bytes:
    big = force64 or entry.size >= _LIMIT32
    extra = struct.pack("<HHQQ", 0x0001, 16, entry.size, entry.size) if big else b""
    size32 = _LIMIT32 if big else entry.size
    time, date = dos_time(entry.modified)
    return (
        struct.pack(
            "<IHHHHHIIIHH",
            0x04034B50,
            45 if big else 20,
            _UTF8,
            0,  # stored
            time,
            date,
            entry.crc,
            size32,
            size32,
            len(name),
            len(extra),
        )
        + name
        + extra
    )


def _central_header(entry: Entry, name: bytes, offset: int, force64: bool) -> bytes:
    big = force64 or entry.size >= _LIMIT32
    far = force64 or offset >= _LIMIT32
    fields = ([entry.size, entry.size] if big else []) + ([offset] if far else [])
    extra = struct.pack(f"<HH{len(fields)}Q", 0x0001, 8 * len(fields), *fields) if fields else b""
    size32 = _LIMIT32 if big else entry.size
    time, date = dos_time(entry.modified)
    version = 45 if fields else 20
    return (
        struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            (3 << 8) | version,  # made by: Unix, so the attributes below are read
            version,
            _UTF8,
            0,
            time,
            date,
            entry.crc,
            size32,
            size32,
            len(name),
            len(extra),
            0,
            0,
            0,
            _FILE_ATTR,
            _LIMIT32 if far else offset,
        )
        + name
        + extra
    )


def _end(count: int, cd_offset: int, cd_size: int, force64: bool) -> bytes:
    out = b""
    if force64 or count >= _LIMIT16 or cd_offset >= _LIMIT32 or cd_size >= _LIMIT32:
        eocd64_offset = cd_offset + cd_size
        out += struct.pack(
            "<IQHHIIQQQQ", 0x06064B50, 44, (3 << 8) | 45, 45, 0, 0, count, count, cd_size, cd_offset
        )
        out += struct.pack("<IIQI", 0x07064B50, 0, eocd64_offset, 1)
    out += struct.pack(
        "<IHHHHIIH",
        0x06054B50,
        0,
        0,
        min(count, _LIMIT16),
        min(count, _LIMIT16),
        min(cd_size, _LIMIT32),
        min(cd_offset, _LIMIT32),
        0,
    )
    return out


def layout(entries: Sequence[Entry], *, force64: bool = False) -> tuple[list[Part], int]:
    """The archive as parts at fixed offsets, and its total size."""
    names = [entry.name.encode("utf-8") for entry in entries]
    if len(set(names)) != len(names):
        raise ValueError("entry names must be unique")
    parts: list[Part] = []
    offset = 0
    central = bytearray()
    for entry, name in zip(entries, names, strict=True):
        header = _local_header(entry, name, force64)
        central += _central_header(entry, name, offset, force64)
        parts.append(Part(offset, len(header), header, None))
        offset += len(header)
        if entry.data is not None:
            parts.append(Part(offset, entry.size, entry.data, None))
        else:
            parts.append(Part(offset, entry.size, None, entry))
        offset += entry.size
    tail = bytes(central) + _end(len(entries), offset, len(central), force64)
    parts.append(Part(offset, len(tail), tail, None))
    return parts, offset + len(tail)


Reader = Callable[[Entry, int, int], AsyncIterator[bytes]]


async def produce(
    parts: Sequence[Part], start: int, end: int, read: Reader
) -> AsyncGenerator[bytes, None]:
    """The bytes ``[start, end)`` of the archive; ``read(entry, offset, length)``
    yields the part of an entry's content that falls in the range."""
    for part in parts:
        lo, hi = max(start, part.offset), min(end, part.offset + part.length)
        if lo >= hi:
            continue
        if part.data is not None:
            yield part.data[lo - part.offset : hi - part.offset]
            continue
        assert part.entry is not None
        async for chunk in read(part.entry, lo - part.offset, hi - lo):
            yield chunk
