"""The type of an upload, from its first bytes; and what each kind accepts.

Only the formats below are recognised at all; anything else (SVG, HTML, GIF,
TIFF, executables, text) is not an accepted type for any kind.
"""

from __future__ import annotations

import dataclasses

from vault.errors import KluisError

#: How many leading bytes sniffing needs.
HEAD_SIZE = 64


class UnsupportedType(KluisError):
    status, code = 415, "unsupported_type"
    default_message = "The file is not of a type accepted for this kind of record."


@dataclasses.dataclass(frozen=True)
class MediaType:
    mime: str
    family: str  # "image", "video" or "document"
    extension: str


JPEG = MediaType("image/jpeg", "image", "jpg")
PNG = MediaType("image/png", "image", "png")
WEBP = MediaType("image/webp", "image", "webp")
HEIC = MediaType("image/heic", "image", "heic")
AVIF = MediaType("image/avif", "image", "avif")
MP4 = MediaType("video/mp4", "video", "mp4")
MOV = MediaType("video/quicktime", "video", "mov")
WEBM = MediaType("video/webm", "video", "webm")
PDF = MediaType("application/pdf", "document", "pdf")

_IMAGES = frozenset({JPEG, PNG, WEBP, HEIC, AVIF})
_SCANS = frozenset({PDF, JPEG, PNG, WEBP, HEIC, AVIF})
ACCEPTED: dict[str, frozenset[MediaType]] = {
    "photo": _IMAGES,
    "video": frozenset({MP4, MOV, WEBM}),
    "observation": _SCANS,
    "medical": _SCANS,
    "child_protection": _SCANS,
    "invoice": _SCANS,
    "annual_statement": _SCANS,
    "contract": _SCANS,
}

_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}
_QUICKTIME_BRANDS = {b"qt  "}
_MP4_BRANDS = {
    b"isom",
    b"iso2",
    b"iso4",
    b"iso5",
    b"iso6",
    b"mp41",
    b"mp42",
    b"avc1",
    b"M4V ",
    b"dash",
    b"3gp4",
    b"3gp5",
    b"3gp6",
    b"3gp7",
    b"3gp8",
    b"3gp9",
    b"3g2a",
    b"3g2b",
    b"3g2c",
    b"MSNV",
    b"mmp4",
}


def sniff(head: bytes) -> MediaType | None:
    """The media type the bytes start with, or None if not a recognised one."""
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head[0:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head.startswith(b"%PDF-"):
        return PDF
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        compatible = {head[i : i + 4] for i in range(16, min(len(head), 64) - 3, 4)}
        if brand in _AVIF_BRANDS:
            return AVIF
        if brand in _HEIF_BRANDS:
            return HEIC
        if brand in _QUICKTIME_BRANDS:
            return MOV
        if brand in _MP4_BRANDS or compatible & _MP4_BRANDS:
            return MP4
        return None
    if head.startswith(b"\x1a\x45\xdf\xa3") and b"webm" in head[:64]:
        return WEBM
    return None


def accepted(kind: str, head: bytes) -> MediaType:
    """The sniffed type if ``kind`` accepts it; otherwise ``UnsupportedType``."""
    found = sniff(head)
    allowed = ACCEPTED.get(kind, frozenset())
    if found is None or found not in allowed:
        names = ", ".join(sorted(t.extension.upper() for t in allowed)) or "no files"
        raise UnsupportedType(
            f"The file is not an accepted type for kind '{kind}' (accepted: {names}); "
            "the type is read from the file's bytes, not its name."
        )
    return found
