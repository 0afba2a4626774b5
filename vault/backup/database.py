"""A consistent copy of the database, and putting one back.

* **SQLite**: the online backup API copies the live file page by page under
  SQLite's own locking, so the copy is one transaction's view even while
  servers write. Restoring runs the same API the other way, into the live
  file, in one step.
* **PostgreSQL**: ``pg_dump`` in the custom format, run on a snapshot that a
  ``REPEATABLE READ`` transaction of ours exported and holds open; the list
  of blobs to copy is read in that same transaction, so the dump and the
  listing agree exactly. Restoring turns the dump into SQL (``pg_restore``
  with ``--clean --if-exists``) and runs it with ``psql`` in one
  transaction, after dropping the vault's tables: all of it or nothing.

The client programs are found on ``PATH``, else in Debian's
``/usr/lib/postgresql/*/bin``; the password goes to them in ``PGPASSWORD``,
never on a command line. This module may touch the database and run those
programs; it knows nothing of blobs or keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vault.db.engine import sqlite_file
from vault.db.schema import metadata
from vault.errors import KluisError

SQLITE_COPY = "database.sqlite"
POSTGRES_DUMP = "database.dump"
_PUMP = 1024 * 1024


class DatabaseCopyFailed(KluisError):
    default_message = "The database could not be copied; nothing was written."


def kind(engine: AsyncEngine) -> str:
    return "sqlite" if sqlite_file(engine) is not None else "postgresql"


@contextlib.asynccontextmanager
async def snapshot(
    engine: AsyncEngine, dest: Path
) -> AsyncIterator[Callable[[Callable[[Connection], Any]], Any]]:
    """Copy the database into ``dest``; yields a function that runs a read on
    the copy's state (the blob listing), in the copy's own snapshot."""
    path = sqlite_file(engine)
    if path is not None:
        target = dest / SQLITE_COPY
        await asyncio.to_thread(_sqlite_copy, path, str(target))
        copy = f"file:{target}?mode=ro"

        async def read_sqlite(reader: Callable[[Connection], Any]) -> Any:
            def run() -> Any:
                from sqlalchemy import create_engine

                sync = create_engine("sqlite://", creator=lambda: sqlite3.connect(copy, uri=True))
                try:
                    with sync.connect() as conn:
                        return reader(conn)
                finally:
                    sync.dispose()

            return await asyncio.to_thread(run)

        yield read_sqlite
        return
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            exported = await conn.scalar(text("SELECT pg_export_snapshot()"))
            await _pg_dump(engine, str(exported), dest / POSTGRES_DUMP)

            async def read_postgres(reader: Callable[[Connection], Any]) -> Any:
                return await _run_sync(conn, reader)

            yield read_postgres


async def _run_sync(conn: AsyncConnection, reader: Callable[[Connection], Any]) -> Any:
    return await conn.run_sync(reader)


def _sqlite_copy(source: str, target: str) -> None:
    with (
        contextlib.closing(sqlite3.connect(source, timeout=30)) as src,
        contextlib.closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst, pages=4096)
        # One self-contained file (the live database's WAL mode came with the pages).
        dst.execute("PRAGMA journal_mode=DELETE")
    os.chmod(target, 0o600)


async def restore(engine: AsyncEngine, source: Path) -> None:
    """Replace the database's contents by the copy in ``source``."""
    path = sqlite_file(engine)
    if path is not None:
        copy = source / SQLITE_COPY
        if not copy.is_file():
            raise DatabaseCopyFailed("The backup holds no SQLite copy; was it taken on PostgreSQL?")
        await engine.dispose()  # no connection of ours keeps the old pages
        await asyncio.to_thread(_sqlite_restore, str(copy), path)
        return
    dump = source / POSTGRES_DUMP
    if not dump.is_file():
        raise DatabaseCopyFailed("The backup holds no PostgreSQL dump; was it taken on SQLite?")
    await engine.dispose()
    await _pg_restore(engine, dump)


