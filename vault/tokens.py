"""Bearer tokens: random, shown once, stored only as a hash.

A token reads ``kl_<id>.<secret>``: the id finds the row, the secret's
SHA-256 is compared with the stored one in constant time. The secret is 256
random bits, so a plain hash makes the stored form useless (there is nothing
to guess, no salt or slow hash needed), and the lookup by id means no timing
of an index search ever depends on the secret.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
import secrets

PREFIX = "kl_"
#: Invitation links carry a token of the same shape with a prefix of its own,
#: so neither is ever taken for the other.
INVITATION_PREFIX = "ki_"
_SHAPE = r"([0-9a-f]{16})\.([A-Za-z0-9_-]{43})"
_TOKENS = {
    prefix: re.compile(f"^{re.escape(prefix)}{_SHAPE}$") for prefix in (PREFIX, INVITATION_PREFIX)
}


@dataclasses.dataclass(frozen=True)
class NewToken:
    id: str
    token: str = dataclasses.field(repr=False)
    secret_hash: bytes = dataclasses.field(repr=False)


def new_token(prefix: str = PREFIX) -> NewToken:
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return NewToken(token_id, f"{prefix}{token_id}.{secret}", hash_secret(secret))


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("ascii")).digest()


def parse_token(token: str, prefix: str = PREFIX) -> tuple[str, str] | None:
    """(id, secret) of a well-formed token, else None."""
    match = _TOKENS[prefix].fullmatch(token)
    return (match[1], match[2]) if match else None


def secret_matches(secret: str, stored_hash: bytes) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def new_id() -> str:
    """An opaque, unguessable id for any row the API exposes."""
    return secrets.token_hex(16)
