"""The only module that touches raw primitives (AES-256-GCM, HKDF, scrypt).

Everything else in the vault calls the recipes built on these
(:mod:`vault.crypto.envelope`, :mod:`vault.crypto.stream`), which choose keys
and nonces themselves and require associated data. Every authentication
failure surfaces as the one opaque :class:`IntegrityError`.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from vault.errors import KluisError

KEY_SIZE = 32  # AES-256
NONCE_SIZE = 12  # the GCM nonce size with no extra hashing step
TAG_SIZE = 16


class IntegrityError(KluisError):
    """Ciphertext, wrapped key or header failed to authenticate.

    Deliberately says nothing about which check failed: an attacker probing
    with modified data learns only "no".
    """

    code = "integrity_error"
    default_message = "Stored data failed its integrity check; it was not returned."


def random_bytes(n: int) -> bytes:
    return os.urandom(n)


def gcm(key: bytes) -> AESGCM:
    if len(key) != KEY_SIZE:
        raise ValueError("AES-256-GCM needs a 32-byte key")
    return AESGCM(key)


def gcm_open(
    aead: AESGCM, nonce: bytes, ciphertext: bytes | bytearray | memoryview, aad: bytes
) -> bytes:
    try:
        return aead.decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        raise IntegrityError() from None


def gcm_open_into(
    aead: AESGCM, nonce: bytes, ciphertext: bytes | memoryview, aad: bytes, out: memoryview
) -> None:
    """Open into ``out`` (exactly the plaintext's length). On failure ``out``
    may hold unauthenticated bytes: the caller must drop it."""
    try:
        aead.decrypt_into(nonce, ciphertext, aad, out)
    except InvalidTag:
        raise IntegrityError() from None


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def scrypt(passphrase: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=KEY_SIZE, n=n, r=r, p=p).derive(passphrase)


def encode_parts(*parts: str | bytes) -> bytes:
    """Unambiguous encoding of a tuple: each part with a 2-byte length prefix.

    Used for associated data and HKDF info, so ("ab", "c") and ("a", "bc")
    can never produce the same bytes.
    """
    out = bytearray()
    for part in parts:
        raw = part.encode("utf-8") if isinstance(part, str) else part
        if len(raw) > 0xFFFF:
            raise ValueError("part too long")
        out += len(raw).to_bytes(2, "big")
        out += raw
    return bytes(out)
