"""Answers kept while the facts they come from stand still.

Every link answered re-reads who the caller is, what the item is, the
children's placements and consents and the item's key rows (the policy must
see them as they are at that moment). Those facts change rarely; reading
them all costs several statements per request. A database trigger on every
table in :data:`~vault.db.schema.FACT_TABLES` raises ``facts_version`` in
the same transaction as the change (migration 0009), so:

* a request reads that one number (one small statement), and
* reuses an answer computed at the same number, or computes it afresh.

The number is read *before* the facts: an answer is never filed under a
number older than the facts it holds, so a change committed at any moment
is seen by the next request that starts after it, in this process or any
other. Only wrapped keys and sealed bytes are kept, never an opened key.

On SQLite the number is read on the event loop itself, from a read-only
connection that never waits (no busy timeout): one row of a page that every
request reads, so it is in memory, and a trip to a worker thread would cost
ten times the read. If SQLite is busy for a moment, or the answer is not
kept, the read goes to the worker thread as usual. On PostgreSQL it is one
statement on the async engine.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Generic, TypeVar

from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from vault.db.engine import is_sqlite, sqlite_file
from vault.db.reads import Reader
from vault.db.schema import facts_version

_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")

_VERSION = select(facts_version.c.n).where(facts_version.c.id == 1)


def read_version(conn: Connection) -> int:
    return int(conn.execute(_VERSION).scalar_one())


class _Probe:
    """The facts version, read without a trip to a thread where that is safe."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sqlite: sqlite3.Connection | None = None
        self._postgres = not is_sqlite(engine.url.render_as_string(hide_password=False))
        self._path = sqlite_file(engine)
        # A file URI escapes what a plain "file:" string would misread ('#', '%').
        self._uri = f"{Path(self._path).resolve().as_uri()}?mode=ro" if self._path else ""

    async def __call__(self) -> int | None:
        """The number, or None if it cannot be read at once (ask the reader)."""
        if self._postgres:
            try:
                async with self._engine.connect() as conn:
                    return int((await conn.execute(_VERSION)).scalar_one())
            except SQLAlchemyError:
                return None
        if self._path is None:
            return None  # in memory: the reader's connection is the only one
        try:
            if self._sqlite is None:
                self._sqlite = sqlite3.connect(self._uri, uri=True, timeout=0)
            row = self._sqlite.execute("SELECT n FROM facts_version WHERE id = 1").fetchone()
        except sqlite3.Error:
            return None  # busy this instant, or not there: the worker thread waits for it
        return None if row is None else int(row[0])

    def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
            self._sqlite = None


class FactsCache(Generic[_K, _V]):
    """Up to ``size`` answers, each filed under the facts version it was read at."""

    def __init__(self, reader: Reader, engine: AsyncEngine, size: int = 2048) -> None:
        self._reader = reader
        self._probe = _Probe(engine)
        self._size = size
        self._entries: collections.OrderedDict[_K, tuple[int, _V]] = collections.OrderedDict()

    async def get(self, key: _K, load: Callable[[Connection], _V | None]) -> _V | None:
        """The answer for ``key`` as the facts are now; ``load`` computes it
        (None, for "there is no such thing", is never kept)."""
        kept = self._entries.get(key)
        if kept is not None and kept[0] == await self._probe():
            if key in self._entries:
                self._entries.move_to_end(key)
            return kept[1]

        def read(conn: Connection) -> tuple[int, _V | None, bool]:
            version = read_version(conn)
            if kept is not None and kept[0] == version:
                return version, kept[1], False
            return version, load(conn), True

        version, value, fresh = await self._reader(read)
        if fresh:
            self._entries.pop(key, None)
            if value is not None:
                self._entries[key] = (version, value)
                if len(self._entries) > self._size:
                    self._entries.popitem(last=False)
        elif key in self._entries:
            self._entries.move_to_end(key)
        return value

    def close(self) -> None:
        self._probe.close()
