"""The chain itself: tampering anywhere is found and located; concurrent
writers keep it linear; a write that fails stops what it records."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers.certificates import certified, certify
from vault.audit import Actor, event
from vault.audit.events import hash_of, row_of
from vault.audit.log import AuditLog, AuditUnavailable
from vault.audit.verify import Verification, verify
from vault.db import create_engine, upgrade
from vault.db.schema import (
    audit_checkpoints,
    audit_events,
    audit_head,
    audit_subjects,
    child_keys,
)
from vault.errors import StorageUnavailable
from vault.keys import KeyProvider
from vault.keys.provider import audit_check, audit_sign
from vault.keys.service import KeyService

CHILD = "c" * 32
ITEM = "a" * 32
EVENTS = 10
EVERY = 4  # checkpoints at 4 and 8; the head at 10


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


@dataclasses.dataclass
class Chain:
    engine: AsyncEngine
    ring: KeyProvider
    log: AuditLog
    process: bool = False
    saved: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)

    async def check(self) -> Verification:
        return await verify(self.engine, audit_check(self.ring))

    async def save(self) -> None:
        async with self.engine.connect() as conn:
            for table in (audit_events, audit_subjects, audit_head, audit_checkpoints):
                rows = await conn.execute(select(table))
                self.saved[table.name] = [dict(row._mapping) for row in rows]

    async def restore(self) -> None:
        async with self.engine.begin() as conn:
            for table in (audit_events, audit_subjects, audit_head, audit_checkpoints):
                await conn.execute(delete(table))
                if self.saved[table.name]:
                    await conn.execute(insert(table), self.saved[table.name])

    async def sql(self, statement: Any, params: dict[str, Any] | None = None) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(statement, params or {})

    async def row(self, seq: int) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            found = (
                await conn.execute(select(audit_events).where(audit_events.c.seq == seq))
            ).one()
        return dict(found._mapping)


@pytest.fixture(
    params=[
        pytest.param("sqlite", marks=pytest.mark.sqlite),
        # As the service writes on SQLite: in a writer thread of its own.
        pytest.param("sqlite, writer thread", marks=pytest.mark.sqlite),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
async def chain(
    request: pytest.FixtureRequest, tmp_path: Path, provider: KeyProvider
) -> AsyncIterator[Chain]:
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_server").create_database()
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'kluis.db'}"
    engine = create_engine(url)
    await upgrade(engine)
    ring = provider
    process = request.param.endswith("writer thread")
    log = AuditLog(engine, audit_sign(ring), Clock(), checkpoint_every=EVERY, own_thread=process)
    try:
        yield Chain(engine, ring, log, process)
    finally:
        await log.close()
        await engine.dispose()


async def ten_events(chain: Chain) -> None:
    staff = Actor(person="b" * 32, role="staff", token="0" * 16, ip="10.0.0.7", agent="tablet")
    for n in range(EVENTS):
        await chain.log.record(
            event("link.use", children=[CHILD], item=ITEM, actor=staff, bytes=n * 100)
        )
    result = await chain.check()
    assert result.ok, result.problems
    assert result.events == EVENTS
    await chain.save()


def first(result: Verification) -> int:
    assert not result.ok, "the tampering went unnoticed"
    # (seq 0: the index count, which a removed event also changes)
    return min(p.seq for p in result.problems if p.seq > 0)


async def test_an_intact_chain_verifies_and_its_head_is_signed(chain: Chain) -> None:
    await ten_events(chain)
    async with chain.engine.connect() as conn:
        head = (await conn.execute(select(audit_head))).one()
        points = (await conn.execute(select(audit_checkpoints.c.seq))).scalars().all()
        last = (
            await conn.execute(select(audit_events.c.hash).where(audit_events.c.seq == 10))
        ).scalar()
    assert (head.seq, head.hash) == (EVENTS, last)
    assert head.mac
    assert sorted(points) == [4, 8]
    assert (await chain.check()).head == last


async def test_tampering_at_every_position_is_found_where_it_happened(chain: Chain) -> None:
    await ten_events(chain)
    for pos in range(1, EVENTS + 1):
        # An edited field.
        await chain.sql(update(audit_events).where(audit_events.c.seq == pos).values(outcome="x"))
        result = await chain.check()
        assert first(result) == pos
        assert result.problems[0].kind == "edited"
        await chain.restore()

        # An edited event whose own hash was recomputed: the next link (or the
        # signed head) no longer matches.
        row = await chain.row(pos)
        row["detail"] = json.dumps({"bytes": 999999})
        row["hash"] = hash_of(row)
        await chain.sql(
            update(audit_events)
            .where(audit_events.c.seq == pos)
            .values(detail=row["detail"], hash=row["hash"])
        )
        assert first(await chain.check()) in (pos, pos + 1)
        await chain.restore()

        # A removed event.
        await chain.sql(delete(audit_events).where(audit_events.c.seq == pos))
        assert first(await chain.check()) == pos
        await chain.restore()

        # Two events swapped (each keeps its content, takes the other's place).
        if pos < EVENTS:
            a, b = await chain.row(pos), await chain.row(pos + 1)
            await chain.sql(delete(audit_events).where(audit_events.c.seq.in_([pos, pos + 1])))
            a["seq"], b["seq"] = pos + 1, pos
            await chain.sql(insert(audit_events), [a, b])  # type: ignore[arg-type]
            assert first(await chain.check()) == pos
            await chain.restore()

        # An event inserted after ``pos``, well formed, the rest renumbered.
        forged = row_of(
            pos + 1, (await chain.row(pos))["hash"], event("link.use"), datetime.now(UTC)
        )
        async with chain.engine.begin() as conn:
            later = (await conn.execute(select(audit_events).where(audit_events.c.seq > pos))).all()
            await conn.execute(delete(audit_events).where(audit_events.c.seq > pos))
            moved = [{**dict(r._mapping), "seq": r.seq + 1} for r in later]
            await conn.execute(insert(audit_events), [forged, *moved])
        assert first(await chain.check()) in (pos + 1, pos + 2)
        await chain.restore()

        # The tail cut off from ``pos`` on.
        await chain.sql(delete(audit_events).where(audit_events.c.seq >= pos))
        result = await chain.check()
        assert first(result) <= pos
        assert any(p.kind == "tail_cut" for p in result.problems)
        await chain.restore()
    assert (await chain.check()).ok


async def test_a_rewritten_chain_is_caught_by_its_signatures(chain: Chain) -> None:
    """Recomputing every hash after an edit defeats the links, not the HMACs."""
    await ten_events(chain)
    for pos in (2, 9):
        async with chain.engine.begin() as conn:
            rows = [
                dict(r._mapping)
                for r in (await conn.execute(select(audit_events).order_by(audit_events.c.seq)))
            ]
            prev = rows[pos - 2]["hash"] if pos > 1 else "0" * 64
            for row in rows[pos - 1 :]:
                if row["seq"] == pos:
                    row["outcome"] = "forbidden"
                row["prev"] = prev
                row["hash"] = prev = hash_of(row)
            await conn.execute(delete(audit_events).where(audit_events.c.seq >= pos))
            await conn.execute(insert(audit_events), rows[pos - 1 :])
            # The head moved along too, but its old signature cannot follow.
            await conn.execute(update(audit_head).values(hash=prev))
        result = await chain.check()
        kinds = {p.kind for p in result.problems}
        assert kinds & {"checkpoint_mismatch", "forged_head"}
        assert first(result) >= pos
        await chain.restore()


async def test_a_head_or_checkpoint_cannot_be_forged(chain: Chain) -> None:
    await ten_events(chain)
    fifth = await chain.row(5)
    # The head moved back to hide the last five events: its HMAC does not fit.
    await chain.sql(update(audit_head).values(seq=5, hash=fifth["hash"]))
    await chain.sql(delete(audit_events).where(audit_events.c.seq > 5))
    assert {p.kind for p in (await chain.check()).problems} >= {"forged_head"}
    await chain.restore()
    await chain.sql(
        update(audit_checkpoints).where(audit_checkpoints.c.seq == 8).values(mac="00" * 32)
    )
    assert [(p.seq, p.kind) for p in (await chain.check()).problems] == [(8, "forged_checkpoint")]
    await chain.restore()
    # A row taken out of the access-log index (to hide an access from parents).
    await chain.sql(delete(audit_subjects).where(audit_subjects.c.seq == 3))
    assert [p.kind for p in (await chain.check()).problems] == ["index_mismatch"]
    await chain.restore()
    # An event appended by hand, well formed, past the signed head.
    forged = row_of(EVENTS + 1, (await chain.row(EVENTS))["hash"], event("x"), datetime.now(UTC))
    await chain.sql(insert(audit_events).values(**forged))
    assert [(p.seq, p.kind) for p in (await chain.check()).problems] == [
        (EVENTS + 1, "beyond_head")
    ]


async def test_concurrent_writers_keep_one_linear_chain(chain: Chain) -> None:
    """Eight writers (as eight processes would: separate logs, one database)."""
    logs = [
        AuditLog(
            chain.engine,
            audit_sign(chain.ring),
            Clock(),
            checkpoint_every=7,
            own_thread=chain.process,
        )
        for _ in range(8)
    ]

    async def writer(n: int, log: AuditLog) -> None:
        for i in range(15):
            await log.record(event("link.use", children=[CHILD], writer=n, i=i))

    await asyncio.gather(*(writer(n, log) for n, log in enumerate(logs) for _ in range(2)))
    for log in logs:
        await log.close()
    result = await chain.check()
    assert result.ok, result.problems
    assert result.events == 8 * 2 * 15
    async with chain.engine.connect() as conn:
        seqs = (
            (await conn.execute(select(audit_events.c.seq).order_by(audit_events.c.seq)))
            .scalars()
            .all()
        )
    assert seqs == list(range(1, 8 * 2 * 15 + 1))


async def test_when_the_log_cannot_be_written_nothing_is_destroyed(chain: Chain) -> None:
    keys = KeyService(chain.engine, chain.ring, chain.log, Clock())
    await keys.create_item_key(ITEM, [(CHILD, "photo")])
    await chain.sql(text("ALTER TABLE audit_events RENAME TO audit_events_away"))
    with pytest.raises(AuditUnavailable):
        await chain.log.record(event("link.use"))
    erasure = certify(datetime.now(UTC), "erasure")
    with pytest.raises(AuditUnavailable):
        await keys.destroy_child_key(CHILD, "photo", erasure)
    await chain.sql(text("ALTER TABLE audit_events_away RENAME TO audit_events"))
    # The key lives on and still opens the item; nothing claims it went.
    assert await keys.open_item_key(ITEM)
    async with chain.engine.connect() as conn:
        destroyed = (await conn.execute(select(child_keys.c.destroyed_at))).scalars().all()
    assert destroyed == [None]
    assert await certified(chain.engine) == []
    destruction = await keys.destroy_child_key(CHILD, "photo", erasure)
    assert destruction is not None
    assert [(c, k, key) for c, k, key, _ in await certified(chain.engine)] == [
        (CHILD, "photo", destruction.id)
    ]
    async with chain.engine.connect() as conn:
        actions = (await conn.execute(select(audit_events.c.action))).scalars().all()
    assert actions == ["key.destroy"]
    assert (await chain.check()).ok


async def test_ids_not_made_by_the_vault_are_not_stored_as_subjects(chain: Chain) -> None:
    made_up: Callable[[str], Any] = lambda s: event("items.read", children=[s], item=s)  # noqa: E731
    await chain.log.record(made_up("' OR 1=1 --" * 10), made_up(CHILD))
    async with chain.engine.connect() as conn:
        subjects = (await conn.execute(select(audit_subjects.c.child_id))).scalars().all()
        items = (
            (await conn.execute(select(audit_events.c.item).order_by(audit_events.c.seq)))
            .scalars()
            .all()
        )
    assert subjects == [CHILD]
    assert items == [None, CHILD]


async def test_a_change_in_a_group_commit_fails_alone(chain: Chain) -> None:
    """Changes ride in the group commit with other callers' events (an
    upload's rows beside link fetches' records, issue 18 item 7): one that
    fails is refused on its own, leaves nothing of itself, and the others are
    committed."""
    await chain.sql(text("CREATE TABLE scratch (id INTEGER PRIMARY KEY)"))

    def good(conn: Any) -> None:
        conn.execute(text("INSERT INTO scratch (id) VALUES (1)"))

    def bad(conn: Any) -> None:
        conn.execute(text("INSERT INTO scratch (id) VALUES (7)"))
        conn.execute(text("INSERT INTO scratch (id) VALUES (7)"))

    # All three in one group: the plain record is queued before the writer runs.
    fetch = asyncio.create_task(chain.log.record(event("link.use", item=ITEM, n=1)))
    stored = chain.log.commit(good, event("item.store", item=ITEM, n=2))
    refused = chain.log.commit(bad, event("item.store", item=ITEM, n=3))
    await fetch
    await stored
    with pytest.raises(StorageUnavailable):
        await refused
    async with chain.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT id FROM scratch"))).scalars().all()
        details = (await conn.execute(select(audit_events.c.detail))).scalars().all()
    assert rows == [1]
    assert sorted(json.loads(d)["n"] for d in details) == [1, 2]
    result = await chain.check()
    assert result.ok, result.problems
