"""Sanitising images with libvips: decode, auto-rotate, strip, resize.

What is kept of an uploaded image (docs/media.md): its pixels, turned upright
by the EXIF orientation and converted to sRGB, re-encoded in its own format
(JPEG at quality 92, PNG lossless, WebP at quality 90; HEIC and AVIF
become JPEG). The bundled libvips reads AVIF but not HEVC-coded HEIC, so a
HEIC photo is refused with a message that asks for a JPEG export.
Nothing else: no EXIF (so no GPS position, camera or time), no XMP, no IPTC,
no embedded thumbnail, no ICC profile (sRGB is implied). The variants are a
``preview`` (at most 1600 px on the longest side) and a ``thumb`` (at most
320 px), both JPEG.

Defences: libvips' untrusted operations are blocked and every loader but the
four this module calls is blocked too (no SVG, PDF, ImageMagick, …); the
loader is chosen from the sniffed type, never autodetected; the pixel count
is checked from the header before a pixel is decoded, so a decompression
bomb is refused at once; a damaged file is refused, not half-decoded.
"""

from __future__ import annotations

import dataclasses
import logging
import os

import pyvips

from vault.errors import ConfigError, TooLarge
from vault.media.sniff import AVIF, HEIC, JPEG, PNG, WEBP, MediaType, UnsupportedType

PREVIEW_SIZE = 1600
THUMB_SIZE = 320
_LOADERS = {
    JPEG: "jpegload_buffer",
    PNG: "pngload_buffer",
    WEBP: "webpload_buffer",
    HEIC: "heifload_buffer",
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


def _load(data: bytes, media: MediaType, max_pixels: int) -> pyvips.Image:
    loader = getattr(pyvips.Image, _LOADERS[media])
    try:
        # Loading reads the header only; pixels are decoded when first needed.
        image = loader(data, fail_on="truncated")
    except pyvips.Error:
        if media == HEIC:
            raise UnsupportedType(
                "This HEIC photo cannot be decoded here (the bundled image library has no "
                "HEVC decoder); export it as JPEG on the device and upload that."
            ) from None
        raise UnsupportedType(
            f"The file could not be read as {media.extension.upper()}; it may be damaged."
        ) from None
    if image.width * image.height > max_pixels:
        raise TooLarge(
            f"The image is {image.width}×{image.height} pixels, more than the "
            f"{max_pixels:,} allowed."
        )
    return image


def _srgb(image: pyvips.Image) -> pyvips.Image:
    if image.get_typeof("icc-profile-data") != 0:
        return image.icc_transform("srgb", embedded=True)
    if image.interpretation not in ("srgb", "b-w"):
        return image.colourspace("srgb")
    return image


def _jpeg(image: pyvips.Image, quality: int) -> bytes:
    if image.hasalpha():
        image = image.flatten(background=[255] * (image.bands - 1))
    # No optimize_coding: it saves a few percent of size at twice the time.
    data: bytes = image.jpegsave_buffer(Q=quality, keep="none")
    return data


def sanitise(data: bytes, media: MediaType, max_pixels: int) -> SanitisedImage:
    """Decode ``data`` as ``media`` and produce the stored renditions. Blocking."""
    image = _load(data, media, max_pixels)
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
        preview = image.thumbnail_image(PREVIEW_SIZE, height=PREVIEW_SIZE, size="down")
        thumb = preview.thumbnail_image(THUMB_SIZE, height=THUMB_SIZE, size="down")
        return SanitisedImage(
            original=original,
            preview=Rendition(_jpeg(preview, 85), JPEG.mime),
            thumb=Rendition(_jpeg(thumb, 80), JPEG.mime),
            width=image.width,
            height=image.height,
        )
    except pyvips.Error:
        raise UnsupportedType(
            f"The file could not be decoded as {media.extension.upper()}; it may be damaged."
        ) from None
