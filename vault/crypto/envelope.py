"""Key wrapping: the one format for a key sealed under another key.

Layout: ``version (1 byte, = 1) ‖ nonce (12 random bytes) ‖ AES-256-GCM
ciphertext and tag``. The associated data is required and names what is
wrapped and where it belongs, so a wrapped key copied to another row (child,
category, epoch, item) no longer opens. Random 96-bit nonces are safe here: a
key-encryption key wraps far fewer than the 2^32 messages NIST SP 800-38D
allows under one key with random nonces.
"""

from __future__ import annotations

from vault.crypto._primitives import (
    NONCE_SIZE,
    TAG_SIZE,
    IntegrityError,
    gcm,
    gcm_open,
    random_bytes,
)

WRAP_VERSION = 1
WRAPPED_KEY_SIZE = 1 + NONCE_SIZE + 32 + TAG_SIZE


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = random_bytes(NONCE_SIZE)
    return bytes([WRAP_VERSION]) + nonce + gcm(key).encrypt(nonce, plaintext, aad)


def unseal(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    if len(sealed) < 1 + NONCE_SIZE + TAG_SIZE or sealed[0] != WRAP_VERSION:
        raise IntegrityError()
    return gcm_open(gcm(key), sealed[1 : 1 + NONCE_SIZE], sealed[1 + NONCE_SIZE :], aad)
