"""Keys and the encrypted object format.

Layers, from the outside in: :mod:`keys` (child keys and item keys in the
database, wrapped under epoch master keys), :mod:`epochs` (naming, rotation
and destruction of master keys), :mod:`keyring` (the master-key provider),
:mod:`stream` (the segmented AEAD format of every stored blob) and the private
:mod:`_primitives`. See docs/crypto.md for the format byte by byte.
"""

from __future__ import annotations

from vault.config import Settings
from vault.crypto._primitives import IntegrityError
from vault.crypto.keyring import EpochDestroyed, KeyProvider, LocalKeyring

__all__ = ["EpochDestroyed", "IntegrityError", "KeyProvider", "LocalKeyring", "open_provider"]


async def open_provider(settings: Settings, *, create: bool = False) -> KeyProvider:
    """Open the configured master-key provider (creating the file if asked)."""
    path = settings.keyring_path
    passphrase = settings.keyring.passphrase or None
    if create and not path.exists():
        return await LocalKeyring.create(path, passphrase)
    return await LocalKeyring.open(path, passphrase)
