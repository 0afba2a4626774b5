"""Key wrapping: the one format for a key sealed under another key.

Layout: ``version (1 byte, = 1) ‖ nonce (12 random bytes) ‖ AES-256-GCM
ciphertext and tag``. The associated data is required and names what is
wrapped and where it belongs, so a wrapped key copied to another row (child,
category, epoch, item) no longer opens. Random 96-bit nonces are safe here: a
key-encryption key wraps far fewer than the 2^32 messages NIST SP 800-38D
allows under one key with random nonces.

The same sealing, under a key derived from an item key, holds an item's
small records (:func:`seal_item_record`).
"""

from __future__ import annotations

from vault.crypto._primitives import (
    KEY_SIZE,
    NONCE_SIZE,
    TAG_SIZE,
    IntegrityError,
    encode_parts,
    gcm,
    gcm_open,
    hkdf_sha256,
    random_bytes,
)
from vault.crypto.handles import ItemKey

WRAP_VERSION = 1
WRAPPED_KEY_SIZE = 1 + NONCE_SIZE + 32 + TAG_SIZE


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = random_bytes(NONCE_SIZE)
    return bytes([WRAP_VERSION]) + nonce + gcm(key).encrypt(nonce, plaintext, aad)


def unseal(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    if len(sealed) < 1 + NONCE_SIZE + TAG_SIZE or sealed[0] != WRAP_VERSION:
        raise IntegrityError()
    return gcm_open(gcm(key), sealed[1 : 1 + NONCE_SIZE], sealed[1 + NONCE_SIZE :], aad)


def _item_record_key(key: ItemKey, item_id: str) -> bytes:
    # A key of its own for the item's small records, apart from its blobs' keys.
    return hkdf_sha256(key._material, b"", encode_parts(b"kluis-item-record-v1", item_id), KEY_SIZE)


def seal_item_record(key: ItemKey, item_id: str, label: str, plaintext: bytes) -> bytes:
    """Seal a small record of an item (title, file name, diary text) under its key.

    It dies with the item key: when the last child key the item key is
    wrapped under is destroyed, the record can no longer be opened.
    """
    return seal(_item_record_key(key, item_id), plaintext, encode_parts(item_id, label))


def open_item_record(key: ItemKey, item_id: str, label: str, sealed: bytes) -> bytes:
    return unseal(_item_record_key(key, item_id), sealed, encode_parts(item_id, label))
