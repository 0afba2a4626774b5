"""Sanitising an ICC colour profile: the colour science kept, the names gone.

A JPEG kept with its compressed pixels cannot be converted to sRGB, so a
photo shot in Display P3 (every recent iPhone) needs its profile to show the
right colours. A profile also names things: the device maker and model in
its header, its creator, the creation date, and tags such as ``desc``,
``cprt``, ``dmnd``/``dmdd`` (device manufacturer and model descriptions) and
``meta``. :func:`sanitise` rebuilds the profile with only the tags a colour
engine needs (:data:`COLOUR_TAGS`) and those header fields zeroed; anything
it cannot parse is dropped (None), and the photo is then shown as sRGB.

May touch: only the bytes it is given.
"""

from __future__ import annotations

import struct

#: The tags colour management reads (ICC.1:2010 and skcms/lcms practice).
COLOUR_TAGS = frozenset(
    {b"rXYZ", b"gXYZ", b"bXYZ", b"rTRC", b"gTRC", b"bTRC", b"kTRC", b"wtpt", b"bkpt"}
    | {b"chad", b"chrm", b"lumi", b"cicp", b"gamt"}
    | {b"A2B0", b"A2B1", b"A2B2", b"B2A0", b"B2A1", b"B2A2"}
)
_CLASSES = frozenset({b"mntr", b"scnr", b"spac", b"prtr"})
_SPACES = frozenset({b"RGB ", b"GRAY", b"CMYK"})
#: Header fields that name software, a device or a time (and the CMM flags): zeroed.
_HEADER_NAMES = ((4, 8), (24, 36), (40, 48), (48, 56), (80, 100))
MAX_TAGS = 100


def sanitise(profile: bytes) -> bytes | None:
    """The profile with only colour tags and an anonymous header, or None."""
    if len(profile) < 132 or profile[36:40] != b"acsp":
        return None
    if profile[12:16] not in _CLASSES or profile[16:20] not in _SPACES:
        return None
    (count,) = struct.unpack_from(">I", profile, 128)
    if count > MAX_TAGS or 132 + 12 * count > len(profile):
        return None
    kept: list[tuple[bytes, int, int]] = []
    for index in range(count):
        signature, offset, size = struct.unpack_from(">4sII", profile, 132 + 12 * index)
        if offset + size > len(profile) or size < 8:
            return None
        if signature in COLOUR_TAGS:
            kept.append((signature, offset, size))
    if not kept:
        return None
    header = bytearray(profile[:128])
    for start, end in _HEADER_NAMES:
        header[start:end] = bytes(end - start)
    table_end = 132 + 12 * len(kept)
    body = bytearray()
    placed: dict[tuple[int, int], int] = {}  # shared tag data (one TRC for r, g, b) stays shared
    entries = bytearray()
    for signature, offset, size in kept:
        where = placed.get((offset, size))
        if where is None:
            where = table_end + len(body)
            placed[(offset, size)] = where
            body += profile[offset : offset + size]
            body += bytes(-len(body) % 4)
        entries += struct.pack(">4sII", signature, where, size)
    total = table_end + len(body)
    struct.pack_into(">I", header, 0, total)
    return bytes(header) + struct.pack(">I", len(kept)) + bytes(entries) + bytes(body)
