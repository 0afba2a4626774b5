"""Sanitising images with libvips: strip or decode, turn upright, resize.

What is kept of an uploaded image (docs/media.md):

* **JPEG**: the compressed pixels themselves. :mod:`vault.media.jpeg`
  drops every metadata segment at the byte level (it runs as the upload
  streams in); an EXIF orientation is applied by a lossless transform
  (:mod:`vault.media.lossless`), and an ICC profile is kept only as its
  colour tags (:mod:`vault.media.icc`). Where the transform cannot be
  lossless (a size that is not a whole number of MCUs, or no TurboJPEG), the
  photo is decoded, turned and re-encoded at quality 92 instead.
* **PNG, WebP, HEIC, AVIF**: decoded (HEIC by :mod:`vault.media.heif`),
  turned upright by the EXIF orientation, converted to sRGB and re-encoded
  (PNG lossless, WebP at quality 90; HEIC and AVIF become JPEG at 92).

The variants are a ``preview`` (at most 1600 px on the longest side, JPEG
85) and a ``thumb`` (at most 320 px, JPEG 80, made from the preview), both
sRGB without any metadata. A JPEG's preview is decoded with shrink-on-load
(libjpeg's DCT scaling to the largest 1/2, 1/4 or 1/8 that stays above the
preview size), so its full-size pixels are never decoded at all.

Defences: libvips' untrusted operations are blocked and every loader but the
four this module calls is blocked too (no SVG, PDF, ImageMagick, …); the
loader is chosen from the sniffed type, never autodetected; the pixel count
is checked from the header before a pixel is decoded, so a decompression
bomb is refused at once; a damaged file is refused, not half-decoded.
Everything here is blocking: callers run it in the image pool
(:mod:`vault.media.pool`).
"""

from __future__ import annotations

import dataclasses
import logging
import os

import pyvips

from vault.errors import ConfigError, TooLarge
from vault.media import heif, icc, lossless, pool
from vault.media.jpeg import StrippedJpeg, exif_taken_at, with_icc
from vault.media.sniff import AVIF, HEIC, JPEG, PNG, WEBP, MediaType, UnsupportedType

PREVIEW_SIZE = 1600
THUMB_SIZE = 320
_LOADERS = {
    JPEG: "jpegload_buffer",
    PNG: "pngload_buffer",
    WEBP: "webpload_buffer",
    AVIF: "heifload_buffer",
}
#: The loader classes left usable once every other loader is blocked.
_ALLOWED_LOADER_CLASSES = (
    "VipsForeignLoadJpeg",
    "VipsForeignLoadPng",
    "VipsForeignLoadWebp",
    "VipsForeignLoadHeif",
)


@dataclasses.dataclass(frozen=True)
class Rendition:
    data: bytes
    mime: str


@dataclasses.dataclass(frozen=True)
class SanitisedImage:
    original: Rendition
    preview: Rendition
    thumb: Rendition
    width: int
    height: int
    #: When the photo was taken, as its EXIF says (ISO 8601), or None.
    taken_at: str | None = None


def configure_vips() -> None:
    """Lock libvips down for untrusted input; refuse to run where that is impossible."""
    if os.environ.get("VIPS_UNLIMITED"):
        raise ConfigError(
            "VIPS_UNLIMITED is set, which lifts libvips' safety limits; unset it to start."
        )
    major, minor = pyvips.version(0), pyvips.version(1)
    if (major, minor) < (8, 13):
        raise ConfigError(
            f"libvips {major}.{minor} cannot block untrusted loaders; 8.13 or newer is needed "
            "(install the pyvips-binary wheel)."
        )
    # libvips reports through the "pyvips" logger; at INFO it describes every
    # operation (a flood in a service's log). Its warnings and errors stay.
    logging.getLogger("pyvips").setLevel(logging.WARNING)
    pyvips.block_untrusted_set(True)
    pyvips.operation_block_set("VipsForeignLoad", True)
    for name in _ALLOWED_LOADER_CLASSES:
        pyvips.operation_block_set(name, False)
    # Decoded pixels of untrusted images are not worth keeping around.
    pyvips.cache_set_max(0)
    heif.configure()
    pool.tune_allocator()


