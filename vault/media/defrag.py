"""ffmpeg's fragmented MP4, read as it streams, made into an MP4 with its ``moov`` first.

ffmpeg writes a plain MP4 only to an output it can seek in (it goes back
to finish the media data's header and, with ``+faststart``, rewrites the
whole file to move ``moov`` to the front). The ``web`` rendition goes
straight into the encrypted store, through a pipe, so ffmpeg writes a
*fragmented* MP4 instead (``-movflags +frag_keyframe+empty_moov+default_base_moof``):
a ``moov`` with the tracks' descriptions and no samples, then ``moof``
(the samples' sizes, durations, flags and composition offsets) and
``mdat`` (their bytes) pairs, about a second each. :class:`Defragmenter`
reads that stream:

* the media data (each ``mdat``'s payload) is passed on as it arrives, to be
  stored (encrypted) in the order it came: it becomes the final file's
  ``mdat`` unchanged;
* the tables are kept in arrays (about 16 bytes a sample: an hour of 30 fps
  video with its sound is a few MB), each fragment's run of samples of a
  track becoming one chunk.

:meth:`Defragmenter.head` then writes what comes before the media data:
``ftyp``, a ``moov`` with full sample tables (``stts``, ``ctts``, ``stss``,
``stsc``, ``stsz``, ``stco`` or ``co64``) and an edit list per track, and
the ``mdat`` header. The result is the layout ``-movflags +faststart``
gives: ``ftyp``, ``moov``, ``mdat``. The ``moov`` goes through the upload
scrubber's :func:`vault.media.bmff.rewrite` last, so a rendition carries no
more metadata than an original: no ``udta``/``meta`` (ffmpeg's "Lavf"
encoder tag), no handler names, no creation times.

Edit lists: presentation starts at the picture's first composition time
(the B-frame delay), every track cut to or delayed to it on the one
timeline ffmpeg's fragments keep. ffmpeg stretches the sound's first
(priming) frame until the picture starts, so the sound's edit skips that
frame, and picture and sound start together at 0, as in ffmpeg's own
non-fragmented MP4.

May touch: only the bytes it is given. Anything unexpected in the stream is
:class:`Malformed` (a bug or a changed ffmpeg, never a user's file: the
user's file is what ffmpeg read).
"""

from __future__ import annotations

import dataclasses
import struct
from array import array
from collections.abc import Iterator

from vault.media import bmff

#: Largest ``moov`` or ``moof`` held while parsed (ffmpeg's are a few KB).
MAX_HEADER_BOX = 16 * 1024 * 1024
_HELD = frozenset({b"ftyp", b"moov", b"moof"})
#: Kept from a track's ``minf`` besides the rebuilt ``stbl``.
_MINF_KEEP = frozenset({b"vmhd", b"smhd", b"nmhd", b"dinf"})
_NON_SYNC = 0x00010000


class Malformed(Exception):
    """The fragmented stream is not what ffmpeg writes."""


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int, int]]:
    """(type, box start, payload start, box end) of each box in data[start:end]."""
    at = start
    while at < end:
        if end - at < 8:
            raise Malformed("a box header is cut short")
        size, kind = struct.unpack_from(">I4s", data, at)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, at + 8)
            header = 16
        if size < header or at + size > end:
            raise Malformed(f"box {kind!r} has an impossible size")
        yield bytes(kind), at, at + header, at + size
        at += size


def _find(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int, int]:
    for found, box, payload, box_end in _boxes(data, start, end):
        if found == kind:
            return box, payload, box_end
    raise Malformed(f"no {kind!r} box")


#: Where a visual sample entry's 32-byte ``compressorname`` starts in its payload
#: (ISO 14496-12 §12.1.3: reserved, data reference, pre-defined, sizes, resolutions).
_COMPRESSOR_NAME = 42
_VISUAL_ENTRIES = frozenset({b"avc1", b"avc3"})
_PATH_TO_STSD = (b"trak", b"mdia", b"minf", b"stbl", b"stsd")


