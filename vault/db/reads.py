"""Batches of reads on one synchronous connection, in one hop.

With aiosqlite every statement crosses to the driver's thread and back
(about 0.6 ms here), so a request that gathers facts with a dozen small
queries spends most of its time hopping. ``Reader`` runs a plain function of
a synchronous :class:`~sqlalchemy.engine.Connection` instead: for SQLite on a
synchronous engine over the same file, in one trip to a worker thread; for
PostgreSQL through the async engine's ``run_sync``. The functions are written
once and serve both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from vault.db.engine import _sqlite_pragmas, is_sqlite
from vault.errors import StorageUnavailable

_T = TypeVar("_T")


class Reader:
    def __init__(self, engine: AsyncEngine) -> None:
        self._async = engine
        self._sync: Engine | None = None
        url = engine.url
        if is_sqlite(url.render_as_string(hide_password=False)):
            sync_url = make_url(url.render_as_string(hide_password=False)).set(drivername="sqlite")
            self._sync = create_sync_engine(
                sync_url,
                connect_args={"check_same_thread": False, "timeout": 30},
                pool_size=8,
                max_overflow=8,
            )
            event.listen(self._sync, "connect", _sqlite_pragmas)

    async def __call__(self, fn: Callable[[Connection], _T]) -> _T:
        try:
            if self._sync is not None:
                return await asyncio.to_thread(self._run, fn)
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
