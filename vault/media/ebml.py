"""Removing metadata from WebM (Matroska) without moving a byte.

A push parser like :mod:`vault.media.bmff`: :meth:`EbmlScrubber.feed` takes
chunks and returns bytes of exactly the same total length. Element headers
(an EBML ID and a size, both variable-length integers) are parsed as bytes
flow; frames inside clusters are passed through untouched.

What happens to an element (docs/media.md, "What is kept of a video"):

* **replaced by a Void element of the same size** (ID ``EC``, payload zero):
  ``Tags`` (title, comment, location, make, model, encoder, dates),
  ``Attachments`` (cover pictures, fonts, any file), ``Chapters`` (their
  names), any level-1 element this parser does not know, and inside ``Info``
  the ``Title``, ``DateUTC`` and file-name elements, inside ``Tracks`` each
  track's ``Name`` and ``CodecName``, inside ``SeekHead`` the index entries
  that point to what was removed. A ``CRC-32`` beside a changed element is
  voided too (it would no longer match).
* **emptied**: ``MuxingApp`` and ``WritingApp`` (mandatory, so kept) get an
  all-zero payload, which reads as an empty string.
* **kept**: the EBML header, clusters (frames), cues, and everything else.

Memory: clusters and removed elements stream through; ``SeekHead``, ``Info``
and ``Tracks`` are held while rewritten, up to :data:`MAX_HELD_ELEMENT`.
Segments and clusters of unknown size (what a browser's MediaRecorder
writes) are followed child by child. Anything malformed (an invalid ID or
size, an element overrunning its parent or the file, bytes that are not an
element) is refused with ``UnsupportedType``.

May touch: only the bytes it is given. No I/O, no logging.
"""

from __future__ import annotations

from collections.abc import Iterator

from vault.media.sniff import UnsupportedType

#: The largest SeekHead, Info or Tracks element held in memory to be rewritten.
MAX_HELD_ELEMENT = 16 * 1024 * 1024
MAX_DEPTH = 8

EBML, SEGMENT, CLUSTER, VOID, CRC32 = 0x1A45DFA3, 0x18538067, 0x1F43B675, 0xEC, 0xBF
SEEK_HEAD, INFO, TRACKS, CUES = 0x114D9B74, 0x1549A966, 0x1654AE6B, 0x1C53BB6B
TAGS, ATTACHMENTS, CHAPTERS = 0x1254C367, 0x1941A469, 0x1043A770
_LEVEL1 = {SEEK_HEAD, INFO, TRACKS, CLUSTER, CUES, TAGS, ATTACHMENTS, CHAPTERS, VOID, CRC32}
_HELD = {SEEK_HEAD, INFO, TRACKS}
_PASSED = {CLUSTER, CUES, VOID, CRC32}
#: Children of an unknown-size cluster (each of known size).
_CLUSTER_CHILDREN = {0xE7, 0x5854, 0xA7, 0xAB, 0xA3, 0xA0, 0xAF, VOID, CRC32}
#: Inside Info: voided (optional elements) and emptied (mandatory strings).
_INFO_VOID = {0x7BA9, 0x4461, 0x7384, 0x3C83AB, 0x3E83BB}
_INFO_EMPTY = {0x4D80, 0x5741}
_TRACK_ENTRY, _TRACK_VOID = 0xAE, {0x536E, 0x258688}
_SEEK, _SEEK_ID = 0x4DBB, 0x53AB
_REMOVED = {TAGS, ATTACHMENTS, CHAPTERS}
_UNKNOWN = -1


class Malformed(UnsupportedType):
    """The container cannot be parsed safely."""


def _refuse(what: str) -> Malformed:
    return Malformed(
        f"The video could not be read as WebM ({what}); it may be damaged or cut short. "
        "Export it again from the device or the app and upload that."
    )


def _vint_length(first: int) -> int:
    if first == 0:
        raise _refuse("an element header is invalid")
    return 9 - first.bit_length()


