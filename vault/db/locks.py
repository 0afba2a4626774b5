"""Locks shared by every process on one database.

* :func:`in_transaction`: an exclusive lock for the rest of the caller's
  transaction (PostgreSQL ``pg_advisory_xact_lock``; SQLite's write lock,
  taken by a write that changes nothing). Short work that must not run twice
  at once anywhere: creating a master key on a token that has no "create if
  absent".
* :func:`held`: a lock held by this process for as long as a block runs,
  released at once when the process dies however it dies (PostgreSQL
  ``pg_advisory_lock`` on a connection of its own; on SQLite ``flock`` on a
  file beside the database). For a job that must run once at a time and must
  never be wedged by a run that was killed: ``kluis init``, the retention run.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vault.db.engine import is_sqlite, sqlite_file
from vault.db.schema import installation
from vault.errors import Conflict, StorageUnavailable

#: A write that changes nothing but takes SQLite's write lock.
_TAKE_SQLITE_WRITE_LOCK = (
    update(installation).where(installation.c.key == "").values(value=installation.c.value)
)


def _key(name: str) -> int:
    """A stable 63-bit advisory lock key for ``name``."""
    return int.from_bytes(hashlib.sha256(f"kluis/{name}".encode()).digest()[:8], "big") >> 1


async def in_transaction(conn: AsyncConnection, name: str) -> None:
    """Hold the lock ``name`` until the caller's transaction ends."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _key(name)})
    else:
        await conn.execute(_TAKE_SQLITE_WRITE_LOCK)


@contextlib.asynccontextmanager
async def held(
    engine: AsyncEngine, name: str, *, wait: float = 0.0, busy: str = ""
) -> AsyncIterator[None]:
    """Hold the lock ``name`` while the block runs.

    ``wait`` seconds at most for another holder to finish; then
    :class:`~vault.errors.Conflict` with the message ``busy``.
    """
    url = engine.url.render_as_string(hide_password=False)
    message = busy or f"Another process holds the {name} lock; try again when it has finished."
    if is_sqlite(url):
        database = sqlite_file(engine)
        if database is None:  # in memory: one process by definition
            yield
            return
        async with _file_lock(Path(f"{database}.{name}.lock"), wait, message):
            yield
        return
    async with engine.connect() as conn:
        deadline = time.monotonic() + wait
        while True:
            got = await conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": _key(name)})
            await conn.commit()
            if got:
                break
            if time.monotonic() >= deadline:
                raise Conflict(message)
            await asyncio.sleep(0.05)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _key(name)})
                await conn.commit()


@contextlib.asynccontextmanager
async def _file_lock(path: Path, wait: float, message: str) -> AsyncIterator[None]:
    try:
        fd = await asyncio.to_thread(os.open, path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StorageUnavailable(f"The lock file {path} cannot be opened.") from exc
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise StorageUnavailable(f"The lock file {path} cannot be locked.") from exc
                if time.monotonic() >= deadline:
                    raise Conflict(message) from None
                await asyncio.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing releases the lock, as does the process's death
