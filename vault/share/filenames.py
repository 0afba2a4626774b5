"""File names that leave the vault: in a download's Content-Disposition and
as entries of an export's ZIP.

A name keeps its letters, whatever the script ("Zwembad Noor.jpg",
"Überraschung.jpg", "生日.jpg"), but never carries what would break where it
lands: path separators, characters Windows refuses in a name
(``<>:"/\\|?*`` and controls), trailing dots and spaces (Explorer drops
them, so two entries collide), or a device name (``CON``, ``aux.txt``,
``LPT1``), which Windows cannot create at all. The extension comes from
the sniffed type, never the client's name.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

_EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "video/mp4": "mp4",
    "video/quicktime": "mov",
    "video/webm": "webm",
    "application/pdf": "pdf",
    "text/plain": "txt",
}
#: Characters Windows refuses in a file name, controls, and the separators.
_REFUSED = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]+')
#: Device names Windows reserves, with or without an extension (and with
#: the superscript digits it also treats as devices).
_DEVICE = re.compile(r"^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$", re.IGNORECASE)
MAX_STEM = 80


def safe_file_name(name: str | None, fallback: str, content_type: str, variant: str) -> str:
    """A download name: the client's stem made safe, the stored type's extension."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    stem = base.rsplit(".", 1)[0] if "." in base else base
    stem = safe_stem(stem) or safe_stem(fallback) or "file"
    if variant != "original":
        stem += f"-{variant}"
    extension = _EXTENSIONS.get(content_type.split(";")[0].strip(), "bin")
    return f"{stem}.{extension}"


def safe_stem(stem: str) -> str:
    """``stem`` with its letters kept and nothing Windows or a shell would trip on."""
    # NFC so that one letter is one code point wherever the name is shown;
    # format characters (bidi overrides that disguise an extension) go too.
    stem = unicodedata.normalize("NFC", stem)
    stem = "".join(c for c in stem if unicodedata.category(c) not in ("Cf", "Cs", "Co"))
    stem = _REFUSED.sub("_", stem)
    stem = re.sub(r"\s+", " ", stem).strip(" .")[:MAX_STEM].rstrip(" .")
    if _DEVICE.match(stem):
        stem = f"_{stem}"
    return stem


def content_disposition(disposition: str, name: str) -> str:
    """RFC 6266: an ASCII ``filename`` for old clients, the UTF-8 name in ``filename*``.

    The ASCII form keeps what the name has in ASCII ("Überraschung.jpg" gives
    "Uberraschung.jpg"); a stem with no ASCII letter or digit left ("生日.jpg")
    is named by its kind instead ("photo.jpg", "video.mp4", "document.pdf",
    else "download"), with the extension once."""
    stem, _, extension = name.rpartition(".") if "." in name else (name, "", "")
    extension = re.sub(r"[^A-Za-z0-9]+", "", _ascii(extension))
    ascii_stem = _ascii(stem).strip(" ._-")
    if not re.search(r"[A-Za-z0-9]", ascii_stem):
        ascii_stem = _KIND_STEMS.get(extension.lower(), "download")
    ascii_name = f"{ascii_stem}.{extension}" if extension else ascii_stem
    # The strip above takes safe_stem's "_" off "_nul.jpg", and a name can
    # become a device's only in ASCII ("cön.jpg"): guard this form too.
    if _DEVICE.match(ascii_name):
        ascii_name = f"_{ascii_name}"
    return f"{disposition}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


#: What the ASCII fallback calls a file whose stem has no ASCII left, by extension.
_KIND_STEMS = {
    "jpg": "photo",
    "png": "photo",
    "webp": "photo",
    "mp4": "video",
    "mov": "video",
    "webm": "video",
    "pdf": "document",
    "txt": "document",
}


def _ascii(text: str) -> str:
    """``text`` in ASCII: accents dropped, other scripts gone, the rest ``_``."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9._ ()-]+", "_", plain)
