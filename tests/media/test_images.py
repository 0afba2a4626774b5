"""libvips locked down for untrusted input; sniffing from bytes."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import pyvips

from tests.files import HTML_PAGE, MP4_HEAD, PDF, SVG_WITH_SCRIPT, camera_heic, jpeg_with_secrets
from tests.media.tools import exiftool, revealing
from vault.errors import ConfigError, TooLarge
from vault.media import sniff
from vault.media.images import configure_vips, sanitise


def test_refuses_to_start_with_vips_unlimited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIPS_UNLIMITED", "1")
    with pytest.raises(ConfigError, match="VIPS_UNLIMITED"):
        configure_vips()


def test_only_the_four_loaders_remain() -> None:
    configure_vips()
    with pytest.raises(pyvips.Error):
        pyvips.Image.svgload_buffer(SVG_WITH_SCRIPT)
    with pytest.raises(pyvips.Error):
        pyvips.Image.new_from_buffer(SVG_WITH_SCRIPT, "")  # autodetection cannot reach it either
    assert pyvips.Image.jpegload_buffer(jpeg_with_secrets()).width == 64


@pytest.mark.parametrize(
    ("head", "mime"),
    [
        (jpeg_with_secrets()[:64], "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "image/png"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "image/heic"),
        (MP4_HEAD, "video/mp4"),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  ", "video/quicktime"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\x82\x84webm", "video/webm"),
        (PDF, "application/pdf"),
        (SVG_WITH_SCRIPT, None),
        (HTML_PAGE, None),
        (b"GIF89a", None),
        (b"\x00\x00\x00\x18ftypXXXX", None),
        (b"", None),
    ],
)
def test_sniffing(head: bytes, mime: str | None) -> None:
    found = sniff.sniff(head)
    assert (found.mime if found else None) == mime


def test_a_pixel_bomb_is_refused_from_its_header() -> None:
    configure_vips()
    huge = pyvips.Image.black(20_000, 20_000).pngsave_buffer(compression=9)
    with pytest.raises(Exception, match="more than the 1,000,000 allowed"):
        sanitise(huge, sniff.PNG, 1_000_000)


def test_avif_is_read_and_a_damaged_heic_refused_with_advice() -> None:
    configure_vips()
    avif = pyvips.Image.black(40, 20).new_from_image([10, 200, 30]).cast("uchar")
    data = avif.copy(interpretation="srgb").heifsave_buffer(compression="av1")
    assert sniff.sniff(data[:64]) == sniff.AVIF
    out = sanitise(data, sniff.AVIF, 10**8)
    assert (out.original.mime, out.width, out.height) == ("image/jpeg", 40, 20)
    heic_head = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 200
    with pytest.raises(sniff.UnsupportedType, match="may be damaged; export the photo again"):
        sanitise(heic_head, sniff.HEIC, 10**8)


def test_a_real_heic_is_decoded_upright_and_loses_its_metadata(tmp_path: Path) -> None:
    configure_vips()
    source = camera_heic(tmp_path)
    data = source.read_bytes()
    assert sniff.sniff(data[:64]) == sniff.HEIC
    before = revealing(exiftool(source))
    assert before["IFD0:Model"] == "iPhone 15"
    assert "GPS:GPSLatitude" in before
    out = sanitise(data, sniff.HEIC, 10**8)
    assert (out.width, out.height) == (128, 256)  # orientation 6: a quarter turn clockwise
    for name in ("original", "preview", "thumb"):
        rendition = getattr(out, name)
        assert rendition.mime == "image/jpeg"
        written = tmp_path / f"{name}.jpg"
        written.write_bytes(rendition.data)
        assert revealing(exiftool(written)) == {}, name
        image = pyvips.Image.jpegload_buffer(rendition.data)
        assert image.height > image.width
        top, bottom = image(image.width // 2, 2), image(image.width // 2, image.height - 3)
        assert top[0] > 180 > top[2], top  # the picture's left half (red) is on top
        assert bottom[2] > 180 > bottom[0], bottom


def test_a_damaged_heic_is_refused_with_advice(tmp_path: Path) -> None:
    configure_vips()
    data = camera_heic(tmp_path).read_bytes()
    damaged = data[: data.index(b"mdat") + 40]  # cut off inside the picture
    with pytest.raises(sniff.UnsupportedType, match="HEIC: it may be damaged; export the photo"):
        sanitise(damaged, sniff.HEIC, 10**8)
    with pytest.raises(TooLarge):
        sanitise(data, sniff.HEIC, 1000)


def test_libvips_logs_its_warnings_not_a_commentary_on_every_image(
    caplog: pytest.LogCaptureFixture,
) -> None:
    configure_vips()
    with caplog.at_level(logging.INFO):
        sanitise(jpeg_with_secrets(), sniff.JPEG, 100_000_000)
    # At INFO libvips narrates each step ("selected loader is ...", "threadpool
    # completed ..."): several lines per upload in the service's log.
    assert [r.getMessage() for r in caplog.records if r.name.startswith("pyvips")] == []
    assert logging.getLogger("pyvips").isEnabledFor(logging.WARNING)
