"""Recipes and primitives: the encrypted object format and the key formats.

This package holds no keys and knows no database: :mod:`envelope` (a key or
small record sealed under another key, with required associated data),
:mod:`stream` (the segmented AEAD format of every stored blob), :mod:`mac`,
:mod:`passphrase`, :mod:`handles` (key types that cannot leak) and the
private :mod:`_primitives`, the only module that touches AES-GCM, HKDF and
scrypt. It imports nothing of the vault above :mod:`vault.errors`. Key
management (providers, epochs, child and item keys) is :mod:`vault.keys`.
See docs/crypto.md for the formats byte by byte.
"""

from __future__ import annotations

from vault.crypto._primitives import IntegrityError

__all__ = ["IntegrityError"]
