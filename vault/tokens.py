"""Bearer tokens: random, shown once, stored only as a hash.

A token is 256 random bits, so a plain SHA-256 is enough to make the stored
form useless to whoever reads the database (no salt or slow hash is needed
against guessing: there is nothing to guess).
"""

from __future__ import annotations

import hashlib
import secrets

PREFIX = "kl_"


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def new_id() -> str:
    """An opaque, unguessable id for any row the API exposes."""
    return secrets.token_hex(16)
