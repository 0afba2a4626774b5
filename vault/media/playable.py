"""Which videos every browser plays as they are, read from the container's own header.

A stored video is served as it was uploaded (metadata removed, frames
untouched). Whether a parent's browser can show it depends on the container
and the codecs; the vault makes a ``web`` rendition (H.264/AAC in MP4) only
for those that current Chrome, Firefox and Safari cannot all play:

* **played everywhere, no rendition**: MP4 (3GP too, served as ``video/mp4``)
  whose first video track is H.264 in the Baseline, Main or High profile
  (8-bit 4:2:0) and whose first audio track, if any, is AAC or MP3;
* **a rendition**: everything else. HEVC (an iPhone's default: Chrome and
  Firefox play it only where the hardware decodes it), QuickTime MOV of any
  codec (Firefox plays no ``video/quicktime``; Chrome does not claim it),
  WebM (Safari plays VP9 only with hardware decoding, VP8 and Vorbis not
  reliably), AV1 (Safari only with hardware), VP9 or anything else in MP4,
  H.264 in 10-bit or 4:2:2 profiles, PCM, AC-3 or Opus sound.

Every video with a picture track gets a ``preview`` and a ``thumb``.

The facts come from the ``moov`` box (MP4, MOV, 3GP) or the ``Tracks``
element (WebM) that the metadata scrubbers (:mod:`vault.media.bmff`,
:mod:`vault.media.ebml`) hold while they rewrite them, so the decision is
made while the upload streams in and the upload's answer already says what
is being made. Unknown or unreadable facts count as "not played everywhere":
the job then finds out what ffmpeg can do.

May touch: only the bytes it is given.
"""

from __future__ import annotations

import dataclasses
import struct

from vault.media.ebml import parse_header
from vault.media.sniff import MP4, MediaType, UnsupportedType

#: H.264 profile_idc values every browser decodes (Baseline, Main, High).
_H264_PROFILES = frozenset({66, 77, 100})
#: MPEG-4 objectTypeIndication values of AAC (MPEG-4 and MPEG-2) and MP3.
_AUDIO_TYPES = frozenset({0x40, 0x66, 0x67, 0x68, 0x69, 0x6B})
_CONTAINERS = frozenset({b"moov", b"trak", b"mdia", b"minf", b"stbl"})
#: Bytes of a visual / audio sample entry before its child boxes (ISO 14496-12).
_VISUAL_ENTRY, _AUDIO_ENTRY = 78, 28
_MAX_DEPTH = 8


@dataclasses.dataclass(frozen=True)
class Track:
    kind: str  # "video", "audio" or "other"
    #: The sample entry type (``avc1``, ``hvc1``, ``mp4a``) or Matroska CodecID (``V_VP9``).
    codec: str
    #: H.264: profile_idc; AAC/MP3 in ``mp4a``: objectTypeIndication; else None.
    profile: int | None = None


@dataclasses.dataclass(frozen=True)
class VideoFacts:
    media: MediaType
    tracks: tuple[Track, ...]

    def first(self, kind: str) -> Track | None:
        return next((t for t in self.tracks if t.kind == kind), None)


def plays_everywhere(facts: VideoFacts) -> bool:
    video, audio = facts.first("video"), facts.first("audio")
    if facts.media != MP4 or video is None:
        return False
    if video.codec not in ("avc1", "avc3") or video.profile not in _H264_PROFILES:
        return False
    return audio is None or (audio.codec == "mp4a" and audio.profile in _AUDIO_TYPES)


def plan(facts: VideoFacts | None) -> tuple[tuple[str, ...], ...]:
    """The variants to make after upload, one tuple per job: posters first."""
    if facts is None or facts.first("video") is None:
        return ()
    if plays_everywhere(facts):
        return (("preview", "thumb"),)
    return (("preview", "thumb"), ("web",))


# -- MP4, MOV, 3GP ------------------------------------------------------------


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """(type, payload start, end) of each box in data[start:end]; stops at damage."""
    found = []
    at = start
    while end - at >= 8:
        size, kind = struct.unpack_from(">I4s", data, at)
        header = 8
        if size == 1 and end - at >= 16:
            (size,) = struct.unpack_from(">Q", data, at + 8)
            header = 16
        if size < header or at + size > end:
            break
        found.append((kind, at + header, at + size))
        at += size
    return found