def parse_header(data: bytes | bytearray, at: int, end: int) -> tuple[int, int, int] | None:
    """(element ID, payload size or -1 if unknown, header length), None if cut short."""
    if at >= end:
        return None
    id_len = _vint_length(data[at])
    if id_len > 4:
        raise _refuse("an element ID is invalid")
    if at + id_len >= end:
        return None
    size_len = _vint_length(data[at + id_len])
    if at + id_len + size_len > end:
        return None
    element = int.from_bytes(data[at : at + id_len], "big")
    raw = int.from_bytes(data[at + id_len : at + id_len + size_len], "big")
    value = raw & ((1 << (7 * size_len)) - 1)
    size = _UNKNOWN if value == (1 << (7 * size_len)) - 1 else value
    return element, size, id_len + size_len


def void_header(total: int, room: int) -> bytes:
    """A Void header, at most ``room`` bytes, for a Void element of ``total`` bytes."""
    for size_len in range(min(8, room - 1), 0, -1):
        payload = total - 1 - size_len
        if 0 <= payload < (1 << (7 * size_len)) - 1:
            return bytes([VOID]) + ((1 << (7 * size_len)) | payload).to_bytes(size_len, "big")
    raise _refuse("an element is too small to be removed")  # pragma: no cover - total >= 2


def void(data: bytearray, at: int, total: int) -> None:
    """Replace the ``total`` bytes at ``at`` by one Void element."""
    header = void_header(total, total)
    data[at : at + total] = header + bytes(total - len(header))


def rewrite(data: bytearray, start: int, end: int, parent: int, depth: int = 0) -> bool:
    """Clean the children of ``parent`` in ``data[start:end]`` in place; True if changed."""
    if depth > MAX_DEPTH:
        raise _refuse("elements nested too deep")
    changed = False
    crcs: list[tuple[int, int]] = []
    at = start
    while at < end:
        found = parse_header(data, at, end)
        if found is None or found[1] == _UNKNOWN or at + found[2] + found[1] > end:
            raise _refuse("an element overruns its parent")
        element, size, header = found
        total = header + size
        if element == CRC32:
            crcs.append((at, total))
        elif (parent == INFO and element in _INFO_VOID) or (
            parent == _TRACK_ENTRY and element in _TRACK_VOID
        ):
            void(data, at, total)
            changed = True
        elif parent == INFO and element in _INFO_EMPTY:
            data[at + header : at + total] = bytes(size)
            changed = True
        elif parent == TRACKS and element == _TRACK_ENTRY:
            changed |= rewrite(data, at + header, at + total, element, depth + 1)
        elif parent == SEEK_HEAD and element == _SEEK and _points_to_removed(data, at, total):
            void(data, at, total)
            changed = True
        at += total
    if changed:
        for crc_at, crc_total in crcs:
            void(data, crc_at, crc_total)
    return changed


def _points_to_removed(data: bytearray, at: int, total: int) -> bool:
    found = parse_header(data, at, at + total)
    assert found is not None
    inner, end = at + found[2], at + total
    while inner < end:
        child = parse_header(data, inner, end)
        if child is None or child[1] == _UNKNOWN or inner + child[2] + child[1] > end:
            raise _refuse("a seek entry is malformed")
        if child[0] == _SEEK_ID:
            target = data[inner + child[2] : inner + child[2] + child[1]]
            return int.from_bytes(target, "big") in _REMOVED
        inner += child[2] + child[1]
    return False


