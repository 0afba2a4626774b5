"""The outside judges of a media file: exiftool, ffprobe and ffmpeg (Debian's).

scripts/ensure-media installs them; a test that needs one and finds it
missing fails under scripts/test rather than passing without looking.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

#: exiftool tag names (any group) that would give away a place, a device or a person.
REVEALING = (
    "GPS",
    "Location",
    "Make",
    "Model",
    "Comment",
    "Software",
    "Encoder",
    "Title",
    "Artist",
    "Author",
    "Copyright",
    "Serial",
    "Lens",
    "Date",
    "ProfileDescription",
    "HandlerDescription",
    "ImageDescription",
    "Creator",
    "CMMType",
    "Manufacturer",
    "XMP",
    "IPTC",
    "Attachment",
)


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is missing; scripts/ensure-media installs it")
    return path


def exiftool(path: Path) -> dict[str, Any]:
    """Every tag exiftool finds, embedded streams included, as ``group:name``."""
    out = subprocess.run(
        [need("exiftool"), "-j", "-a", "-G1", "-ee", "-u", "-api", "LargeFileSupport=1", str(path)],
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout
    (tags,) = json.loads(out)
    return {k: v for k, v in tags.items() if not k.startswith(("System:", "ExifTool:", "File:"))}


def revealing(tags: dict[str, Any]) -> dict[str, Any]:
    """The tags that carry something of the REVEALING kinds with a value."""
    found = {}
    for key, value in tags.items():
        name = key.split(":", 1)[-1]
        if any(word.lower() in name.lower() for word in REVEALING) and value not in (
            "",
            "0000:00:00 00:00:00",
        ):
            found[key] = value
    return found


def streams(path: Path) -> list[tuple[str, str]]:
    """(type, codec) of every stream ffprobe reads, after reading every packet."""
    out = subprocess.run(
        [
            need("ffprobe"),
            *("-v", "error", "-count_packets", "-print_format", "json"),
            *("-show_entries", "stream=codec_type,codec_name,nb_read_packets"),
            str(path),
        ],
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout
    found = json.loads(out)["streams"]
    played = [s for s in found if s["codec_type"] != "attachment"]
    assert played, found
    assert all(int(s["nb_read_packets"]) > 0 for s in played), found
    return [(s["codec_type"], s.get("codec_name", "")) for s in found]


def decodes(path: Path, *position: str) -> None:
    """ffmpeg decodes one second of every stream (``-ss 0`` or ``-sseof -1``) without error."""
    result = subprocess.run(
        [
            need("ffmpeg"),
            *("-nostdin", "-v", "error", "-xerror", *position, "-i", str(path)),
            *("-t", "1", "-f", "null", "-"),
        ],
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert not result.stderr, result.stderr.decode()
