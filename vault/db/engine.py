"""Opening the database: SQLite by default, PostgreSQL at scale.

SQLite runs in WAL mode with ``synchronous=FULL``, so a committed row survives
a power cut, and with foreign keys enforced. Driver errors that mean "the
database cannot be reached" become :class:`~vault.errors.StorageUnavailable`
at the callers' boundary (:func:`reachable`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from vault._sqlite import PRAGMAS
from vault.errors import StorageUnavailable

log = logging.getLogger(__name__)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str) -> AsyncEngine:
    """An async engine for ``url`` with the pragmas and pool the vault needs."""
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=10, connect_args={"timeout": 10}
    )


def sqlite_file(engine: AsyncEngine) -> str | None:
    """The path of the engine's SQLite file (None for PostgreSQL or in memory)."""
    url = make_url(engine.url.render_as_string(hide_password=False))
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return url.database


def sqlite_twin(engine: AsyncEngine, pool_size: int) -> Engine | None:
    """A synchronous engine on the same SQLite file (None for PostgreSQL).

    With aiosqlite every statement crosses to the driver's thread and back;
    work that runs several statements does better to run them all on this
    engine in one trip to a worker thread.
    """
    url = engine.url.render_as_string(hide_password=False)
    if not is_sqlite(url):
        return None
    twin = create_sync_engine(
        make_url(url).set(drivername="sqlite"),
        connect_args={"check_same_thread": False, "timeout": 30},
        pool_size=pool_size,
        max_overflow=pool_size,
    )
    event.listen(twin, "connect", _sqlite_pragmas)
    return twin


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        for pragma in PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()


async def reachable(engine: AsyncEngine) -> None:
    """Raise ``StorageUnavailable`` unless a trivial query succeeds."""
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError) as exc:
        log.warning("database unreachable: %s", type(exc).__name__)
        raise StorageUnavailable("The database is unreachable; nothing was written.") from exc
