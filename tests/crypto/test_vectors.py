"""Fixed test vectors, checked two ways: by the vault and by a decoder written
from docs/crypto.md alone (raw AES-GCM and HKDF, none of the vault's code)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vault.crypto import IntegrityError
from vault.crypto.envelope import unseal
from vault.crypto.handles import ItemKey, KeyHandle
from vault.crypto.stream import DamagedBlob, _encrypt, _Segments, decrypt_range

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
STREAM = json.loads((VECTORS / "stream_v1.json").read_text())["vectors"]
INVALID = json.loads((VECTORS / "stream_v1_invalid.json").read_text())["vectors"]
WRAP = json.loads((VECTORS / "wrap_v1.json").read_text())["vectors"]


def lp(*parts: bytes) -> bytes:
    return b"".join(len(p).to_bytes(2, "big") + p for p in parts)


class Refused(Exception):
    """The independent decoder's one answer to a blob it cannot trust."""


def independent_decrypt(key: bytes, item_id: str, variant: str, blob: bytes) -> bytes:
    """docs/crypto.md, "The stream format", implemented from the text."""
    if len(blob) < 80 + 16 or blob[0:4] != b"KLVS" or blob[4] != 1:
        raise Refused("header")
    seg = int.from_bytes(blob[5:9], "big")
    if not 4096 <= seg <= 16 * 1024 * 1024:
        raise Refused("segment size")
    salt, prefix, commitment = blob[9:41], blob[41:48], blob[48:80]
    okm = HKDF(
        algorithm=hashes.SHA256(),
        length=64,
        salt=salt,
        info=lp(b"kluis-stream-v1", item_id.encode(), variant.encode()),
    ).derive(key)
    if okm[32:] != commitment:
        raise Refused("commitment")
    aead = AESGCM(okm[:32])
    body = blob[80:]
    pieces = [body[i : i + seg + 16] for i in range(0, len(body), seg + 16)]
    # The last segment holds 1 ... S bytes, or 0 when it is the only one.
    if len(pieces[-1]) < 16 or (len(pieces) > 1 and len(pieces[-1]) == 16):
        raise Refused("layout")
    out = b""
    for i, piece in enumerate(pieces):
        last = b"\x01" if i == len(pieces) - 1 else b"\x00"
        try:
            out += aead.decrypt(prefix + i.to_bytes(4, "big") + last, piece, blob[:48])
        except InvalidTag:
            raise Refused("segment") from None
    return out


@pytest.mark.parametrize("vector", STREAM, ids=lambda v: f"{len(v['plaintext']) // 2}B")
async def test_stream_vectors(vector: dict[str, object]) -> None:
    key = bytes.fromhex(str(vector["item_key"]))
    plaintext = bytes.fromhex(str(vector["plaintext"]))
    blob = bytes.fromhex(str(vector["blob"]))
    item_id, variant = str(vector["item_id"]), str(vector["variant"])

    assert independent_decrypt(key, item_id, variant, blob) == plaintext

    state = _Segments._with(
        ItemKey(key),
        item_id,
        variant,
        int(str(vector["segment_size"])),
        bytes.fromhex(str(vector["salt"])),
        bytes.fromhex(str(vector["nonce_prefix"])),
    )

    async def once() -> AsyncIterator[bytes]:
        yield plaintext

    assert b"".join([p async for p in _encrypt(state, once())]) == blob

    async def read(offset: int, length: int) -> AsyncIterator[bytes]:
        yield blob[offset : offset + length]

    opened = [p async for p in decrypt_range(ItemKey(key), item_id, variant, read, len(blob))]
    assert b"".join(opened) == plaintext


@pytest.mark.parametrize("vector", INVALID, ids=lambda v: str(v["case"]))
async def test_invalid_stream_vectors_are_refused_with_the_one_opaque_error(
    vector: dict[str, str],
) -> None:
    key = bytes.fromhex(vector["item_key"])
    blob = bytes.fromhex(vector["blob"])
    item_id, variant = vector["item_id"], vector["variant"]

    with pytest.raises(Refused):
        independent_decrypt(key, item_id, variant, blob)

    async def read(offset: int, length: int) -> AsyncIterator[bytes]:
        yield blob[offset : offset + length]

    with pytest.raises(IntegrityError) as refused:
        _ = [p async for p in decrypt_range(ItemKey(key), item_id, variant, read, len(blob))]
    # The one opaque error; it names the blob (for the operator), never the check.
    assert type(refused.value) is DamagedBlob
    assert (refused.value.item_id, refused.value.variant) == (item_id, variant)
    assert refused.value.code == IntegrityError.code
    assert str(refused.value) == str(IntegrityError())  # never which check failed
    assert refused.value.__cause__ is None
    assert refused.value.__suppress_context__ or refused.value.__context__ is None


def test_the_invalid_vectors_cover_each_attack_on_the_format() -> None:
    cases = " / ".join(str(v["case"]) for v in INVALID)
    for attack in (
        "truncated",
        "reordered",
        "header",
        "wrong item key",
        "flagged last",
        "another item",
        "appended",
    ):
        assert attack in cases, attack


@pytest.mark.parametrize("vector", WRAP, ids=["dek-under-kek", "item-key-under-dek"])
def test_wrap_vectors(vector: dict[str, str]) -> None:
    key = bytes.fromhex(vector["wrapping_key"])
    wrapped = bytes.fromhex(vector["wrapped"])
    aad = bytes.fromhex(vector["aad"])
    nonce = bytes.fromhex(vector["nonce"])
    plaintext = bytes.fromhex(vector["plaintext"])
    assert wrapped[0] == 1
    assert AESGCM(key).decrypt(nonce, wrapped[13:], aad) == plaintext
    assert unseal(KeyHandle(key), wrapped, aad) == plaintext
