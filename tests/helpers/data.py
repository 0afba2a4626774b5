"""Deterministic test bytes."""

from __future__ import annotations

import hashlib


def pattern(size: int, seed: int = 0) -> bytes:
    """Deterministic bytes with no repetition at segment scale."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])
