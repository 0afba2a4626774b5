"""An MP4 or MOV read with its ``moov`` box first, for a decoder that reads a pipe.

ffmpeg reads a stored video from a pipe (the plaintext never touches a
disk), and a pipe cannot seek. Phones write the ``moov`` box (the sample
tables) after the frames, and ffmpeg's MOV demuxer that meets ``mdat``
before ``moov`` on a pipe gives up. :func:`moov_first` therefore serves the
file in the order ``qt-faststart`` writes it: the ``ftyp`` box, then
``moov`` with every chunk offset moved by as much as its box moved, then
every other top-level box in its own order. It reads the stored blob at
random (a ranged read decrypts only the segments asked for): the box
headers, the ``moov`` (held whole, at most :data:`~vault.media.bmff.MAX_HELD_BOX`,
as the scrubber held it on upload), then the rest, streamed.

A file whose ``moov`` already comes before its media data streams through
unchanged. A 32-bit chunk offset (``stco``) that would move past 4 GiB
cannot be written back: :class:`CannotReorder` (the job ends with that
reason; the original stays served).

May touch: only what the reader gives it.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import AsyncIterator, Callable

from vault.media.bmff import MAX_HELD_BOX

#: ``read(start, end)``: the plaintext bytes [start, end) of the stored file.
Read = Callable[[int, int], AsyncIterator[bytes]]

_CONTAINERS = frozenset({b"moov", b"trak", b"mdia", b"minf", b"stbl"})


class CannotReorder(Exception):
    """The file cannot be given to a pipe reader in a readable order."""


async def _bytes(read: Read, start: int, end: int) -> bytes:
    return b"".join([chunk async for chunk in read(start, end)])


async def top_level(read: Read, size: int) -> list[tuple[bytes, int, int]]:
    """(type, start, end) of every top-level box (the scrubber checked their sizes)."""
    boxes = []
    at = 0
    while at < size:
        head = await _bytes(read, at, min(at + 16, size))
        if len(head) < 8:
            raise CannotReorder("a box header is cut short")
        length, kind = struct.unpack_from(">I4s", head)
        if length == 1 and len(head) == 16:
            (length,) = struct.unpack_from(">Q", head, 8)
        elif length == 0:
            length = size - at
        if length < 8 or at + length > size:
            raise CannotReorder("a box has an impossible size")
        boxes.append((bytes(kind), at, at + length))
        at += length
    return boxes


def _moved(moov: bytearray, start: int, end: int, shift: Callable[[int], int]) -> None:
    """Move every chunk offset in the boxes of moov[start:end] by ``shift``, in place."""
    at = start
    while end - at >= 8:
        length, kind = struct.unpack_from(">I4s", moov, at)
        header = 8
        if length == 1:
            (length,) = struct.unpack_from(">Q", moov, at + 8)
            header = 16
        if length < header or at + length > end:
            raise CannotReorder("the movie header is damaged")
        body = at + header
        if kind in _CONTAINERS:
            _moved(moov, body, at + length, shift)
        elif kind in (b"stco", b"co64"):
            width, form = (4, ">I") if kind == b"stco" else (8, ">Q")
            (count,) = struct.unpack_from(">I", moov, body + 4)
            if body + 8 + count * width > at + length:
                raise CannotReorder("a chunk offset table is damaged")
            for index in range(count):
                where = body + 8 + index * width
                (offset,) = struct.unpack_from(form, moov, where)
                moved = shift(offset)
                if width == 4 and moved >= 2**32:
                    raise CannotReorder(
                        "its 32-bit chunk offsets cannot move past 4 GiB to put the movie "
                        "header first"
                    )
                struct.pack_into(form, moov, where, moved)
        at += length


async def moov_first(read: Read, size: int) -> AsyncIterator[bytes]:
    """The file's bytes with ``moov`` right after ``ftyp``; unchanged if it already is first."""
    boxes = await top_level(read, size)
    kinds = [kind for kind, _, _ in boxes]
    if b"moov" not in kinds:
        raise CannotReorder("it has no movie header ('moov' box)")
    moov_at = kinds.index(b"moov")
    media = [i for i, kind in enumerate(kinds) if kind in (b"mdat", b"moof")]
    if not media or moov_at < media[0]:
        async for chunk in read(0, size):
            yield chunk
        return
    _, moov_start, moov_end = boxes[moov_at]
    if moov_end - moov_start > MAX_HELD_BOX:
        raise CannotReorder("its movie header is larger than this vault reads")
    moov = bytearray(await _bytes(read, moov_start, moov_end))
    order = [0, moov_at, *(i for i in range(1, len(boxes)) if i != moov_at)]
    if kinds[0] != b"ftyp":  # pragma: no cover - the scrubber refuses such a file
        raise CannotReorder("it does not start with a file type box")
    starts = [start for _, start, _ in boxes]
    new_start = {}
    at = 0
    for index in order:
        new_start[index] = at
        at += boxes[index][2] - boxes[index][1]

    def shift(offset: int) -> int:
        index = bisect.bisect_right(starts, offset) - 1
        if index < 0 or index == moov_at:
            raise CannotReorder("a chunk offset points outside the media data")
        return offset + new_start[index] - starts[index]

    header = 16 if struct.unpack_from(">I", moov)[0] == 1 else 8
    _moved(moov, header, len(moov), shift)
    for index in order:
        if index == moov_at:
            yield bytes(moov)
            continue
        _, start, end = boxes[index]
        async for chunk in read(start, end):
            yield chunk
