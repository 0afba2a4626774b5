"""Benchmark: the audit log at a million events.

    .venv/bin/python -m bench.audit [--events N] [--db-url URL]

On a fresh database (SQLite in a temporary directory unless ``--db-url``
names another), times, with peak resident memory:

* building the chain: N events through ``append`` in transactions of 10,000,
  beside the same rows inserted into a plain table without hashing or the
  head's lock (the baseline, in the same run);
* one event per ``record`` from 64 concurrent tasks (the shape of requests
  being served), group commits and all (on SQLite in the writer process,
  as the service writes), beside the same number of plain
  single-row commits from 64 tasks;
* ``verify`` over the whole chain;
* the breach question (``touched``) for one account over a day, and for one
  token over the whole month;
* one child's access log (the newest 200).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import BigInteger, Column, MetaData, String, Table, Text, insert

from vault.audit import Actor, Event, event
from vault.audit.log import AuditLog, append
from vault.audit.queries import access_log, touched
from vault.audit.verify import verify
from vault.db import create_engine, upgrade
from vault.keys.local import LocalKeyring
from vault.keys.provider import AUDIT_MAC, audit_check, audit_sign

BATCH = 10_000
START = datetime(2026, 10, 1, tzinfo=UTC)
ACTIONS = ["link.use", "link.issue", "items.listing", "items.read", "items.create"]

plain_meta = MetaData()
plain = Table(
    "plain_events",
    plain_meta,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", String(40)),
    Column("action", String(48)),
    Column("actor", String(32)),
    Column("children", Text),
    Column("item", String(32)),
    Column("detail", Text),
)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def hexid(prefix: str, n: int, width: int = 32) -> str:
    return f"{prefix}{n:0{width - len(prefix)}x}"


async def main(total: int, db_url: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="kluis-bench-") as tmp:
        url = db_url or f"sqlite+aiosqlite:///{Path(tmp) / 'audit.db'}"
        engine = create_engine(url)
        await upgrade(engine)
        async with engine.begin() as conn:
            await conn.run_sync(plain_meta.create_all)
        ring, _ = await LocalKeyring.open_or_create(Path(tmp) / "keyring.json")
        await ring.create_mac_key(AUDIT_MAC)
        rng = random.Random(7)
        people = [hexid("b", n) for n in range(300)]
        tokens = [hexid("", n, 16) for n in range(300)]
        kids = [hexid("c", n) for n in range(3000)]
        span = 30 * 86400

        def make(i: int) -> Event:
            who = rng.randrange(len(people))
            return event(
                rng.choice(ACTIONS),
                children=[rng.choice(kids)],
                item=hexid("a", rng.randrange(total)),
                actor=Actor(people[who], "staff", tokens[who], "10.1.2.3", "Tablet/2.1"),
                at=START + timedelta(seconds=span * i / total),
                bytes=rng.randrange(1 << 20),
            )

        print(f"database: {engine.url.get_backend_name()}, events: {total:,}")
        t0 = time.perf_counter()
        for start in range(0, total, BATCH):
            batch = [make(i) for i in range(start, min(start + BATCH, total))]
            async with engine.begin() as conn:
                await conn.run_sync(append, batch, audit_sign(ring), START, 1000)
        chained = time.perf_counter() - t0
        t0 = time.perf_counter()
        for start in range(0, total, BATCH):
            rows = [
                {
                    "seq": i,
                    "at": (START + timedelta(seconds=span * i / total)).isoformat(),
                    "action": "link.use",
                    "actor": people[i % len(people)],
                    "children": f'["{kids[i % len(kids)]}"]',
                    "item": hexid("a", i),
                    "detail": '{"bytes":1}',
                }
                for i in range(start, min(start + BATCH, total))
            ]
            async with engine.begin() as conn:
                await conn.execute(insert(plain), rows)
        bare = time.perf_counter() - t0
        print(
            f"build: chained {total / chained:,.0f} events/s, plain insert "
            f"{total / bare:,.0f} rows/s: {bare / chained:.0%} of plain"
        )

        # As the service writes: on SQLite, in the writer process.
        log = AuditLog(engine, audit_sign(ring), lambda: datetime.now(UTC), own_thread=True)
        n_live = 5000

        async def recorder(k: int) -> None:
            for i in range(k, n_live, 64):
                await log.record(event("link.use", children=[kids[i % 3000]], bytes=i))

        t0 = time.perf_counter()
        await asyncio.gather(*(recorder(k) for k in range(64)))
        live = time.perf_counter() - t0
        await log.close()

        async def single(k: int) -> None:
            for i in range(k, n_live, 64):
                async with engine.begin() as conn:
                    await conn.execute(
                        insert(plain).values(seq=total + i, action="x", detail="{}", children="[]")
                    )

        t0 = time.perf_counter()
        await asyncio.gather(*(single(k) for k in range(64)))
        live_bare = time.perf_counter() - t0
        print(
            f"served shape, 64 tasks: record() {n_live / live:,.0f} events/s, plain "
            f"one-row commits {n_live / live_bare:,.0f}/s: {live_bare / live:.0%} of plain"
        )

        t0 = time.perf_counter()
        result = await verify(engine, audit_check(ring))
        took = time.perf_counter() - t0
        assert result.ok, result.problems[:3]
        print(f"verify: {result.events:,} events in {took:.1f} s ({result.events / took:,.0f}/s)")

        day = START + timedelta(days=12)
        t0 = time.perf_counter()
        answer = await touched(engine, person=people[5], since=day, until=day + timedelta(days=1))
        took = time.perf_counter() - t0
        print(
            f"breach question, one account, one day: {took * 1000:.0f} ms "
            f"({answer.events} events, {len(answer.children)} children, {len(answer.items)} items)"
        )
        t0 = time.perf_counter()
        answer = await touched(
            engine, token=tokens[9], since=START, until=START + timedelta(days=31)
        )
        took = time.perf_counter() - t0
        print(
            f"breach question, one token, whole month: {took * 1000:.0f} ms "
            f"({answer.events} events, {len(answer.children)} children)"
        )
        t0 = time.perf_counter()
        entries = await access_log(engine, kids[42], limit=200)
        took = time.perf_counter() - t0
        print(f"access log of one child: {took * 1000:.1f} ms ({len(entries)} events)")
        print(f"peak resident memory: {peak_mb():.0f} MB")
        await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--db-url", help="a database to use (default: SQLite in a temp dir)")
    args = parser.parse_args()
    asyncio.run(main(args.events, args.db_url))