def _blank_compressor_names(moov: bytearray) -> None:
    """Zero each video sample entry's ``compressorname`` ("Lavc libx264"): the
    encoder that made a rendition is nobody's business, as a camera's is not."""

    def walk(start: int, end: int, path: tuple[bytes, ...]) -> None:
        for kind, _, payload, box_end in _boxes(bytes(moov[start:end]), 0, end - start):
            if kind != path[0]:
                continue
            if len(path) > 1:
                walk(start + payload, start + box_end, path[1:])
                continue
            entries = start + payload + 8  # version, flags, entry count
            for entry_kind, _, body, entry_end in _boxes(
                bytes(moov[entries : start + box_end]), 0, start + box_end - entries
            ):
                at = entries + body + _COMPRESSOR_NAME
                if entry_kind not in _VISUAL_ENTRIES:
                    continue
                if at + 32 <= entries + entry_end and moov[at] <= 31:
                    moov[at : at + 32] = bytes(32)

    walk(8, len(moov), _PATH_TO_STSD)


def _box(kind: bytes, *parts: bytes) -> bytes:
    body = b"".join(parts)
    if len(body) + 8 >= 2**32:  # pragma: no cover - a moov of 4 GiB
        raise Malformed("a box is too large")
    return struct.pack(">I4s", len(body) + 8, kind) + body


def _full(kind: bytes, version: int, flags: int, *parts: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags), *parts)


@dataclasses.dataclass
class _Track:
    track_id: int
    handler: bytes
    timescale: int
    trak: tuple[int, int]  # the init moov's trak box: (start, end)
    default_duration: int = 0
    default_size: int = 0
    default_flags: int = 0
    # 4 bytes an entry ("I"/"i"): the tables stay a few MB for an hour of video.
    sizes: array[int] = dataclasses.field(default_factory=lambda: array("I"))
    durations: array[int] = dataclasses.field(default_factory=lambda: array("I"))
    offsets: array[int] = dataclasses.field(default_factory=lambda: array("i"))
    syncs: array[int] = dataclasses.field(default_factory=lambda: array("I"))
    chunk_offsets: array[int] = dataclasses.field(default_factory=lambda: array("Q"))
    chunk_samples: array[int] = dataclasses.field(default_factory=lambda: array("I"))
    first_dts: int | None = None
    next_dts: int = 0
    #: The earliest composition time and the latest end of one, from the
    #: track's first decoding time: the span the track presents.
    first_cts: int | None = None
    last_end: int = 0

    def add(self, size: int, duration: int, flags: int, offset: int) -> None:
        cts = self.next_dts - (self.first_dts or 0) + offset
        if self.first_cts is None or cts < self.first_cts:
            self.first_cts = cts
        self.last_end = max(self.last_end, cts + duration)
        self.sizes.append(size)
        self.durations.append(duration)
        self.offsets.append(offset)
        if not flags & _NON_SYNC:
            self.syncs.append(len(self.sizes))  # 1-based, as stss counts
        self.next_dts += duration


@dataclasses.dataclass(frozen=True)
class _Run:
    track: _Track
    start: int  # absolute position in the fragmented stream
    size: int
    samples: int


