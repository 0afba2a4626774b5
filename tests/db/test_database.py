"""The database on SQLite and a real PostgreSQL: migrations, durability settings."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from tests.servers import free_port
from vault.db import create_engine, current_revision, head_revision, is_current, reachable, upgrade
from vault.db.schema import metadata, people, tokens
from vault.directory.people import _MEMBERSHIPS
from vault.errors import StorageUnavailable


async def test_migrations_bring_an_empty_database_to_head(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        assert await current_revision(engine) is None
        assert not await is_current(engine)
        await upgrade(engine)
        assert await current_revision(engine) == head_revision()
        await upgrade(engine)  # a second run changes nothing
        assert await is_current(engine)
    finally:
        await engine.dispose()


async def test_migrations_match_the_schema_module(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        await upgrade(engine)

        def diff(conn: Connection) -> list[object]:
            return list(compare_metadata(MigrationContext.configure(conn), metadata))

        async with engine.connect() as conn:
            assert await conn.run_sync(diff) == []
    finally:
        await engine.dispose()


@pytest.mark.sqlite
async def test_finding_what_a_person_is_linked_to_reads_no_table_whole(tmp_path: Path) -> None:
    """The policy's view of a person is asked at every call and link use: its
    memberships query must use an index on every table, the children too."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'plan.db'}")
    try:
        await upgrade(engine)

        def plan(conn: Connection) -> list[str]:
            query = _MEMBERSHIPS.compile(conn, compile_kwargs={"literal_binds": False})
            rows = conn.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {query}", tuple(["p"] * len(query.positiontup or []))
            )
            return [row[-1] for row in rows]

        async with engine.connect() as conn:
            steps = await conn.run_sync(plan)
        assert steps, "no plan"
        assert [step for step in steps if step.startswith("SCAN")] == [], steps
    finally:
        await engine.dispose()


async def test_constraints_are_enforced(db_url: str) -> None:
    engine = create_engine(db_url)
    now = datetime.now(UTC)
    try:
        await upgrade(engine)
        async with engine.begin() as conn:
            await conn.execute(insert(people).values(id="p1", role="admin", created_at=now))
            await conn.execute(
                insert(tokens).values(id="t1", person_id="p1", token_hash=b"h" * 32, created_at=now)
            )
        with pytest.raises(IntegrityError):  # a token of nobody
            async with engine.begin() as conn:
                await conn.execute(
                    insert(tokens).values(
                        id="t2", person_id="ghost", token_hash=b"g" * 32, created_at=now
                    )
                )
        with pytest.raises(IntegrityError):  # one hash, one token
            async with engine.begin() as conn:
                await conn.execute(
                    insert(tokens).values(
                        id="t3", person_id="p1", token_hash=b"h" * 32, created_at=now
                    )
                )
        async with engine.connect() as conn:
            assert await conn.scalar(select(func.count()).select_from(tokens)) == 1
            stored = await conn.scalar(select(people.c.created_at))
            assert stored is not None
    finally:
        await engine.dispose()


async def test_concurrent_writers(db_url: str) -> None:
    engine = create_engine(db_url)
    now = datetime.now(UTC)
    try:
        await upgrade(engine)

        async def add(i: int) -> None:
            async with engine.begin() as conn:
                await conn.execute(insert(people).values(id=f"p{i}", role="staff", created_at=now))

        await asyncio.gather(*(add(i) for i in range(40)))
        async with engine.connect() as conn:
            assert await conn.scalar(select(func.count()).select_from(people)) == 40
    finally:
        await engine.dispose()


@pytest.mark.sqlite
async def test_sqlite_is_durable_and_strict(tmp_path: object) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/k.db")
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(text("PRAGMA synchronous"))).scalar() == 2  # FULL
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_unreachable_postgres_fails_fast() -> None:
    engine = create_engine(f"postgresql+asyncpg://nobody@127.0.0.1:{free_port()}/none")
    started = time.monotonic()
    try:
        with pytest.raises(StorageUnavailable):
            await reachable(engine)
    finally:
        await engine.dispose()
    assert time.monotonic() - started < 15


@pytest.mark.sqlite
async def test_a_failed_statement_leaves_no_open_driver_cursor(tmp_path: Path) -> None:
    """An open sqlite3 cursor left to the garbage collector can stall the event
    loop for the whole busy timeout (vault/db/engine.py says how)."""
    import gc
    import sqlite3

    from sqlalchemy import insert

    from vault.db.schema import installation

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'kluis.db'}")
    await upgrade(engine)
    async with engine.begin() as conn:
        await conn.execute(insert(installation).values(key="k", value="v"))

    def open_cursors() -> int:
        found = 0
        for obj in gc.get_objects():
            if isinstance(obj, sqlite3.Cursor):
                try:
                    obj.fetchone()
                except sqlite3.ProgrammingError:
                    continue  # closed
                found += 1
        return found

    gc.collect()
    gc.disable()
    try:
        before = open_cursors()
        for _ in range(5):
            with pytest.raises(IntegrityError):
                async with engine.begin() as conn:
                    await conn.execute(insert(installation).values(key="k", value="again"))
        assert open_cursors() == before
    finally:
        gc.enable()
        await engine.dispose()