def _sqlite_restore(copy: str, live: str) -> None:
    Path(live).parent.mkdir(parents=True, exist_ok=True)
    with (
        contextlib.closing(sqlite3.connect(f"file:{copy}?mode=ro", uri=True)) as src,
        contextlib.closing(sqlite3.connect(live, timeout=30)) as dst,
    ):
        src.backup(dst, pages=4096)


# -- PostgreSQL's client programs ----------------------------------------------


def _program(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
        found = candidates[-1] if candidates else None
    if found is None:
        raise DatabaseCopyFailed(
            f"{name} is needed to back up or restore a PostgreSQL database; install the "
            "PostgreSQL client programs (Debian: postgresql-client) of the server's version."
        )
    return found


def _connection(engine: AsyncEngine) -> tuple[list[str], dict[str, str]]:
    url = make_url(engine.url.render_as_string(hide_password=False))
    args = ["--host", url.host or "localhost", "--port", str(url.port or 5432)]
    if url.username:
        args += ["--username", url.username]
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    ssl = url.query.get("ssl") or url.query.get("sslmode")
    if isinstance(ssl, str):
        env["PGSSLMODE"] = "require" if ssl in ("true", "1") else ssl
    return [*args, "--dbname", str(url.database)], env


async def _run(argv: list[str], env: dict[str, str], what: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await process.communicate()
    if process.returncode != 0:
        raise DatabaseCopyFailed(f"{what} failed: {_first_line(err)}")


def _first_line(err: bytes) -> str:
    lines = [line.strip() for line in err.decode(errors="replace").splitlines() if line.strip()]
    return lines[0] if lines else "no message"


async def _pg_dump(engine: AsyncEngine, snapshot_id: str, target: Path) -> None:
    args, env = _connection(engine)
    argv = [_program("pg_dump"), *args, "--format=custom", f"--snapshot={snapshot_id}"]
    argv += ["--no-owner", "--no-privileges", "--file", str(target)]
    await _run(argv, env, "pg_dump")


async def _pg_restore(engine: AsyncEngine, dump: Path) -> None:
    args, env = _connection(engine)
    # What a newer or older schema has beyond the dump's goes first, so the
    # result is exactly the dump's, in the one transaction psql runs.
    tables = [*(t.name for t in metadata.sorted_tables), "alembic_version"]
    preamble = "".join(f'DROP TABLE IF EXISTS "{name}" CASCADE;\n' for name in tables)
    psql = await asyncio.create_subprocess_exec(
        _program("psql"),
        *args,
        "--quiet",
        "--no-psqlrc",
        "--single-transaction",
        "--set=ON_ERROR_STOP=1",
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    script = await asyncio.create_subprocess_exec(
        _program("pg_restore"),
        "--clean",
        "--if-exists",
        "--no-owner",
        "--no-privileges",
        "--file=-",
        str(dump),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert psql.stdin is not None
    assert script.stdout is not None
    assert script.stderr is not None
    piped = True
    try:
        psql.stdin.write(preamble.encode())
        while chunk := await script.stdout.read(_PUMP):
            psql.stdin.write(chunk)
            await psql.stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        piped = False  # psql stopped at an error: its message says which
    script_err = await script.stderr.read()
    await script.wait()
    if script.returncode != 0:
        # psql commits at the end of its input: it must never see the end of a
        # script that stopped half-way.
        with contextlib.suppress(ProcessLookupError):
            psql.kill()
        await psql.wait()
        raise DatabaseCopyFailed(
            f"pg_restore failed, nothing was changed: {_first_line(script_err)}"
        )
    if piped:
        psql.stdin.close()
    _, psql_err = await psql.communicate()
    if psql.returncode != 0:
        raise DatabaseCopyFailed(f"psql failed, nothing was changed: {_first_line(psql_err)}")
