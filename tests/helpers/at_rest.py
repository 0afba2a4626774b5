"""What a backup reader gets of the database: its bytes, to search for clear text.

SQLite: the database file and its write-ahead log. PostgreSQL: a
``pg_dump`` and, after a checkpoint, the heap files of the tables named
(a dropped column or an old row version lives on there, not in a dump).
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import text

from tests.servers import PostgresServer
from vault.db import create_engine


async def database_bytes(
    database_url: str, postgres: PostgresServer | None, tables: Sequence[str]
) -> bytes:
    if postgres is None:
        database = Path(database_url.split("///", 1)[1])
        files = sorted(database.parent.glob(database.name + "*"))
        assert files
        return b"".join(path.read_bytes() for path in files)
    name = database_url.rsplit("/", 1)[1]
    dumped = await asyncio.to_thread(
        subprocess.run,
        [
            f"{postgres.bindir}/pg_dump",
            "-h127.0.0.1",
            f"-p{postgres.port}",
            f"-U{postgres.user}",
            name,
        ],
        capture_output=True,
        check=True,
    )
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("CHECKPOINT"))
            paths = [
                await conn.scalar(text(f"SELECT pg_relation_filepath('{table}')"))
                for table in tables
            ]
    finally:
        await engine.dispose()
    heaps = b"".join((postgres.dir / "data" / str(path)).read_bytes() for path in paths)
    return dumped.stdout + heaps
