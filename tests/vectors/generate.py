"""Regenerate tests/vectors/*.json from the implementation (run by hand).

The vectors pin the formats: a change that alters any byte fails
tests/crypto/test_vectors.py, which also checks them with an independent
decoder written from docs/crypto.md alone. Only regenerate for a new version.

``stream_v1_invalid.json`` holds blobs that must be refused, each built
from the 8193-byte vector (three segments of 4096, 4096 and 1 bytes) by one
of the attacks docs/crypto.md lists: truncation, reordering, splicing, a
changed header, a wrong key, a moved last-segment flag. A reader of the
format must refuse every one, and the vault with its one opaque error.

    .venv/bin/python -m tests.vectors.generate
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

from vault.crypto._primitives import encode_parts, gcm
from vault.crypto.handles import ItemKey
from vault.crypto.stream import _encrypt, _Segments

HERE = Path(__file__).parent


def plaintext(size: int) -> bytes:
    return bytes((i * 31 + 7) % 251 for i in range(size))


async def one(data: bytes) -> AsyncIterator[bytes]:
    yield data


KEY = bytes(range(32))
ITEM, VARIANT, SEGMENT = "item-0001", "original", 4096
SALT, PREFIX = bytes(range(100, 132)), bytes(range(7))


def _state(salt: bytes = SALT) -> _Segments:
    return _Segments._with(ItemKey(KEY), ITEM, VARIANT, SEGMENT, salt, PREFIX)


async def _blob(size: int, salt: bytes = SALT) -> bytes:
    return b"".join([p async for p in _encrypt(_state(salt), one(plaintext(size)))])


async def stream_vectors() -> list[dict[str, object]]:
    key = KEY
    out = []
    for size in (0, 1, 4095, 4096, 4097, 8193):
        blob = await _blob(size)
        out.append(
            {
                "item_key": key.hex(),
                "item_id": "item-0001",
                "variant": "original",
                "segment_size": 4096,
                "salt": bytes(range(100, 132)).hex(),
                "nonce_prefix": bytes(range(7)).hex(),
                "plaintext": plaintext(size).hex(),
                "blob": blob.hex(),
            }
        )
    return out


def _flipped(data: bytes, at: int) -> bytes:
    changed = bytearray(data)
    changed[at] ^= 0x01
    return bytes(changed)


async def invalid_stream_vectors() -> list[dict[str, str]]:
    """Blobs of the 8193-byte plaintext that a reader must refuse."""
    blob = await _blob(8193)
    header, body = blob[:80], blob[80:]
    one_segment = SEGMENT + 16
    c0, c1, c2 = body[:one_segment], body[one_segment : 2 * one_segment], body[2 * one_segment :]
    text = plaintext(8193)
    state = _state()
    other_salt = await _blob(8193, salt=bytes(range(1, 33)))
    empty = await _blob(0)

    def case(name: str, data: bytes, **changed: str) -> dict[str, str]:
        values = {"item_key": KEY.hex(), "item_id": ITEM, "variant": VARIANT}
        values.update(changed)
        return {"case": name, **values, "blob": data.hex()}

    wrong_size = bytearray(header)
    wrong_size[5:9] = (2 * SEGMENT).to_bytes(4, "big")
    return [
        case("truncated at a segment boundary (last segment dropped)", header + c0 + c1),
        case("truncated inside the last segment", blob[:-1]),
        case("truncated inside a middle segment", blob[: 80 + one_segment + 100]),
        case("truncated inside the header", blob[:40]),
        case("the header alone", header),
        case("the empty plaintext's one segment cut short", empty[:-1]),
        case("segments reordered", header + c1 + c0 + c2),
        case("a segment repeated in place of another", header + c0 + c0 + c2),
        case("a segment appended after the last", blob + c2),
        case(
            "a segment from another blob of the same item",
            header + c0 + other_salt[80:][one_segment : 2 * one_segment] + c2,
        ),
        case("the header of another blob of the same item", other_salt[:80] + body),
        case("wrong magic", b"KLVT" + blob[4:]),
        case("wrong version", blob[:4] + b"\x02" + blob[5:]),
        case("segment size changed in the header", bytes(wrong_size) + body),
        case("salt changed in the header", _flipped(blob, 9)),
        case("nonce prefix changed in the header", _flipped(blob, 41)),
        case("key commitment changed in the header", _flipped(blob, 48)),
        case("wrong item key", blob, item_key=_flipped(KEY, 31).hex()),
        case("presented as another item", blob, item_id="item-0002"),
        case("presented as another variant", blob, variant="thumb"),
        case(
            "a middle segment flagged last",
            header + c0 + state.seal(1, text[SEGMENT : 2 * SEGMENT], last=True) + c2,
        ),
        case(
            "the last segment not flagged last",
            header + c0 + c1 + state.seal(2, text[2 * SEGMENT :], last=False),
        ),
    ]


def _wrap_vector(comment: str, key: bytes, secret: bytes, aad: bytes) -> dict[str, str]:
    nonce = bytes(range(12))
    return {
        "comment": comment,
        "wrapping_key": key.hex(),
        "nonce": nonce.hex(),
        "aad": aad.hex(),
        "plaintext": secret.hex(),
        "wrapped": (bytes([1]) + nonce + gcm(key).encrypt(nonce, secret, aad)).hex(),
    }


def wrap_vectors() -> list[dict[str, str]]:
    kek, dek, item_key = bytes(range(200, 232)), bytes(range(50, 82)), bytes(range(32))
    dek_aad = encode_parts(b"kluis-dek-v1", "dek-1", "child-1", "photo", "live-2026-11")
    return [
        _wrap_vector(
            "a child key wrapped by the epoch key of live-2026-11 in the local keyring, "
            "which wraps the caller's associated data as encode('kluis-kek-v1', epoch, aad)",
            kek,
            dek,
            encode_parts(b"kluis-kek-v1", "live-2026-11", dek_aad),
        ),
        _wrap_vector(
            "an item key wrapped by a child key",
            dek,
            item_key,
            encode_parts(b"kluis-item-key-v1", "item-0001", "child-1", "photo"),
        ),
    ]


def main() -> None:
    (HERE / "stream_v1.json").write_text(
        json.dumps(
            {
                "format": "kluis segmented AEAD stream, version 1",
                "vectors": asyncio.run(stream_vectors()),
            },
            indent=1,
        )
        + "\n"
    )
    (HERE / "stream_v1_invalid.json").write_text(
        json.dumps(
            {
                "format": "kluis segmented AEAD stream, version 1: blobs to refuse",
                "vectors": asyncio.run(invalid_stream_vectors()),
            },
            indent=1,
        )
        + "\n"
    )
    (HERE / "wrap_v1.json").write_text(
        json.dumps({"format": "kluis wrapped key, version 1", "vectors": wrap_vectors()}, indent=1)
        + "\n"
    )


if __name__ == "__main__":
    main()
