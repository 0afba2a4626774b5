"""The local keyring: master and MAC keys in one file, shared by the processes of one host.

The embedded default provider. The file (mode 0600) holds the keys of every
epoch, a tombstone for each destroyed one, and the MAC keys; it may be sealed
with a passphrase (:mod:`vault.crypto.passphrase`). Several processes use it
at once (``kluis serve`` workers, ``kluis keys rotate`` and ``kluis retention
run`` from cron), so what a process holds in memory is only a cache:

* **Every change** takes an exclusive ``flock`` on ``<file>.lock`` (waiting
  at most ``keyring.lock_timeout_seconds``), re-reads the file, merges it with
  what this process knows, applies the change and writes the result
  atomically (temporary file, fsync, rename, directory fsync). The lock file
  is never replaced, so the lock is one for every writer.
* **The merge never resurrects and never drops**: a tombstone wins over a
  key, whoever holds which; a key on disk that this process did not know is
  kept; a key this process knows that the disk lacks (an older file put back)
  is written back. Two different keys under one name mean the file was
  swapped for another keyring's: an error, never a guess.
* **Every use** costs one ``stat``: when the file changed since this process
  read it (inode, size, modification or change time), it is read again
  before the key is used, so a destruction elsewhere counts at once. A name
  not known is read again before it is an error. Nothing else re-reads.

Caveat (docs/crypto.md): a journaling or copy-on-write file system, or an
SSD, may keep old blocks of the file after a rewrite, and a backup of the
data directory holds the keyring as it was. Keep the file out of ordinary
backups; deployments that need hardware-backed destruction use the PKCS#11
provider. ``flock`` is per host: the file must not be shared across hosts
(a network file system), which is what an HSM is for.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import errno
import fcntl
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from vault.crypto import mac as macs
from vault.crypto._primitives import IntegrityError
from vault.crypto.envelope import master_aad, seal, unseal
from vault.crypto.handles import MacKey, MasterKey
from vault.crypto.passphrase import KdfParams, PassphraseKey, derive, open_document, seal_document
from vault.errors import StorageUnavailable
from vault.keys.provider import NAME, EpochDestroyed, EpochUnknown, KeyInfo, KeyringError

FORMAT = "kluis-keyring"
FORMAT_VERSION = 2
_READABLE_VERSIONS = (1, 2)
_SEAL_LABEL = b"kluis-keyring-v1"
_T = TypeVar("_T")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclasses.dataclass
class _Entry:
    created_at: str
    destroyed_at: str | None
    key: MasterKey | None

    def info(self, name: str) -> KeyInfo:
        return KeyInfo(
            name,
            _parse_time(self.created_at),
            _parse_time(self.destroyed_at) if self.destroyed_at else None,
        )


@dataclasses.dataclass
class _State:
    generation: int = 0
    keys: dict[str, _Entry] = dataclasses.field(default_factory=dict)
    macs: dict[str, MacKey] = dataclasses.field(default_factory=dict)
    #: Link-signing secrets of a version-1 file, until ``kluis init`` moves them.
    legacy_signing: list[bytes] = dataclasses.field(default_factory=list)

    def copy(self) -> _State:
        return _State(
            self.generation,
            {name: dataclasses.replace(entry) for name, entry in self.keys.items()},
            dict(self.macs),
            list(self.legacy_signing),
        )


def _same(a: MasterKey | MacKey, b: MasterKey | MacKey) -> bool:
    return a._material == b._material


class LocalKeyring:
    """A :class:`~vault.keys.provider.KeyProvider` backed by one file."""

    kind = "local"

    def __init__(
        self, path: Path, passphrase: str | None = None, *, lock_timeout: float = 5.0
    ) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._passphrase = passphrase or None
        self._lock_timeout = lock_timeout
        self._state = _State()
        self._seen: tuple[int, int, int, int] | None = None
        self._derived: PassphraseKey | None = None
        self._mutex = threading.Lock()
        #: How many times the file was read (tests check that use does not read it).
        self.reads = 0

    def __repr__(self) -> str:
        return f"<LocalKeyring {self.path.name} keys={len(self._state.keys)}>"

    def __reduce__(self) -> Any:
        raise TypeError("a keyring cannot be pickled")

    # -- opening ------------------------------------------------------------

    @classmethod
    async def open(
        cls, path: Path, passphrase: str | None = None, *, lock_timeout: float = 5.0
    ) -> LocalKeyring:
        """Open an existing keyring file; ``KeyringError`` naming what is wrong."""
        ring = cls(path, passphrase, lock_timeout=lock_timeout)
        await _in_thread(ring._reload)
        return ring

    @classmethod
    async def open_or_create(
        cls, path: Path, passphrase: str | None = None, *, lock_timeout: float = 5.0
    ) -> tuple[LocalKeyring, bool]:
        """Open the keyring, creating an empty one if there is none (under the
        lock, so concurrent ``kluis init`` runs make one file); (ring, created)."""
        ring = cls(path, passphrase, lock_timeout=lock_timeout)
        created = await _in_thread(ring._open_or_create)
        return ring, created

    def _open_or_create(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked():
            if self.path.exists():
                self._reload()
                return False
            with self._mutex:
                self._write(self._state)
            return True

    # -- reading, merging, writing -----------------------------------------

    def _reload(self) -> None:
        """Read the file and merge it into what this process knows."""
        document, seen = self._read()
        with self._mutex:
            merged = self._state.copy()
            self._absorb(merged, document)
            self._state, self._seen = merged, seen

    def _read(self) -> tuple[dict[str, Any], tuple[int, int, int, int]]:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            raise KeyringError(f"No keyring at {self.path}; run 'kluis init' first.") from None
        except OSError as exc:
            raise KeyringError(
                f"The keyring at {self.path} cannot be read ({exc.strerror})."
            ) from None
        try:
            st = os.fstat(fd)
            with os.fdopen(os.dup(fd), "rb") as handle:
                raw = handle.read()
        finally:
            os.close(fd)
        self.reads += 1
        try:
            document = json.loads(raw)
        except ValueError:
            raise KeyringError(
                f"The keyring at {self.path} is not valid JSON; nothing was changed. "
                "Restore it from its own backup."
            ) from None
        if (
            not isinstance(document, dict)
            or document.get("format") != FORMAT
            or document.get("version") not in _READABLE_VERSIONS
        ):
            raise KeyringError(f"{self.path} is not a Kluis keyring (format {FORMAT_VERSION}).")
        return document, (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def _body(self, document: dict[str, Any]) -> dict[str, Any]:
        if not document.get("sealed"):
            if self._passphrase is not None:
                raise KeyringError("keyring.passphrase is set but the keyring file is not sealed.")
            body = document.get("body")
            if not isinstance(body, dict):
                raise KeyringError(f"{self.path} is not a Kluis keyring.")
            return body
        if self._passphrase is None:
            raise KeyringError(
                "The keyring is sealed with a passphrase; set keyring.passphrase "
                "(KLUIS_KEYRING_PASSPHRASE)."
            )
        try:
            kdf = document["kdf"]
            params = KdfParams(_unb64(kdf["salt"]), int(kdf["n"]), int(kdf["r"]), int(kdf["p"]))
            nonce, ciphertext = _unb64(document["nonce"]), _unb64(document["ciphertext"])
        except (KeyError, TypeError, ValueError):
            raise KeyringError(f"{self.path} is not a Kluis keyring.") from None
        if self._derived is None or self._derived.params != params:
            self._derived = derive(self._passphrase, params)
        try:
            raw = open_document(self._derived, nonce, ciphertext, _SEAL_LABEL)
        except IntegrityError:
            raise KeyringError("Wrong keyring passphrase, or a damaged keyring.") from None
        body = json.loads(raw)
        if not isinstance(body, dict):
            raise KeyringError(f"{self.path} is not a Kluis keyring.")
        return body

    def _absorb(self, state: _State, document: dict[str, Any]) -> None:
        """Merge a document into ``state``: tombstones win, nothing known is dropped."""
        self._absorb_body(state, self._body(document), document)

    def _absorb_body(self, state: _State, body: dict[str, Any], document: dict[str, Any]) -> None:
        try:
            if document["version"] == 1:
                entries = body.get("epochs", {})
                mac_keys = {"audit": body["audit"]} if body.get("audit") else {}
                signing = body.get("signing", [])
            else:
                entries = body.get("keys", {})
                mac_keys = body.get("macs", {})
                signing = body.get("legacy_signing", [])
            for name, raw in entries.items():
                self._absorb_entry(state, name, raw)
            for name, value in mac_keys.items():
                key = MacKey(_unb64(value))
                known = state.macs.get(name)
                if known is not None and not _same(known, key):
                    raise self._swapped(name)
                state.macs[name] = key
            state.legacy_signing = [_unb64(value) for value in signing]
            state.generation = max(state.generation, int(body.get("generation", 0)))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise KeyringError(f"{self.path} is not a Kluis keyring (a damaged entry).") from None

    def _absorb_entry(self, state: _State, name: str, raw: dict[str, Any]) -> None:
        destroyed = raw["destroyed_at"]
        key = MasterKey(_unb64(raw["key"])) if raw["key"] is not None and not destroyed else None
        known = state.keys.get(name)
        if known is None:
            state.keys[name] = _Entry(raw["created_at"], destroyed, key)
            return
        if destroyed or known.destroyed_at:
            stamps = [s for s in (destroyed, known.destroyed_at) if s]
            known.destroyed_at = min(stamps, key=_parse_time)
            known.key = None  # a tombstone always wins
        elif key is not None and known.key is not None and not _same(key, known.key):
            raise self._swapped(name)
        elif known.key is None:
            known.key = key

    def _swapped(self, name: str) -> KeyringError:
        return KeyringError(
            f"The keyring at {self.path} holds another key named {name!r} than this process "
            "knows: the file was replaced by another keyring's. Nothing was changed; "
            "restore the right file."
        )

    def _document(self, state: _State) -> bytes:
        body: dict[str, Any] = {
            "generation": state.generation,
            "keys": {
                name: {
                    "key": _b64(entry.key._material) if entry.key is not None else None,
                    "created_at": entry.created_at,
                    "destroyed_at": entry.destroyed_at,
                }
                for name, entry in sorted(state.keys.items())
            },
            "macs": {name: _b64(key._material) for name, key in sorted(state.macs.items())},
        }
        if state.legacy_signing:
            body["legacy_signing"] = [_b64(value) for value in state.legacy_signing]
        document: dict[str, Any] = {"format": FORMAT, "version": FORMAT_VERSION}
        if self._passphrase is None:
            document.update(sealed=False, body=body)
        else:
            if self._derived is None:
                self._derived = derive(self._passphrase, KdfParams.fresh())
            params = self._derived.params
            nonce, ciphertext = seal_document(
                self._derived, json.dumps(body, sort_keys=True).encode(), _SEAL_LABEL
            )
            document.update(
                sealed=True,
                kdf={
                    "name": "scrypt",
                    "n": params.n,
                    "r": params.r,
                    "p": params.p,
                    "salt": _b64(params.salt),
                },
                nonce=_b64(nonce),
                ciphertext=_b64(ciphertext),
            )
        return json.dumps(document, indent=1, sort_keys=True).encode("utf-8")

    def _write(self, state: _State) -> None:
        """Write ``state`` as the next generation, atomically; callers hold the lock."""
        state.generation += 1
        data = self._document(state)
        tmp = self.path.with_name(f".{self.path.name}.{os.urandom(6).hex()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            dir_fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            state.generation -= 1
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise StorageUnavailable("The keyring file cannot be written.") from exc
        # Every writer holds the lock, so what is at the path now is what was written.
        st = os.stat(self.path)
        self._seen = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """The exclusive lock every writer of the file takes."""
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise KeyringError(
                f"The keyring's lock file {self.lock_path} cannot be opened ({exc.strerror})."
            ) from None
        try:
            deadline = time.monotonic() + self._lock_timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                        raise
                    if time.monotonic() >= deadline:
                        raise KeyringError(
                            f"The keyring's lock ({self.lock_path}) could not be taken within "
                            f"{self._lock_timeout:g} s: another process holds it. Nothing was "
                            "changed; try again, or look for a stuck kluis process."
                        ) from None
                    time.sleep(0.02)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _change(self, change: Callable[[_State], _T]) -> _T:
        """Lock, re-read, merge, apply ``change`` to a copy, write; or change nothing."""
        with self._locked():
            document, _ = self._read()
            with self._mutex:
                state = self._state.copy()
                self._absorb(state, document)
                result = change(state)
                self._write(state)
                self._state = state
            return result

    async def _fresh(self) -> _State:
        """The state, read again first if the file changed since (one ``stat``)."""
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise StorageUnavailable("The keyring file cannot be read.") from exc
        if (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns) != self._seen:
            await self._reload_or_unavailable()
        return self._state

    async def _reload_or_unavailable(self) -> None:
        try:
            await _in_thread(self._reload)
        except KeyringError as exc:
            # Fail closed: the file says something this process cannot read.
            raise StorageUnavailable(f"The keyring file cannot be used: {exc.message}") from exc

    # -- the provider interface --------------------------------------------

    async def create_key(self, name: str, now: datetime) -> KeyInfo:
        if not NAME.fullmatch(name):
            raise ValueError(f"invalid key name {name!r}")
        known = (await self._fresh()).keys.get(name)
        if known is not None and known.destroyed_at is None:
            return known.info(name)

        def create(state: _State) -> KeyInfo:
            entry = state.keys.get(name)
            if entry is None:
                entry = _Entry(_iso(now), None, MasterKey(os.urandom(32)))
                state.keys[name] = entry
            if entry.destroyed_at is not None:
                raise EpochDestroyed()
            return entry.info(name)

        return await _in_thread(self._change, create)

    async def destroy_key(self, name: str, now: datetime) -> bool:
        def destroy(state: _State) -> bool:
            entry = state.keys.get(name)
            if entry is None:
                raise EpochUnknown()
            if entry.destroyed_at is not None:
                return False
            entry.key, entry.destroyed_at = None, _iso(now)
            return True

        return await _in_thread(self._change, destroy)

    async def list_keys(self) -> list[KeyInfo]:
        state = await self._fresh()
        return [entry.info(name) for name, entry in sorted(state.keys.items())]

    async def _master(self, name: str) -> MasterKey:
        entry = (await self._fresh()).keys.get(name)
        if entry is None:
            # Another process may have made it a moment ago: look once more.
            await self._reload_or_unavailable()
            entry = self._state.keys.get(name)
            if entry is None:
                raise EpochUnknown()
        if entry.key is None:
            raise EpochDestroyed()
        return entry.key

    async def usable(self, name: str) -> bool:
        """Whether the master key ``name`` exists and is not destroyed, as the file
        says at this moment (one ``stat``; read again if another process changed it)."""
        entry = (await self._fresh()).keys.get(name)
        return entry is not None and entry.key is not None

    async def wrap(self, name: str, plaintext: bytes, aad: bytes) -> bytes:
        return seal(await self._master(name), plaintext, master_aad(name, aad))

    async def unwrap(self, name: str, wrapped: bytes, aad: bytes) -> bytes:
        return unseal(await self._master(name), wrapped, master_aad(name, aad))

    async def create_mac_key(self, name: str) -> None:
        if name in (await self._fresh()).macs:
            return

        def create(state: _State) -> None:
            state.macs.setdefault(name, macs.new_mac_key())

        await _in_thread(self._change, create)

    def _mac_key(self, name: str) -> MacKey:
        key = self._state.macs.get(name)
        if key is None:
            self._reload()  # made by another process since? (rare: kluis init makes it)
            key = self._state.macs.get(name)
            if key is None:
                raise KeyringError(
                    f"The keyring has no {name!r} MAC key; run 'kluis init' to create it."
                )
        return key

    def mac(self, name: str, message: bytes) -> bytes:
        return macs.sign(self._mac_key(name), message)

    def verify_mac(self, name: str, message: bytes, tag: bytes) -> bool:
        return macs.verify(self._mac_key(name), message, tag)

    async def check(self) -> None:
        def usable() -> bool:
            return os.access(self.path, os.R_OK | os.W_OK) and os.access(self.path.parent, os.W_OK)

        try:
            ok = await _in_thread(usable)
        except OSError:
            ok = False
        if not ok:
            raise StorageUnavailable("The keyring file cannot be read or written.")

    async def close(self) -> None:
        return None

    # -- the move of version-1 signing secrets ------------------------------

    def legacy_signing_secrets(self) -> list[bytes]:
        """Link-signing secrets a version-1 file kept (``kluis init`` moves them)."""
        return list(self._state.legacy_signing)

    async def forget_legacy_signing_secrets(self) -> None:
        def forget(state: _State) -> None:
            state.legacy_signing = []

        await _in_thread(self._change, forget)


# -- key backups (kluis keys backup / restore) ------------------------------
# Functions, not methods: the provider itself never hands out key bytes
# (tests/keys/test_contract.py); these are the one deliberate way out, for
# the operator's sealed backup of the key store, and the way back in.


async def export_sealed(ring: LocalKeyring, passphrase: str) -> bytes:
    """Every key and tombstone of ``ring`` as a keyring document sealed under
    ``passphrase`` (a salt of its own): the file as it is now, read under its lock."""

    def export() -> bytes:
        with ring._locked():
            ring._reload()
            with ring._mutex:
                state = ring._state.copy()
        return LocalKeyring(ring.path, passphrase)._document(state)

    return await _in_thread(export)


async def merge_sealed(ring: LocalKeyring, source: Path, passphrase: str) -> list[str]:
    """Merge a backup made by :func:`export_sealed` into ``ring``; the names of
    the keys it brought back. Never resurrects: a key destroyed in ``ring``
    stays destroyed, whatever the backup holds."""
    backup = LocalKeyring(source, passphrase)
    await _in_thread(backup._reload)
    body = json.loads(LocalKeyring(source)._document(backup._state))["body"]

    def merge(state: _State) -> list[str]:
        before = {name for name, entry in state.keys.items() if entry.key is not None}
        ring._absorb_body(state, body, {"version": FORMAT_VERSION})
        return sorted(
            name
            for name, entry in state.keys.items()
            if entry.key is not None and name not in before
        )

    return await _in_thread(ring._change, merge)


async def _in_thread(function: Callable[..., _T], *args: Any) -> _T:
    return await asyncio.to_thread(function, *args)
