"""HMAC-SHA256 under a software MAC key (a provider's audit key in memory).

Tags are compared in constant time. HMAC-SHA256 with a 256-bit random key is
a PRF: a forged head or checkpoint of the audit chain needs the key.
"""

from __future__ import annotations

import hashlib
import hmac

from vault.crypto._primitives import KEY_SIZE, random_bytes
from vault.crypto.handles import MacKey


def new_mac_key() -> MacKey:
    return MacKey(random_bytes(KEY_SIZE))


def sign(key: MacKey, message: bytes) -> bytes:
    return hmac.new(key._material, message, hashlib.sha256).digest()


def verify(key: MacKey, message: bytes, tag: bytes) -> bool:
    return hmac.compare_digest(sign(key, message), tag)
