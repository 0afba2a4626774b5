"""Key management: master keys in a provider, child and item keys in the database.

:mod:`provider` (the seam to an HSM or the local keyring, and its errors),
:mod:`local` and :mod:`pkcs11` (the two providers), :mod:`epochs` (which
master key wraps a child key, and when each dies), :mod:`service` (child and
item keys), :mod:`rotation` (monthly rotation and destruction of expired
master keys), :mod:`signing` (the link-signing secrets, kept in the database
sealed under a master key). The recipes and formats they use are
:mod:`vault.crypto`.
"""

from __future__ import annotations

from pathlib import Path

from vault.config import Settings
from vault.keys.provider import (
    AUDIT_MAC,
    SIGNING_KEY,
    EpochDestroyed,
    EpochUnknown,
    KeyInfo,
    KeyProvider,
    KeyringError,
)

__all__ = [
    "AUDIT_MAC",
    "SIGNING_KEY",
    "EpochDestroyed",
    "EpochUnknown",
    "KeyInfo",
    "KeyProvider",
    "KeyringError",
    "open_provider",
]


async def open_provider(settings: Settings, *, create: bool = False) -> KeyProvider:
    """Open the configured provider; ``create`` makes the keyring file if missing
    (``kluis init``). Errors are :class:`KeyringError` naming what is wrong."""
    keyring = settings.keyring
    if keyring.backend == "pkcs11":
        from vault.keys.pkcs11 import Pkcs11Provider

        return await Pkcs11Provider.open(
            keyring.pkcs11_module,
            keyring.pkcs11_token_label,
            keyring.pin(),
            keyring.pkcs11_label_prefix,
        )
    from vault.keys.local import LocalKeyring

    path: Path = settings.keyring_path
    passphrase = keyring.passphrase.reveal() or None
    if create:
        ring, _ = await LocalKeyring.open_or_create(
            path, passphrase, lock_timeout=keyring.lock_timeout_seconds
        )
        return ring
    return await LocalKeyring.open(path, passphrase, lock_timeout=keyring.lock_timeout_seconds)
