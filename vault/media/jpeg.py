"""Stripping a JPEG's metadata at the byte level, keeping its compressed pixels.

:class:`JpegStripper` is a push parser: the upload's chunks go in as they
arrive and what comes out is the same JPEG with every metadata segment gone.
It keeps what a decoder needs: the frame header (SOF), quantisation and
Huffman tables (DQT, DHT, DAC), the restart interval (DRI, DNL), the scans
(SOS and their entropy-coded data) and an Adobe APP14 marker, rewritten to
its 12 bytes of colour-transform flags, because without it an RGB or CMYK
JPEG decodes in the wrong colours. It drops every other APPn segment
(JFIF with its thumbnail, EXIF with GPS, camera, times and its thumbnail,
XMP, IPTC/Photoshop, MPF with depth and gain maps, maker segments), every
comment (COM) and everything after the end marker (appended images,
trailers). Three things are read on the way, not copied: the EXIF orientation
(applied afterwards by a lossless transform, :mod:`vault.media.lossless`),
the EXIF time the photo was taken (:func:`exif_taken_at`, the item's
``taken_at`` where the upload gave none) and the ICC profile (sanitised and
put back, :mod:`vault.media.icc`).

Bounds and refusals: a segment is at most 65,535 bytes by the format and is
held only while it is parsed; at most :data:`MAX_SEGMENTS` segments; one
frame, of a kind libjpeg decodes (baseline, extended, progressive,
arithmetic); a scan only after a frame; the start marker first and the end
marker last; at most :data:`MAX_STRAY` stray bytes between segments (which
decoders skip, and so does this parser, dropping them). A file that breaks
any of this is refused with ``UnsupportedType``. The entropy-coded data is
not decoded here; the preview made from the stripped file decodes all of it
(at reduced scale), so a scan libjpeg cannot decode is refused there.

May touch: only the bytes it is given. No I/O, no logging.
"""

from __future__ import annotations

import dataclasses
import re
import struct
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

from vault.media.sniff import UnsupportedType

MAX_SEGMENTS = 4096
#: An ICC profile larger than this is dropped rather than gathered.
MAX_ICC = 1024 * 1024
#: Stray bytes between segments skipped in all (some cameras pad); beyond, refused.
MAX_STRAY = 64 * 1024

_SOI, _EOI, _SOS, _COM = 0xD8, 0xD9, 0xDA, 0xFE
_KEPT_TABLES = {0xC4, 0xDB, 0xDD, 0xCC, 0xDC}  # DHT, DQT, DRI, DAC, DNL
#: Frames libjpeg decodes: baseline, extended, progressive (Huffman and arithmetic).
_FRAMES = {0xC0, 0xC1, 0xC2, 0xC9, 0xCA}
_UNSUPPORTED_FRAMES = {0xC3, 0xC5, 0xC6, 0xC7, 0xCB, 0xCD, 0xCE, 0xCF, 0xDE, 0xDF}
#: In entropy-coded data a 0xFF is a marker unless stuffed (FF00) or a restart (FFD0-FFD7).
_MARKER_IN_SCAN = re.compile(rb"\xff(?=[^\x00\xd0-\xd7])")
_ICC_TAG = b"ICC_PROFILE\x00"


@dataclasses.dataclass(frozen=True)
class StrippedJpeg:
    data: bytes
    width: int
    height: int
    components: int
    #: EXIF orientation 1-8 (1 when absent or unreadable).
    orientation: int
    #: The embedded ICC profile as found (not yet sanitised), or None.
    icc: bytes | None
    #: Bytes dropped: metadata segments, comments, trailing data.
    dropped: int
    #: When the photo was taken (EXIF DateTimeOriginal, ISO 8601), or None.
    taken_at: str | None = None


def refuse(what: str) -> UnsupportedType:
    return UnsupportedType(
        f"The file could not be read as JPEG ({what}); it may be damaged. "
        "Export the photo again from the device and upload that."
    )


