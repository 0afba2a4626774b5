"""Opening the database: SQLite by default, PostgreSQL at scale.

SQLite runs in WAL mode with ``synchronous=FULL``, so a committed row survives
a power cut, and with foreign keys enforced. Driver errors that mean "the
database cannot be reached" become :class:`~vault.errors.StorageUnavailable`
at the callers' boundary (:func:`reachable`).
"""

from __future__ import annotations

import collections
import contextlib
import logging
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import event, text
from sqlalchemy import exc as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from vault.errors import StorageUnavailable

log = logging.getLogger(__name__)


#: Every SQLite connection: WAL with ``synchronous=FULL``, so a committed row
#: survives a power cut; foreign keys enforced; a writer waits up to 30 s for
#: the lock.
PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=30000",
)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str) -> AsyncEngine:
    """An async engine for ``url`` with the pragmas and pool the vault needs."""
    if is_sqlite(url):
        _close_failed_cursors()
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=10, connect_args={"timeout": 10}
    )


def _close_failed_cursors() -> None:
    """Make SQLAlchemy's aiosqlite adapter close the driver's cursor when a
    statement fails (SQLAlchemy 2.0 leaves it open).

    An open sqlite3 cursor left to the garbage collector is finalised on
    whatever thread collects it, usually the event loop's; finalising it
    resets its statement, which takes its connection's mutex. If that
    connection's own thread is meanwhile waiting in SQLite's busy handler for
    the write lock (holding the mutex), and the loop's own transaction holds
    that lock, the loop waits out the 30 s busy timeout: every write of the
    process stops, then fails. Seen with two servers on one SQLite file after
    an INSERT lost a race (IntegrityError) or a busy timeout, each failure
    seeding the next. So a failed statement's cursor is closed at once, on
    the connection's own thread. The methods below are SQLAlchemy 2.0's own
    (``AsyncAdapt_aiosqlite_cursor``), with that close added.
    """
    from sqlalchemy.dialects.sqlite import aiosqlite as adapter

    cursor_class: Any = adapter.AsyncAdapt_aiosqlite_cursor
    if getattr(cursor_class, "_kluis_closes_failed", False):
        return

    def execute(self: Any, operation: Any, parameters: Any = None) -> Any:
        cursor = None
        try:
            cursor = self.await_(self._connection.cursor())
            if parameters is None:
                self.await_(cursor.execute(operation))
            else:
                self.await_(cursor.execute(operation, parameters))
            if cursor.description:
                self.description = cursor.description
                self.lastrowid = self.rowcount = -1
                if not self.server_side:
                    self._rows = collections.deque(self.await_(cursor.fetchall()))
            else:
                self.description = None
                self.lastrowid = cursor.lastrowid
                self.rowcount = cursor.rowcount
            if not self.server_side:
                self.await_(cursor.close())
            else:
                self._cursor = cursor
        except Exception as error:
            _close_quietly(self, cursor)
            self._adapt_connection._handle_exception(error)

    def executemany(self: Any, operation: Any, seq_of_parameters: Any) -> Any:
        cursor = None
        try:
            cursor = self.await_(self._connection.cursor())
            self.await_(cursor.executemany(operation, seq_of_parameters))
            self.description = None
            self.lastrowid = cursor.lastrowid
            self.rowcount = cursor.rowcount
            self.await_(cursor.close())
        except Exception as error:
            _close_quietly(self, cursor)
            self._adapt_connection._handle_exception(error)

    cursor_class.execute, cursor_class.executemany = execute, executemany
    cursor_class._kluis_closes_failed = True


def _close_quietly(adapted: Any, cursor: Any) -> None:
    if cursor is None:
        return
    with contextlib.suppress(Exception):  # the statement's own error is the one to raise
        adapted.await_(cursor.close())


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


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database could not be reached or the
    connection to it was lost (it restarted, the network went), rather than
    that a statement was wrong: a refused connection, a connection closed
    mid-statement, the pool's time-out, a server starting up or shutting down.
    Whatever transaction was open was rolled back with the connection, so
    nothing was written."""
    if isinstance(exc, sa.DBAPIError):
        if exc.connection_invalidated or isinstance(exc, sa.OperationalError | sa.InterfaceError):
            return True
        exc = exc.orig or exc
    # PostgreSQL's SQLSTATE (asyncpg raises some of these unwrapped while it
    # connects): 08 connection exceptions, 57P0x shutting down or starting up.
    state = getattr(exc, "sqlstate", None)
    if isinstance(state, str) and (state.startswith("08") or state.startswith("57P")):
        return True
    return isinstance(exc, sa.TimeoutError | ConnectionError | TimeoutError)
