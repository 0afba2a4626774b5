"""Removing metadata from MP4, MOV and 3GP (ISO BMFF) without moving a byte.

A push parser: :meth:`BmffScrubber.feed` takes the upload's chunks as they
arrive and returns the bytes to store, of exactly the same total length. Box
headers are parsed as the bytes flow; nothing is re-encoded and no offset
moves, so the sample tables in ``moov`` stay true and ``mdat`` (the frames) is
passed through untouched, whether it comes before or after ``moov``.

What happens to a box (docs/media.md, "What is kept of a video"):

* **neutralised**: the type becomes ``free`` and every payload byte becomes
  zero, so the size and every later offset stay the same. This is the fate
  of ``udta`` (user data: ``©xyz`` location, ``©mak``/``©mod`` maker and
  model, ``loci``, ``©cmt``, XMP_…), ``meta`` (Apple's ``mdta`` keys with
  location, make, model, software, creation date; iTunes ``ilst`` with the
  encoder and comment), every ``uuid`` box (XMP, Sony, Canon and GoPro camera
  data) and, at the top level and directly in ``moov`` and ``trak``, every box
  that is not on the short list of what a player needs (so a vendor box such
  as Samsung's ``sefd`` or a ``PICT`` preview is gone too). A whole ``trak``
  whose handler is ``meta`` (a timed metadata track: Apple's ``mebx``,
  GoPro's GPS telemetry ``gpmd``, ``camm``) is neutralised as well: without
  its sample tables no tool finds those samples in ``mdat`` any more.
* **cleared in place**: the creation and modification times in ``mvhd``,
  ``tkhd`` and ``mdhd`` become zero (1904, "unknown"), and a ``hdlr``'s
  manufacturer and name fields become zero (they name the recording
  software: "Core Media Video", "GoPro AVC").
* **kept**: everything else, byte for byte.

Memory: ``mdat`` and neutralised boxes stream through (zeros are produced,
not buffered); ``moov`` and ``moof`` are held whole while they are rewritten,
up to :data:`MAX_HELD_BOX` (a phone's ``moov`` is a few MB, an hour of 60 fps
video about 10 MB). Anything malformed (a box that overruns its parent or the
file, a size below its header, bytes after the last box, a compressed
``cmov``, nesting deeper than :data:`MAX_DEPTH`) is refused with
``UnsupportedType``; the caller then discards what was stored.

May touch: only the bytes it is given. No I/O, no logging.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from vault.media.sniff import UnsupportedType
from vault.sizes import size_text

#: The largest ``moov`` or ``moof`` held in memory to be rewritten.
MAX_HELD_BOX = 64 * 1024 * 1024
#: Deeper nesting than any real file has: a defence against crafted recursion.
MAX_DEPTH = 12

_PASS, _ZERO, _HOLD, _REFUSE = "pass", "zero", "hold", "refuse"

#: What a player may need at the top level; anything else is neutralised.
_TOP_KEEP = frozenset(
    {b"ftyp", b"mdat", b"free", b"skip", b"wide", b"pdin", b"sidx", b"ssix", b"styp", b"mfra"}
    | {b"prft", b"emsg"}
)
_TOP_HOLD = frozenset({b"moov", b"moof"})
#: Children of ``moov`` and ``trak`` a player may need; anything else is neutralised.
_MOOV_KEEP = frozenset({b"mvhd", b"trak", b"mvex", b"iods", b"pssh", b"ipmc", b"free", b"skip"})
_TRAK_KEEP = frozenset(
    {b"tkhd", b"tref", b"trgr", b"edts", b"mdia", b"tapt", b"load", b"imap", b"matt"}
    | {b"kmat", b"clip", b"txas", b"free", b"skip"}
)
#: Metadata wherever it appears (below ``trak`` only these are neutralised).
_METADATA = frozenset({b"udta", b"meta", b"uuid", b"XMP_", b"loci", b"meco", b"cprt", b"Xtra"})
#: Containers walked into; every other box is a leaf here.
_DESCEND = frozenset({b"moov", b"trak", b"mdia", b"minf", b"moof", b"traf"})
_TIMES = frozenset({b"mvhd", b"tkhd", b"mdhd"})


class Malformed(UnsupportedType):
    """The container cannot be parsed safely."""


def _refuse(what: str) -> Malformed:
    return Malformed(
        f"The video could not be read as MP4/MOV ({what}); it may be damaged or cut short. "
        "Export it again from the device or the camera app and upload that."
    )


def _is_metadata(kind: bytes) -> bool:
    return kind in _METADATA or kind[:1] == b"\xa9"  # ©xyz, ©mak, ©mod, ©cmt, …


def _header(data: bytes | bytearray | memoryview, at: int, end: int) -> tuple[int, bytes, int]:
    """(size, type, header length) of the box at ``at``, checked against ``end``."""
    if end - at < 8:
        raise _refuse("a box header is cut short")
    size, kind = struct.unpack_from(">I4s", data, at)
    header = 8
    if size == 1:
        if end - at < 16:
            raise _refuse("a box header is cut short")
        (size,) = struct.unpack_from(">Q", data, at + 8)
        header = 16
    elif size == 0:
        raise _refuse(f"box '{_name(kind)}' runs to the end inside another box")
    if size < header or at + size > end:
        raise _refuse(f"box '{_name(kind)}' has an impossible size")
    return size, bytes(kind), header


def _name(kind: bytes) -> str:
    return kind.decode("latin-1").encode("ascii", "replace").decode("ascii")


def neutralise(data: bytearray, at: int, size: int, header: int) -> None:
    """Turn the box at ``at`` into a ``free`` box of the same size, full of zeros."""
    data[at + 4 : at + 8] = b"free"
    data[at + header : at + size] = bytes(size - header)


def _handler_type(data: bytearray, start: int, end: int) -> bytes | None:
    """The ``hdlr`` handler type of the ``trak`` whose children span [start, end)."""
    at = start
    while at < end:
        size, kind, header = _header(data, at, end)
        if kind == b"mdia":
            inner = at + header
            while inner < at + size:
                isize, ikind, iheader = _header(data, inner, at + size)
                if ikind == b"hdlr" and isize - iheader >= 12:
                    return bytes(data[inner + iheader + 8 : inner + iheader + 12])
                inner += isize
        at += size
    return None


def _clear_times(data: bytearray, payload: int, end: int) -> None:
    if end - payload < 4:
        raise _refuse("a movie or track header is cut short")
    width = 16 if data[payload] == 1 else 8
    if end - payload < 4 + width:
        raise _refuse("a movie or track header is cut short")
    data[payload + 4 : payload + 4 + width] = bytes(width)


def _clear_handler_name(data: bytearray, payload: int, end: int) -> None:
    # version/flags, pre_defined (QuickTime: component type), handler type: kept;
    # then reserved (QuickTime: manufacturer, flags, mask) and the name: cleared.
    if end - payload < 12:
        raise _refuse("a handler box is cut short")
    data[payload + 12 : end] = bytes(end - payload - 12)


def rewrite(data: bytearray, start: int, end: int, parent: bytes, depth: int = 0) -> None:
    """Clean the boxes in ``data[start:end]``, children of ``parent``, in place."""
    if depth > MAX_DEPTH:
        raise _refuse("boxes nested too deep")
    at = start
    while at < end:
        size, kind, header = _header(data, at, end)
        payload, box_end = at + header, at + size
        if kind == b"cmov":
            raise _refuse("a compressed movie header cannot be checked for metadata")
        keep = {b"moov": _MOOV_KEEP, b"trak": _TRAK_KEEP}.get(parent)
        unneeded = keep is not None and kind not in keep
        timed_metadata = kind == b"trak" and _handler_type(data, payload, box_end) == b"meta"
        if _is_metadata(kind) or unneeded or timed_metadata:
            neutralise(data, at, size, header)
        elif kind in _DESCEND:
            rewrite(data, payload, box_end, kind, depth + 1)
        elif kind in _TIMES:
            _clear_times(data, payload, box_end)
        elif kind == b"hdlr":
            _clear_handler_name(data, payload, box_end)
        at = box_end


class BmffScrubber:
    """Feed the whole file through :meth:`feed`, then call :meth:`close`."""

    def __init__(self, max_held: int = MAX_HELD_BOX) -> None:
        self.max_held = max_held
        self._head = bytearray()  # a top-level box header being gathered
        self._mode = ""  # "" while reading a header, else _PASS/_ZERO/_HOLD
        self._left = 0  # bytes of the current box still to come (-1: to the end)
        self._held = bytearray()
        self._first = True
        self.bytes_in = 0
        self.bytes_out = 0
        #: The ``moov`` box as rewritten (what :mod:`vault.media.playable` reads).
        self.moov: bytes | None = None

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        self.bytes_in += len(chunk)
        for piece in self._feed(chunk):
            self.bytes_out += len(piece)
            yield piece

    def _feed(self, chunk: bytes) -> Iterator[bytes]:
        view = memoryview(chunk)
        at, end = 0, len(chunk)
        while at < end:
            if not self._mode:
                at = self._gather_header(view, at)
                if self._mode:
                    yield from self._start_box()
                continue
            take = end - at if self._left < 0 else min(self._left, end - at)
            if self._mode == _PASS:
                yield chunk if at == 0 and take == end else bytes(view[at : at + take])
            elif self._mode == _ZERO:
                yield bytes(take)
            else:
                self._held += view[at : at + take]
            at += take
            if self._left >= 0:
                self._left -= take
                if self._left == 0:
                    yield from self._end_box()

    def _gather_header(self, view: memoryview, at: int) -> int:
        need = 16 if len(self._head) >= 8 and self._head[:4] == b"\x00\x00\x00\x01" else 8
        take = min(need - len(self._head), len(view) - at)
        self._head += view[at : at + take]
        at += take
        if len(self._head) == 8 and self._head[:4] == b"\x00\x00\x00\x01":
            return at  # a 64-bit size follows
        if len(self._head) == need:
            self._mode = "header"
        return at

    def _start_box(self) -> Iterator[bytes]:
        head = bytes(self._head)
        self._head.clear()
        size, kind = struct.unpack_from(">I4s", head)
        if len(head) == 16:
            (size,) = struct.unpack_from(">Q", head, 8)
        if self._first and kind != b"ftyp":
            raise _refuse("it does not start with a file type box")
        self._first = False
        if size and size < len(head):
            raise _refuse(f"box '{_name(kind)}' has an impossible size")
        self._left = size - len(head) if size else -1
        if kind in _TOP_HOLD:
            if size == 0:
                raise _refuse(f"box '{_name(kind)}' has no size")
            if size > self.max_held:
                raise _refuse(
                    f"its '{_name(kind)}' box is {size_text(size)}, more than the "
                    f"{size_text(self.max_held)} this vault checks"
                )
            self._mode = _HOLD
            self._held = bytearray(head)
        elif kind in _TOP_KEEP:
            self._mode = _PASS
            yield head
        else:
            self._mode = _ZERO
            yield head[:4] + b"free" + head[8:]
        if self._left == 0:
            yield from self._end_box()

    def _end_box(self) -> Iterator[bytes]:
        if self._mode == _HOLD:
            held, self._held = self._held, bytearray()
            size, kind, header = _header(held, 0, len(held))
            rewrite(held, header, size, kind, 1)
            out = bytes(held)
            if kind == b"moov":
                self.moov = out
            yield out
        self._mode = ""

    def close(self) -> Iterator[bytes]:
        """Check that the file ended on a box boundary; the last bytes, if any."""
        if self._first:
            raise _refuse("it is empty")
        if self._head or (self._mode and self._left != -1):
            raise _refuse("it ends inside a box")
        if self.bytes_out != self.bytes_in:  # pragma: no cover - a bug, never a bad file
            raise AssertionError("the scrubbed video changed size")
        return iter(())
