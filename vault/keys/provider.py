"""The key provider: where master keys and MAC keys live, and the one seam to it.

The :class:`KeyProvider` protocol offers only what an HSM or a cloud KMS can
do: create, list and destroy named AES-256 master keys; wrap and unwrap with
them, always with associated data; compute and verify HMAC-SHA256 tags with
a named MAC key. No method returns key bytes. Two providers implement it and
pass one contract suite (tests/keys/test_contract.py):

* :class:`~vault.keys.local.LocalKeyring`, a file in the data directory,
  safe for many processes on one host (an exclusive lock, re-read and merge
  on every change, a ``stat`` before use);
* :class:`~vault.keys.pkcs11.Pkcs11Provider`, keys on a PKCS#11 token (an HSM,
  a network or cloud HSM, SoftHSM2), non-extractable and sensitive.

Master keys are named: epochs (``live-YYYY-MM``, ``shred-YYYY-MM``,
:mod:`vault.keys.epochs`) and a few fixed ones: ``signing``, which seals the
link-signing secrets in the database, ``totp``, which seals people's
one-time-code secrets, and ``mail``, which seals mail in the outbox.
Destroying one leaves a tombstone (name, created, destroyed): the
destruction stays on record, and the name can never be used again, so a
wrapped key that names it never opens again.

Every process keeps at most a cache of the provider's state: a name it does
not know is looked up again before it is an error, and a destruction by
another process is seen at the next use.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable
from datetime import datetime
from typing import Protocol, runtime_checkable

from vault.errors import KluisError

#: What a key name may look like (an epoch name, ``signing``).
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
#: The MAC key that signs the audit chain's head and checkpoints.
AUDIT_MAC = "audit"
#: The master key that seals the link-signing secrets kept in the database.
SIGNING_KEY = "signing"
#: The master key that seals directory text that is no one person's or
#: child's: location and group names (vault/directory/sealing.py).
DIRECTORY_KEY = "directory"
#: The MAC key of the keyed hash people are found by e-mail address with.
EMAIL_MAC = "email"
#: The master key that seals people's TOTP secrets (vault/accounts/totp.py).
TOTP_KEY = "totp"
#: The master key that seals mail waiting in the outbox (vault/mail/outbox.py).
MAIL_KEY = "mail"


class EpochDestroyed(KluisError):
    """The master key was destroyed: what it wrapped is gone for good."""

    status, code = 410, "destroyed"
    default_message = "The key protecting this data was destroyed under retention."


class EpochUnknown(KluisError):
    code = "internal_error"
    default_message = "A key epoch the database names is not in the key store."


class KeyringError(KluisError):
    """The key store cannot be opened or used as configured (a clear, named reason)."""

    code = "keyring_error"
    default_message = "The key store cannot be opened."


@dataclasses.dataclass(frozen=True)
class KeyInfo:
    name: str
    created_at: datetime
    destroyed_at: datetime | None

    @property
    def destroyed(self) -> bool:
        return self.destroyed_at is not None


@runtime_checkable
class KeyProvider(Protocol):
    """Holds master and MAC keys; uses them inside; never hands them out."""

    #: ``local`` or ``pkcs11``, for status output.
    kind: str

    async def create_key(self, name: str, now: datetime) -> KeyInfo:
        """Create the master key ``name`` if it does not exist; idempotent.

        Another process's key of that name is returned, never replaced.
        Raises ``EpochDestroyed`` for a name that was destroyed before.
        """
        ...

    async def destroy_key(self, name: str, now: datetime) -> bool:
        """Destroy the master key forever; False if it was already destroyed."""
        ...

    async def list_keys(self) -> list[KeyInfo]:
        """Every master key, destroyed ones (tombstones) included, by name."""
        ...

    async def wrap(self, name: str, plaintext: bytes, aad: bytes) -> bytes: ...

    async def unwrap(self, name: str, wrapped: bytes, aad: bytes) -> bytes:
        """Raises ``EpochDestroyed``, ``EpochUnknown`` or ``IntegrityError``."""
        ...

    async def create_mac_key(self, name: str) -> None:
        """Create the MAC key ``name`` if it does not exist; idempotent."""
        ...

    def mac(self, name: str, message: bytes) -> bytes:
        """HMAC-SHA256 of ``message`` under the MAC key ``name``.

        Synchronous and thread-safe: it runs inside a database transaction,
        on whichever thread runs that (the event loop's for the async
        engines, a worker thread for SQLite). It blocks at most for one
        call to the provider.
        """
        ...

    def verify_mac(self, name: str, message: bytes, tag: bytes) -> bool: ...

    async def check(self) -> None:
        """Raise ``StorageUnavailable`` unless the provider can be used now."""
        ...

    async def close(self) -> None: ...


def audit_sign(provider: KeyProvider) -> Callable[[bytes], bytes]:
    """The audit log's signer: HMAC under the provider's audit MAC key."""
    return functools.partial(provider.mac, AUDIT_MAC)


def audit_check(provider: KeyProvider) -> Callable[[bytes, bytes], bool]:
    """The audit log's check of a head or checkpoint tag."""
    return functools.partial(provider.verify_mac, AUDIT_MAC)
