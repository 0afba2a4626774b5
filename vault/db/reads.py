"""Batches of reads on one synchronous connection, in one hop.

With aiosqlite every statement crosses to the driver's thread and back
(about 0.6 ms here), so a request that gathers facts with a dozen small
queries spends most of its time hopping. ``Reader`` runs a plain function of
a synchronous :class:`~sqlalchemy.engine.Connection` instead: for SQLite on a
synchronous engine over the same file, in one trip to a thread of
:data:`vault.executors.DATABASE`; for
PostgreSQL through the async engine's ``run_sync``. The functions are written
once and serve both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from vault.db.engine import sqlite_twin
from vault.errors import StorageUnavailable
from vault.executors import DATABASE

_T = TypeVar("_T")


class Reader:
    def __init__(self, engine: AsyncEngine) -> None:
        self._async = engine
        self._sync: Engine | None = sqlite_twin(engine, pool_size=8)

    async def __call__(self, fn: Callable[[Connection], _T]) -> _T:
        try:
            if self._sync is not None:
                return await DATABASE.run(self._run, fn)
            async with self._async.connect() as conn:
                return await conn.run_sync(fn)
        except SQLAlchemyError as exc:
            raise StorageUnavailable("The database is unreachable; nothing was written.") from exc

    def _run(self, fn: Callable[[Connection], _T]) -> _T:
        assert self._sync is not None
        with self._sync.connect() as conn:
            return fn(conn)

    def dispose(self) -> None:
        if self._sync is not None:
            self._sync.dispose()
