"""Sealing a document under a passphrase: scrypt, then AES-256-GCM.

Used for a key store at rest (a keyring file, a key backup). The cost
N=2^17, r=8, p=1 (128 MiB, about half a second) is the OWASP recommendation
for interactive use; it is paid once per salt, and :class:`PassphraseKey`
lets a caller keep the derived key while the salt stays the same.
"""

from __future__ import annotations

import dataclasses

from vault.crypto._primitives import NONCE_SIZE, gcm, gcm_open, random_bytes, scrypt
from vault.crypto.handles import KeyHandle

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**17, 8, 1
SALT_SIZE = 16


@dataclasses.dataclass(frozen=True)
class KdfParams:
    salt: bytes
    n: int = SCRYPT_N
    r: int = SCRYPT_R
    p: int = SCRYPT_P

    @classmethod
    def fresh(cls) -> KdfParams:
        return cls(random_bytes(SALT_SIZE))


class PassphraseKey(KeyHandle):
    """The key derived from a passphrase under one set of KDF parameters."""

    __slots__ = ("params",)

    def __init__(self, material: bytes, params: KdfParams) -> None:
        super().__init__(material)
        self.params = params


def derive(passphrase: str, params: KdfParams) -> PassphraseKey:
    material = scrypt(passphrase.encode("utf-8"), params.salt, params.n, params.r, params.p)
    return PassphraseKey(material, params)


def seal_document(key: PassphraseKey, plaintext: bytes, label: bytes) -> tuple[bytes, bytes]:
    """(nonce, ciphertext with tag) of ``plaintext``; ``label`` names the document kind."""
    nonce = random_bytes(NONCE_SIZE)
    return nonce, gcm(key._material).encrypt(nonce, plaintext, label)


def open_document(key: PassphraseKey, nonce: bytes, ciphertext: bytes, label: bytes) -> bytes:
    """The plaintext, or ``IntegrityError`` (a wrong passphrase or a damaged document)."""
    return gcm_open(gcm(key._material), nonce, ciphertext, label)
