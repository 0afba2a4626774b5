"""Decoding HEIC/HEIF photos with pillow-heif (libheif with its HEVC decoder).

The libvips in the pyvips-binary wheel reads AVIF but has no HEVC decoder,
so the iPhone's and iPad's default photo format is decoded here instead and
handed to :mod:`vault.media.images` as a libvips image, to be sanitised like
every photo. Only the primary image is decoded: thumbnails, depth maps and
auxiliary images are never loaded. libheif's own security limits stay on,
and the pixel count is checked from the header before anything is decoded.

Orientation: libheif applies the HEIF transformations (``irot``, ``imir``)
while decoding, which is how an iPhone records a portrait photo, and by the
HEIF rules the EXIF orientation is then ignored. A file with no such
transformation but an EXIF orientation other than 1 (what a converter that
copies a JPEG's EXIF writes, such as ``heif-enc`` of libheif 1.15) is turned
by that EXIF orientation, so it shows as its source did.

May touch: only the bytes it is given.
"""

from __future__ import annotations

import io
import struct

import pillow_heif
import pyvips

from vault.errors import TooLarge
from vault.media.jpeg import exif_orientation
from vault.media.sniff import UnsupportedType

_DAMAGED = (
    "The file could not be decoded as HEIC: it may be damaged; export the photo again "
    "(or as JPEG: on an iPhone, Settings > Camera > Formats > Most Compatible) and upload that."
)


def configure() -> None:
    """Never decode more than the primary image."""
    pillow_heif.options.THUMBNAILS = False
    pillow_heif.options.DEPTH_IMAGES = False
    pillow_heif.options.AUX_IMAGES = False
    pillow_heif.options.DISABLE_SECURITY_LIMITS = False


def _box_types(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    boxes, at = [], start
    while at + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, at)
        if size < 8 or at + size > end:
            break
        boxes.append((kind, at + 8, at + size))
        at += size
    return boxes


def has_transformation(data: bytes) -> bool:
    """Whether the HEIF's item properties hold a rotation or mirror (``irot``/``imir``)."""
    for kind, start, end in _box_types(data, 0, len(data)):
        if kind != b"meta":
            continue
        for prop_kind, prop_start, prop_end in _box_types(data, start + 4, end):
            if prop_kind != b"iprp":
                continue
            for container, inner_start, inner_end in _box_types(data, prop_start, prop_end):
                if container == b"ipco":
                    found = {k for k, _, _ in _box_types(data, inner_start, inner_end)}
                    return bool(found & {b"irot", b"imir"})
    return False


def decode(data: bytes, max_pixels: int) -> pyvips.Image:
    """The primary image upright as an sRGB-tagged libvips image (ICC attached if any)."""
    try:
        heif = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True)
        width, height = heif.size
    except Exception:  # pillow-heif raises ValueError, RuntimeError, … for bad input
        raise UnsupportedType(_DAMAGED) from None
    if width * height > max_pixels:
        raise TooLarge(
            f"The image is {width}×{height} pixels, more than the {max_pixels:,} allowed."
        )
    exif = heif.info.get("exif") or b""
    try:
        picture = heif.to_pillow()
        if picture.mode not in ("RGB", "RGBA", "L", "LA"):
            picture = picture.convert("RGBA" if "A" in picture.mode else "RGB")
        pixels = picture.tobytes()
    except Exception:
        raise UnsupportedType(_DAMAGED) from None
    bands = len(picture.getbands())
    image = pyvips.Image.new_from_memory(pixels, width, height, bands, "uchar")
    image = image.copy(interpretation="srgb" if bands >= 3 else "b-w")
    icc = heif.info.get("icc_profile")
    if icc:
        image.set_type(pyvips.GValue.blob_type, "icc-profile-data", bytes(icc))
    if not exif.startswith(b"Exif\x00\x00"):
        exif = b"Exif\x00\x00" + exif
    # Kept on the image as libvips' own loaders keep it (the time it was
    # taken is read from it); every rendition is saved without it.
    image.set_type(pyvips.GValue.blob_type, "exif-data", exif)
    orientation = exif_orientation(exif)
    if orientation != 1 and not has_transformation(data):
        image.set_type(pyvips.GValue.gint_type, "orientation", orientation)
        image = image.autorot()
    return image
