"""The facts version and the answers kept under it, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import delete, insert, text, update
from sqlalchemy import event as sqla_event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tests.helpers.keystores import local_store
from vault.audit import event
from vault.audit.log import AuditLog
from vault.db import create_engine, upgrade
from vault.db.engine import is_sqlite
from vault.db.facts import FactsCache, _Probe
from vault.db.reads import Reader
from vault.db.schema import FACT_TABLES, people, tokens
from vault.keys.provider import audit_sign

NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


def _triggers(conn: Connection, url: str) -> set[tuple[str, str]]:
    if is_sqlite(url):
        rows = conn.execute(text("SELECT tbl_name, sql FROM sqlite_master WHERE type='trigger'"))
        return {
            (table, change)
            for table, sql in rows
            for change in ("INSERT", "UPDATE", "DELETE")
            if f"AFTER {change} ON {table}" in sql
        }
    rows = conn.execute(
        text("SELECT event_object_table, event_manipulation FROM information_schema.triggers")
    )
    return {(table, change) for table, change in rows}


async def test_every_fact_table_has_a_trigger_for_every_kind_of_change(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        await upgrade(engine)
        async with engine.connect() as conn:
            found = await conn.run_sync(_triggers, db_url)
        wanted = {(t, c) for t in FACT_TABLES for c in ("INSERT", "UPDATE", "DELETE")}
        assert wanted <= found, sorted(wanted - found)
    finally:
        await engine.dispose()


async def test_an_answer_is_kept_until_any_fact_changes_anywhere(db_url: str) -> None:
    engine = create_engine(db_url)
    other = create_engine(db_url)  # another process, or a person at a SQL prompt
    reader = Reader(engine)
    try:
        await upgrade(engine)
        async with engine.begin() as conn:
            await conn.execute(insert(people).values(id="p1", role="staff", created_at=NOW))
        cache: FactsCache[str, str] = FactsCache(reader, engine, size=2)
        loads: list[str] = []

        def load(name: str) -> Callable[[Connection], str | None]:
            def run(conn: Connection) -> str | None:
                loads.append(name)
                role = conn.execute(text("SELECT role FROM people WHERE id = 'p1'")).scalar()
                return None if name == "nobody" else f"{name}:{role}"

            return run

        assert await cache.get("a", load("a")) == "a:staff"
        assert await cache.get("a", load("a")) == "a:staff"
        assert loads == ["a"]
        # "There is none" is never kept.
        assert await cache.get("x", load("nobody")) is None
        assert await cache.get("x", load("nobody")) is None
        assert loads == ["a", "nobody", "nobody"]
        # A change through another engine is seen by the very next call.
        async with other.begin() as conn:
            await conn.execute(update(people).where(people.c.id == "p1").values(role="admin"))
        assert await cache.get("a", load("a")) == "a:admin"
        # A write to a table that is not a fact (a token) keeps the answers.
        async with other.begin() as conn:
            await conn.execute(
                insert(tokens).values(id="t1", person_id="p1", token_hash=b"h" * 32, created_at=NOW)
            )
        assert await cache.get("a", load("a")) == "a:admin"
        assert loads == ["a", "nobody", "nobody", "a"]
        # Bounded: the least recently used answer leaves first.
        await cache.get("b", load("b"))
        await cache.get("c", load("c"))
        await cache.get("a", load("a"))
        assert loads[-3:] == ["b", "c", "a"]
        # A deletion is a change too.
        async with other.begin() as conn:
            await conn.execute(delete(tokens))
            await conn.execute(delete(people))
        assert await cache.get("c", load("c")) == "c:None"
        cache.close()
    finally:
        reader.dispose()
        await engine.dispose()
        await other.dispose()


async def test_the_loop_side_read_finds_a_database_whatever_its_path(tmp_path: Path) -> None:
    folder = tmp_path / "groep #2 100%"
    engine = create_engine(f"sqlite+aiosqlite:///{folder}/kluis.db")
    try:
        await upgrade(engine)
        async with engine.begin() as conn:
            await conn.execute(insert(people).values(id="p1", role="staff", created_at=NOW))
        probe = _Probe(engine)
        assert await probe() == 1  # read on the loop, not left to the worker thread
        probe.close()
    finally:
        await engine.dispose()


@asynccontextmanager
async def telling_when_it_waits(
    engine: AsyncEngine, conn: AsyncConnection, waits: asyncio.Event
) -> AsyncIterator[None]:
    """Set ``waits`` once ``conn`` waits for a lock another transaction holds:
    on PostgreSQL when the server says so; on SQLite, where a waiting
    connection cannot be seen, once its first statement goes to the driver."""
    if engine.dialect.name != "postgresql":

        def sent(*_: object) -> None:
            waits.set()

        sqla_event.listen(conn.sync_connection, "before_cursor_execute", sent)
        try:
            yield
        finally:
            sqla_event.remove(conn.sync_connection, "before_cursor_execute", sent)
        return
    pid = await conn.scalar(text("SELECT pg_backend_pid()"))

    async def watch() -> None:
        async with engine.connect() as probe:
            while not waits.is_set():
                waiting = await probe.scalar(
                    text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"),
                    {"pid": pid},
                )
                if waiting == "Lock":
                    waits.set()
                await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch())
    try:
        yield
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)


async def test_recording_and_changing_facts_in_either_order_never_deadlocks(
    db_url: str, tmp_path: Path
) -> None:
    """Storing an item changes facts and then records it; destroying a key
    records and then changes facts. Both lock the facts version before the
    audit head, so two such transactions wait for each other, never deadlock."""
    engine = create_engine(db_url)
    try:
        await upgrade(engine)
        ring = await local_store(tmp_path).open()
        log = AuditLog(engine, audit_sign(ring), lambda: NOW)
        first_changed = asyncio.Event()
        second_waits = asyncio.Event()

        async def change_then_record() -> None:
            async with engine.begin() as conn:
                await conn.execute(insert(people).values(id="p1", role="staff", created_at=NOW))
                first_changed.set()
                await asyncio.wait_for(second_waits.wait(), 30)
                await log.append_in(conn, event("item.store"))

        async def record_then_change() -> None:
            await first_changed.wait()
            async with engine.begin() as conn, telling_when_it_waits(engine, conn, second_waits):
                await log.append_in(conn, event("item_key.destroy"))
                await conn.execute(insert(people).values(id="p2", role="staff", created_at=NOW))

        await asyncio.wait_for(asyncio.gather(change_then_record(), record_then_change()), 30)
        async with engine.connect() as conn:
            count = await conn.scalar(text("SELECT count(*) FROM audit_events"))
            version = await conn.scalar(text("SELECT n FROM facts_version"))
        assert count == 2
        assert version == 2
        await log.close()
    finally:
        await engine.dispose()