class EbmlScrubber:
    """Feed the whole file through :meth:`feed`, then call :meth:`close`."""

    def __init__(self, max_held: int = MAX_HELD_ELEMENT) -> None:
        self.max_held = max_held
        self._head = bytearray()  # an element header being gathered
        self._mode = ""  # "" while reading a header, else "pass", "zero" or "hold"
        self._left = 0  # payload bytes of the current element still to come
        self._held = bytearray()
        self._held_id = 0
        #: Where each open master element ends (absolute offset; -1: unknown size).
        self._open: list[tuple[int, int]] = []
        self._pos = 0  # absolute offset of the next input byte
        self._first = True
        self.bytes_in = 0
        self.bytes_out = 0
        #: The ``Tracks`` element as rewritten (what :mod:`vault.media.playable` reads).
        self.tracks: bytes | None = None

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
                self._head.append(chunk[at])
                at += 1
                self._pos += 1
                found = parse_header(self._head, 0, len(self._head))
                if found is not None:
                    yield from self._start(*found)
                continue
            take = min(self._left, end - at)
            if self._mode == "pass":
                yield chunk if at == 0 and take == end else bytes(view[at : at + take])
            elif self._mode == "zero":
                yield bytes(take)
            else:
                self._held += view[at : at + take]
            at += take
            self._pos += take
            self._left -= take
            if self._left == 0:
                yield from self._finish()

    def _close_ended(self) -> None:
        # A known end closes that element and any unknown-size one inside it.
        for index, (_, end) in enumerate(self._open):
            if end != _UNKNOWN and end <= self._pos:
                del self._open[index:]
                return

    def _start(self, element: int, size: int, header: int) -> Iterator[bytes]:
        head = bytes(self._head)
        self._head.clear()
        start = self._pos - header
        if self._first and element != EBML:
            raise _refuse("it does not start with an EBML header")
        self._first = False
        # An unknown-size cluster ends where an element that cannot be its child starts.
        if self._open and self._open[-1][0] == CLUSTER and element not in _CLUSTER_CHILDREN:
            self._open.pop()
        for _, end in self._open:
            if end != _UNKNOWN and start + header + max(size, 0) > end:
                raise _refuse("an element overruns its parent")
        parent = self._open[-1][0] if self._open else None
        level = 0 if parent is None else 2 if parent == CLUSTER else 1
        opened = (level == 0 and element == SEGMENT) or (
            level == 1 and element == CLUSTER and size == _UNKNOWN
        )
        if size == _UNKNOWN and not opened:
            raise _refuse("an element has an unknown size")
        if level == 0 and element not in (EBML, SEGMENT, VOID):
            raise _refuse("bytes after the end of the segment are not an element")
        if opened:
            # Followed child by child; its header is passed as it is.
            self._open.append((element, _UNKNOWN if size == _UNKNOWN else start + header + size))
            yield head
            self._close_ended()
            return
        self._left = size
        if level == 2 or level == 0 or element in _PASSED:
            self._mode = "pass"
            yield head
        elif element in _HELD:
            if header + size > self.max_held:
                raise _refuse("a header element is implausibly large")
            self._mode, self._held, self._held_id = "hold", bytearray(head), element
        else:
            # Tags, attachments, chapters and unknown level-1 elements.
            self._mode = "zero"
            replacement = void_header(header + size, header)
            yield replacement + bytes(header - len(replacement))
        if self._left == 0:
            yield from self._finish()

    def _finish(self) -> Iterator[bytes]:
        if self._mode == "hold":
            held, self._held = self._held, bytearray()
            found = parse_header(held, 0, len(held))
            assert found is not None
            rewrite(held, found[2], len(held), self._held_id)
            out = bytes(held)
            if self._held_id == TRACKS:
                self.tracks = out
            yield out
        self._mode = ""
        self._close_ended()

    def close(self) -> Iterator[bytes]:
        """Check that the file ended on an element boundary."""
        if self._first:
            raise _refuse("it is empty")
        if self._head or self._mode:
            raise _refuse("it ends inside an element")
        if any(end != _UNKNOWN for _, end in self._open):
            raise _refuse("it ends inside the segment")
        if self.bytes_out != self.bytes_in:  # pragma: no cover - a bug, never a bad file
            raise AssertionError("the scrubbed video changed size")
        return iter(())