def _too_large(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise TooLarge(
            f"The image is {width}×{height} pixels, more than the {max_pixels:,} allowed."
        )


def _load(data: bytes, media: MediaType, max_pixels: int) -> pyvips.Image:
    if media == HEIC:
        return heif.decode(data, max_pixels)
    loader = getattr(pyvips.Image, _LOADERS[media])
    try:
        # Loading reads the header only; pixels are decoded when first needed.
        image = loader(data, fail_on="truncated")
    except pyvips.Error:
        raise UnsupportedType(
            f"The file could not be read as {media.extension.upper()}; it may be damaged."
        ) from None
    _too_large(image.width, image.height, max_pixels)
    return image


def _taken_at(image: pyvips.Image) -> str | None:
    """The EXIF DateTimeOriginal of a decoded image (:func:`exif_taken_at`), or None."""
    if image.get_typeof("exif-data") == 0:
        return None
    exif = bytes(image.get("exif-data"))
    if not exif.startswith(b"Exif\x00\x00"):
        exif = b"Exif\x00\x00" + exif
    return exif_taken_at(exif)


def _srgb(image: pyvips.Image) -> pyvips.Image:
    if image.get_typeof("icc-profile-data") != 0:
        try:
            return image.icc_transform("srgb", embedded=True)
        except pyvips.Error:
            # A profile the colour engine rejects: show the pixels as sRGB.
            image = image.copy()
            image.remove("icc-profile-data")
    if image.interpretation not in ("srgb", "b-w"):
        return image.colourspace("srgb")
    return image


def _jpeg(image: pyvips.Image, quality: int) -> bytes:
    if image.hasalpha():
        image = image.flatten(background=[255] * (image.bands - 1))
    # No optimize_coding: it saves a few percent of size at twice the time.
    data: bytes = image.jpegsave_buffer(Q=quality, keep="none")
    return data


def _variants(image: pyvips.Image, *, to_srgb: bool = False) -> tuple[Rendition, Rendition]:
    preview = image.thumbnail_image(PREVIEW_SIZE, height=PREVIEW_SIZE, size="down")
    if to_srgb:
        preview = _srgb(preview)
    # Held once in memory: the thumbnail is made from it, the preview is not decoded twice.
    preview = preview.copy_memory()
    thumb = preview.thumbnail_image(THUMB_SIZE, height=THUMB_SIZE, size="down")
    return Rendition(_jpeg(preview, 85), JPEG.mime), Rendition(_jpeg(thumb, 80), JPEG.mime)


def sanitise(data: bytes, media: MediaType, max_pixels: int) -> SanitisedImage:
    """Decode ``data`` as ``media`` and produce the stored renditions. Blocking."""
    image = _load(data, media, max_pixels)
    taken_at = _taken_at(image)
    try:
        # Decode once into memory (3 bytes a pixel, within max_pixels): the
        # original and both variants are made from it, with the operation
        # cache off, without decoding the upload three times.
        image = _srgb(image.autorot()).copy_memory()
        if media == PNG:
            original = Rendition(image.pngsave_buffer(keep="none", compression=6), PNG.mime)
        elif media == WEBP:
            original = Rendition(image.webpsave_buffer(Q=90, keep="none"), WEBP.mime)
        else:
            original = Rendition(_jpeg(image, 92), JPEG.mime)
        preview, thumb = _variants(image)
        return SanitisedImage(original, preview, thumb, image.width, image.height, taken_at)
    except pyvips.Error:
        raise UnsupportedType(
            f"The file could not be decoded as {media.extension.upper()}; it may be damaged."
        ) from None


def posters(png: bytes, max_pixels: int) -> tuple[Rendition, Rendition]:
    """A video's ``preview`` and ``thumb`` from its poster frame (a PNG ffmpeg
    made), made as a photo's are: sRGB, no metadata. Blocking."""
    image = _load(png, PNG, max_pixels)
    try:
        return _variants(image.copy_memory(), to_srgb=True)
    except pyvips.Error:
        raise UnsupportedType("The video's poster frame could not be decoded.") from None


def _shrink_factor(width: int, height: int) -> int:
    longest = max(width, height)
    for factor in (8, 4, 2):
        if longest // factor >= PREVIEW_SIZE:
            return factor
    return 1


@dataclasses.dataclass(frozen=True)
class CleanJpeg:
    """A JPEG original as it is stored: stripped, upright, its ICC profile sanitised."""

    data: bytes
    width: int
    height: int


def clean_jpeg(stripped: StrippedJpeg, max_pixels: int) -> CleanJpeg | None:
    """The stored original of a JPEG whose metadata :class:`JpegStripper`
    removed, or None where it cannot be turned upright losslessly (then
    :func:`sanitise_jpeg` decodes and re-encodes it). Its pixels are not
    decoded here: :func:`jpeg_variants` does that, and refuses a damaged
    scan. Blocking (a lossless turn re-codes the entropy data)."""
    _too_large(stripped.width, stripped.height, max_pixels)
    original, width, height = stripped.data, stripped.width, stripped.height
    if stripped.orientation != 1:
        turned = lossless.upright(original, stripped.orientation)
        if turned is None:
            return None
        original = turned
        if stripped.orientation >= 5:
            width, height = height, width
    profile = icc.sanitise(stripped.icc) if stripped.icc else None
    if profile is not None:
        original = with_icc(original, profile)
    return CleanJpeg(original, width, height)


def jpeg_variants(clean: CleanJpeg) -> tuple[Rendition, Rendition]:
    """The ``preview`` and ``thumb`` of a clean original: one decode, by
    shrink-on-load, read once from top to bottom. Blocking."""
    try:
        image = pyvips.Image.jpegload_buffer(
            clean.data,
            shrink=_shrink_factor(clean.width, clean.height),
            fail_on="truncated",
            # Read once, top to bottom: libvips keeps a few lines, not the image.
            access="sequential",
        )
        return _variants(image, to_srgb=True)
    except pyvips.Error:
        raise UnsupportedType(
            "The file could not be decoded as JPEG; it may be damaged. "
            "Export the photo again from the device and upload that."
        ) from None


def sanitise_jpeg(stripped: StrippedJpeg, max_pixels: int) -> SanitisedImage:
    """The renditions of a JPEG whose metadata :class:`JpegStripper` removed. Blocking.

    The ingest runs the two steps apart (:func:`clean_jpeg`, then
    :func:`jpeg_variants` while the original is encrypted and stored)."""
    clean = clean_jpeg(stripped, max_pixels)
    if clean is None:
        return reencoded_jpeg(stripped, max_pixels)
    preview, thumb = jpeg_variants(clean)
    return SanitisedImage(
        Rendition(clean.data, JPEG.mime),
        preview,
        thumb,
        clean.width,
        clean.height,
        stripped.taken_at,
    )


def reencoded_jpeg(stripped: StrippedJpeg, max_pixels: int) -> SanitisedImage:
    """The decode path for a JPEG that cannot be turned losslessly."""
    data = stripped.data
    if stripped.icc:
        data = with_icc(data, stripped.icc)  # converted to sRGB, then dropped
    image = _load(data, JPEG, max_pixels)
    image = image.copy()
    image.set_type(pyvips.GValue.gint_type, "orientation", stripped.orientation)
    try:
        image = _srgb(image.autorot()).copy_memory()
        preview, thumb = _variants(image)
        original = Rendition(_jpeg(image, 92), JPEG.mime)
    except pyvips.Error:
        raise UnsupportedType("The file could not be decoded as JPEG; it may be damaged.") from None
    return SanitisedImage(original, preview, thumb, image.width, image.height, stripped.taken_at)
