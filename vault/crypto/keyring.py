"""Master keys (KEKs), one per epoch, behind a provider interface.

The :class:`KeyProvider` protocol is shaped like an HSM or a cloud KMS: keys
are created, used to wrap and unwrap, and destroyed *inside* the provider;
their bytes never come out. :class:`LocalKeyring` is the embedded default: a
JSON file in the data directory (mode 0600, rewritten atomically with fsync),
optionally sealed with a passphrase (scrypt → AES-256-GCM).

A destroyed epoch leaves a tombstone (name, when created, when destroyed), so
its destruction stays on record and the name can never be reused: a wrapped
key that names it can never open again.

Caveat of the file provider, stated in docs/crypto.md: a journaling or
copy-on-write file system, or an SSD, may keep old blocks of the file after a
rewrite, and a backup of the data directory holds the keyring as it was. The
keyring file must be kept out of ordinary backups (or in backups that expire
within the backup window); deployments that need hardware-backed destruction
use an HSM or KMS behind this same interface.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from vault.config import Secret
from vault.crypto._primitives import (
    KEY_SIZE,
    NONCE_SIZE,
    IntegrityError,
    encode_parts,
    gcm,
    gcm_open,
    random_bytes,
    scrypt,
)
from vault.crypto.envelope import seal, unseal
from vault.crypto.handles import AuditKey
from vault.errors import KluisError, StorageUnavailable

FORMAT = "kluis-keyring"
FORMAT_VERSION = 1
_EPOCH_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
# scrypt cost: N=2^17, r=8, p=1 (128 MiB, about half a second), the OWASP
# recommendation for interactive use; paid once when the keyring is opened.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**17, 8, 1


class EpochDestroyed(KluisError):
    """The epoch's master key was destroyed: what it wrapped is gone for good."""

    status, code = 410, "destroyed"
    default_message = "The key protecting this data was destroyed under retention."


class EpochUnknown(KluisError):
    code = "internal_error"
    default_message = "A key epoch the database names is not in the keyring."


class KeyringError(KluisError):
    code = "keyring_error"
    default_message = "The keyring cannot be opened."


class SigningSecret:
    """An HMAC secret for signed links: masked ``repr``, no pickling."""

    __slots__ = ("_value",)

    def __init__(self, value: bytes) -> None:
        self._value = value

    def reveal(self) -> bytes:
        return self._value

    def __repr__(self) -> str:
        return "SigningSecret(********)"

    def __reduce__(self) -> Any:
        raise TypeError("signing secrets cannot be pickled")


#: How many signing secrets are kept: a link signed with a retired secret
#: keeps working until the secret falls off this list.
SIGNING_SECRETS_KEPT = 3


@dataclasses.dataclass(frozen=True)
class EpochInfo:
    name: str
    created_at: datetime
    destroyed_at: datetime | None

    @property
    def destroyed(self) -> bool:
        return self.destroyed_at is not None


@runtime_checkable
class KeyProvider(Protocol):
    """Holds master keys; wraps and unwraps with them; never hands them out."""

    async def create_epoch(self, name: str, now: datetime) -> EpochInfo:
        """Create the epoch's key if it does not exist; idempotent.

        Raises ``EpochDestroyed`` for a name that was destroyed before.
        """
        ...

    async def wrap(self, epoch: str, plaintext: bytes, aad: bytes) -> bytes: ...

    async def unwrap(self, epoch: str, wrapped: bytes, aad: bytes) -> bytes:
        """Raises ``EpochDestroyed``, ``EpochUnknown`` or ``IntegrityError``."""
        ...

    async def destroy_epoch(self, name: str, now: datetime) -> bool:
        """Destroy the epoch's key forever; False if it was already destroyed."""
        ...

    async def epochs(self) -> list[EpochInfo]: ...

    async def check(self) -> None:
        """Raise ``StorageUnavailable`` unless the provider can be used."""
        ...

    async def signing_secrets(self) -> list[SigningSecret]:
        """The secrets that verify signed links, oldest first; the last one signs."""
        ...

    async def rotate_signing_secret(self, now: datetime) -> int:
        """Add a new signing secret (keeping the newest few); returns how many remain."""
        ...

    async def audit_mac(self, message: bytes) -> bytes:
        """HMAC-SHA256 of ``message`` under the audit key, which never leaves."""
        ...

    async def audit_key(self) -> AuditKey:
        """The audit key as a handle, for one commit of the audit writer."""
        ...


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _kek_aad(epoch: str, aad: bytes) -> bytes:
    # The epoch's name is always part of the associated data, so a key
    # wrapped under one epoch cannot be presented as another's.
    return encode_parts(b"kluis-kek-v1", epoch, aad)


