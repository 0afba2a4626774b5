"""The link-signing secrets, shared by every instance through the database.

A link signed on one instance must verify on every other, and a rotation on
one must be honoured by all without a restart. So the secrets live in table
``signing_secrets``, each sealed under the key provider's ``signing`` master
key (its row id in the associated data), and every process keeps only a
copy, read again every ``links.signing_refresh_seconds``. The newest secret
signs; the newest :data:`KEPT` verify, so a rotation never breaks a link in
flight.

Signing never uses a stale copy: before a link is signed, one small read
asks for the newest secret's number (``max(seq)``), and the copy is read
again if that moved. Otherwise a process that had not yet taken up two
rotations would sign with a secret two behind the newest, and the next
rotation would drop it from the kept ones while the link still had hours to
run. Verifying is the hot path and asks nothing of the database while the
copy is fresh: a link signed with a newer secret than the copy holds is a
miss, settled below.

A link that does not verify with the copy (a *miss*) may be signed with a
secret another process has just seen: then this process reads the secrets
again before it answers, so a link signed with a secret committed to the
database verifies on every process at once. The read that settles a miss is
one that began after the miss arrived (one that began earlier may have come
just before the commit: two rotations a second apart). Reads for misses are
at least :data:`MISS_INTERVAL` apart, so a miss that comes sooner waits for
the next one (at most that long); all misses waiting share it. However many
forged links arrive, a process reads the secrets about once a second, and
each of them is refused after waiting at most that second.

``kluis init`` makes the first secret (:func:`ensure`), and moves the ones a
version-1 keyring file kept; ``kluis keys rotate-signing`` adds one (:func:`rotate`).
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from vault.crypto._primitives import encode_parts, random_bytes
from vault.db.schema import signing_secrets
from vault.keys.provider import SIGNING_KEY, KeyProvider, KeyringError
from vault.tokens import new_id

#: How many secrets verify: a link signed with a retired one keeps working
#: until it falls off this list.
KEPT = 3
SECRET_SIZE = 32
#: The least time between two reads caused by links that did not verify
#: (and the longest such a link waits for its read).
MISS_INTERVAL = 1.0


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


def _aad(secret_id: str) -> bytes:
    return encode_parts(b"kluis-signing-v1", secret_id)


_NEWEST_FIRST = select(signing_secrets).order_by(signing_secrets.c.seq.desc())
_NEWEST_SEQ = select(func.max(signing_secrets.c.seq))


class SigningSecrets:
    """This process's copy of the shared secrets, kept fresh."""

    def __init__(
        self,
        engine: AsyncEngine,
        provider: KeyProvider,
        refresh_seconds: float = 30.0,
        miss_interval: float = MISS_INTERVAL,
    ) -> None:
        self._engine, self._provider, self._refresh = engine, provider, refresh_seconds
        self._miss_interval = miss_interval
        self._secrets: tuple[bytes, ...] = ()
        #: The number (``seq``) of the newest secret in the copy.
        self._newest: int | None = None
        #: Secrets this process had in its copy that fell off the kept ones
        #: (the newest :data:`KEPT`): only to say why a link was refused.
        self._retired: tuple[bytes, ...] = ()
        #: When the last read that succeeded began, and the last one tried
        #: (monotonic): a failed read also counts for the miss interval.
        self._read_at = self._tried_at = float("-inf")
        self._lock = asyncio.Lock()

    async def current(self) -> tuple[bytes, ...]:
        """The secrets, oldest first (the last one signs)."""
        if time.monotonic() - self._read_at >= self._refresh:
            async with self._lock:
                if time.monotonic() - self._read_at >= self._refresh:
                    await self._load()
        return self._secrets

    async def for_signing(self) -> tuple[bytes, ...]:
        """The secrets, oldest first, the last one the newest in the database
        as of this call: one small read of the newest secret's number, and
        the secrets read again only if it is not the copy's."""
        async with self._engine.connect() as conn:
            newest = await conn.scalar(_NEWEST_SEQ)
        if newest is None or newest != self._newest:
            async with self._lock:
                if newest is None or newest != self._newest:
                    await self._load()
        return self._secrets

    @property
    def retired(self) -> tuple[bytes, ...]:
        """The last :data:`KEPT` secrets this process saw retired, oldest first:
        a link signed with one is refused, and the refusal can say why."""
        return self._retired

    async def after_miss(self) -> tuple[bytes, ...] | None:
        """Read again after a link did not verify: the secrets if they changed
        since, else None. The read is one that began after this call, so it
        sees every secret committed before the link arrived; it waits until
        :data:`MISS_INTERVAL` has passed since the last read began, and the
        calls waiting meanwhile share it."""
        asked, before = time.monotonic(), self._secrets
        async with self._lock:
            if self._read_at < asked:  # no read has begun since this link arrived
                wait = self._tried_at + self._miss_interval - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                await self._load()
        return self._secrets if self._secrets != before else None

    async def refresh(self) -> tuple[bytes, ...]:
        """Read the secrets again now."""
        async with self._lock:
            await self._load()
        return self._secrets

    async def _load(self) -> None:
        began = self._tried_at = time.monotonic()
        async with self._engine.connect() as conn:
            rows = (await conn.execute(_NEWEST_FIRST.limit(KEPT))).all()
        if not rows:
            raise KeyringError("There is no link-signing secret; run 'kluis init'.")
        opened = [
            await self._provider.unwrap(SIGNING_KEY, row.sealed, _aad(row.id))
            for row in reversed(rows)
        ]
        kept = tuple(opened)
        gone = [secret for secret in self._secrets if secret not in kept]
        retired = [secret for secret in self._retired if secret not in kept]
        self._retired = tuple([*retired, *gone][-KEPT:])
        self._secrets, self._read_at = kept, began
        self._newest = rows[0].seq


async def _add(engine: AsyncEngine, provider: KeyProvider, secret: bytes, now: datetime) -> int:
    secret_id = new_id()
    sealed = await provider.wrap(SIGNING_KEY, secret, _aad(secret_id))
    async with engine.begin() as conn:
        await conn.execute(
            insert(signing_secrets).values(id=secret_id, created_at=now, sealed=sealed)
        )
        ids = (await conn.scalars(_NEWEST_FIRST.with_only_columns(signing_secrets.c.id))).all()
        if len(ids) > KEPT:
            await conn.execute(delete(signing_secrets).where(signing_secrets.c.id.in_(ids[KEPT:])))
    return min(len(ids), KEPT)


async def rotate(engine: AsyncEngine, provider: KeyProvider, now: datetime) -> int:
    """A new secret signs every link issued from now on (on every instance:
    :meth:`SigningSecrets.for_signing`); returns how many verify."""
    return await _add(engine, provider, random_bytes(SECRET_SIZE), now)


async def ensure(
    engine: AsyncEngine, provider: KeyProvider, now: datetime, legacy: list[bytes] | None = None
) -> bool:
    """Make the first secret (or move ``legacy`` ones in) unless there is one;
    whether anything was made. Callers hold ``kluis init``'s lock."""
    await provider.create_key(SIGNING_KEY, now)
    async with engine.connect() as conn:
        if await conn.scalar(select(func.count()).select_from(signing_secrets)):
            return False
    for secret in legacy or [random_bytes(SECRET_SIZE)]:
        await _add(engine, provider, secret, now)
    return True
