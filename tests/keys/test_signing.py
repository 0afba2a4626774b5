"""The link-signing secrets: in the database, sealed, shared, rotated, kept three."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from vault.db import create_engine, upgrade
from vault.db.schema import signing_secrets
from vault.keys import KeyProvider, KeyringError, signing
from vault.keys.signing import KEPT, MISS_INTERVAL, SigningSecrets

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
        # Read a moment ago, before the rotation: a miss now waits for the
        # miss interval to pass and reads again, it is not refused.
        began = time.monotonic()
        assert await throttled.after_miss() == fresher
        assert time.monotonic() - began < MISS_INTERVAL + 0.5

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


def count_reads(engine: AsyncEngine) -> list[float]:
    """When each read of the signing secrets went to the database."""
    reads: list[float] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _counted(*args: object) -> None:
        statement = str(args[2])
        if statement.lstrip().upper().startswith("SELECT") and "signing_secrets" in statement:
            reads.append(time.monotonic())

    return reads


async def test_a_flood_of_forged_links_reads_the_database_about_once_a_second(
    db_url: str, provider: KeyProvider
) -> None:
    engine = create_engine(db_url)
    await upgrade(engine)
    try:
        await signing.ensure(engine, provider, NOW)
        secrets = SigningSecrets(engine, provider, 3600)
        await secrets.current()
        reads = count_reads(engine)
        began = time.monotonic()

        async def forged() -> tuple[bytes, ...] | None:
            return await secrets.after_miss()

        answers: list[tuple[bytes, ...] | None] = []
        while time.monotonic() - began < 2.5:  # 50 forged links every 50 ms
            answers += await asyncio.gather(*(forged() for _ in range(50)))
            await asyncio.sleep(0.05)
        took = time.monotonic() - began
        assert answers
        assert set(answers) == {None}  # nothing new: each is refused
        assert len(reads) <= took / MISS_INTERVAL + 1, reads
        assert all(b - a >= MISS_INTERVAL - 0.01 for a, b in itertools.pairwise(reads))
    finally:
        await engine.dispose()


async def test_a_miss_just_after_a_read_that_came_before_the_rotation_waits_and_reads(
    db_url: str, provider: KeyProvider
) -> None:
    # Another instance rotates right after this one read the secrets (for a
    # miss of its own, or its refresh): the next link, signed with the new
    # secret, waits for the miss interval and is then verified.
    engine = create_engine(db_url)
    await upgrade(engine)
    try:
        await signing.ensure(engine, provider, NOW)
        secrets = SigningSecrets(engine, provider, 3600)
        [first] = await secrets.current()
        await signing.rotate(engine, provider, NOW + timedelta(seconds=1))
        reads = count_reads(engine)
        began = time.monotonic()
        answers = await asyncio.gather(*(secrets.after_miss() for _ in range(20)))
        waited = time.monotonic() - began
        assert len(set(answers)) == 1
        [fresher] = set(answers)
        assert fresher is not None
        assert fresher[0] == first
        assert len(fresher) == 2
        assert len(reads) == 1  # one read for all twenty
        assert waited < MISS_INTERVAL + 0.5
    finally:
        await engine.dispose()
