"""Passwords: Argon2id hashes, the rules a new one must meet, and a check that
takes as long for an address nobody has as for one that exists.

Hashing and checking run in a small pool of threads of their own (argon2-cffi
releases the interpreter lock while it works), never on the event loop, and
never more at once than the pool is wide: a burst of sign-ins queues instead
of taking every core and all the memory.

A password is normalised to Unicode NFKC before it is counted or hashed
(NIST SP 800-63B, 5.1.1.2), so the same password typed on two keyboards is
one password. Nothing else changes it: the request models take it exactly as
sent (spaces count), and only this module looks inside it.

A new password holding a number shaped like a citizen service number (nine
digits that pass the eleven-test, as :mod:`vault.directory.bsn` finds them)
is refused as a common one is: 400 ``invalid_input`` saying why, not 422
``bsn_not_stored``. A personal number is guessed first by anyone who knows
it (an employer, a school, the tax office), and the vault keeps nothing
derived from a BSN, not even a salted hash of it; but the password is no
record the vault declines to store, it is a password the rules refuse, so
it gets the password's answer. A password already set is never judged
again: signing in with it, or naming it as ``current``, is only a check
against its hash, so no rule added later locks anyone out.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import os
import secrets
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from vault.directory.bsn import contains_bsn
from vault.errors import InvalidInput

#: Argon2id with the OWASP Password Storage Cheat Sheet's recommendation:
#: "a minimum configuration of 19 MiB of memory, an iteration count of 2, and
#: 1 degree of parallelism". The memory is what makes guessing a stolen hash
#: on a GPU or an ASIC expensive; one lane, because a sign-in is one request
#: on one core and a server serves many at once, so more lanes would only
#: take cores from the other requests. bench/signin.py measures the rate.
MEMORY_KIB = 19 * 1024
TIME_COST = 2
PARALLELISM = 1
#: 16 bytes of salt and a 32-byte tag: argon2-cffi's defaults, RFC 9106's advice.
SALT_LEN = 16
HASH_LEN = 32

MIN_LENGTH = 12
#: No one types more, and a longer input is only a lever for making the
#: server hash megabytes.
MAX_LENGTH = 256

_COMMON = "common-passwords.txt.gz"
_T = TypeVar("_T")


def hasher() -> PasswordHasher:
    return PasswordHasher(
        time_cost=TIME_COST,
        memory_cost=MEMORY_KIB,
        parallelism=PARALLELISM,
        hash_len=HASH_LEN,
        salt_len=SALT_LEN,
        type=Type.ID,
    )


def normalise(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


@functools.cache
def common_passwords() -> frozenset[str]:
    """The shipped list (scripts/make-common-passwords says how it was made),
    lower case; read on first use (about 8 MB in memory)."""
    raw = resources.files("vault.accounts").joinpath(_COMMON).read_bytes()
    return frozenset(gzip.decompress(raw).decode("utf-8").split("\n")) - {""}


def check_new_password(password: str, *, email: str | None = None, field: str = "password") -> str:
    """The normalised password if it may be used, else ``InvalidInput`` saying why."""
    text = normalise(password)
    if len(text) < MIN_LENGTH:
        raise InvalidInput(f"The field '{field}' must be at least {MIN_LENGTH} characters long.")
    if len(text) > MAX_LENGTH:
        raise InvalidInput(f"The field '{field}' must be at most {MAX_LENGTH} characters long.")
    folded = text.casefold()
    if folded in common_passwords() or (email is not None and folded == email.casefold()):
        raise InvalidInput(
            f"The field '{field}' is a commonly used password that is guessed first; "
            "choose another (a few unrelated words make a good one)."
        )
    if contains_bsn(text):
        raise InvalidInput(
            f"The field '{field}' holds a nine-digit number like a citizen service number, "
            "which others can know; choose another (a few unrelated words make a good one)."
        )
    return text


class Passwords:
    """Hashing and checking off the event loop, at most ``workers`` at a time."""

    def __init__(self, workers: int | None = None) -> None:
        self._hasher = hasher()
        width = workers or max(1, min(4, os.cpu_count() or 1))
        self._pool = ThreadPoolExecutor(max_workers=width, thread_name_prefix="argon2")
        # Checked when an address has no password, so that the answer takes
        # the time a real check takes (nobody learns who has an account).
        self._dummy = self._hasher.hash(secrets.token_urlsafe(24))

    async def hash(self, password: str) -> str:
        return await self._run(self._hasher.hash, normalise(password))

    async def verify(self, stored: str | None, password: str) -> bool:
        """Whether ``password`` matches ``stored``; with ``stored`` None the
        dummy hash is checked, and the answer is False."""
        target = stored if stored is not None else self._dummy
        matched = await self._run(self._check, target, normalise(password))
        return matched and stored is not None

    def needs_rehash(self, stored: str) -> bool:
        """Whether a hash was made with other parameters (rehash at sign-in)."""
        try:
            return self._hasher.check_needs_rehash(stored)
        except InvalidHashError:
            return True

    def _check(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    async def _run(self, fn: Callable[..., _T], *args: str) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
