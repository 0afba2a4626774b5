"""Regenerate tests/vectors/*.json from the implementation (run by hand).

The vectors pin the formats: a change that alters any byte fails
tests/crypto/test_vectors.py, which also checks them with an independent
decoder written from docs/crypto.md alone. Only regenerate for a new version.
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


async def stream_vectors() -> list[dict[str, object]]:
    key = bytes(range(32))
    out = []
    for size in (0, 1, 4095, 4096, 4097, 8193):
        state = _Segments._with(
            ItemKey(key), "item-0001", "original", 4096, bytes(range(100, 132)), bytes(range(7))
        )
        blob = b"".join([p async for p in _encrypt(state, one(plaintext(size)))])
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
    (HERE / "wrap_v1.json").write_text(
        json.dumps({"format": "kluis wrapped key, version 1", "vectors": wrap_vectors()}, indent=1)
        + "\n"
    )


if __name__ == "__main__":
    main()
