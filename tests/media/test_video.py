"""Video metadata neutralised in place: no GPS, device or comment left, frames untouched."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.files import PHONE_SECRETS, phone_video
from tests.media.tools import decodes, exiftool, revealing, streams
from vault.media import ebml, sniff
from vault.media.bmff import BmffScrubber
from vault.media.ebml import EbmlScrubber
from vault.media.video import scrub

CASES = [
    pytest.param("mp4", False, id="mp4-moov-after-mdat"),
    pytest.param("mp4", True, id="mp4-faststart"),
    pytest.param("mov", False, id="mov"),
    pytest.param("3gp", False, id="3gp"),
    pytest.param("webm", False, id="webm-with-attachment"),
]


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("videos")


async def chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for at in range(0, len(data), size):
        yield data[at : at + size]


async def scrubbed(data: bytes, size: int = 4093) -> bytes:
    media = sniff.sniff(data[: sniff.HEAD_SIZE])
    assert media is not None
    assert media.family == "video"
    return b"".join([piece async for piece in scrub(media, chunks(data, size))])


@pytest.mark.parametrize(("container", "faststart"), CASES)
async def test_a_phone_video_loses_place_device_and_comment_and_still_plays(
    videos: Path, container: str, faststart: bool
) -> None:
    original = phone_video(videos, container, faststart=faststart)
    before = revealing(exiftool(original))
    # The fixture really carries what a phone writes (else the test proves nothing).
    assert any("GPS" in k or "Location" in k for k in before), before
    if container != "3gp":  # 3GPP user data has no maker or model tags
        assert any(str(v) == "iPhone 15" for v in before.values()), before
    data = original.read_bytes()
    assert any(secret in data for secret in PHONE_SECRETS)

    clean = await scrubbed(data)
    assert len(clean) == len(data)
    out = videos / f"clean-{original.name}"
    out.write_bytes(clean)
    assert revealing(exiftool(out)) == {}
    for secret in PHONE_SECRETS:
        assert secret not in clean, secret
    kept = [s for s in streams(original) if s[0] != "attachment"]
    assert (container == "webm") == (len(kept) < len(streams(original)))  # the attachment
    assert streams(out) == kept
    decodes(out, "-ss", "0")
    decodes(out, "-sseof", "-1")


@pytest.mark.parametrize("size", [1, 7, 8, 9, 16, 65536])
async def test_chunk_boundaries_do_not_matter(videos: Path, size: int) -> None:
    for container in ("mov", "webm"):
        data = phone_video(videos, container, seconds=1).read_bytes()
        assert await scrubbed(data, size) == await scrubbed(data, len(data))


async def test_frames_are_byte_for_byte_the_same(videos: Path) -> None:
    data = phone_video(videos, "mp4").read_bytes()
    clean = await scrubbed(data)
    at = 0
    while at < len(data):
        size, kind = struct.unpack_from(">I4s", data, at)
        if kind == b"mdat":
            assert clean[at : at + size] == data[at : at + size]
        at += size
    assert at == len(data)


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


FTYP = box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2mp41")


def test_metadata_in_any_box_is_cleared_and_offsets_stay() -> None:
    xmp_uuid = bytes.fromhex("be7acfcb97a942e89c71999491e3afac")
    trak_udta = box(b"udta", box(b"\xa9xyz", b"\x00\x12\x15\xc7+52.0907+005.1214/"))
    mvhd = box(b"mvhd", b"\x00\x00\x00\x00" + struct.pack(">II", 3_800_000_000, 3_800_000_001))
    hdlr = box(b"hdlr", b"\x00" * 4 + b"mhlrvide" + b"appl" + b"\x00" * 8 + b"Core Media Video\x00")
    mdia = box(b"mdia", hdlr)
    timed = box(b"trak", box(b"mdia", box(b"hdlr", b"\x00" * 8 + b"meta" + b"\x00" * 13)))
    moov = box(
        b"moov",
        mvhd + box(b"trak", mdia + trak_udta) + timed + box(b"meta", b"\x00" * 4 + b"GoPro"),
    )
    frames = box(b"mdat", b"frame bytes GPS5")
    tail = box(b"uuid", xmp_uuid + b"<x:xmpmeta>Dorpsstraat</x:xmpmeta>") + box(b"sefd", b"Samsung")
    data = FTYP + frames + moov + tail
    scrubber = BmffScrubber()
    clean = b"".join([*scrubber.feed(data), *scrubber.close()])
    assert len(clean) == len(data)
    for secret in (b"52.0907", b"Core Media", b"appl", b"GoPro", b"Dorpsstraat", b"Samsung"):
        assert secret not in clean
    assert b"frame bytes GPS5" in clean  # frames are never looked into
    assert struct.pack(">II", 3_800_000_000, 3_800_000_001) not in clean
    assert clean.count(b"free") == 5  # udta, timed-metadata trak, meta, uuid, sefd
    assert clean[: len(FTYP) + len(frames)] == FTYP + frames
    assert b"mhlrvide" in clean  # the handler type a player needs stays


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (FTYP + box(b"mdat", b"x" * 10)[:-3], "ends inside a box"),
        (FTYP + box(b"mdat", b"") + b"junk", "ends inside a box"),
        (FTYP + struct.pack(">I4s", 4, b"mdat"), "impossible size"),
        (FTYP + box(b"moov", box(b"trak", b"") + struct.pack(">I4s", 99, b"mvhd")), "impossible"),
        (FTYP + box(b"moov", box(b"cmov", b"zlib")), "compressed"),
        (box(b"moov", b""), "file type"),
        (FTYP + box(b"moov", box(b"mvhd", b"\x00")), "cut short"),
    ],
)
def test_a_malformed_mp4_is_refused(data: bytes, why: str) -> None:
    scrubber = BmffScrubber()
    with pytest.raises(sniff.UnsupportedType, match=why) as refused:
        b"".join([*scrubber.feed(data), *scrubber.close()])
    assert refused.value.status == 415
    assert "Export it again" in refused.value.message


def test_a_moov_over_the_cap_is_refused_before_it_is_held() -> None:
    scrubber = BmffScrubber(max_held=1000)
    with pytest.raises(sniff.UnsupportedType, match="more than"):
        list(scrubber.feed(FTYP + struct.pack(">I4s", 2_000_000, b"moov")))


def element(ident: int, payload: bytes, *, unknown: bool = False) -> bytes:
    head = ident.to_bytes((ident.bit_length() + 7) // 8, "big")
    if unknown:
        return head + b"\x01\xff\xff\xff\xff\xff\xff\xff" + payload
    return head + (0x10000000 | len(payload)).to_bytes(4, "big") + payload


EBML_HEAD = element(ebml.EBML, element(0x4282, b"webm"))


def test_a_recorder_webm_of_unknown_sizes_is_followed_element_by_element() -> None:
    """What a browser's MediaRecorder writes: segment and clusters of unknown size."""
    info = element(ebml.INFO, element(0x2AD7B1, b"\x0f\x42\x40") + element(0x4D80, b"Chrome"))
    block = element(0xA3, b"\x81\x00\x00\x80" + b"frame")
    cluster = element(ebml.CLUSTER, element(0xE7, b"\x00") + block + block, unknown=True)
    tags = element(ebml.TAGS, element(0x7373, element(0x45A3, b"LOCATION") + b"52.0907"))
    data = EBML_HEAD + element(ebml.SEGMENT, info + cluster + tags + cluster, unknown=True)
    scrubber = EbmlScrubber()
    clean = b"".join([*scrubber.feed(data), *scrubber.close()])
    assert len(clean) == len(data)
    for secret in (b"Chrome", b"52.0907", b"LOCATION"):
        assert secret not in clean
    assert clean.count(block) == 4


@pytest.mark.parametrize(
    "data",
    [
        element(ebml.SEGMENT, b""),  # no EBML header
        EBML_HEAD + element(ebml.SEGMENT, element(ebml.INFO, b"\x00\x00")),  # invalid ID
        EBML_HEAD + element(ebml.SEGMENT, element(ebml.INFO, b""))[:-1] + b"",  # cut short
        EBML_HEAD + element(ebml.SEGMENT, element(ebml.TAGS, b""), unknown=True) + b"\x00",
        EBML_HEAD + element(ebml.SEGMENT, b"") + b"trailing",
        EBML_HEAD + element(ebml.SEGMENT, element(ebml.INFO, b"", unknown=True)),
    ],
)
def test_a_malformed_webm_is_refused(data: bytes) -> None:
    scrubber = EbmlScrubber()
    with pytest.raises(sniff.UnsupportedType, match="could not be read as WebM"):
        b"".join([*scrubber.feed(data), *scrubber.close()])
