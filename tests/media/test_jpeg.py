"""JPEG originals keep their compressed pixels; every byte of metadata goes."""

from __future__ import annotations

from pathlib import Path

import pytest
import pyvips

from tests.files import camera_jpeg, picture
from tests.media.tools import exiftool, revealing
from vault.media import icc, lossless, sniff
from vault.media.images import configure_vips, sanitise_jpeg
from vault.media.jpeg import JpegStripper, StrippedJpeg

SECRETS = (b"Zonnestraal", b"Dorpsstraat", b"Utrecht", b"iPhone", b"Juf Anna", b"Apple", b"sP3C")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configure_vips()
    return tmp_path_factory.mktemp("jpegs")


def strip(data: bytes, chunk: int = 997) -> StrippedJpeg:
    stripper = JpegStripper()
    for at in range(0, len(data), chunk):
        stripper.feed(data[at : at + chunk])
    return stripper.close()


def pixels(data: bytes) -> pyvips.Image:
    return pyvips.Image.jpegload_buffer(data)


def difference(a: pyvips.Image, b: pyvips.Image) -> float:
    """The largest difference of one pixel value."""
    assert (a.width, a.height) == (b.width, b.height)
    return float((a.cast("int") - b.cast("int")).abs().max())


def mean_difference(a: pyvips.Image, b: pyvips.Image) -> float:
    assert (a.width, a.height) == (b.width, b.height)
    return float((a.cast("int") - b.cast("int")).abs().avg())


def test_turbojpeg_is_there() -> None:
    assert lossless.available(), "libturbojpeg0 is missing; scripts/ensure-media installs it"


@pytest.mark.parametrize("p3", [False, True])
def test_every_variant_loses_every_tag(folder: Path, p3: bool) -> None:
    source = camera_jpeg(folder, p3=p3)
    assert len(revealing(exiftool(source))) >= 10  # the fixture is tagged
    out = sanitise_jpeg(strip(source.read_bytes()), 10**8)
    for name in ("original", "preview", "thumb"):
        data = getattr(out, name).data
        written = folder / f"{name}-{p3}.jpg"
        written.write_bytes(data)
        assert revealing(exiftool(written)) == {}, name
        for secret in SECRETS:
            assert secret not in data, (name, secret)
        assert b"Exif" not in data
        assert b"trailing bytes" not in data


def test_without_orientation_the_compressed_pixels_are_the_uploaded_ones(folder: Path) -> None:
    source = camera_jpeg(folder, 512, 256, orientation=1).read_bytes()
    out = sanitise_jpeg(strip(source), 10**8)
    assert difference(pixels(out.original.data), pixels(source)) == 0
    # The entropy-coded data is copied, not re-encoded: it is in the original as uploaded.
    scan = source[source.index(b"\xff\xda") : source.index(b"\xff\xd9")]
    assert scan in out.original.data
    assert len(out.original.data) < len(source)


def test_an_exif_orientation_is_applied_losslessly(folder: Path) -> None:
    source = camera_jpeg(folder, 256, 128, orientation=6).read_bytes()
    out = sanitise_jpeg(strip(source), 10**8)
    upright = pixels(out.original.data)
    assert (upright.width, upright.height, out.width, out.height) == (128, 256, 128, 256)
    assert difference(upright, pixels(source).rot90()) == 0  # the camera's pixels, turned
    assert upright(64, 10)[0] > 200  # left half (red) now on top
    assert upright(64, 245)[2] > 200


@pytest.mark.parametrize("orientation", range(2, 9))
def test_every_orientation_ends_upright(folder: Path, orientation: int) -> None:
    source = camera_jpeg(folder, 64, 32, orientation).read_bytes()
    reference = picture(64, 32).copy()
    reference.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    expected = reference.autorot()
    for out in (sanitise_jpeg(strip(source), 10**8),):
        for name in ("original", "preview"):
            got = pixels(getattr(out, name).data)
            assert (got.width, got.height) == (expected.width, expected.height)
            assert mean_difference(got, expected) < 6  # JPEG noise, not a turn or a flip


def test_a_size_that_cannot_turn_losslessly_is_reencoded_upright(folder: Path) -> None:
    source = camera_jpeg(folder, 250, 130, orientation=6).read_bytes()
    assert lossless.upright(strip(source).data, 6) is None
    out = sanitise_jpeg(strip(source), 10**8)
    upright = pixels(out.original.data)
    assert (upright.width, upright.height) == (130, 250)
    assert upright(65, 10)[0] > 200
    written = folder / "reencoded.jpg"
    written.write_bytes(out.original.data)
    assert revealing(exiftool(written)) == {}


