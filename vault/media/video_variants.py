"""Making a video's variants with ffmpeg: posters (``preview``, ``thumb``) and ``web``.

The input is always the stored original, decrypted, on ffmpeg's standard
input (MP4 and MOV in ``moov``-first order, :mod:`vault.media.faststart`);
the outputs come back on its standard output. No plaintext file is written.

* **Posters**: the frame one second in (the middle of a shorter clip),
  upright (ffmpeg applies the display matrix), square-pixelled, tone-mapped
  to SDR when the video is HDR (HLG or PQ: an iPhone's default), at most
  1600 px, as a PNG on the pipe; then made exactly like a photo's variants
  (:func:`vault.media.images.posters`: JPEG 85 at 1600 px, JPEG 80 at
  320 px, sRGB, no metadata). A cover picture in the container is not used:
  the upload scrubber removed it with the rest of the metadata.
* **web**: H.264 High (CRF ``video.web_crf``, x264 preset
  ``video.web_preset``, a keyframe every two seconds, 8-bit 4:2:0, BT.709)
  at most ``video.web_max_lines`` on the shorter side, AAC-LC 128 kbit/s
  (at most stereo, 48 kHz), in an MP4 with ``moov`` first. A picture that
  is already H.264 a browser plays and small enough (a MOV from an older
  phone, H.264 with PCM sound) is copied, not encoded again; the sound is
  always encoded (it is cheap). ffmpeg writes a fragmented MP4 to the pipe,
  :mod:`vault.media.defrag` turns it into the final layout. Every SEI NAL
  unit is dropped (``filter_units``: x264's settings string, a camera's
  own), no metadata or chapter is mapped, and the ``moov`` passes the
  upload scrubber's rewrite.

Bounds (:class:`~vault.media.ffmpeg.Bounds`): the threads, niceness and
memory of ``[video]``; a time limit of ``video.seconds_per_second`` per
second of video (at least ``video.min_seconds``); frames over
``uploads.video_max_pixels`` and, for ``web``, videos over
``uploads.video_max_seconds`` are not worked on at all (:class:`TooMuch`).

May touch: the ffmpeg processes it starts (through :mod:`vault.media.ffmpeg`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable

from vault.config import Settings
from vault.media import ffmpeg
from vault.media.defrag import Defragmenter
from vault.media.ffmpeg import Bounds, Probe, Rejected
from vault.media.images import PREVIEW_SIZE, Rendition, posters
from vault.media.pool import ImagePool

#: ffmpeg's demuxer for each stored type (MP4, 3GP and MOV share one).
INPUT_FORMATS = {"video/mp4": "mov", "video/quicktime": "mov", "video/webm": "matroska"}
#: H.264 profiles every browser decodes, as ffprobe names them.
_PLAYED = frozenset({"Baseline", "Constrained Baseline", "Main", "High"})
_HDR = frozenset({"smpte2084", "arib-std-b67"})
#: A poster frame's PNG: 1600 × 1600 × 3 bytes uncompressed is 7.7 MB.
_POSTER_BYTES = 16 * 1024 * 1024
_PROBE_SECONDS = 60.0
_CHUNK = 256 * 1024

Source = Callable[[], AsyncIterator[bytes]]


class TooMuch(Exception):
    """Over a ceiling of the upload settings: not worked on (the original serves)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def bounds(settings: Settings, seconds: float) -> Bounds:
    video = settings.video
    return Bounds(video.threads, video.nice, video.memory_mb * 1024 * 1024, seconds)


def time_limit(settings: Settings, duration: float | None) -> float:
    """Seconds a transcode of ``duration`` seconds may take (unknown: the longest allowed)."""
    seconds = duration if duration is not None else settings.uploads.video_max_seconds
    return max(settings.video.min_seconds, settings.video.seconds_per_second * seconds)


async def inspect(source: Source, content_type: str, settings: Settings) -> Probe:
    """ffprobe's view of the stored video, checked against the pixel ceiling."""
    found = await ffmpeg.probe(
        source(),
        INPUT_FORMATS[content_type],
        bounds(settings, _PROBE_SECONDS),
        settings.video.ffprobe,
    )
    width, height = found.size
    limit = settings.uploads.video_max_pixels
    if found.video is not None and width * height > limit:
        raise TooMuch(
            f"its frames are {width}×{height} pixels, more than uploads.video_max_pixels "
            f"({limit:,}); the original is served as it is"
        )
    return found


def _picture_filters(found: Probe) -> list[str]:
    """Square pixels and SDR, before any scaling."""
    video = found.video or {}
    filters = []
    sar = video.get("sample_aspect_ratio")
    if sar not in (None, "1:1", "0:1", "N/A"):
        filters += ["scale=trunc(iw*sar/2)*2:ih", "setsar=1"]
    if video.get("color_transfer") in _HDR:
        filters += [
            "zscale=t=linear:npl=100",
            "format=gbrpf32le",
            "zscale=p=bt709",
            "tonemap=tonemap=hable:desat=0",
            "zscale=t=bt709:m=bt709:r=tv",
        ]
    return filters


def _seek(found: Probe) -> str:
    """One second in; the middle of a clip shorter than two."""
    if found.duration is not None and found.duration < 2:
        return f"{found.duration / 2:.3f}"
    return "1"


