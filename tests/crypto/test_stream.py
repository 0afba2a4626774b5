"""The segmented AEAD stream: round trips, ranges, and every way to break it."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.data import pattern
from vault.crypto import IntegrityError
from vault.crypto.handles import ItemKey
from vault.crypto.stream import (
    DEFAULT_SEGMENT_SIZE,
    HEADER_SIZE,
    MIN_SEGMENT_SIZE,
    Ciphers,
    ciphertext_size,
    decrypt_range,
    encrypt_stream,
    plaintext_size,
)

S = MIN_SEGMENT_SIZE  # small segments keep the tests fast; the format is the same
FULL = S + 16
KEY = ItemKey(bytes(range(32)))


async def chunks(data: bytes, sizes: list[int] | None = None) -> AsyncIterator[bytes]:
    i = 0
    step = 0
    while i < len(data):
        n = sizes[step % len(sizes)] if sizes else 1000
        yield data[i : i + n]
        i += n
        step += 1


async def encrypt(
    data: bytes,
    key: ItemKey = KEY,
    item: str = "item-1",
    variant: str = "original",
    seg: int = S,
    sizes: list[int] | None = None,
) -> bytes:
    return b"".join([p async for p in encrypt_stream(key, item, variant, chunks(data, sizes), seg)])


class Reader:
    """A RangeReader over bytes that counts what it was asked for."""

    def __init__(self, blob: bytes, chunk: int = 3000) -> None:
        self.blob = blob
        self.chunk = chunk
        self.requested = 0

    async def __call__(self, offset: int, length: int) -> AsyncIterator[bytes]:
        self.requested += length
        data = self.blob[offset : offset + length]
        for i in range(0, len(data), self.chunk):
            yield data[i : i + self.chunk]


async def decrypt(
    blob: bytes,
    key: ItemKey = KEY,
    item: str = "item-1",
    variant: str = "original",
    start: int = 0,
    end: int | None = None,
) -> bytes:
    reader = Reader(blob)
    return b"".join(
        [p async for p in decrypt_range(key, item, variant, reader, len(blob), start, end)]
    )


@pytest.mark.parametrize("size", [0, 1, S - 1, S, S + 1, 2 * S - 1, 2 * S, 2 * S + 1, 5 * S + 17])
async def test_round_trip_at_segment_boundaries(size: int) -> None:
    data = pattern(size)
    blob = await encrypt(data)
    assert len(blob) == ciphertext_size(size, S)
    assert plaintext_size(len(blob), S) == size
    assert await decrypt(blob) == data


async def test_default_segment_size_round_trip() -> None:
    data = pattern(3 * DEFAULT_SEGMENT_SIZE + 5)
    blob = await encrypt(data, seg=DEFAULT_SEGMENT_SIZE, sizes=[100_000, 7])
    assert await decrypt(blob) == data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.integers(0, 4 * S + 3),
    chunk_sizes=st.lists(st.integers(1, 3 * S), min_size=1, max_size=5),
    bounds=st.tuples(st.integers(0, 5 * S), st.integers(0, 5 * S)),
)
async def test_any_range_of_any_stream(
    size: int, chunk_sizes: list[int], bounds: tuple[int, int]
) -> None:
    data = pattern(size, seed=size)
    blob = await encrypt(data, sizes=chunk_sizes)
    start, end = min(bounds), max(bounds)
    assert await decrypt(blob, start=start, end=end) == data[start:end]
    assert await decrypt(blob, start=start) == data[start:]


async def test_every_blob_is_different() -> None:
    data = pattern(100)
    assert await encrypt(data) != await encrypt(data)


async def test_a_ranged_read_decrypts_at_most_two_segments() -> None:
    seg = DEFAULT_SEGMENT_SIZE
    data = pattern(40 * seg + 123)
    blob = await encrypt(data, seg=seg, sizes=[seg * 3])
    rng = random.Random(5)
    for _ in range(50):
        start = rng.randrange(0, len(data) - seg)
        reader = Reader(blob)
        got = b"".join(
            [
                p
                async for p in decrypt_range(
                    KEY, "item-1", "original", reader, len(blob), start, start + seg
                )
            ]
        )
        assert got == data[start : start + seg]
        assert reader.requested - HEADER_SIZE <= 2 * (seg + 16)


# -- tampering: one opaque IntegrityError, never plaintext -------------------


async def refused(blob: bytes, **kwargs: object) -> None:
    with pytest.raises(IntegrityError) as info:
        await decrypt(blob, **kwargs)  # type: ignore[arg-type]
    assert str(info.value) == IntegrityError.default_message


async def test_a_flipped_bit_anywhere_is_refused() -> None:
    blob = await encrypt(pattern(2 * S + 100))
    for position in range(len(blob)):
        tampered = bytearray(blob)
        tampered[position] ^= 1 << (position % 8)
        await refused(bytes(tampered))


async def test_a_flipped_bit_is_refused_by_ranged_reads_of_its_segment() -> None:
    blob = bytearray(await encrypt(pattern(3 * S)))
    blob[HEADER_SIZE + FULL + 10] ^= 0x80  # inside segment 1
    assert await decrypt(bytes(blob), start=0, end=S) == pattern(3 * S)[:S]  # segment 0 is fine
    await refused(bytes(blob), start=S, end=S + 1)
    await refused(bytes(blob), start=S - 1, end=S + 1)


@pytest.mark.parametrize(
    "cut",
    [
        "last segment",
        "two segments",
        "mid last segment",
        "mid first segment",
        "one byte",
        "tag only left",
        "header only",
        "part of header",
        "everything",
    ],
)
async def test_truncation_is_refused(cut: str) -> None:
    blob = await encrypt(pattern(3 * S + 50))
    keep = {
        "last segment": HEADER_SIZE + 3 * FULL,
        "two segments": HEADER_SIZE + 2 * FULL,
        "mid last segment": len(blob) - 20,
        "mid first segment": HEADER_SIZE + 100,
        "one byte": len(blob) - 1,
        "tag only left": HEADER_SIZE + 3 * FULL + 16,
        "header only": HEADER_SIZE,
        "part of header": 40,
        "everything": 0,
    }[cut]
    await refused(blob[:keep])


async def test_an_empty_stream_cannot_be_truncated_away() -> None:
    blob = await encrypt(b"")
    assert await decrypt(blob) == b""
    await refused(blob[:HEADER_SIZE])


async def test_appended_bytes_are_refused() -> None:
    blob = await encrypt(pattern(2 * S))
    await refused(blob + b"\x00")
    await refused(blob + blob[HEADER_SIZE : HEADER_SIZE + FULL])


def segments_of(blob: bytes) -> tuple[bytes, list[bytes]]:
    body = blob[HEADER_SIZE:]
    return blob[:HEADER_SIZE], [body[i : i + FULL] for i in range(0, len(body), FULL)]


async def test_reordered_or_duplicated_segments_are_refused() -> None:
    header, segs = segments_of(await encrypt(pattern(3 * S + 9)))
    await refused(header + segs[1] + segs[0] + segs[2] + segs[3])
    await refused(header + segs[0] + segs[0] + segs[2] + segs[3])
    await refused(header + segs[0] + segs[2] + segs[1] + segs[3])
    await refused(header + segs[0] + segs[1] + segs[2] + segs[2][:25])


async def test_segments_or_headers_spliced_from_another_blob_are_refused() -> None:
    a = await encrypt(pattern(3 * S, seed=1))
    b = await encrypt(pattern(3 * S, seed=2))  # same key, item and variant
    header_a, segs_a = segments_of(a)
    header_b, segs_b = segments_of(b)
    await refused(header_b + b"".join(segs_a))
    await refused(header_a + segs_a[0] + segs_b[1] + segs_a[2])


async def test_a_blob_under_another_item_variant_or_key_is_refused() -> None:
    blob = await encrypt(pattern(S + 1))
    await refused(blob, item="item-2")
    await refused(blob, variant="preview")
    await refused(blob, key=ItemKey(bytes(32)))


async def test_a_changed_segment_size_is_refused() -> None:
    blob = bytearray(await encrypt(pattern(3 * S)))
    blob[5:9] = (2 * S).to_bytes(4, "big")
    await refused(bytes(blob))
    blob[5:9] = (1).to_bytes(4, "big")
    await refused(bytes(blob))


async def test_a_short_read_from_storage_is_refused() -> None:
    blob = await encrypt(pattern(3 * S))

    async def short(offset: int, length: int) -> AsyncIterator[bytes]:
        yield blob[offset : offset + length - 1]

    with pytest.raises(IntegrityError):
        _ = [p async for p in decrypt_range(KEY, "item-1", "original", short, len(blob))]


def test_key_handles_do_not_leak() -> None:
    """Whatever shows a key (repr, str, a format, a container's repr) shows
    none of its bytes in any usual encoding, not even a prefix of them; the
    wording it uses instead is free."""
    import base64
    import copy
    import pickle

    material = bytes(range(32))
    key = ItemKey(material)
    shown = [
        repr(key),
        str(key),
        f"{key}",
        f"{key!r:>80}",
        "%s %r" % (key, key),  # noqa: UP031  # the old formatting takes another path
        repr([key]),
        repr({"key": key}),
    ]
    encodings = [
        material.hex(),
        material.hex().upper(),
        repr(material)[2:-1],
        base64.b64encode(material).decode().rstrip("="),
        base64.urlsafe_b64encode(material).decode().rstrip("="),
        str(list(material)),
    ]
    for text in shown:
        for encoded in encodings:
            assert encoded[:16] not in text, (text, encoded)
    with pytest.raises(TypeError):
        pickle.dumps(key)
    with pytest.raises(TypeError):
        copy.copy(key)
    with pytest.raises(TypeError):
        copy.deepcopy(key)


async def test_kept_cipher_states_refuse_all_that_a_fresh_read_refuses() -> None:
    """A link keeps the cipher state of the blobs it read (Ciphers); a blob
    changed since, spliced, or under another variant is refused all the same."""
    blob = await encrypt(pattern(2 * S + 100))
    other = await encrypt(pattern(2 * S + 100, seed=2))
    kept = Ciphers()

    async def read(data: bytes, variant: str = "original", start: int = 0) -> bytes:
        return b"".join(
            [
                p
                async for p in decrypt_range(
                    KEY, "item-1", variant, Reader(data), len(data), start, ciphers=kept
                )
            ]
        )

    assert await read(blob) == pattern(2 * S + 100)
    assert await read(blob, start=S + 3) == pattern(2 * S + 100)[S + 3 :]  # from the kept state
    assert await read(other) == pattern(2 * S + 100, seed=2)
    for position in range(len(blob)):
        tampered = bytearray(blob)
        tampered[position] ^= 1 << (position % 8)
        with pytest.raises(IntegrityError):
            await read(bytes(tampered))
    with pytest.raises(IntegrityError):
        await read(other[:HEADER_SIZE] + blob[HEADER_SIZE:])
    with pytest.raises(IntegrityError):
        await read(blob, variant="preview")
    assert "hidden" in repr(kept)
