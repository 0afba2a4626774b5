"""Migration 0017a on a vault whose accounts kept their sign-in address in
clear: the address becomes its keyed hash, the account still signs in by it
(in any case), and after ``kluis init`` no byte of the address is left in
the database, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, select, text

from tests.helpers.accounts import accept, invitation_token, person, sign_in
from tests.helpers.api import start
from tests.helpers.at_rest import database_bytes
from vault.api.resources import DB
from vault.config import DatabaseSettings, Settings
from vault.db import create_engine
from vault.db.migrate import downgrade
from vault.db.schema import accounts, people

ADDRESS = "Gerbrich.Zandstra-Hofman@Voorbeeld.nl"


async def test_account_addresses_become_their_keyed_hash(
    db_url: str, tmp_path: Path, aiohttp_client: Any, request: pytest.FixtureRequest
) -> None:
    postgres = None if db_url.startswith("sqlite") else request.getfixturevalue("postgres_server")
    settings = Settings(data_dir=tmp_path / "data", database=DatabaseSettings(url=db_url))
    api = await start(settings, aiohttp_client)
    person_id = await person(api, "guardian", ADDRESS, "Gerbrich")
    await api.ok("POST", f"/v1/people/{person_id}/invitations")
    assert (await accept(api, await invitation_token(api, ADDRESS)))[0] == 201
    await api.client.close()

    # Back to 0016, the account holding its address in clear as it did then.
    engine = create_engine(db_url)
    try:
        await downgrade(engine, "0016")
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE accounts SET email = :email WHERE person_id = :id"),
                {"email": ADDRESS.lower(), "id": person_id},
            )
    finally:
        await engine.dispose()
    assert ADDRESS.lower().encode() in await database_bytes(db_url, postgres, ["accounts"])

    # 'kluis init' (start runs it) migrates and compacts.
    api = await start(settings, aiohttp_client)
    async with api.client.app[DB].connect() as conn:
        columns = await conn.run_sync(
            lambda sync: {c["name"] for c in inspect(sync).get_columns("accounts")}
        )
        assert "email" not in columns
        hashed = await conn.scalar(
            select(accounts.c.email_hash).where(accounts.c.person_id == person_id)
        )
        assert hashed is not None
        assert hashed == await conn.scalar(
            select(people.c.email_hash).where(people.c.id == person_id)
        )
    for typed in (ADDRESS, ADDRESS.upper()):
        status, body = await sign_in(api, typed)
        assert status == 201, body
    await api.client.close()
    dump = await database_bytes(db_url, postgres, ["accounts"])
    for spelled in (ADDRESS, ADDRESS.lower()):
        assert spelled.encode() not in dump, spelled