async def make_posters(
    source: Source, content_type: str, found: Probe, settings: Settings, pool: ImagePool
) -> tuple[Rendition, Rendition]:
    """(preview, thumb) from the poster frame."""
    if found.video is None:
        raise Rejected("the video has no picture track")
    box = PREVIEW_SIZE
    # At most the preview's size, never more than the frame (a small clip is not enlarged).
    scale = (
        f"scale='min(iw,{box})':'min(ih,{box})'"
        ":force_original_aspect_ratio=decrease:force_divisible_by=2"
    )
    filters = [*_picture_filters(found), scale, "format=rgb24"]
    threads = str(settings.video.threads)
    args = [
        *("-nostdin", "-hide_banner", "-v", "error", "-threads", threads),
        *("-f", INPUT_FORMATS[content_type], *ffmpeg.NO_NETWORK, "-i", "pipe:0"),
        *("-map", "0:v:0", "-ss", _seek(found), "-frames:v", "1", "-an", "-sn", "-dn"),
        *("-map_metadata", "-1", "-vf", ",".join(filters), "-filter_threads", threads),
        *("-f", "image2pipe", "-c:v", "png", "pipe:1"),
    ]
    limit = bounds(settings, settings.video.min_seconds)
    png = await ffmpeg.run(
        settings.video.ffmpeg, args, limit, source(), lambda s: ffmpeg.read_all(s, _POSTER_BYTES)
    )
    if not png:
        raise Rejected("no picture could be decoded from its first seconds")
    return await pool.run(posters, png, settings.uploads.max_pixels)


def copies_picture(found: Probe, settings: Settings) -> bool:
    """Whether the picture can go into ``web`` as it is (H.264 a browser plays, small enough)."""
    video = found.video or {}
    width, height = found.size
    return (
        video.get("codec_name") == "h264"
        and video.get("profile") in _PLAYED
        and video.get("pix_fmt") in ("yuv420p", "yuvj420p")
        and min(width, height) <= settings.video.web_max_lines
        and not _picture_filters(found)
    )


def web_arguments(content_type: str, found: Probe, settings: Settings) -> list[str]:
    video = settings.video
    threads = str(video.threads)
    args = [
        *("-nostdin", "-hide_banner", "-v", "error", "-xerror", "-threads", threads),
        *("-f", INPUT_FORMATS[content_type], *ffmpeg.NO_NETWORK, "-i", "pipe:0"),
        *("-map", "0:v:0", "-map", "0:a:0?", "-map_metadata", "-1", "-map_chapters", "-1"),
        *("-sn", "-dn", "-max_muxing_queue_size", "4096"),
    ]
    if copies_picture(found, settings):
        args += ["-c:v", "copy"]
    else:
        lines, longest = video.web_max_lines, round(video.web_max_lines * 16 / 9)
        fit = (
            f"scale=w='if(gte(iw,ih),min({longest},iw),min({lines},iw))'"
            f":h='if(gte(iw,ih),min({lines},ih),min({longest},ih))'"
            ":force_original_aspect_ratio=decrease:force_divisible_by=2"
        )
        filters = [*_picture_filters(found), fit, "format=yuv420p"]
        args += [
            *("-vf", ",".join(filters), "-filter_threads", threads),
            *("-c:v", "libx264", "-preset", video.web_preset, "-crf", str(video.web_crf)),
            *("-profile:v", "high", "-pix_fmt", "yuv420p", "-threads", threads),
            *("-force_key_frames", "expr:gte(t,n_forced*2)"),
            *("-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709"),
        ]
    args += ["-bsf:v", "filter_units=remove_types=6"]
    audio = found.audio or {}
    if found.audio is not None:
        # bitexact: no "Lavc…" version string in the first frame of sound.
        args += ["-c:a", "aac", "-b:a", "128k", "-flags:a", "+bitexact"]
        if int(audio.get("channels") or 2) > 2:
            args += ["-ac", "2"]
        if int(audio.get("sample_rate") or 48000) > 48000:
            args += ["-ar", "48000"]
    return [
        *args,
        *("-movflags", "+frag_keyframe+empty_moov+default_base_moof"),
        *("-frag_duration", "1000000", "-f", "mp4", "pipe:1"),
    ]


async def make_web(
    source: Source,
    content_type: str,
    found: Probe,
    settings: Settings,
    store: Callable[[AsyncIterable[bytes]], Awaitable[None]],
) -> bytes:
    """Transcode; ``store`` takes the media data as it comes (to be kept, encrypted).

    Returns what precedes that data in the final file (``ftyp``, ``moov``,
    the ``mdat`` header): the rendition is those bytes, then the stored data.
    """
    if found.video is None:
        raise Rejected("the video has no picture track")
    if found.duration is not None and found.duration > settings.uploads.video_max_seconds:
        raise TooMuch(
            f"it lasts {found.duration:.0f} s, longer than uploads.video_max_seconds "
            f"({settings.uploads.video_max_seconds} s); the original is served as it is"
        )
    defrag = Defragmenter()

    async def media(stdout: asyncio.StreamReader) -> AsyncIterator[bytes]:
        while chunk := await stdout.read(_CHUNK):
            for piece in defrag.feed(chunk):
                yield piece

    async def consume(stdout: asyncio.StreamReader) -> None:
        await store(media(stdout))

    limit = bounds(settings, time_limit(settings, found.duration))
    await ffmpeg.run(
        settings.video.ffmpeg,
        web_arguments(content_type, found, settings),
        limit,
        source(),
        consume,
    )
    defrag.close()
    return defrag.head()