def _child(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for found, payload, box_end in _boxes(data, start, end):
        if found == kind:
            return payload, box_end
    return None


def bmff_facts(media: MediaType, moov: bytes) -> VideoFacts:
    """The tracks a rewritten ``moov`` box (header included) describes."""
    tracks = []
    for kind, payload, end in _boxes(moov, 8, len(moov)):
        if kind == b"trak":
            track = _bmff_track(moov, payload, end)
            if track is not None:
                tracks.append(track)
    return VideoFacts(media, tuple(tracks))


def _bmff_track(data: bytes, start: int, end: int) -> Track | None:
    mdia = _child(data, start, end, b"mdia")
    if mdia is None:
        return None
    hdlr = _child(data, *mdia, b"hdlr")
    handler = bytes(data[hdlr[0] + 8 : hdlr[0] + 12]) if hdlr and hdlr[1] - hdlr[0] >= 12 else b""
    kind = {b"vide": "video", b"soun": "audio"}.get(handler, "other")
    minf = _child(data, *mdia, b"minf")
    stbl = _child(data, *minf, b"stbl") if minf else None
    stsd = _child(data, *stbl, b"stsd") if stbl else None
    entries = _boxes(data, stsd[0] + 8, stsd[1]) if stsd and stsd[1] - stsd[0] >= 8 else []
    if not entries:
        return Track(kind, "")
    codec, payload, entry_end = entries[0]
    name = codec.decode("latin-1")
    if kind == "video" and codec in (b"avc1", b"avc3"):
        avcc = _child(data, payload + _VISUAL_ENTRY, entry_end, b"avcC")
        profile = data[avcc[0] + 1] if avcc and avcc[1] - avcc[0] >= 4 else None
        return Track(kind, name, profile)
    if kind == "audio" and codec == b"mp4a":
        return Track(kind, name, _object_type(data, payload, entry_end))
    return Track(kind, name)


def _object_type(data: bytes, start: int, end: int) -> int | None:
    """The objectTypeIndication in an ``mp4a`` entry's ``esds`` (ISO 14496-1 descriptors)."""
    version = struct.unpack_from(">H", data, start + 8)[0] if end - start >= 10 else 0
    skip = _AUDIO_ENTRY + {1: 16, 2: 36}.get(version, 0)  # QuickTime sound entry versions
    esds = _child(data, start + skip, end, b"esds")
    wave = _child(data, start + skip, end, b"wave") if esds is None else None
    if wave is not None:  # QuickTime puts it in a 'wave' box
        esds = _child(data, *wave, b"esds")
    if esds is None:
        return None
    at, limit = esds[0] + 4, esds[1]
    for tag in (0x03, 0x04):
        if at >= limit or data[at] != tag:
            return None
        at += 1
        for _ in range(4):  # the length: up to four bytes of seven bits
            if at >= limit:
                return None
            at += 1
            if not data[at - 1] & 0x80:
                break
        if tag == 0x03:
            if at + 3 > limit:
                return None
            flags = data[at + 2]  # after the ES_ID: dependsOn, URL, OCR, in that order
            at += 3 + (2 if flags & 0x80 else 0)
            if flags & 0x40:
                at += 1 + (data[at] if at < limit else 0)
            at += 2 if flags & 0x20 else 0
    return data[at] if at < limit else None


# -- WebM ---------------------------------------------------------------------

_TRACK_ENTRY, _TRACK_TYPE, _CODEC_ID = 0xAE, 0x83, 0x86


def ebml_facts(media: MediaType, tracks: bytes) -> VideoFacts:
    """The tracks a rewritten ``Tracks`` element (header included) describes."""
    found = []
    head = parse_header(tracks, 0, len(tracks))
    at = head[2] if head else len(tracks)
    for element, payload, end in _elements(tracks, at, len(tracks)):
        if element != _TRACK_ENTRY:
            continue
        kind, codec = "other", ""
        for child, start, stop in _elements(tracks, payload, end):
            if child == _TRACK_TYPE:
                value = int.from_bytes(tracks[start:stop], "big")
                kind = {1: "video", 2: "audio"}.get(value, "other")
            elif child == _CODEC_ID:
                codec = tracks[start:stop].rstrip(b"\x00").decode("ascii", "replace")
        found.append(Track(kind, codec))
    return VideoFacts(media, tuple(found))


def _elements(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    """(ID, payload start, end) of each element in data[start:end]; stops at damage."""
    out = []
    at = start
    while at < end:
        try:
            head = parse_header(data, at, end)
        except UnsupportedType:
            break
        if head is None or head[1] < 0 or at + head[2] + head[1] > end:
            break
        element, size, header = head
        out.append((element, at + header, at + header + size))
        at += header + size
    return out
