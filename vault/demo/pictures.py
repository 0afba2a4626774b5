"""The demo's photos and video, drawn by code with libvips (nothing downloaded).

Each photo is a simple scene (sky or wall, grass or floor, the children as
figures in their own colours, a prop or two) with a little noise, so it
compresses like a photo, saved as a JPEG carrying what a phone writes:
EXIF with the camera, the moment and a GPS position (:func:`camera_exif`).
The vault strips all of that on upload, which is the point of putting it in:
the original a parent downloads has none of it.

The video is a few seconds of two children and a soap bubble rising, drawn
frame by frame and encoded by ffmpeg (H.264 in MP4, with a location and a
camera model in its metadata, as a phone's has). Without ffmpeg on the PATH
there is no video (:func:`video` raises :class:`NoVideo` saying why).

May touch: a temporary directory of its own (the video), ffmpeg as a child
process.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path

import pyvips

from vault.demo.sample import RGB, Look

#: Where the photos say they were taken: a field outside a made-up village.
LATITUDE = (52, 9, 2125)  # degrees, minutes, seconds x 100
LONGITUDE = (5, 23, 1650)
CAMERA = ("Voorbeeldcamera", "Klavertje K1")

PHOTO_SIZE = (1600, 1200)
VIDEO_SIZE = (480, 270)
VIDEO_FPS = 10
VIDEO_SECONDS = 8

_INDOOR = {"blocks", "painting"}


# -- drawing ------------------------------------------------------------------


def _gradient(width: int, height: int, top: RGB, bottom: RGB) -> pyvips.Image:
    """A vertical blend from ``top`` to ``bottom`` (one column, repeated across)."""
    t = pyvips.Image.xyz(1, height)[1] / max(height - 1, 1)
    bands = [t * (b - a) + a for a, b in zip(top, bottom, strict=True)]
    column: pyvips.Image = bands[0].bandjoin(bands[1:]).cast("uchar")
    return column.zoom(width, 1)


def _backdrop(width: int, height: int, scene: str) -> pyvips.Image:
    horizon = int(height * 0.62)
    if scene in _INDOOR:
        upper = _gradient(width, horizon, (250, 236, 210), (236, 214, 180))
        lower = _gradient(width, height - horizon, (196, 150, 100), (160, 115, 70))
    else:
        upper = _gradient(width, horizon, (110, 170, 235), (200, 228, 250))
        lower = _gradient(width, height - horizon, (110, 190, 90), (60, 140, 50))
    image = upper.join(lower, "vertical").cast("uchar").copy_memory()
    if scene not in _INDOOR:
        image = image.draw_circle(
            [255, 220, 60], int(width * 0.85), int(height * 0.16), int(height * 0.08), fill=True
        )
        image = _tree(image, int(width * 0.1), horizon, height)
    else:
        # A window on the wall.
        image = image.draw_rect(
            [160, 210, 245],
            int(width * 0.07),
            int(height * 0.12),
            int(width * 0.2),
            int(height * 0.25),
            fill=True,
        )
    return image


def _tree(image: pyvips.Image, x: int, ground: int, height: int) -> pyvips.Image:
    trunk = int(height * 0.04)
    image = image.draw_rect(
        [110, 75, 40],
        x - trunk // 2,
        ground - int(height * 0.3),
        trunk,
        int(height * 0.3),
        fill=True,
    )
    for dx, dy, r in ((0, 0.36, 0.12), (-0.06, 0.3, 0.09), (0.06, 0.3, 0.09)):
        image = image.draw_circle(
            [50, 130, 50],
            x + int(height * dx),
            ground - int(height * dy),
            int(height * r),
            fill=True,
        )
    return image


def figure(
    image: pyvips.Image, look: Look, x: int, ground: int, scale: float, wave: float = 0.0
) -> pyvips.Image:
    """A child standing at ``x`` on ``ground``: legs, body, arms, head, hair.
    ``wave`` lifts the right arm (0 down, 1 up)."""
    unit = scale * look.size
    head = int(unit * 0.09)
    body_w, body_h = int(unit * 0.17), int(unit * 0.22)
    leg_h = int(unit * 0.16)
    top = ground - leg_h - body_h
    for offset in (-body_w // 3, body_w // 3):
        image = image.draw_rect(
            [60, 60, 110], x + offset - body_w // 8, ground - leg_h, body_w // 4, leg_h, fill=True
        )
    image = image.draw_rect(list(look.shirt), x - body_w // 2, top, body_w, body_h, fill=True)
    arm = body_w // 5
    image = image.draw_rect(
        list(look.shirt), x - body_w // 2 - arm, top + arm, arm, int(body_h * 0.8), fill=True
    )
    lift = int(body_h * 0.9 * wave)
    image = image.draw_rect(
        list(look.shirt), x + body_w // 2, top + arm - lift, arm, int(body_h * 0.8), fill=True
    )
    cy = top - int(head * 0.9)
    image = image.draw_circle(list(look.hair), x, cy - head // 4, int(head * 1.1), fill=True)
    image = image.draw_circle(list(look.skin), x, cy, head, fill=True)
    for eye in (-head // 3, head // 3):
        image = image.draw_circle(
            [40, 30, 30], x + eye, cy - head // 6, max(head // 9, 1), fill=True
        )
    return image.draw_rect(
        [180, 70, 70], x - head // 3, cy + head // 3, 2 * (head // 3), max(head // 10, 1), fill=True
    )


def _props(image: pyvips.Image, scene: str, width: int, height: int) -> pyvips.Image:
    ground = int(height * 0.62)
    if scene == "sandbox":
        image = image.draw_rect(
            [230, 205, 140],
            int(width * 0.25),
            int(height * 0.78),
            int(width * 0.55),
            int(height * 0.16),
            fill=True,
        )
        image = image.draw_rect(
            [220, 40, 40],
            int(width * 0.62),
            int(height * 0.8),
            int(width * 0.05),
            int(height * 0.07),
            fill=True,
        )
    elif scene == "blocks":
        colours = ([220, 50, 50], [50, 120, 220], [250, 200, 40], [60, 170, 80])
        for level, colour in enumerate(colours):
            side = int(height * 0.07)
            image = image.draw_rect(
                colour,
                int(width * 0.62),
                ground + int(height * 0.25) - (level + 1) * side,
                side,
                side,
                fill=True,
            )
    elif scene == "painting":
        image = image.draw_rect(
            [250, 250, 250],
            int(width * 0.6),
            int(height * 0.2),
            int(width * 0.28),
            int(height * 0.4),
            fill=True,
        )
        image = image.draw_circle(
            [250, 190, 30], int(width * 0.74), int(height * 0.4), int(height * 0.1), fill=True
        )
    elif scene == "slide":
        for step in range(12):
            image = image.draw_rect(
                [220, 60, 60],
                int(width * (0.55 + step * 0.025)),
                int(height * (0.3 + step * 0.027)),
                int(width * 0.04),
                int(height * 0.03),
                fill=True,
            )
        image = image.draw_rect(
            [120, 120, 130],
            int(width * 0.54),
            int(height * 0.3),
            int(width * 0.015),
            int(height * 0.33),
            fill=True,
        )
    elif scene == "water":
        image = image.draw_rect(
            [70, 140, 210],
            int(width * 0.45),
            int(height * 0.8),
            int(width * 0.35),
            int(height * 0.12),
            fill=True,
        )
    return image


def scene(looks: Sequence[Look], scene: str, size: tuple[int, int] = PHOTO_SIZE) -> pyvips.Image:
    """A drawn photo of children (their looks, left to right) in ``scene``."""
    width, height = size
    image = _props(_backdrop(width, height, scene), scene, width, height)
    ground = int(height * 0.92)
    for i, look in enumerate(looks):
        x = width * (0.25 + 0.5 * i / (len(looks) - 1) if len(looks) > 1 else 0.3)
        image = figure(image, look, int(x), ground, height * 0.9, wave=0.6 if i % 2 else 0.0)
    noise = pyvips.Image.gaussnoise(width, height, sigma=5, mean=0)
    return (image + noise).cast("uchar").copy(interpretation="srgb")


# -- EXIF, as a camera writes it ------------------------------------------------

_ASCII, _SHORT, _LONG, _RATIONAL, _BYTE = 2, 3, 4, 5, 1
Entry = tuple[int, int, int, bytes]


def _text(tag: int, value: str) -> Entry:
    raw = value.encode("ascii") + b"\x00"
    return (tag, _ASCII, len(raw), raw)


def _dms(tag: int, value: tuple[int, int, int]) -> Entry:
    degrees, minutes, centiseconds = value
    return (tag, _RATIONAL, 3, struct.pack("<6I", degrees, 1, minutes, 1, centiseconds, 100))


def _ifd(entries: Sequence[Entry], at: int) -> bytes:
    """One TIFF image file directory at offset ``at``; values over four bytes follow it."""
    data_at = at + 2 + 12 * len(entries) + 4
    head, data = struct.pack("<H", len(entries)), b""
    for tag, kind, count, payload in sorted(entries):
        if len(payload) <= 4:
            value = payload.ljust(4, b"\x00")
        else:
            value = struct.pack("<I", data_at + len(data))
            data += payload + b"\x00" * (len(payload) % 2)
        head += struct.pack("<HHI", tag, kind, count) + value
    return head + struct.pack("<I", 0) + data


def camera_exif(moment: datetime, artist: str) -> bytes:
    """An APP1 EXIF payload: camera make and model, software, artist, the
    moment (also as DateTimeOriginal) and a GPS position with altitude."""
    stamp = moment.strftime("%Y:%m:%d %H:%M:%S")
    exif = [_text(0x9003, stamp)]
    gps = [
        (0x0000, _BYTE, 4, bytes([2, 3, 0, 0])),
        _text(0x0001, "N"),
        _dms(0x0002, LATITUDE),
        _text(0x0003, "E"),
        _dms(0x0004, LONGITUDE),
        (0x0005, _BYTE, 1, b"\x00"),
        (0x0006, _RATIONAL, 1, struct.pack("<2I", 3, 1)),
    ]

    def ifd0(exif_at: int, gps_at: int) -> list[Entry]:
        return [
            _text(0x010F, CAMERA[0]),
            _text(0x0110, CAMERA[1]),
            (0x0112, _SHORT, 1, struct.pack("<H", 1)),
            _text(0x0131, "Klavertje Camera 1.0"),
            _text(0x0132, stamp),
            _text(0x013B, artist),
            (0x8769, _LONG, 1, struct.pack("<I", exif_at)),
            (0x8825, _LONG, 1, struct.pack("<I", gps_at)),
        ]

    first = len(_ifd(ifd0(0, 0), 8))
    exif_at = 8 + first
    gps_at = exif_at + len(_ifd(exif, exif_at))
    tiff = b"II*\x00" + struct.pack("<I", 8)
    tiff += _ifd(ifd0(exif_at, gps_at), 8) + _ifd(exif, exif_at) + _ifd(gps, gps_at)
    return b"Exif\x00\x00" + tiff


def photo(looks: Sequence[Look], kind: str, moment: datetime, artist: str) -> bytes:
    """A JPEG of the scene with the camera's EXIF in it (GPS included)."""
    plain: bytes = scene(looks, kind).jpegsave_buffer(Q=85, keep="none")
    exif = camera_exif(moment, artist)
    app1 = struct.pack(">BBH", 0xFF, 0xE1, len(exif) + 2) + exif
    return plain[:2] + app1 + plain[2:]