#: Entries read of one IFD at most (a camera writes a few dozen).
_MAX_ENTRIES = 512
_EXIF_IFD, _DATE_TIME_ORIGINAL, _OFFSET_TIME_ORIGINAL = 0x8769, 0x9003, 0x9011
_EXIF_TIME = re.compile(rb"(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_EXIF_OFFSET = re.compile(rb"([+-])(\d{2}):(\d{2})")


def _tiff(payload: bytes) -> tuple[bytes, str] | None:
    """The TIFF structure of an ``Exif\\0\\0`` payload and its byte order."""
    tiff = payload[6:]
    if len(tiff) < 8 or tiff[:4] not in (b"II*\x00", b"MM\x00*"):
        return None
    return tiff, "<" if tiff[:2] == b"II" else ">"


def _entries(tiff: bytes, order: str, ifd: int) -> Iterator[tuple[int, int, int, int]]:
    """(tag, type, count, where the value field is) of each entry of the IFD at ``ifd``,
    as far as it lies within ``tiff`` (at most :data:`_MAX_ENTRIES`)."""
    if ifd + 2 > len(tiff):
        return
    (count,) = struct.unpack_from(order + "H", tiff, ifd)
    for index in range(min(count, _MAX_ENTRIES)):
        at = ifd + 2 + 12 * index
        if at + 12 > len(tiff):
            return
        tag, kind, number = struct.unpack_from(order + "HHI", tiff, at)
        yield tag, kind, number, at + 8


def exif_orientation(payload: bytes) -> int:
    """The orientation tag of an ``Exif\\0\\0`` APP1 payload; 1 when absent or malformed."""
    found = _tiff(payload)
    if found is None:
        return 1
    tiff, order = found
    (ifd,) = struct.unpack_from(order + "I", tiff, 4)
    for tag, kind, number, value in _entries(tiff, order, ifd):
        if tag == 0x0112 and kind == 3 and number == 1:
            (orientation,) = struct.unpack_from(order + "H", tiff, value)
            return orientation if 1 <= orientation <= 8 else 1
    return 1


def _ascii(tiff: bytes, order: str, kind: int, number: int, value: int) -> bytes | None:
    """An ASCII entry's text (at most 64 bytes), or None if it is not one or lies outside."""
    if kind != 2 or not 0 < number <= 64:
        return None
    if number > 4:
        (value,) = struct.unpack_from(order + "I", tiff, value)
    if value + number > len(tiff):
        return None
    return tiff[value : value + number].split(b"\x00", 1)[0].strip()


def exif_taken_at(payload: bytes) -> str | None:
    """When an ``Exif\\0\\0`` payload says the photo was taken, as ISO 8601; None
    when it does not say, or not readably.

    DateTimeOriginal (in the EXIF IFD) is the camera's clock; with an
    OffsetTimeOriginal the moment is given with that offset, without one as
    the clock's own time, with no offset (the camera did not say its zone).
    Which zone that clock was in is the ingest's to say: it stores the
    moment in UTC, reading a zone-less one in ``uploads.camera_time_zone``
    (vault/items/when.py). Reads two IFDs at most, never beyond the payload."""
    found = _tiff(payload)
    if found is None:
        return None
    tiff, order = found
    (ifd0,) = struct.unpack_from(order + "I", tiff, 4)
    exif_ifd = next(
        (
            struct.unpack_from(order + "I", tiff, value)[0]
            for tag, kind, number, value in _entries(tiff, order, ifd0)
            if tag == _EXIF_IFD and kind in (4, 13) and number == 1
        ),
        None,
    )
    if exif_ifd is None:
        return None
    when = offset = None
    for tag, kind, number, value in _entries(tiff, order, exif_ifd):
        if tag == _DATE_TIME_ORIGINAL:
            when = _ascii(tiff, order, kind, number, value)
        elif tag == _OFFSET_TIME_ORIGINAL:
            offset = _ascii(tiff, order, kind, number, value)
    parts = _EXIF_TIME.fullmatch(when) if when else None
    if parts is None:
        return None
    year, month, day, hour, minute, second = (int(part) for part in parts.groups())
    try:
        moment = datetime(year, month, day, hour, minute, second)
    except ValueError:  # "0000:00:00 00:00:00" (a camera without a clock), a 31st of June
        return None
    zone = _EXIF_OFFSET.fullmatch(offset) if offset else None
    if zone is not None:
        sign, hours, minutes = zone.groups()
        shift = timedelta(hours=int(hours), minutes=int(minutes))
        if shift < timedelta(hours=24):
            moment = moment.replace(tzinfo=timezone(-shift if sign == b"-" else shift))
    return moment.isoformat()


class JpegStripper:
    """Feed the upload with :meth:`feed`; :meth:`close` gives the stripped JPEG."""

    def __init__(self) -> None:
        self._pending = bytearray()
        self._pos = 0
        #: The output in pieces, joined once at the end: most of a photo is
        #: its scan, passed on as the chunks it arrived in, never copied.
        self._out: list[bytes | memoryview] = []
        self._state = "soi"  # soi, marker, scan, done
        self._segments = 0
        self._frame: tuple[int, int, int] | None = None
        self._scans = 0
        self._orientation: int | None = None
        self._taken_at: str | None = None
        self._icc: dict[int, bytes] = {}
        self._icc_size = 0
        self._icc_dropped = False
        self._stray = 0
        self.bytes_in = 0

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        """The next bytes of the upload. Scan data is kept by reference where
        ``chunk`` is ``bytes`` (it cannot change); anything else is copied."""
        self.bytes_in += len(chunk)
        if self._state == "done":
            return
        rest: bytes | bytearray | memoryview = chunk
        if self._state == "scan" and not self._pending:
            rest = self._scan_chunk(bytes(chunk))
            if not rest:
                return
        self._pending += rest
        self._parse()
        # Keep only what is not yet parsed: at most one segment and one chunk.
        del self._pending[: self._pos]
        self._pos = 0

    def _emit(self, piece: bytes | memoryview) -> None:
        if piece:
            self._out.append(piece)

    def _scan_chunk(self, chunk: bytes) -> bytes | memoryview:
        """Pass on the entropy-coded data at the start of ``chunk`` (arrived in
        a scan, nothing pending) without copying it; answers the rest, from
        the first marker (or a 0xFF that may start one) on, for the parser."""
        found = _MARKER_IN_SCAN.search(chunk)
        if found is not None:
            self._state = "marker"
            end = found.start()
        else:
            end = len(chunk) - 1 if chunk.endswith(b"\xff") else len(chunk)
        view = memoryview(chunk)
        self._emit(view[:end])
        return view[end:]

    def _parse(self) -> None:
        data = self._pending
        while self._state != "done":
            left = len(data) - self._pos
            if self._state == "soi":
                if left < 2:
                    return
                if data[self._pos : self._pos + 2] != b"\xff\xd8":
                    raise refuse("it does not start with a JPEG start marker")
                self._emit(b"\xff\xd8")
                self._pos += 2
                self._state = "marker"
            elif self._state == "scan":
                found = _MARKER_IN_SCAN.search(data, self._pos)
                if found is None:
                    end = len(data) - 1 if data.endswith(b"\xff") else len(data)
                    self._emit(bytes(data[self._pos : end]))
                    self._pos = end
                    return
                self._emit(bytes(data[self._pos : found.start()]))
                self._pos = found.start()
                self._state = "marker"
            elif not self._marker(data, left):
                return

    def _marker(self, data: bytearray, left: int) -> bool:
        """Handle the marker at the current position; False if more bytes are needed."""
        if left < 2:
            return False
        if data[self._pos] != 0xFF:
            # Stray bytes between segments: decoders skip them (libjpeg warns), so do we.
            found = data.find(b"\xff", self._pos)
            skip = (len(data) if found < 0 else found) - self._pos
            self._stray += skip
            if self._stray > MAX_STRAY:
                raise refuse("a marker was expected")
            self._pos += skip
            return found >= 0
        marker = data[self._pos + 1]
        if marker == 0xFF:  # a fill byte before a marker
            self._pos += 1
            return True
        if marker == _EOI:
            if self._scans == 0:
                raise refuse("it has no image data")
            self._emit(b"\xff\xd9")
            self._pos += 2
            self._state = "done"
            return True
        if marker == _SOI or marker < 0xC0 or 0xD0 <= marker <= 0xD7:
            raise refuse(f"marker 0x{marker:02X} is out of place")
        if marker in _UNSUPPORTED_FRAMES or 0xF0 <= marker <= 0xFD:
            raise refuse("it uses a lossless, hierarchical or extension coding")
        if left < 4:
            return False
        (length,) = struct.unpack_from(">H", data, self._pos + 2)
        if length < 2:
            raise refuse("a segment length is invalid")
        if left < 2 + length:
            return False
        self._segments += 1
        if self._segments > MAX_SEGMENTS:
            raise refuse("it has too many segments")
        segment = bytes(data[self._pos : self._pos + 2 + length])
        self._pos += 2 + length
        self._segment(marker, segment)
        return True

    def _segment(self, marker: int, segment: bytes) -> None:
        payload = segment[4:]
        if marker in _FRAMES:
            if self._frame is not None:
                raise refuse("it has more than one frame")
            if len(payload) < 6:
                raise refuse("its frame header is cut short")
            _precision, height, width, components = struct.unpack_from(">BHHB", payload)
            if width == 0 or height == 0 or components not in (1, 3, 4):
                raise refuse("its frame header is invalid")
            if len(payload) != 6 + 3 * components:
                raise refuse("its frame header is invalid")
            self._frame = (width, height, components)
            self._emit(segment)
        elif marker == _SOS:
            if self._frame is None:
                raise refuse("image data comes before the frame header")
            self._scans += 1
            self._emit(segment)
            self._state = "scan"
        elif marker in _KEPT_TABLES:
            self._emit(segment)
        elif marker == 0xE1 and payload.startswith(b"Exif\x00\x00"):
            if self._orientation is None:
                self._orientation = exif_orientation(payload)
                self._taken_at = exif_taken_at(payload)
        elif marker == 0xE2 and payload.startswith(_ICC_TAG):
            self._gather_icc(payload[len(_ICC_TAG) :])
        elif marker == 0xEE and payload.startswith(b"Adobe") and len(payload) >= 12:
            # Only the colour transform (0 RGB/CMYK, 1 YCbCr, 2 YCCK) matters to a decoder.
            self._emit(b"\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00" + payload[11:12])
        # Everything else (other APPn, COM) is dropped.

    def _gather_icc(self, chunk: bytes) -> None:
        if len(chunk) < 2 or self._icc_dropped:
            return
        sequence = chunk[0]
        self._icc_size += len(chunk) - 2
        if self._icc_size > MAX_ICC or sequence in self._icc:
            self._icc_dropped = True
            self._icc.clear()
            return
        self._icc[sequence] = chunk[2:]

    def close(self) -> StrippedJpeg:
        if self._state != "done":
            raise refuse("it ends before its end marker")
        assert self._frame is not None
        width, height, components = self._frame
        icc = None
        if self._icc and sorted(self._icc) == list(range(1, len(self._icc) + 1)):
            icc = b"".join(self._icc[i] for i in sorted(self._icc))
        data = b"".join(self._out)
        self._out.clear()
        return StrippedJpeg(
            data=data,
            width=width,
            height=height,
            components=components,
            orientation=self._orientation or 1,
            icc=icc,
            dropped=self.bytes_in - len(data),
            taken_at=self._taken_at,
        )


def with_icc(data: bytes, icc: bytes) -> bytes:
    """``data`` (a JPEG without APP2) with ``icc`` in APP2 segments after its start
    marker (and after a JFIF APP0, which must come first)."""
    room = 65533 - len(_ICC_TAG) - 2
    parts = [icc[at : at + room] for at in range(0, len(icc), room)]
    if not parts or len(parts) > 255:
        return data
    segments = b"".join(
        b"\xff\xe2"
        + struct.pack(">H", 2 + len(_ICC_TAG) + 2 + len(part))
        + _ICC_TAG
        + bytes([index + 1, len(parts)])
        + part
        for index, part in enumerate(parts)
    )
    at = 2
    if data[2:4] == b"\xff\xe0":  # JFIF's APP0 must stay first
        at = 4 + struct.unpack_from(">H", data, 4)[0]
    return data[:at] + segments + data[at:]
