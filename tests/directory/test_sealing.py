"""Directory text sealed at rest (issue 18 item 4): what a backup reader sees.

A vault of the version before keeps people's names and e-mail addresses,
location and group names, and hold and block reasons in clear. ``kluis init``
seals them (between migrations 0014 and 0014a) and drops the clear columns;
afterwards neither the database file (SQLite, with its write-ahead log) nor
a ``pg_dump`` holds any of that text, while the vault still reads it and
finds a person by address.
"""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text

from tests.helpers.at_rest import database_bytes
from tests.servers import PostgresServer
from vault.audit.log import AuditLog
from vault.cli import init
from vault.config import DatabaseSettings, Settings
from vault.db import create_engine, upgrade
from vault.db.schema import holds, people
from vault.directory import children
from vault.directory.people import find_person_by_email, read_person
from vault.directory.sealing import Sealer
from vault.installation import initialise
from vault.keys import epochs, open_provider
from vault.keys.provider import AUDIT_MAC, audit_sign
from vault.keys.service import KeyService

NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
CLEAR = {
    "name": "Marieke Verschuren-Tromp",
    "email": "marieke.verschuren@voorbeeld.nl",
    "block": "Twijfel over identiteit bij telefoontje",
    "location": "Kindcentrum De Zonnewijzer",
    "group": "Groep Kikkerdril",
    "hold": "Geschil over voogdij, rechtszaak loopt",
    "child": "Fleurtje",
}


async def _old_vault(settings: Settings) -> tuple[str, str]:
    """A vault at revision 0011 with text in clear: (person id, child id)."""
    engine = create_engine(settings.database_url)
    provider = await open_provider(settings, create=True)
    try:
        await upgrade(engine, "0011")
        await provider.create_mac_key(AUDIT_MAC)
        keys = KeyService(engine, provider, AuditLog(engine, audit_sign(provider), lambda: NOW))
        await keys.ensure_master(epochs.live(NOW).name, NOW)
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO people (id, name, email, role, created_at, blocked_at, "
                    "block_reason) VALUES ('p' || :n, :name, :email, 'guardian', :at, :at, :why)"
                ),
                {
                    "n": "1" * 31,
                    "name": CLEAR["name"],
                    "email": CLEAR["email"],
                    "at": NOW,
                    "why": CLEAR["block"],
                },
            )
            await conn.execute(
                text("INSERT INTO locations (id, name, created_at) VALUES ('l1', :n, :at)"),
                {"n": CLEAR["location"], "at": NOW},
            )
            await conn.execute(
                text(
                    "INSERT INTO care_groups (id, location_id, name, created_at) "
                    "VALUES ('g1', 'l1', :n, :at)"
                ),
                {"n": CLEAR["group"], "at": NOW},
            )
        child = await children.create_child(
            engine, keys, children.Profile(CLEAR["child"], "X", date(2023, 1, 1)), "g1", NOW
        )
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO holds (id, child_id, category, reason, created_at, created_by) "
                    "VALUES ('h1', :child, NULL, :why, :at, :by)"
                ),
                {"child": child, "why": CLEAR["hold"], "at": NOW, "by": "p" + "1" * 31},
            )
    finally:
        await provider.close()
        await engine.dispose()
    return "p" + "1" * 31, child


async def _at_rest(settings: Settings, postgres: PostgresServer | None) -> bytes:
    return await database_bytes(
        settings.database_url, postgres, ("people", "locations", "care_groups", "holds")
    )


async def test_init_seals_what_an_older_vault_kept_in_clear(
    db_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    postgres = None if db_url.startswith("sqlite") else request.getfixturevalue("postgres_server")
    settings = Settings(data_dir=tmp_path / "data", database=DatabaseSettings(url=db_url))
    person_id, child_id = await _old_vault(settings)
    assert CLEAR["name"].encode() in await _at_rest(settings, postgres)  # the test can fail

    done = await initialise(settings, NOW)
    assert any("sealed directory text" in line and "1 people" in line for line in done.created)
    # Run again: nothing left to seal, nothing changed.
    with redirect_stdout(io.StringIO()) as out:
        assert await init(settings) == 0
    assert "nothing changed" in out.getvalue()

    engine = create_engine(settings.database_url)
    provider = await open_provider(settings)
    try:
        async with engine.connect() as conn:
            columns = await conn.run_sync(
                lambda sync: {
                    table: {c["name"] for c in inspect(sync).get_columns(table)}
                    for table in ("people", "locations", "care_groups", "holds")
                }
            )
        assert not {"name", "email", "block_reason"} & columns["people"]
        assert "name" not in columns["locations"] | columns["care_groups"]
        assert "reason" not in columns["holds"]
        await engine.dispose()
        dump = await _at_rest(settings, postgres)
        for word in CLEAR.values():
            assert word.encode() not in dump, word
            assert word.lower().encode() not in dump.lower(), word

        # The vault still reads it all, and finds the person by address.
        keys = KeyService(engine, provider, AuditLog(engine, audit_sign(provider), lambda: NOW))
        sealer = Sealer(engine, keys, provider)
        person = await read_person(engine, sealer, person_id)
        assert (person.name, person.email, person.blocked) == (CLEAR["name"], CLEAR["email"], True)
        for spelled in (CLEAR["email"], f"  {CLEAR['email'].upper()} "):
            assert await find_person_by_email(engine, provider, spelled) == person_id
        assert await find_person_by_email(engine, provider, "someone@else.nl") is None
        async with engine.connect() as conn:
            row = (await conn.execute(select(people).where(people.c.id == person_id))).one()
            hold = (await conn.execute(select(holds))).one()
            place = await conn.scalar(text("SELECT sealed_name FROM care_groups"))
        assert row.sealed_block_reason is not None
        block = await keys.open_value(
            person_id, "person", f"person-block:{person_id}", row.sealed_block_reason
        )
        assert block.decode() == CLEAR["block"]
        assert await sealer.open_for_child(child_id, "hold:h1", hold.sealed_reason) == CLEAR["hold"]
        assert await sealer.open_place("care_groups", "g1", place) == CLEAR["group"]
    finally:
        await provider.close()
        await engine.dispose()