# -- the video -----------------------------------------------------------------


class NoVideo(Exception):
    """Why the demo has no video (no ffmpeg on the PATH, or ffmpeg failed)."""


def _frames(looks: Sequence[Look]) -> Iterator[pyvips.Image]:
    """The video's frames, one at a time: the children (drawn once per pose)
    wave in turn while a soap bubble rises and grows."""
    width, height = VIDEO_SIZE
    backdrop = _backdrop(width, height, "playground")
    poses = []
    for pose in range(2):
        image = backdrop
        for i, look in enumerate(looks):
            image = figure(
                image,
                look,
                int(width * (0.3 + 0.35 * i)),
                int(height * 0.92),
                height * 1.1,
                wave=0.8 * ((pose + i) % 2),
            )
        poses.append(image.copy_memory())
    count = VIDEO_FPS * VIDEO_SECONDS
    for n in range(count):
        t = n / count
        x, y = int(width * (0.45 + 0.25 * t)), int(height * (0.6 - 0.5 * t))
        radius = int(height * (0.04 + 0.03 * t))
        image = poses[n // VIDEO_FPS % 2].draw_circle([235, 245, 255], x, y, radius, fill=False)
        yield image.draw_circle([200, 225, 255], x, y, radius - 1, fill=False)


def video(looks: Sequence[Look], moment: datetime, timeout: float = 60) -> bytes:
    """A short MP4 of the children blowing a bubble; :class:`NoVideo` without ffmpeg.

    The metadata a phone writes (location, make, model, creation time) is put
    in, for the vault to take out."""
    program = shutil.which("ffmpeg")
    if program is None:
        raise NoVideo("ffmpeg is not on the PATH")
    width, height = VIDEO_SIZE
    lat = LATITUDE[0] + LATITUDE[1] / 60 + LATITUDE[2] / 360_000
    lon = LONGITUDE[0] + LONGITUDE[1] / 60 + LONGITUDE[2] / 360_000
    tags = {
        "location": f"+{lat:07.4f}+{lon:08.4f}/",
        "make": CAMERA[0],
        "model": CAMERA[1],
        "creation_time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    with tempfile.TemporaryDirectory(prefix="kluis-demo-") as folder:
        target = Path(folder) / "video.mp4"
        command = [
            program,
            *("-nostdin", "-loglevel", "error", "-y"),
            *("-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}"),
            *("-r", str(VIDEO_FPS), "-i", "pipe:0"),
            *("-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"),
            *("-movflags", "+faststart+use_metadata_tags"),
            *(arg for key, value in tags.items() for arg in ("-metadata", f"{key}={value}")),
            str(target),
        ]
        with subprocess.Popen(  # noqa: S603 - our own arguments, ffmpeg from the PATH
            command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        ) as proc:
            assert proc.stdin is not None
            assert proc.stderr is not None
            try:
                for frame in _frames(looks):
                    proc.stdin.write(frame.write_to_memory())
                proc.stdin.close()
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise NoVideo(f"ffmpeg took more than {timeout:g} s") from None
            except BrokenPipeError:
                proc.wait(timeout)
            except BaseException:
                proc.kill()
                raise
            if proc.returncode != 0:
                reason = proc.stderr.read().decode(errors="replace").strip()[-300:]
                raise NoVideo(f"ffmpeg failed ({reason or proc.returncode})")
        return target.read_bytes()
