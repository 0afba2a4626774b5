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
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from sqlalchemy import select
from sqlalchemy.engine import Connection

from vault.db.reads import Reader
from vault.db.schema import facts_version

_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")

_VERSION = select(facts_version.c.n).where(facts_version.c.id == 1)


def read_version(conn: Connection) -> int:
    return int(conn.execute(_VERSION).scalar_one())


class FactsCache(Generic[_K, _V]):
    """Up to ``size`` answers, each filed under the facts version it was read at."""

    def __init__(self, reader: Reader, size: int = 2048) -> None:
        self._reader = reader
        self._size = size
        self._entries: collections.OrderedDict[_K, tuple[int, _V]] = collections.OrderedDict()

    async def get(self, key: _K, load: Callable[[Connection], _V | None]) -> _V | None:
        """The answer for ``key`` as the facts are now; ``load`` computes it
        (None, for "there is no such thing", is never kept)."""
        kept = self._entries.get(key)

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