def test_the_icc_profile_keeps_its_colours_and_loses_its_names(folder: Path) -> None:
    source = camera_jpeg(folder, p3=True).read_bytes()
    stripped = strip(source)
    assert stripped.icc is not None
    clean = icc.sanitise(stripped.icc)
    assert clean is not None
    out = sanitise_jpeg(stripped, 10**8)
    original = pixels(out.original.data)
    assert original.get("icc-profile-data") == clean
    tags = exiftool(folder / "original-True.jpg")
    assert "ICC_Profile:RedMatrixColumn" in tags
    assert not [k for k in tags if k.endswith(("ProfileDescription", "ProfileCopyright"))]
    # The preview is sRGB, converted through the kept profile: colours as from the source.
    expected = pixels(source).icc_transform("srgb").rot90()
    assert mean_difference(pixels(out.preview.data), expected) < 3


def test_stray_bytes_between_segments_are_skipped_within_a_bound(folder: Path) -> None:
    source = camera_jpeg(folder, orientation=1).read_bytes()
    at = source.index(b"\xff\xdb")  # before the first quantisation table
    padded = source[:at] + b"\x00" * 100 + source[at:]
    assert strip(padded).data == strip(source).data
    with pytest.raises(sniff.UnsupportedType, match="a marker was expected"):
        strip(source[:at] + b"\x00" * 70_000 + source[at:])


def noisy_jpeg(**options: object) -> bytes:
    """A JPEG written without any metadata segment, its scan full of stuffed 0xFF bytes."""
    noise = pyvips.Image.gaussnoise(160, 96, mean=128, sigma=60).cast("uchar")
    image = noise.bandjoin([noise.rot180(), noise.fliphor()]).copy(interpretation="srgb")
    data: bytes = image.jpegsave_buffer(Q=90, keep="none", **options)
    assert data.count(b"\xff\x00") > 10
    return data


@pytest.mark.parametrize(
    "options",
    [{}, {"interlace": True}, {"restart_interval": 2}],
    ids=["baseline", "progressive", "restarts"],
)
def test_the_strip_does_not_depend_on_how_the_upload_is_cut(options: dict[str, object]) -> None:
    # Scan data passes through as the chunks it came in (vault/media/jpeg.py):
    # a marker, a stuffed byte or a restart split between two chunks, a chunk
    # of one byte, many scans with tables between them all come out the same.
    source = noisy_jpeg(**options)
    if options.get("interlace"):
        assert source.count(b"\xff\xda") > 3
    for chunk in (1, 2, 3, 997, 65536, len(source)):
        out = strip(source, chunk)
        assert out.data == source, chunk  # nothing to drop: every byte kept, in order
        assert out.dropped == 0


def test_a_chunk_its_sender_reuses_after_feeding_does_not_change_the_output() -> None:
    source = noisy_jpeg()
    stripper, buffer = JpegStripper(), bytearray(4096)
    for at in range(0, len(source), len(buffer)):
        piece = source[at : at + len(buffer)]
        view = memoryview(buffer)[: len(piece)]
        view[:] = piece
        stripper.feed(view)
        buffer[:] = bytes(len(buffer))  # the sender's next read overwrites it
    assert stripper.close().data == source


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda d: d[: len(d) // 2], "ends before its end marker"),
        (lambda d: d[:2] + b"\xff\xc0\x00\x01" + d[2:], "segment length"),
        (lambda d: b"\xff\xd8\xff\xda\x00\x02" + d[2:], "before the frame header"),
        (
            lambda d: d[:2] + b"\xff\xc3\x00\x0b\x08\x00\x10\x00\x10\x01\x01\x11\x00" + d[2:],
            "lossl",
        ),
        (lambda d: d[:2] + b"\xff\xd8" + d[2:], "out of place"),
        (lambda d: b"\xff\xd8\xff\xd9", "no image data"),
    ],
)
def test_a_malformed_jpeg_is_refused(folder: Path, damage: object, why: str) -> None:
    source = camera_jpeg(folder, orientation=1).read_bytes()
    with pytest.raises(sniff.UnsupportedType, match=why):
        strip(damage(source))  # type: ignore[operator]
