"""Key wrapping: the one format for a key sealed under another key.

Layout: ``version (1 byte, = 1) ‖ nonce (12 random bytes) ‖ AES-256-GCM
ciphertext and tag``. The associated data is required and names what is
wrapped and where it belongs, so a wrapped key copied to another row (child,
category, epoch, item) no longer opens. Random 96-bit nonces are safe here: a
key-encryption key wraps far fewer than the 2^32 messages NIST SP 800-38D
allows under one key with random nonces.

Three levels use it:

* a master key (in a key provider: a file in memory, or an HSM that runs the
  same AES-GCM inside) wraps child keys: :func:`wrap_child_key` hands the
  child key's bytes to the provider for that one call, and
  :func:`master_aad` binds the master key's name into the associated data;
* a child key wraps item keys (:func:`wrap_item_key`) and seals a child's
  small records (:func:`seal_value`);
* a key derived from an item key seals the item's small records
  (:func:`seal_item_record`), so they die with the item key.
"""

from __future__ import annotations

from typing import Protocol

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
from vault.crypto.handles import ChildKey, ItemKey, KeyHandle

WRAP_VERSION = 1
WRAPPED_KEY_SIZE = 1 + NONCE_SIZE + KEY_SIZE + TAG_SIZE


class MasterKeys(Protocol):
    """What a key provider offers a recipe: AES-GCM under a named master key."""

    async def wrap(self, name: str, plaintext: bytes, aad: bytes) -> bytes: ...

    async def unwrap(self, name: str, wrapped: bytes, aad: bytes) -> bytes: ...


# -- the byte format ----------------------------------------------------------


def pack(nonce: bytes, ciphertext: bytes) -> bytes:
    """The wrapped form of a nonce and an AES-GCM ciphertext with its tag
    (for a provider whose AES-GCM runs in hardware)."""
    if len(nonce) != NONCE_SIZE or len(ciphertext) < TAG_SIZE:
        raise ValueError("not an AES-GCM nonce and ciphertext")
    return bytes([WRAP_VERSION]) + nonce + ciphertext


def unpack(sealed: bytes) -> tuple[bytes, bytes]:
    """(nonce, ciphertext with tag); ``IntegrityError`` for anything else."""
    if len(sealed) < 1 + NONCE_SIZE + TAG_SIZE or sealed[0] != WRAP_VERSION:
        raise IntegrityError()
    return sealed[1 : 1 + NONCE_SIZE], sealed[1 + NONCE_SIZE :]


def new_nonce() -> bytes:
    return random_bytes(NONCE_SIZE)


def master_aad(name: str, aad: bytes) -> bytes:
    """The associated data under a master key: its name is always part of it,
    so a key wrapped under one master key cannot be presented as another's."""
    return encode_parts(b"kluis-kek-v1", name, aad)


def seal(key: KeyHandle, plaintext: bytes, aad: bytes) -> bytes:
    nonce = new_nonce()
    return pack(nonce, gcm(key._material).encrypt(nonce, plaintext, aad))


def unseal(key: KeyHandle, sealed: bytes, aad: bytes) -> bytes:
    nonce, ciphertext = unpack(sealed)
    return gcm_open(gcm(key._material), nonce, ciphertext, aad)


# -- child keys under master keys ---------------------------------------------


def new_child_key() -> ChildKey:
    return ChildKey(random_bytes(KEY_SIZE))


async def wrap_child_key(masters: MasterKeys, name: str, key: ChildKey, aad: bytes) -> bytes:
    """The child key wrapped under the master key ``name`` (its bytes reach the
    provider for this one call, never storage)."""
    return await masters.wrap(name, key._material, aad)


async def unwrap_child_key(masters: MasterKeys, name: str, wrapped: bytes, aad: bytes) -> ChildKey:
    material = await masters.unwrap(name, wrapped, aad)
    if len(material) != KEY_SIZE:
        raise IntegrityError()
    return ChildKey(material)


# -- item keys and small values under child keys ------------------------------


def new_item_key() -> ItemKey:
    return ItemKey(random_bytes(KEY_SIZE))


def wrap_item_key(child: ChildKey, key: ItemKey, aad: bytes) -> bytes:
    return seal(child, key._material, aad)


def unwrap_item_key(child: ChildKey, wrapped: bytes, aad: bytes) -> ItemKey:
    material = unseal(child, wrapped, aad)
    if len(material) != KEY_SIZE:
        raise IntegrityError()
    return ItemKey(material)


def seal_value(child: ChildKey, value: bytes, aad: bytes) -> bytes:
    """A small record (a profile, an export's plan) sealed under a child key."""
    return seal(child, value, aad)


def open_value(child: ChildKey, sealed: bytes, aad: bytes) -> bytes:
    return unseal(child, sealed, aad)


def _item_record_key(key: ItemKey, item_id: str) -> KeyHandle:
    # A key of its own for the item's small records, apart from its blobs' keys.
    return KeyHandle(
        hkdf_sha256(key._material, b"", encode_parts(b"kluis-item-record-v1", item_id), KEY_SIZE)
    )


def seal_item_record(key: ItemKey, item_id: str, label: str, plaintext: bytes) -> bytes:
    """Seal a small record of an item (title, file name, diary text) under its key.

    It dies with the item key: when the last child key the item key is
    wrapped under is destroyed, the record can no longer be opened.
    """
    return seal(_item_record_key(key, item_id), plaintext, encode_parts(item_id, label))


def open_item_record(key: ItemKey, item_id: str, label: str, sealed: bytes) -> bytes:
    return unseal(_item_record_key(key, item_id), sealed, encode_parts(item_id, label))
