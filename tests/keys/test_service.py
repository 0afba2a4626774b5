"""Child keys, item keys, epochs and rotation, on SQLite and PostgreSQL, with each provider."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers.certificates import certified, certify
from tests.helpers.keystores import KeyStore
from tests.keys.agent import run_agent
from vault.audit import event
from vault.audit.log import AuditLog
from vault.crypto import IntegrityError
from vault.crypto.stream import decrypt_range, encrypt_stream
from vault.db import create_engine, upgrade
from vault.db.schema import audit_events, child_keys, destruction_certificates, item_keys
from vault.keys import KeyProvider
from vault.keys.provider import audit_sign
from vault.keys.rotation import destroy_expired, rotate
from vault.keys.service import KeyDestroyed, KeyService
from vault.retention.job import certifier

WINDOW = timedelta(days=35)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Vault:
    engine: AsyncEngine
    ring: KeyProvider
    keys: KeyService
    clock: Clock


@pytest.fixture
async def vault(db_url: str, provider: KeyProvider) -> AsyncIterator[Vault]:
    engine = create_engine(db_url)
    await upgrade(engine)
    clock = Clock(datetime(2026, 11, 15, 9, 0, tzinfo=UTC))
    try:
        audit = AuditLog(engine, audit_sign(provider), clock)
        yield Vault(engine, provider, KeyService(engine, provider, audit, clock), clock)
    finally:
        await engine.dispose()


async def seal(key_service: KeyService, item_id: str, owners: list[tuple[str, str]]) -> bytes:
    key = await key_service.create_item_key(item_id, owners)

    async def body() -> AsyncIterator[bytes]:
        yield f"diary of {item_id}".encode()

    return b"".join([p async for p in encrypt_stream(key, item_id, "original", body())])


async def unseal(key_service: KeyService, item_id: str, blob: bytes) -> bytes:
    key = await key_service.open_item_key(item_id)

    async def read(offset: int, length: int) -> AsyncIterator[bytes]:
        yield blob[offset : offset + length]

    return b"".join([p async for p in decrypt_range(key, item_id, "original", read, len(blob))])


async def test_item_round_trip_through_the_hierarchy(vault: Vault) -> None:
    blob = await seal(vault.keys, "item-a", [("child-1", "diary")])
    assert await unseal(vault.keys, "item-a", blob) == b"diary of item-a"
    async with vault.engine.connect() as conn:
        row = (await conn.execute(select(child_keys))).one()
    assert row.epoch == "live-2026-11"
    assert len(row.wrapped) == 1 + 12 + 32 + 16


async def test_one_child_key_per_child_and_category_even_under_races(vault: Vault) -> None:
    ids = await asyncio.gather(*(vault.keys.ensure_child_key("c", "photo") for _ in range(12)))
    assert len(set(ids)) == 1
    assert await vault.keys.ensure_child_key("c", "diary") != ids[0]


async def test_group_photo_lives_until_its_last_child_key(vault: Vault) -> None:
    owners = [("child-1", "photo"), ("child-2", "photo"), ("child-3", "photo")]
    blob = await seal(vault.keys, "group", owners)
    assert sorted(await vault.keys.item_owners("group")) == sorted(owners)
    erasure = certify(vault.clock.now, "erasure")
    destroyed = await vault.keys.destroy_child_key("child-1", "photo", erasure)
    assert destroyed is not None
    assert destroyed.item_keys == 1
    assert await unseal(vault.keys, "group", blob) == b"diary of group"
    await vault.keys.destroy_child_key("child-2", "photo", erasure)
    assert await unseal(vault.keys, "group", blob) == b"diary of group"
    await vault.keys.destroy_child_key("child-3", "photo", erasure)
    with pytest.raises(KeyDestroyed):
        await vault.keys.open_item_key("group")
    assert await vault.keys.destroy_child_key("child-3", "photo", erasure) is None
    # Each destroyed key certified once (no record rows here: keys only).
    found = await certified(vault.engine)
    assert [child for child, _, _, _ in found] == ["child-1", "child-2", "child-3"]
    assert destroyed.id in {key for _, _, key, _ in found}
    # A child back under contract gets a fresh key; the destroyed one stays on record.
    fresh = await vault.keys.ensure_child_key("child-3", "photo")
    assert fresh != destroyed.id
    async with vault.engine.connect() as conn:
        rows = (
            await conn.execute(select(child_keys).where(child_keys.c.child_id == "child-3"))
        ).all()
    assert sorted(r.destroyed_at is None for r in rows) == [False, True]


async def test_a_wrapped_child_key_moved_to_another_row_does_not_open(vault: Vault) -> None:
    await seal(vault.keys, "item-1", [("child-1", "photo")])
    await seal(vault.keys, "item-2", [("child-2", "photo")])
    await seal(vault.keys, "item-3", [("child-1", "medical")])
    async with vault.engine.begin() as conn:
        stolen = await conn.scalar(
            select(child_keys.c.wrapped).where(
                child_keys.c.child_id == "child-1", child_keys.c.category == "photo"
            )
        )
        # Another child, same category; and the same child, another category.
        await conn.execute(
            update(child_keys).where(child_keys.c.child_id == "child-2").values(wrapped=stolen)
        )
        await conn.execute(
            update(child_keys).where(child_keys.c.category == "medical").values(wrapped=stolen)
        )
    for item in ("item-2", "item-3"):
        with pytest.raises(IntegrityError):
            await vault.keys.open_item_key(item)
    await vault.keys.open_item_key("item-1")  # the original still opens


async def test_a_wrapped_child_key_relabelled_to_another_epoch_does_not_open(vault: Vault) -> None:
    await seal(vault.keys, "item-1", [("child-1", "photo")])
    await vault.ring.create_key("shred-2027-11", vault.clock.now)
    async with vault.engine.begin() as conn:
        await conn.execute(update(child_keys).values(epoch="shred-2027-11"))
    with pytest.raises(IntegrityError):
        await vault.keys.open_item_key("item-1")


async def test_a_wrapped_item_key_copied_to_another_item_does_not_open(vault: Vault) -> None:
    await seal(vault.keys, "item-1", [("child-1", "photo")])
    async with vault.engine.begin() as conn:
        row = (await conn.execute(select(item_keys))).one()
        await conn.execute(
            insert(item_keys).values(
                item_id="item-9", child_key_id=row.child_key_id, wrapped=row.wrapped
            )
        )
    with pytest.raises(IntegrityError):
        await vault.keys.open_item_key("item-9")


async def test_scheduling_moves_a_child_key_between_epochs(vault: Vault) -> None:
    blob = await seal(vault.keys, "item-1", [("child-1", "photo")])
    assert (
        await vault.keys.schedule_child_key("child-1", "photo", date(2027, 11, 10))
        == "shred-2027-11"
    )
    assert await unseal(vault.keys, "item-1", blob) == b"diary of item-1"
    # Contract extended: destruction moves; back under contract: live again.
    assert (
        await vault.keys.schedule_child_key("child-1", "photo", date(2028, 2, 1)) == "shred-2028-02"
    )
    assert await vault.keys.schedule_child_key("child-1", "photo", None) == "live-2026-11"
    assert await unseal(vault.keys, "item-1", blob) == b"diary of item-1"
    assert await vault.keys.schedule_child_key("nobody", "photo", None) is None
    # A date whose month is over goes to the current month's shred epoch.
    assert (
        await vault.keys.schedule_child_key("child-1", "photo", date(2025, 1, 1)) == "shred-2026-11"
    )


async def test_monthly_rotation_rewraps_and_retires_live_epochs(vault: Vault) -> None:
    blobs = {
        f"item-{i}": await seal(vault.keys, f"item-{i}", [(f"child-{i}", "photo")])
        for i in range(7)
    }
    vault.clock.now = datetime(2026, 12, 2, tzinfo=UTC)
    ticks: list[int] = []
    report = await rotate(
        vault.keys,
        vault.ring,
        vault.clock.now,
        WINDOW,
        progress=ticks.append,
        certify=certify(vault.clock.now, "epoch"),
    )
    assert report.live_epoch == "live-2026-12"
    assert report.rewrapped == 7
    assert sum(ticks) == 7
    assert report.destroyed_epochs == []  # a backup from November can still be restored
    assert await vault.keys.epoch_usage() == {"live-2026-12": 7}
    vault.clock.now = datetime(2027, 1, 4, 23, 59, tzinfo=UTC)
    report = await rotate(
        vault.keys, vault.ring, vault.clock.now, WINDOW, certify=certify(vault.clock.now, "epoch")
    )
    assert (report.rewrapped, report.destroyed_epochs) == (7, [])  # December's keys into January
    vault.clock.now = datetime(2027, 1, 5, tzinfo=UTC)  # the month's end, December 1st, + 35 days
    report = await rotate(
        vault.keys, vault.ring, vault.clock.now, WINDOW, certify=certify(vault.clock.now, "epoch")
    )
    assert report.destroyed_epochs == ["live-2026-11"]
    assert report.rewrapped == 0
    assert await certified(vault.engine) == []  # its keys had all moved on: none destroyed
    for item_id, blob in blobs.items():
        assert await unseal(vault.keys, item_id, blob) == f"diary of {item_id}".encode()
    again = await rotate(
        vault.keys, vault.ring, vault.clock.now, WINDOW, certify=certify(vault.clock.now, "epoch")
    )
    assert (again.rewrapped, again.destroyed_epochs) == (0, [])


async def test_a_live_epoch_still_in_use_is_never_destroyed(vault: Vault) -> None:
    await seal(vault.keys, "item-1", [("child-1", "photo")])
    late = datetime(2027, 6, 1, tzinfo=UTC)
    report = await destroy_expired(
        vault.keys, vault.ring, late, WINDOW, certify=certify(late, "epoch")
    )
    assert report.destroyed_epochs == []
    vault.clock.now = late
    await vault.keys.open_item_key("item-1")


async def test_a_shred_epoch_dies_when_its_month_ends(vault: Vault) -> None:
    doomed = await seal(vault.keys, "doomed", [("child-1", "photo")])
    kept = await seal(vault.keys, "kept", [("child-2", "photo")])
    await vault.keys.schedule_child_key("child-1", "photo", date(2027, 11, 10))
    november = datetime(2027, 11, 30, 23, 59, tzinfo=UTC)
    # Not yet: the month is not over, and live-2026-11 still wraps child-2's key.
    assert (
        await destroy_expired(
            vault.keys, vault.ring, november, WINDOW, certify=certify(november, "epoch")
        )
    ).destroyed_epochs == []
    vault.clock.now = datetime(2027, 12, 1, tzinfo=UTC)
    report = await rotate(
        vault.keys, vault.ring, vault.clock.now, WINDOW, certify=certify(vault.clock.now, "epoch")
    )
    assert "shred-2027-11" in report.destroyed_epochs
    assert report.destroyed_child_keys == 1
    assert [(c, k) for c, k, _, _ in await certified(vault.engine)] == [("child-1", "photo")]
    with pytest.raises(KeyDestroyed):
        await unseal(vault.keys, "doomed", doomed)
    assert await unseal(vault.keys, "kept", kept) == b"diary of kept"


async def test_a_run_stopped_after_destroying_a_master_key_is_finished_by_the_next(
    vault: Vault, key_store: KeyStore
) -> None:
    """The rows follow the key: a run destroyed an expired epoch's master key
    in a process of its own and stopped there (killed), before its child
    keys' rows; the next run marks them destroyed, once, with a certificate
    each, and records no second destruction of the epoch."""
    doomed = await seal(vault.keys, "doomed", [("child-1", "photo")])
    kept = await seal(vault.keys, "kept", [("child-2", "photo")])
    await vault.keys.schedule_child_key("child-1", "photo", date(2027, 11, 10))
    vault.clock.now = datetime(2027, 12, 1, tzinfo=UTC)
    # The stopped run: its event on the record, the master key destroyed, no more.
    await vault.keys.audit.record(event("epoch.destroy", epoch="shred-2027-11"))
    assert run_agent(key_store, "destroy", "shred-2027-11") is True
    assert (await vault.keys.epoch_usage()).get("shred-2027-11") == 1  # `kluis keys status`

    for run in range(2):
        report = await destroy_expired(
            vault.keys,
            vault.ring,
            vault.clock.now,
            WINDOW,
            certify=certifier(vault.clock.now, f"run-{run}", "epoch"),
        )
        assert report.destroyed_epochs == []  # the stopped run destroyed it
        assert report.finished_epochs == (["shred-2027-11"] if run == 0 else [])
        assert [(k.child_id, k.epoch) for k in report.destroyed_keys] == (
            [("child-1", "shred-2027-11")] if run == 0 else []
        )
    assert "shred-2027-11" not in await vault.keys.epoch_usage()
    async with vault.engine.connect() as conn:
        row = (
            await conn.execute(select(child_keys).where(child_keys.c.child_id == "child-1"))
        ).one()
        assert (row.wrapped, row.destroyed_at) == (None, vault.clock.now)
        certified = (
            await conn.scalars(
                select(destruction_certificates.c.child_id).where(
                    destruction_certificates.c.key_id == row.id
                )
            )
        ).all()
        destroyed = await conn.scalar(
            select(func.count())
            .select_from(audit_events)
            .where(audit_events.c.action == "epoch.destroy")
        )
    assert certified == ["child-1"]
    assert destroyed == 1
    with pytest.raises(KeyDestroyed):
        await unseal(vault.keys, "doomed", doomed)
    assert await unseal(vault.keys, "kept", kept) == b"diary of kept"


async def test_a_run_told_another_time_never_destroys_the_live_epoch_in_use(vault: Vault) -> None:
    """``kluis retention run --now`` a year ahead, beside servers on today's clock."""
    await seal(vault.keys, "item-1", [("child-1", "photo")])
    ahead = datetime(2028, 3, 1, tzinfo=UTC)
    report = await rotate(vault.keys, vault.ring, ahead, WINDOW, certify=certify(ahead, "epoch"))
    assert report.rewrapped == 1  # moved into the live epoch of that future month
    assert "live-2026-11" not in report.destroyed_epochs  # what servers write into today
    keys = {k.name: k for k in await vault.ring.list_keys()}
    assert not keys["live-2026-11"].destroyed
    await seal(vault.keys, "item-2", [("child-2", "photo")])  # a new child key, today
    async with vault.engine.connect() as conn:
        epoch = await conn.scalar(
            select(child_keys.c.epoch).where(child_keys.c.child_id == "child-2")
        )
    assert epoch == "live-2026-11"
    # Keys of running contracts go to the clock's live epoch, whatever ``now``.
    assert vault.keys.target_epoch_name(None, ahead) == "live-2026-11"
