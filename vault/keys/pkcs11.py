"""Master and MAC keys on a PKCS#11 token: an HSM, a network or cloud HSM, SoftHSM2.

Through python-pkcs11. Every key is generated on the token, never leaves it
(``CKA_SENSITIVE``, not ``CKA_EXTRACTABLE``) and is used there:

* a master key is an AES-256 secret key labelled ``<prefix><name>`` with
  encrypt and decrypt only; wrapping is ``CKM_AES_GCM`` with a random 96-bit
  nonce, a 128-bit tag and the associated data of
  :func:`vault.crypto.envelope.master_aad`, so a wrapped key has the same
  layout as under the local keyring;
* its creation time is a data object (application ``kluis-key``) of the same
  label;
* destroying it writes a tombstone first (a data object, application
  ``kluis-tombstone``, with the creation and destruction times), then
  ``C_DestroyObject`` on the key. A key found beside its tombstone (a run
  that stopped in between) is destroyed on sight. A destroyed name is never
  created again;
* a MAC key is a 256-bit generic secret labelled ``<prefix>mac:<name>``,
  used with ``CKM_SHA256_HMAC`` (sign and verify only).

The prefix (``keyring.pkcs11_label_prefix``) lets several vaults share one
token. Creation is made race-free by the caller: :class:`~vault.keys.service.KeyService`
creates master keys under a database lock, ``kluis init`` under its own; a
token offers no "create if absent", and two keys under one label are refused
as an error rather than guessed between.

Calls run on one session, one at a time, in a thread of their own (the
module may block: a network HSM is a round trip); :meth:`mac` runs on the
caller's thread, under the same lock. Object handles are kept per label; one
destroyed by another process fails its next use (``CKR_OBJECT_HANDLE_INVALID``)
and is looked up again, so its destruction counts at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11 import exceptions as p11
from pkcs11.mechanisms import GCMParams

from vault.crypto._primitives import IntegrityError
from vault.crypto.envelope import master_aad, new_nonce, pack, unpack
from vault.errors import StorageUnavailable
from vault.keys.provider import AUDIT_MAC, NAME, EpochDestroyed, EpochUnknown, KeyInfo, KeyringError

_T = TypeVar("_T")
_KEY_META = "kluis-key"
_TOMBSTONE = "kluis-tombstone"
_TAG_BITS = 128
#: Errors after which the session is opened (and logged in) again, once.
_SESSION_LOST = (
    p11.SessionHandleInvalid,
    p11.SessionClosed,
    p11.DeviceRemoved,
    p11.TokenNotPresent,
    p11.UserNotLoggedIn,
)
#: Errors another process's change to the token can cause a moment later
#: (an object found by a search and destroyed before it is read; SoftHSM2
#: answers CKR_GENERAL_ERROR when an object's file changes under it): the
#: call is tried again, a few times, before it is an error.
_RACING = (p11.ObjectHandleInvalid, p11.GeneralError)
_ATTEMPTS = 4
_LOGIN_ATTEMPTS = 12
#: What a decryption that fails its tag gives on the tokens seen so far
#: (SoftHSM2 answers CKR_GENERAL_ERROR, so a failed decryption is tried once
#: more before it counts as tampering).
_NOT_AUTHENTIC = (
    p11.EncryptedDataInvalid,
    p11.EncryptedDataLenRange,
    p11.GeneralError,
    p11.DataInvalid,
    p11.DataLenRange,
    p11.FunctionFailed,
)

_LIBRARIES: dict[str, Any] = {}
_LIBRARIES_LOCK = threading.Lock()
#: Providers of this process with a session on each module: a module may be
#: initialised afresh only while none has (it would end their sessions).
_SESSIONS: dict[str, int] = {}


def _afresh(module: str, lib: Any) -> None:
    """C_Finalize and C_Initialize again, if no provider of this process holds a
    session on the module: SoftHSM2 reads its token directory at initialisation,
    so a token it found half-written then stays missing until it reads again."""
    with _LIBRARIES_LOCK:
        if _SESSIONS.get(module, 0) == 0:
            with contextlib.suppress(p11.PKCS11Error):
                lib.reinitialize()


def _library(module: str) -> Any:
    """One loaded module per path and process (C_Initialize runs once)."""
    with _LIBRARIES_LOCK:
        lib = _LIBRARIES.get(module)
        if lib is None:
            if not Path(module).is_file():
                raise KeyringError(
                    f"No PKCS#11 module at {module} (keyring.pkcs11_module); "
                    "install it or correct the path."
                )
            try:
                lib = pkcs11.lib(module)
            except p11.PKCS11Error as exc:
                raise KeyringError(
                    f"The PKCS#11 module at {module} cannot be loaded: {exc}"
                ) from None
            _LIBRARIES[module] = lib
        return lib


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class Pkcs11Provider:
    """A :class:`~vault.keys.provider.KeyProvider` on a PKCS#11 token."""

    kind = "pkcs11"

    def __init__(self, module: str, token_label: str, pin: str, prefix: str = "kluis:") -> None:
        self._module, self._token_label, self._pin, self._prefix = (
            module,
            token_label,
            pin,
            prefix,
        )
        self._lock = threading.RLock()
        self._session: Any = None
        #: Counted in _SESSIONS (from the first session until close).
        self._counted = False
        self._keys: dict[str, Any] = {}
        self._macs: dict[str, Any] = {}
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kluis-pkcs11")

    def __repr__(self) -> str:
        return f"<Pkcs11Provider token={self._token_label!r} prefix={self._prefix!r}>"

    def __reduce__(self) -> Any:
        raise TypeError("a key provider cannot be pickled")

    @classmethod
    async def open(
        cls, module: str, token_label: str, pin: str, prefix: str = "kluis:"
    ) -> Pkcs11Provider:
        """Load the module, find the token and log in; ``KeyringError`` naming what is wrong."""
        if not token_label:
            raise KeyringError("keyring.pkcs11_token_label is empty; name the token to use.")
        if not pin:
            raise KeyringError(
                "No PIN for the PKCS#11 token: set KLUIS_KEYRING_PKCS11_PIN or "
                "keyring.pkcs11_pin_file."
            )
        provider = cls(module, token_label, pin, prefix)
        try:
            await provider._run(provider._connect)
        except BaseException:
            provider._thread.shutdown(wait=False)
            raise
        return provider

    # -- the session --------------------------------------------------------

    def _connect(self) -> None:
        lib = _library(self._module)
        for attempt in range(_LOGIN_ATTEMPTS):
            try:
                self._session = self._open(lib)
                break
            except (p11.NoSuchToken, p11.UserPinNotInitialized, p11.GeneralError) as exc:
                # SoftHSM2 reads a token's files while another process rewrites
                # them (a key made or destroyed) as a missing token, a PIN never
                # set, or a general error: seen with two servers starting beside
                # the cron jobs. Tried again for about four seconds.
                if attempt < _LOGIN_ATTEMPTS - 1:
                    time.sleep(0.05 * (attempt + 1))
                    if attempt % 3 == 2:
                        _afresh(self._module, lib)
                    continue
                if isinstance(exc, p11.NoSuchToken):
                    raise KeyringError(
                        f"The PKCS#11 module has no token labelled {self._token_label!r} "
                        "(keyring.pkcs11_token_label); initialise it first (docs/operations.md)."
                    ) from None
                raise KeyringError(
                    f"The PKCS#11 token {self._token_label!r} cannot be opened: "
                    f"{type(exc).__name__}."
                ) from None
        self._keys.clear()
        self._macs.clear()
        if not self._counted:
            with _LIBRARIES_LOCK:
                _SESSIONS[self._module] = _SESSIONS.get(self._module, 0) + 1
            self._counted = True

    def _open(self, lib: Any) -> Any:
        """A logged-in session on the token; a wrong PIN is never tried again
        (the token counts it towards locking the PIN)."""
        try:
            token = lib.get_token(token_label=self._token_label)
        except p11.MultipleTokensReturned:
            raise KeyringError(
                f"Several PKCS#11 tokens are labelled {self._token_label!r}."
            ) from None
        try:
            return token.open(user_pin=self._pin, rw=True)
        except p11.UserAlreadyLoggedIn:
            # Another provider of this process logged in: the login is the token's.
            return token.open(rw=True)
        except (p11.PinIncorrect, p11.PinInvalid, p11.PinLenRange):
            raise KeyringError(
                f"Wrong PIN for the PKCS#11 token {self._token_label!r}; nothing was done."
            ) from None
        except p11.PinLocked:
            raise KeyringError(
                f"The PIN of the PKCS#11 token {self._token_label!r} is locked."
            ) from None
        except (p11.UserPinNotInitialized, p11.GeneralError):
            raise
        except p11.PKCS11Error as exc:
            raise KeyringError(
                f"The PKCS#11 token {self._token_label!r} cannot be opened: {type(exc).__name__}."
            ) from None

    def _call(self, work: Callable[[], _T]) -> _T:
        """Run ``work`` on the session: opening it again once if it was lost,
        and again after a race with another process's change (a few times)."""
        with self._lock:
            for attempt in range(_ATTEMPTS):
                try:
                    return work()
                except _SESSION_LOST:
                    if attempt:
                        raise
                    self._connect()
                except _RACING:
                    if attempt == _ATTEMPTS - 1:
                        raise
                    self._keys.clear()
                    self._macs.clear()
                    time.sleep(0.02 * (attempt + 1))
            raise AssertionError("unreachable")

    async def _run(self, work: Callable[[], _T]) -> _T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._thread, self._call, work)
        except p11.PKCS11Error as exc:
            raise StorageUnavailable(
                f"The PKCS#11 token did not answer ({type(exc).__name__})."
            ) from exc

    # -- objects ------------------------------------------------------------

    def _label(self, name: str) -> str:
        return f"{self._prefix}{name}"

    def _find(self, cls: ObjectClass, label: str, application: str | None = None) -> list[Any]:
        template: dict[Attribute, Any] = {Attribute.CLASS: cls, Attribute.LABEL: label}
        if application is not None:
            template[Attribute.APPLICATION] = application
        return list(self._session.get_objects(template))

    def _data(self, application: str) -> dict[str, dict[str, str]]:
        """The data objects of ``application`` under the prefix: name → their JSON."""
        found: dict[str, dict[str, str]] = {}
        for obj in self._session.get_objects(
            {Attribute.CLASS: ObjectClass.DATA, Attribute.APPLICATION: application}
        ):
            try:
                label = str(obj[Attribute.LABEL])
                value = bytes(obj[Attribute.VALUE]) if label.startswith(self._prefix) else None
            except p11.ObjectHandleInvalid:
                continue  # destroyed by another process since the search found it
            if value is not None:
                found[label[len(self._prefix) :]] = json.loads(value)
        return found

    def _tombstone(self, name: str) -> dict[str, str] | None:
        objects = self._find(ObjectClass.DATA, self._label(name), _TOMBSTONE)
        return json.loads(bytes(objects[0][Attribute.VALUE])) if objects else None

    def _secret_keys(self, label: str) -> list[Any]:
        return self._find(ObjectClass.SECRET_KEY, label)

    def _master(self, name: str) -> Any:
        key = self._keys.get(name)
        if key is not None:
            return key
        if self._tombstone(name) is not None:
            self._destroy_leftovers(name)
            raise EpochDestroyed()
        found = self._secret_keys(self._label(name))
        if not found:
            raise EpochUnknown()
        if len(found) > 1:
            raise KeyringError(
                f"The token holds {len(found)} keys labelled {self._label(name)!r}; "
                "refusing to guess which one wraps the data."
            )
        self._keys[name] = found[0]
        return found[0]

    def _destroy_leftovers(self, name: str) -> None:
        self._keys.pop(name, None)
        for obj in [
            *self._secret_keys(self._label(name)),
            *self._find(ObjectClass.DATA, self._label(name), _KEY_META),
        ]:
            with contextlib.suppress(p11.ObjectHandleInvalid):
                obj.destroy()  # another process may have destroyed it first: gone either way
        if self._secret_keys(self._label(name)):
            raise p11.GeneralError()  # still there: try again (see _call)

    def _with_key(self, name: str, use: Callable[[Any], _T]) -> _T:
        try:
            return use(self._master(name))
        except p11.ObjectHandleInvalid:
            # Destroyed (or replaced) by another process since it was found.
            self._keys.pop(name, None)
            return use(self._master(name))

    # -- the provider interface --------------------------------------------

    async def create_key(self, name: str, now: datetime) -> KeyInfo:
        if not NAME.fullmatch(name):
            raise ValueError(f"invalid key name {name!r}")

        def create() -> KeyInfo:
            if self._tombstone(name) is not None:
                raise EpochDestroyed()
            label = self._label(name)
            meta = self._find(ObjectClass.DATA, label, _KEY_META)
            if self._secret_keys(label):
                created = (
                    json.loads(bytes(meta[0][Attribute.VALUE]))["created_at"] if meta else None
                )
                return KeyInfo(name, _parse_time(created) if created else now, None)
            self._session.generate_key(
                KeyType.AES,
                256,
                label=label,
                store=True,
                capabilities=MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT,
                template={
                    Attribute.PRIVATE: True,
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                    Attribute.WRAP: False,
                    Attribute.UNWRAP: False,
                },
            )
            if not meta:
                self._session.create_object(
                    {
                        Attribute.CLASS: ObjectClass.DATA,
                        Attribute.TOKEN: True,
                        Attribute.PRIVATE: True,
                        Attribute.LABEL: label,
                        Attribute.APPLICATION: _KEY_META,
                        Attribute.VALUE: json.dumps({"created_at": _iso(now)}).encode(),
                    }
                )
            return KeyInfo(name, now, None)

        return await self._run(create)

    async def destroy_key(self, name: str, now: datetime) -> bool:
        def destroy() -> bool:
            label = self._label(name)
            if self._tombstone(name) is not None:
                self._destroy_leftovers(name)
                return False
            keys = self._secret_keys(label)
            meta = self._find(ObjectClass.DATA, label, _KEY_META)
            if not keys:
                raise EpochUnknown()
            created = json.loads(bytes(meta[0][Attribute.VALUE]))["created_at"] if meta else None
            # The tombstone first: a stop between the two still reads as destroyed.
            self._session.create_object(
                {
                    Attribute.CLASS: ObjectClass.DATA,
                    Attribute.TOKEN: True,
                    Attribute.PRIVATE: True,
                    Attribute.LABEL: label,
                    Attribute.APPLICATION: _TOMBSTONE,
                    Attribute.VALUE: json.dumps(
                        {"created_at": created or _iso(now), "destroyed_at": _iso(now)}
                    ).encode(),
                }
            )
            self._destroy_leftovers(name)
            return True

        return await self._run(destroy)

    async def list_keys(self) -> list[KeyInfo]:
        def listed() -> list[KeyInfo]:
            out: dict[str, KeyInfo] = {}
            for name, meta in self._data(_KEY_META).items():
                out[name] = KeyInfo(name, _parse_time(meta["created_at"]), None)
            for name, stone in self._data(_TOMBSTONE).items():
                out[name] = KeyInfo(
                    name, _parse_time(stone["created_at"]), _parse_time(stone["destroyed_at"])
                )
                if self._secret_keys(self._label(name)):
                    self._destroy_leftovers(name)  # finish a destruction that stopped halfway
            return [out[name] for name in sorted(out)]

        return await self._run(listed)

    async def wrap(self, name: str, plaintext: bytes, aad: bytes) -> bytes:
        nonce = new_nonce()
        params = GCMParams(nonce, master_aad(name, aad), _TAG_BITS)

        def encrypt(key: Any) -> bytes:
            return bytes(
                key.encrypt(plaintext, mechanism=Mechanism.AES_GCM, mechanism_param=params)
            )

        return pack(nonce, await self._run(lambda: self._with_key(name, encrypt)))

    async def unwrap(self, name: str, wrapped: bytes, aad: bytes) -> bytes:
        nonce, ciphertext = unpack(wrapped)
        params = GCMParams(nonce, master_aad(name, aad), _TAG_BITS)

        def decrypt(key: Any) -> bytes | None:
            for _ in range(2):
                try:
                    return bytes(
                        key.decrypt(ciphertext, mechanism=Mechanism.AES_GCM, mechanism_param=params)
                    )
                except _NOT_AUTHENTIC:
                    continue
            return None

        plaintext = await self._run(lambda: self._with_key(name, decrypt))
        if plaintext is None:
            raise IntegrityError()
        return plaintext

    async def create_mac_key(self, name: str) -> None:
        label = self._label(f"mac:{name}")

        def create() -> None:
            if self._secret_keys(label):
                return
            self._session.generate_key(
                KeyType.GENERIC_SECRET,
                256,
                label=label,
                store=True,
                capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
                template={
                    Attribute.PRIVATE: True,
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                },
            )

        await self._run(create)

    def _mac_key(self, name: str) -> Any:
        key = self._macs.get(name)
        if key is None:
            found = self._secret_keys(self._label(f"mac:{name}"))
            if len(found) != 1:
                raise KeyringError(
                    f"The PKCS#11 token {self._token_label!r} has "
                    f"{'no' if not found else 'more than one'} {name!r} MAC key "
                    f"({self._label(f'mac:{name}')}); run 'kluis init' against this token."
                )
            key = self._macs[name] = found[0]
        return key

    def _with_mac(self, name: str, use: Callable[[Any], _T]) -> _T:
        def work() -> _T:
            try:
                return use(self._mac_key(name))
            except p11.ObjectHandleInvalid:
                self._macs.pop(name, None)
                return use(self._mac_key(name))

        try:
            return self._call(work)
        except p11.PKCS11Error as exc:
            raise StorageUnavailable(
                f"The PKCS#11 token did not answer ({type(exc).__name__})."
            ) from exc

    def mac(self, name: str, message: bytes) -> bytes:
        return self._with_mac(
            name, lambda key: bytes(key.sign(message, mechanism=Mechanism.SHA256_HMAC))
        )

    def verify_mac(self, name: str, message: bytes, tag: bytes) -> bool:
        return self._with_mac(
            name, lambda key: bool(key.verify(message, tag, mechanism=Mechanism.SHA256_HMAC))
        )

    async def check(self) -> None:
        await self._run(lambda: self._mac_key(AUDIT_MAC))

    async def close(self) -> None:
        def close() -> None:
            if self._session is not None:
                session, self._session = self._session, None
                with contextlib.suppress(p11.PKCS11Error):
                    session.close()
            if self._counted:
                with _LIBRARIES_LOCK:
                    _SESSIONS[self._module] -= 1
                self._counted = False

        try:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._call, close)
        finally:
            self._thread.shutdown(wait=True)