class LocalKeyring:
    """A :class:`KeyProvider` backed by one file. One process at a time."""

    def __init__(self, path: Path, passphrase: Secret | None = None) -> None:
        self.path = Path(path)
        self._passphrase = passphrase if passphrase else None
        self._keys: dict[str, bytes] = {}
        self._meta: dict[str, dict[str, Any]] = {}
        self._signing: list[bytes] = []
        self._audit: bytes | None = None
        self._seal_salt: bytes | None = None
        self._seal_key: bytes | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<LocalKeyring {self.path.name} epochs={len(self._meta)}>"

    def __reduce__(self) -> Any:
        raise TypeError("a keyring cannot be pickled")

    # -- opening and saving -------------------------------------------------

    @classmethod
    async def create(cls, path: Path, passphrase: Secret | None = None) -> LocalKeyring:
        """Create an empty keyring file; ``KeyringError`` if one exists."""
        ring = cls(path, passphrase)
        if ring.path.exists():
            raise KeyringError(f"A keyring already exists at {ring.path}.")
        ring.path.parent.mkdir(parents=True, exist_ok=True)
        ring._audit = random_bytes(KEY_SIZE)
        await asyncio.to_thread(ring._save)
        return ring

    @classmethod
    async def open(cls, path: Path, passphrase: Secret | None = None) -> LocalKeyring:
        ring = cls(path, passphrase)
        await asyncio.to_thread(ring._load)
        return ring

    def _load(self) -> None:
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise KeyringError(f"No keyring at {self.path}; run 'kluis init' first.") from None
        except (OSError, ValueError) as exc:
            raise KeyringError(f"The keyring at {self.path} cannot be read.") from exc
        if document.get("format") != FORMAT or document.get("version") != FORMAT_VERSION:
            raise KeyringError(f"{self.path} is not a Kluis keyring of version {FORMAT_VERSION}.")
        if document.get("sealed"):
            if self._passphrase is None:
                raise KeyringError(
                    "The keyring is sealed with a passphrase; set keyring.passphrase "
                    "(KLUIS_KEYRING_PASSPHRASE)."
                )
            kdf = document["kdf"]
            self._seal_salt = _unb64(kdf["salt"])
            self._seal_key = scrypt(
                self._passphrase.reveal().encode("utf-8"),
                self._seal_salt,
                kdf["n"],
                kdf["r"],
                kdf["p"],
            )
            try:
                raw = gcm_open(
                    gcm(self._seal_key),
                    _unb64(document["nonce"]),
                    _unb64(document["ciphertext"]),
                    b"kluis-keyring-v1",
                )
            except IntegrityError:
                raise KeyringError("Wrong keyring passphrase, or a damaged keyring.") from None
            body = json.loads(raw)
        else:
            if self._passphrase is not None:
                raise KeyringError("keyring.passphrase is set but the keyring file is not sealed.")
            body = document["body"]
        self._signing = [_unb64(value) for value in body.get("signing", [])]
        self._audit = _unb64(body["audit"]) if body.get("audit") else None
        for name, entry in body["epochs"].items():
            self._meta[name] = {
                "created_at": entry["created_at"],
                "destroyed_at": entry["destroyed_at"],
            }
            if entry["key"] is not None:
                self._keys[name] = _unb64(entry["key"])

    def _body(self) -> dict[str, Any]:
        epochs = {
            name: {
                "key": _b64(self._keys[name]) if name in self._keys else None,
                **meta,
            }
            for name, meta in sorted(self._meta.items())
        }
        body: dict[str, Any] = {
            "epochs": epochs,
            "signing": [_b64(value) for value in self._signing],
        }
        if self._audit is not None:
            body["audit"] = _b64(self._audit)
        return body

    def _save(self) -> None:
        document: dict[str, Any] = {"format": FORMAT, "version": FORMAT_VERSION}
        body = json.dumps(self._body(), sort_keys=True).encode("utf-8")
        if self._passphrase is not None:
            if self._seal_key is None or self._seal_salt is None:
                self._seal_salt = random_bytes(16)
                self._seal_key = scrypt(
                    self._passphrase.reveal().encode("utf-8"),
                    self._seal_salt,
                    SCRYPT_N,
                    SCRYPT_R,
                    SCRYPT_P,
                )
            nonce = random_bytes(NONCE_SIZE)
            document.update(
                sealed=True,
                kdf={
                    "name": "scrypt",
                    "n": SCRYPT_N,
                    "r": SCRYPT_R,
                    "p": SCRYPT_P,
                    "salt": _b64(self._seal_salt),
                },
                nonce=_b64(nonce),
                ciphertext=_b64(gcm(self._seal_key).encrypt(nonce, body, b"kluis-keyring-v1")),
            )
        else:
            document.update(sealed=False, body=json.loads(body))
        data = json.dumps(document, indent=1, sort_keys=True).encode("utf-8")
        tmp = self.path.with_name(f".{self.path.name}.{random_bytes(6).hex()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    async def _persist(self) -> None:
        try:
            await asyncio.to_thread(self._save)
        except OSError as exc:
            raise StorageUnavailable("The keyring file cannot be written.") from exc

    # -- the provider interface --------------------------------------------

    def _info(self, name: str) -> EpochInfo:
        meta = self._meta[name]
        destroyed = meta["destroyed_at"]
        return EpochInfo(
            name=name,
            created_at=_parse_time(meta["created_at"]),
            destroyed_at=_parse_time(destroyed) if destroyed else None,
        )

    async def create_epoch(self, name: str, now: datetime) -> EpochInfo:
        if not _EPOCH_RE.fullmatch(name):
            raise ValueError(f"invalid epoch name {name!r}")
        async with self._lock:
            if name in self._meta:
                if self._meta[name]["destroyed_at"] is not None:
                    raise EpochDestroyed()
                return self._info(name)
            self._keys[name] = random_bytes(KEY_SIZE)
            self._meta[name] = {"created_at": _iso(now), "destroyed_at": None}
            try:
                await self._persist()
            except BaseException:
                del self._keys[name], self._meta[name]
                raise
            return self._info(name)

    def _key(self, epoch: str) -> bytes:
        meta = self._meta.get(epoch)
        if meta is None:
            raise EpochUnknown()
        if meta["destroyed_at"] is not None:
            raise EpochDestroyed()
        return self._keys[epoch]

    async def wrap(self, epoch: str, plaintext: bytes, aad: bytes) -> bytes:
        return seal(self._key(epoch), plaintext, _kek_aad(epoch, aad))

    async def unwrap(self, epoch: str, wrapped: bytes, aad: bytes) -> bytes:
        return unseal(self._key(epoch), wrapped, _kek_aad(epoch, aad))

    async def destroy_epoch(self, name: str, now: datetime) -> bool:
        async with self._lock:
            meta = self._meta.get(name)
            if meta is None:
                raise EpochUnknown()
            if meta["destroyed_at"] is not None:
                return False
            key = self._keys.pop(name)
            meta["destroyed_at"] = _iso(now)
            try:
                await self._persist()
            except BaseException:
                self._keys[name] = key
                meta["destroyed_at"] = None
                raise
            return True

    async def epochs(self) -> list[EpochInfo]:
        return [self._info(name) for name in sorted(self._meta)]

    async def check(self) -> None:
        try:
            readable = await asyncio.to_thread(os.access, self.path, os.R_OK | os.W_OK)
        except OSError:
            readable = False
        if not readable:
            raise StorageUnavailable("The keyring file cannot be read or written.")

    async def signing_secrets(self) -> list[SigningSecret]:
        if not self._signing:
            await self.rotate_signing_secret(datetime.now(UTC))
        return [SigningSecret(value) for value in self._signing]

    async def rotate_signing_secret(self, now: datetime) -> int:
        async with self._lock:
            before = list(self._signing)
            self._signing = [*self._signing, random_bytes(KEY_SIZE)][-SIGNING_SECRETS_KEPT:]
            try:
                await self._persist()
            except BaseException:
                self._signing = before
                raise
            return len(self._signing)

    async def audit_mac(self, message: bytes) -> bytes:
        return (await self.audit_key()).mac(message)

    async def audit_key(self) -> AuditKey:
        if self._audit is None:
            # A keyring made before the audit log existed gets its key once.
            async with self._lock:
                if self._audit is None:
                    self._audit = random_bytes(KEY_SIZE)
                    try:
                        await self._persist()
                    except BaseException:
                        self._audit = None
                        raise
        return AuditKey(self._audit)
