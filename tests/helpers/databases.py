"""Databases already at the schema's head, for tests that want an initialised
vault rather than the migrations.

Bringing an empty database to the head ran every Alembic migration for every
test that starts a vault (``tests/helpers/api.py``'s :func:`start`): most of
that fixture's setup. So the schema is made once per test process, by the
same migrations and compaction ``kluis init`` runs, into a template: on SQLite
a file copied to a fresh test's database path, on PostgreSQL a template
database a fresh test's database is created from. ``kluis init`` then finds
the schema current and creates the rest (keys, link-signing secret, admin),
as it does on a vault whose schema an upgrade brought to the head.

Only a database that is still empty is filled: one a test made (an old
revision, rows of its own) is left as it is. The migrations from an empty
database keep tests of their own (tests/db/test_database.py, the
test_migration_*.py modules, and every test that runs ``kluis init`` on a
fresh data directory).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from vault.db import create_engine, head_revision, upgrade
from vault.db.engine import is_sqlite
from vault.directory.sealing import compact

#: Template files (SQLite) and databases (PostgreSQL, by server), this process's.
_SQLITE: dict[str, Path] = {}
_POSTGRES: set[tuple[str, int]] = set()


async def _migrated(url: str) -> None:
    engine = create_engine(url)
    try:
        await upgrade(engine)
        await compact(engine)
    finally:
        await engine.dispose()


async def _sqlite_template() -> Path:
    head = head_revision()
    path = _SQLITE.get(head)
    if path is None:
        folder = Path(tempfile.mkdtemp(prefix="kluis-schema-"))
        atexit.register(shutil.rmtree, folder, True)
        path = folder / "head.db"
        await _migrated(f"sqlite+aiosqlite:///{path}")
        _SQLITE[head] = path
    return path


def _fresh(database: str) -> bool:
    return not Path(database).exists() and not Path(f"{database}-wal").exists()


def _copy(template: Path, database: str) -> None:
    target = Path(database)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    shutil.copyfile(template, target)


async def _fill_sqlite(database: str) -> None:
    if _fresh(database):
        _copy(await _sqlite_template(), database)


async def _execute(url: str, database: str, *statements: str) -> int:
    """Run ``statements`` on ``database`` of the server at ``url``, outside a
    transaction (CREATE DATABASE needs it); the last one's first value."""
    engine = create_async_engine(
        make_url(url).set(database=database), isolation_level="AUTOCOMMIT", poolclass=NullPool
    )
    try:
        async with engine.connect() as conn:
            value = None
            for statement in statements:
                result = await conn.execute(text(statement))
                value = result.scalar() if result.returns_rows else None
            return int(value or 0)
    finally:
        await engine.dispose()


async def _postgres_template(url: str) -> str:
    u = make_url(url)
    key = (str(u.host), int(u.port or 5432))
    name = f"kluis_head_{head_revision().lower()}"
    if key in _POSTGRES and await _execute(
        url, "postgres", f"SELECT count(*) FROM pg_database WHERE datname = '{name}'"
    ):
        return name
    # Not made yet on this server (or on another server on that port before).
    await _execute(
        url, "postgres", f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"'
    )
    await _migrated(u.set(database=name).render_as_string(hide_password=False))
    _POSTGRES.add(key)
    return name


async def _fill_postgres(url: str) -> None:
    database = make_url(url).database
    assert database
    relations = await _execute(
        url,
        database,
        "SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
        "ON n.oid = c.relnamespace WHERE n.nspname = 'public'",
    )
    if relations:
        return
    template = await _postgres_template(url)
    await _execute(
        url,
        "postgres",
        f'DROP DATABASE "{database}"',
        f'CREATE DATABASE "{database}" TEMPLATE "{template}"',
    )


async def at_head(url: str) -> None:
    """Bring the database at ``url`` to the head schema if it is still empty
    (a SQLite file not made yet, a PostgreSQL database without a relation)."""
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            await _fill_sqlite(database)
        return
    await _fill_postgres(url)
