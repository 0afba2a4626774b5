"""The link-signing secrets: in the database, sealed, shared, rotated, kept three."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from vault.db import create_engine, upgrade
from vault.db.schema import signing_secrets
from vault.keys import KeyProvider, KeyringError, signing
from vault.keys.signing import KEPT, SigningSecrets

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


async def test_secrets_are_sealed_shared_and_rotated(db_url: str, provider: KeyProvider) -> None:
    engine = create_engine(db_url)
    await upgrade(engine)
    try:
        with pytest.raises(KeyringError, match="kluis init"):
            await SigningSecrets(engine, provider).current()
        assert await signing.ensure(engine, provider, NOW) is True
        assert await signing.ensure(engine, provider, NOW) is False  # one, whoever asks again
        here = SigningSecrets(engine, provider)
        there = SigningSecrets(engine, provider, 3600, miss_interval=0.0)
        throttled = SigningSecrets(engine, provider, 3600)
        [first] = await here.current()
        assert await there.current() == (first,)
        assert await throttled.current() == (first,)
        async with engine.connect() as conn:
            sealed = await conn.scalar(select(signing_secrets.c.sealed))
        assert sealed is not None
        assert first not in sealed  # only the sealed form is stored

        assert await signing.rotate(engine, provider, NOW + timedelta(seconds=1)) == 2
        assert await there.current() == (first,)  # a copy, until it is read again...
        fresher = await there.after_miss()  # ...at once, when a link does not verify
        assert fresher is not None
        assert fresher[0] == first
        assert len(fresher) == 2
        assert await there.after_miss() is None  # read again, nothing new
        assert await throttled.after_miss() is None  # read a moment ago: not again yet

        for n in range(2, 6):
            await signing.rotate(engine, provider, NOW + timedelta(seconds=n))
        kept = await here.refresh()
        assert len(kept) == KEPT
        assert first not in kept
        async with engine.connect() as conn:
            assert len((await conn.execute(select(signing_secrets))).all()) == KEPT
    finally:
        await engine.dispose()


async def test_a_secret_moved_to_another_row_does_not_open(
    db_url: str, provider: KeyProvider
) -> None:
    engine = create_engine(db_url)
    await upgrade(engine)
    try:
        await signing.ensure(engine, provider, NOW)
        await signing.rotate(engine, provider, NOW + timedelta(seconds=1))
        async with engine.begin() as conn:
            rows = (await conn.execute(select(signing_secrets))).all()
            await conn.execute(
                update(signing_secrets)
                .where(signing_secrets.c.id == rows[0].id)
                .values(sealed=rows[1].sealed)
            )
        with pytest.raises(Exception, match="integrity"):
            await SigningSecrets(engine, provider).current()
    finally:
        await engine.dispose()


async def test_many_requests_after_a_miss_read_the_database_once(
    db_url: str, provider: KeyProvider
) -> None:
    engine = create_engine(db_url)
    await upgrade(engine)
    try:
        await signing.ensure(engine, provider, NOW)
        secrets = SigningSecrets(engine, provider, 3600, miss_interval=0.0)
        await secrets.current()
        await signing.rotate(engine, provider, NOW + timedelta(seconds=1))
        answers = await asyncio.gather(*(secrets.after_miss() for _ in range(50)))
        changed = [a for a in answers if a is not None]
        assert changed
        assert all(a == changed[0] for a in changed)
        assert len(changed[0]) == 2
    finally:
        await engine.dispose()
