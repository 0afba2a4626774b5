"""An id set as one parameter (vault/db/idsets.py), on SQLite and PostgreSQL:
the rows it names, whatever its size (none, one, more than either database
binds in one statement), and its negation."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from vault.db import create_engine, upgrade
from vault.db.idsets import among
from vault.db.schema import care_groups, children, locations

#: More ids than SQLite's default limit (32,766) or PostgreSQL's (32,767).
MANY = 40_000
AT = datetime(2026, 12, 2, tzinfo=UTC)


async def with_children(db_url: str, n: int) -> tuple[AsyncEngine, list[str]]:
    engine = create_engine(db_url)
    await upgrade(engine)
    ids = [f"child{i:07d}" for i in range(n)]
    async with engine.begin() as conn:
        await conn.execute(insert(locations).values(id="L", created_at=AT))
        await conn.execute(insert(care_groups).values(id="G", location_id="L", created_at=AT))
        await conn.execute(
            insert(children), [{"id": c, "group_id": "G", "created_at": AT} for c in ids]
        )
    return engine, ids


async def test_an_id_set_names_exactly_its_rows_and_none_for_an_empty_set(db_url: str) -> None:
    engine, ids = await with_children(db_url, 50)
    try:
        async with engine.connect() as conn:

            async def named(wanted: list[str]) -> list[str]:
                rows = await conn.scalars(
                    select(children.c.id).where(among(conn, children.c.id, wanted))
                )
                return sorted(rows.all())

            assert await named([]) == []
            assert await named([ids[3]]) == [ids[3]]
            # Unknown ids name nothing; duplicates name a row once; quotes are data.
            assert await named([ids[7], "nobody", ids[7], 'it\'s "x"', ids[1]]) == [
                ids[1],
                ids[7],
            ]
            others = await conn.scalars(
                select(children.c.id).where(~among(conn, children.c.id, ids[:10]))
            )
            assert sorted(others.all()) == ids[10:]
            everyone = await conn.scalars(
                select(children.c.id).where(~among(conn, children.c.id, []))
            )
            assert sorted(everyone.all()) == ids
    finally:
        await engine.dispose()


def bind_limit(db_url: str) -> int:
    """Bound parameters one statement may have: PostgreSQL's wire protocol
    counts them in 16 bits; SQLite's limit is its build's (32,766 by
    default, 250,000 in Debian's)."""
    if not db_url.startswith("sqlite"):
        return 32_767
    return sqlite3.connect(":memory:").getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)


async def test_a_set_larger_than_the_bind_limit_works_where_a_plain_in_list_fails(
    db_url: str,
) -> None:
    engine, ids = await with_children(db_url, 200)
    unknown = [f"gone{i}" for i in range(max(MANY, bind_limit(db_url) + 1))]
    try:
        async with engine.connect() as conn:
            # The plain IN list binds each id, past the database's limit.
            with pytest.raises(DBAPIError):
                await conn.execute(select(func.count()).where(children.c.id.in_(unknown)))
        async with engine.begin() as conn:
            count = await conn.scalar(
                select(func.count()).where(among(conn, children.c.id, ids[::2] + unknown))
            )
            assert count == 100
            changed = await conn.execute(
                update(children)
                .where(among(conn, children.c.id, unknown + ids[1::2]))
                .values(placement_end=AT.date())
            )
            assert changed.rowcount == 100
            removed = await conn.execute(
                delete(children).where(
                    among(conn, children.c.id, ids + unknown), children.c.placement_end.is_(None)
                )
            )
            assert removed.rowcount == 100
            left = await conn.scalars(select(children.c.id))
            assert sorted(left.all()) == ids[1::2]
    finally:
        await engine.dispose()
