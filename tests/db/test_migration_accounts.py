"""Migration 0012 (accounts) on a vault that has tokens already: they get an expiry a
year after they were made, and keep working until then; and back down."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import Connection

from vault.db import create_engine, upgrade
from vault.db.migrate import _config
from vault.directory.people import authenticate
from vault.tokens import new_token


async def test_tokens_made_before_sessions_expire_a_year_after_they_were_made(db_url: str) -> None:
    engine = create_engine(db_url)
    made = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    token = new_token()
    try:
        await upgrade(engine, "0011")
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO people (id, name, role, created_at) "
                    "VALUES ('p1', 'A', 'admin', :made)"
                ),
                {"made": made.replace(tzinfo=None) if "sqlite" in db_url else made},
            )
            await conn.execute(
                text(
                    "INSERT INTO tokens (id, person_id, token_hash, created_at) "
                    "VALUES (:id, 'p1', :hash, :made)"
                ),
                {
                    "id": token.id,
                    "hash": token.secret_hash,
                    "made": made.replace(tzinfo=None) if "sqlite" in db_url else made,
                },
            )
        # To 0012 only: the later 0014a drops people's clear name, which
        # only 'kluis init' may, after sealing it (tests/directory/test_sealing.py).
        await upgrade(engine, "0012")
        secret = token.token.split(".", 1)[1]
        before = made + timedelta(days=364)
        info = await authenticate(engine, token.id, secret, before)
        assert info is not None
        assert info.kind == "api"
        assert await authenticate(engine, token.id, secret, made + timedelta(days=365)) is None

        def down_and_up(conn: Connection) -> None:
            config = _config()
            config.attributes["connection"] = conn
            command.downgrade(config, "0011")
            command.upgrade(config, "0012")

        async with engine.begin() as conn:
            await conn.run_sync(down_and_up)
    finally:
        await engine.dispose()