class Defragmenter:
    """Feed ffmpeg's fragmented MP4 through :meth:`feed`, then :meth:`close`, then :meth:`head`."""

    def __init__(self) -> None:
        self._header = bytearray()
        self._kind = b""
        self._left = 0
        self._held = bytearray()
        self._pos = 0  # absolute offset of the next input byte
        self._box_start = 0
        self._ftyp: bytes | None = None
        self._moov: bytes | None = None
        self._movie_timescale = 1000
        self._tracks: dict[int, _Track] = {}
        self._pending: list[_Run] = []
        #: Bytes of media data passed on so far (where the next one goes in the payload).
        self.payload = 0

    # -- reading ---------------------------------------------------------------

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        """The media data in ``chunk``, to be stored in order."""
        view = memoryview(chunk)
        at = 0
        while at < len(view):
            if not self._kind:
                need = 16 if self._header[:4] == b"\x00\x00\x00\x01" else 8
                take = min(need - len(self._header), len(view) - at)
                self._header += view[at : at + take]
                at += take
                self._pos += take
                if len(self._header) == 8 and self._header[:4] == b"\x00\x00\x00\x01":
                    continue
                if len(self._header) == need:
                    self._start()
                continue
            take = min(self._left, len(view) - at)
            piece = view[at : at + take]
            if self._kind == b"mdat":
                self.payload += take
                yield bytes(piece)
            elif self._kind in _HELD:
                self._held += piece
            at += take
            self._pos += take
            self._left -= take
            if self._left == 0:
                self._end()

    def _start(self) -> None:
        header = bytes(self._header)
        self._header.clear()
        size, kind = struct.unpack_from(">I4s", header)
        if size == 1:
            (size,) = struct.unpack_from(">Q", header, 8)
        if size < len(header):
            raise Malformed(f"box {kind!r} has no size or an impossible one")
        self._kind, self._left = bytes(kind), size - len(header)
        self._box_start = self._pos - len(header)
        if self._kind in _HELD:
            if size > MAX_HEADER_BOX:
                raise Malformed(f"box {kind!r} is implausibly large")
            self._held = bytearray(header)
        elif self._kind == b"mdat":
            self._media(self._pos, self._left)
        if self._left == 0:
            self._end()

    def _end(self) -> None:
        held, self._held = bytes(self._held), bytearray()
        kind, self._kind = self._kind, b""
        if kind == b"ftyp":
            self._ftyp = held
        elif kind == b"moov":
            if self._moov is not None:
                raise Malformed("two movie headers")
            self._moov = held
            self._init(held)
        elif kind == b"moof":
            self._fragment(held, self._box_start)

    def close(self) -> None:
        """Check that the stream ended where a box did, with every run's data."""
        if self._header or self._kind:
            raise Malformed("the stream ends inside a box")
        if self._pending:
            raise Malformed("a fragment's media data is missing")
        if self._moov is None or self._ftyp is None:
            raise Malformed("no file type or movie header")

    # -- the tracks and their fragments -----------------------------------------

    def _init(self, moov: bytes) -> None:
        _, payload, _ = _find(moov, 8, len(moov), b"mvhd")
        version = moov[payload]
        self._movie_timescale = struct.unpack_from(">I", moov, payload + (20 if version else 12))[0]
        for kind, box, body, end in _boxes(moov, 8, len(moov)):
            if kind == b"trak":
                track = self._track(moov, box, body, end)
                self._tracks[track.track_id] = track
            elif kind == b"mvex":
                for inner, _, trex, _ in _boxes(moov, body, end):
                    if inner == b"trex":
                        track_id, _, duration, size, flags = struct.unpack_from(
                            ">5I", moov, trex + 4
                        )
                        if track_id in self._tracks:
                            track = self._tracks[track_id]
                            track.default_duration, track.default_size = duration, size
                            track.default_flags = flags

    @staticmethod
    def _track(moov: bytes, box: int, body: int, end: int) -> _Track:
        _, tkhd, _ = _find(moov, body, end, b"tkhd")
        track_id = struct.unpack_from(">I", moov, tkhd + (20 if moov[tkhd] else 12))[0]
        _, mdia, mdia_end = _find(moov, body, end, b"mdia")
        _, mdhd, _ = _find(moov, mdia, mdia_end, b"mdhd")
        timescale = struct.unpack_from(">I", moov, mdhd + (20 if moov[mdhd] else 12))[0]
        _, hdlr, _ = _find(moov, mdia, mdia_end, b"hdlr")
        return _Track(track_id, bytes(moov[hdlr + 8 : hdlr + 12]), timescale, (box, end))

    def _fragment(self, moof: bytes, moof_start: int) -> None:
        if self._pending:
            raise Malformed("two fragment headers without media data between them")
        data_end = moof_start
        for kind, _, body, end in _boxes(moof, 8, len(moof)):
            if kind == b"traf":
                data_end = self._traf(moof, body, end, moof_start, data_end)

    def _traf(self, moof: bytes, start: int, end: int, moof_start: int, previous: int) -> int:
        _, tfhd, _ = _find(moof, start, end, b"tfhd")
        flags = int.from_bytes(moof[tfhd + 1 : tfhd + 4], "big")
        track_id = struct.unpack_from(">I", moof, tfhd + 4)[0]
        track = self._tracks.get(track_id)
        if track is None:
            raise Malformed("a fragment of a track the movie header does not describe")
        at = tfhd + 8
        base = moof_start if flags & 0x20000 or previous == moof_start else previous
        if flags & 0x1:
            base = struct.unpack_from(">Q", moof, at)[0]
            at += 8
        at += 4 if flags & 0x2 else 0
        duration, size, sample_flags = (
            track.default_duration,
            track.default_size,
            track.default_flags,
        )
        for bit, name in ((0x8, "duration"), (0x10, "size"), (0x20, "flags")):
            if flags & bit:
                value = struct.unpack_from(">I", moof, at)[0]
                at += 4
                if name == "duration":
                    duration = value
                elif name == "size":
                    size = value
                else:
                    sample_flags = value
        for kind, _, body, _ in _boxes(moof, start, end):
            if kind == b"tfdt":
                form = ">Q" if moof[body] == 1 else ">I"
                dts = struct.unpack_from(form, moof, body + 4)[0]
                if track.first_dts is None:
                    track.first_dts = track.next_dts = dts
                elif dts > track.next_dts and track.durations:
                    # A gap: the last sample lasts until the next one starts.
                    track.durations[-1] += dts - track.next_dts
                    track.next_dts = dts
        if track.first_dts is None:
            track.first_dts = 0
        data = base
        for kind, _, body, box_end in _boxes(moof, start, end):
            if kind == b"trun":
                data = self._trun(
                    moof, body, box_end, track, base, data, duration, size, sample_flags
                )
        return data

    def _trun(
        self,
        moof: bytes,
        body: int,
        end: int,
        track: _Track,
        base: int,
        data: int,
        duration: int,
        size: int,
        sample_flags: int,
    ) -> int:
        version, flags = moof[body], int.from_bytes(moof[body + 1 : body + 4], "big")
        count = struct.unpack_from(">I", moof, body + 4)[0]
        at = body + 8
        if flags & 0x1:
            data = base + struct.unpack_from(">i", moof, at)[0]
            at += 4
        first_flags = None
        if flags & 0x4:
            first_flags = struct.unpack_from(">I", moof, at)[0]
            at += 4
        fields = [bit for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit]
        if at + 4 * len(fields) * count > end:
            raise Malformed("a run of samples overruns its box")
        total = 0
        for index in range(count):
            values = {
                bit: struct.unpack_from(">I", moof, at + 4 * i)[0] for i, bit in enumerate(fields)
            }
            at += 4 * len(fields)
            this_flags = values.get(
                0x400, first_flags if index == 0 and first_flags is not None else sample_flags
            )
            offset = values.get(0x800, 0)
            if version and offset >= 2**31:
                offset -= 2**32
            this_size = values.get(0x200, size)
            track.add(this_size, values.get(0x100, duration), this_flags, offset)
            total += this_size
        if count:
            self._pending.append(_Run(track, data, total, count))
        return data + total

    def _media(self, start: int, size: int) -> None:
        """An ``mdat`` whose payload starts at ``start``: the pending runs are in it."""
        for run in self._pending:
            if run.start < start or run.start + run.size > start + size:
                raise Malformed("a run of samples lies outside its media data")
            run.track.chunk_offsets.append(self.payload + run.start - start)
            run.track.chunk_samples.append(run.samples)
        self._pending = []

    # -- writing ---------------------------------------------------------------

    def head(self) -> bytes:
        """``ftyp``, the full ``moov`` and the ``mdat`` header for :attr:`payload` bytes."""
        assert self._ftyp is not None
        assert self._moov is not None
        tracks = [t for t in self._tracks.values() if t.sizes]
        if not tracks:
            raise Malformed("no samples")
        # Presentation starts where the picture does: ffmpeg's fragments keep
        # one timeline for all tracks (the sound's priming frame lasts until
        # the first picture), and each track is cut or delayed to it.
        starts = [
            (t.handler != b"vide", _seconds(t.first_dts or 0, t) + _seconds(t.first_cts or 0, t))
            for t in tracks
        ]
        start = min(starts)[1]
        mdat_header = 16 if self.payload + 8 >= 2**32 else 8
        # Offsets past 4 GiB need co64; the file's size decides, before the moov exists.
        wide = len(self._ftyp) + len(self._moov) + self.payload + 2**24 >= 2**32
        for _ in range(2):  # the moov's size moves the offsets; they move the moov not
            base = len(self._ftyp) + mdat_header
            moov = self._movie(tracks, start, base, wide)
            base += len(moov)
            moov = self._movie(tracks, start, base, wide)
            if len(moov) + len(self._ftyp) + mdat_header == base:
                break
        clean = bytearray(moov)
        bmff.rewrite(clean, 8, len(clean), b"moov", 1)
        _blank_compressor_names(clean)
        if mdat_header == 16:
            mdat = struct.pack(">I4sQ", 1, b"mdat", self.payload + 16)
        else:
            mdat = struct.pack(">I4s", self.payload + 8, b"mdat")
        return self._ftyp + bytes(clean) + mdat

    def _movie(self, tracks: list[_Track], start: float, base: int, wide: bool) -> bytes:
        assert self._moov is not None
        moov = self._moov
        traks = []
        longest = 0
        for track in tracks:
            trak, presented = self._trak(moov, track, start, base, wide)
            traks.append(trak)
            longest = max(longest, presented)
        _, mvhd, mvhd_end = _find(moov, 8, len(moov), b"mvhd")
        return _box(b"moov", self._with_duration(b"mvhd", moov, mvhd, mvhd_end, longest), *traks)

    def _with_duration(self, kind: bytes, data: bytes, body: int, end: int, duration: int) -> bytes:
        """An ``mvhd``, ``tkhd`` or ``mdhd`` with its duration set (version 1 when large)."""
        version = data[body]
        flags = int.from_bytes(data[body + 1 : body + 4], "big")
        if version == 1:
            times, scale_or_id, rest = data[body + 4 : body + 20], data[body + 20 : body + 24], 32
        else:
            times8 = data[body + 4 : body + 12]
            times = struct.pack(">QQ", *struct.unpack(">II", times8))
            scale_or_id, rest = data[body + 12 : body + 16], 20
        tail = data[body + rest : end]
        if kind == b"tkhd":
            # tkhd: track_ID, reserved, then the duration.
            fixed = scale_or_id + b"\x00\x00\x00\x00"
            tail = data[body + rest + 4 : end]
        else:
            fixed = scale_or_id
        return _full(kind, 1, flags, times, fixed, struct.pack(">Q", duration), tail)

    def _trak(
        self, moov: bytes, track: _Track, start: float, base: int, wide: bool
    ) -> tuple[bytes, int]:
        """The track's ``trak``, presenting from ``start`` (seconds on ffmpeg's
        timeline); and how long it presents, in the movie's timescale."""
        box, end = track.trak
        body = box + (16 if struct.unpack_from(">I", moov, box)[0] == 1 else 8)
        media_duration = sum(track.durations)
        first_cts = track.first_cts or 0
        own = _seconds(track.first_dts or 0, track) + _seconds(first_cts, track)
        # Later than the start: an empty edit first; earlier: its beginning is cut.
        media_time = first_cts + max(0, round((start - own) * track.timescale))
        delay = max(0, round((own - start) * self._movie_timescale))
        scale = self._movie_timescale / track.timescale
        presented = max(0, round((track.last_end - media_time) * scale))
        entries = []
        if delay:
            entries.append(struct.pack(">QqHH", delay, -1, 1, 0))
        entries.append(struct.pack(">QqHH", presented, media_time, 1, 0))
        elst = _full(b"elst", 1, 0, struct.pack(">I", len(entries)), *entries)
        parts = []
        for kind, box, inner, box_end in _boxes(moov, body, end):
            if kind == b"tkhd":
                parts.append(self._with_duration(b"tkhd", moov, inner, box_end, delay + presented))
                parts.append(_box(b"edts", elst))
            elif kind == b"mdia":
                parts.append(self._mdia(moov, inner, box_end, track, media_duration, base, wide))
            elif kind == b"tref":
                parts.append(moov[box:box_end])
        return _box(b"trak", *parts), delay + presented

    def _mdia(
        self, moov: bytes, body: int, end: int, track: _Track, duration: int, base: int, wide: bool
    ) -> bytes:
        parts = []
        for kind, box, inner, box_end in _boxes(moov, body, end):
            if kind == b"mdhd":
                parts.append(self._with_duration(b"mdhd", moov, inner, box_end, duration))
            elif kind == b"hdlr":
                parts.append(moov[box:box_end])
            elif kind == b"minf":
                minf = []
                for child, cbox, cinner, cend in _boxes(moov, inner, box_end):
                    if child in _MINF_KEEP:
                        minf.append(moov[cbox:cend])
                    elif child == b"stbl":
                        minf.append(self._stbl(moov, cinner, cend, track, base, wide))
                parts.append(_box(b"minf", *minf))
        return _box(b"mdia", *parts)

    @staticmethod
    def _stbl(moov: bytes, body: int, end: int, track: _Track, base: int, wide: bool) -> bytes:
        stsd, _, stsd_end = _find(moov, body, end, b"stsd")
        tables = [moov[stsd:stsd_end], _full(b"stts", 0, 0, *_runs(track.durations))]
        if any(track.offsets):
            version = 1 if min(track.offsets) < 0 else 0
            tables.append(_full(b"ctts", version, 0, *_runs(track.offsets, signed=True)))
        if len(track.syncs) != len(track.sizes):
            count = struct.pack(">I", len(track.syncs))
            tables.append(_full(b"stss", 0, 0, count, _be(track.syncs, "I")))
        stsc = []
        previous = -1
        for index, samples in enumerate(track.chunk_samples):
            if samples != previous:
                stsc.append(struct.pack(">III", index + 1, samples, 1))
                previous = samples
        tables.append(_full(b"stsc", 0, 0, struct.pack(">I", len(stsc)), *stsc))
        sizes = track.sizes
        if len(set(sizes)) == 1:
            tables.append(_full(b"stsz", 0, 0, struct.pack(">II", sizes[0], len(sizes))))
        else:
            tables.append(_full(b"stsz", 0, 0, struct.pack(">II", 0, len(sizes)), _be(sizes, "I")))
        offsets = array("Q", (base + offset for offset in track.chunk_offsets))
        count = struct.pack(">I", len(offsets))
        if wide:
            tables.append(_full(b"co64", 0, 0, count, _be(offsets, "Q")))
        else:
            tables.append(_full(b"stco", 0, 0, count, _be(offsets, "I")))
        return _box(b"stbl", *tables)


def _seconds(ticks: int, track: _Track) -> float:
    return ticks / track.timescale if track.timescale else 0.0


def _be(values: array[int], code: str) -> bytes:
    """``values`` as big-endian unsigned integers of the width of ``code``."""
    out = array(code, values)
    if out.itemsize != struct.calcsize(code):  # pragma: no cover - a platform with odd widths
        return b"".join(struct.pack(">" + code, v) for v in values)
    out.byteswap()
    return out.tobytes()


def _runs(values: array[int], *, signed: bool = False) -> list[bytes]:
    """``stts``/``ctts`` entries: the count of runs, then (count, value) for each."""
    entries = []
    at = 0
    form = ">Ii" if signed else ">II"
    while at < len(values):
        value = values[at]
        run = at
        while run < len(values) and values[run] == value:
            run += 1
        entries.append(struct.pack(form, run - at, value))
        at = run
    return [struct.pack(">I", len(entries)), *entries]
