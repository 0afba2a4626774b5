"""Benchmark: a retention run over many children; rewrapping by rotation.

    .venv/bin/python -m bench.retention [--children N] [--items M] [--batch B]
        [--database-url URL]

Builds N children with M small items each (photos with a 1 KB blob on the
local disk, their keys and rows written directly, as uploads would leave
them), then times, with peak resident memory:

* ``kluis keys rotate`` a month later (every child key rewrapped into the
  new live epoch): child keys per second;
* setting every placement's end date (keys into shred epochs; one commit
  per key, skipped with ``--no-schedule-run``);
* the retention run after the term, which destroys every key and item and
  deletes every blob: its wall time, the process's CPU time (every thread),
  the peak resident memory during that run alone (the kernel's high-water
  mark is reset just before it, so the build does not count), and the
  figures per child.

Defaults: 10,000 children × 50 items (issue 7), on SQLite in a temporary
directory; ``--database-url`` runs it on another database instead (an empty
PostgreSQL database, say ``postgresql+asyncpg://kluis@127.0.0.1:PORT/bench``:
the bench fills it and leaves it so). Smaller runs print the same figures
per child.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Table, insert, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bench.table import Goal, Row
from vault.audit.log import AuditLog
from vault.config import DatabaseSettings, Settings
from vault.crypto.envelope import new_item_key, seal_item_record, wrap_item_key
from vault.db import create_engine, upgrade
from vault.db.schema import (
    care_groups,
    children,
    item_blobs,
    item_children,
    item_keys,
    items,
    locations,
)
from vault.keys.local import LocalKeyring
from vault.keys.provider import AUDIT_MAC, audit_sign
from vault.keys.rotation import rotate
from vault.keys.service import KeyService, _item_aad
from vault.retention.job import Retention, certifier
from vault.storage import LocalDiskStore, new_blob_key
from vault.tokens import new_id


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def server_cpu_seconds(pid: int | None) -> float:
    """CPU time of a database server: the process ``pid`` (PostgreSQL's
    postmaster), its live children and those it reaped; 0 without a pid."""
    if pid is None:
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")

    def fields(of: Path) -> list[str]:
        # After the command's closing parenthesis: state is field 3, utime 14.
        return of.read_text().rsplit(")", 1)[1].split()

    own = fields(Path(f"/proc/{pid}/stat"))
    total = sum(int(x) for x in own[11:15])  # utime, stime, cutime, cstime
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            child = fields(stat)
        except OSError:
            continue
        if int(child[1]) == pid:
            total += int(child[11]) + int(child[12])
    return total / tick


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux: clear_refs 5)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_since_reset_mb() -> float | None:
    """VmHWM: the peak resident memory since :func:`reset_peak`."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


async def insert_rows(conn: AsyncConnection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Setup only: rows in multi-row INSERTs of 1,000 (an executemany through
    asyncpg took 81 s for 40,000 rows of ``children`` on the test PostgreSQL)."""
    for start in range(0, len(rows), 1000):
        await conn.execute(insert(table).values(rows[start : start + 1000]))


async def main(
    n_children: int,
    n_items: int,
    batch: int | None,
    schedule_run: bool,
    database_url: str = "",
    server_pid: int | None = None,
) -> dict[str, float]:
    start = datetime(2026, 11, 15, tzinfo=UTC)
    with tempfile.TemporaryDirectory(prefix="kluis-bench-") as tmp:
        settings = Settings(data_dir=Path(tmp), database=DatabaseSettings(url=database_url))
        if batch is not None:
            terms = dataclasses.replace(settings.retention, batch_children=batch)
            settings = dataclasses.replace(settings, retention=terms)
        engine = create_engine(settings.database_url)
        await upgrade(engine)
        ring, _ = await LocalKeyring.open_or_create(Path(tmp) / "keyring.json")
        await ring.create_mac_key(AUDIT_MAC)
        store = await LocalDiskStore.open(Path(tmp) / "blobs")
        clock = [start]
        audit = AuditLog(engine, audit_sign(ring), lambda: clock[0])
        keys = KeyService(engine, ring, audit, clock=lambda: clock[0])
        built = time.perf_counter()
        async with engine.begin() as conn:
            await conn.execute(insert(locations).values(id="L", created_at=start))
            await conn.execute(
                insert(care_groups).values(id="G", location_id="L", created_at=start)
            )
        blob = os.urandom(1024)
        child_ids = [new_id() for _ in range(n_children)]
        async with engine.begin() as conn:
            await insert_rows(
                conn, children, [{"id": c, "group_id": "G", "created_at": start} for c in child_ids]
            )
        rows: list[dict[str, Any]] = []
        owners: list[dict[str, Any]] = []
        blobs: list[dict[str, Any]] = []
        wrappings: list[dict[str, Any]] = []
        for n, child in enumerate(child_ids, 1):
            # Setup only: the child key is unwrapped once per child and the
            # item keys wrapped under it directly (as prepare_item_key does
            # per item), so 500,000 items build in minutes, not an hour.
            dek_row = await keys._ensure_row(child, "photo")
            dek = await keys._unwrap_dek(dek_row)
            for _ in range(n_items):
                item_id = new_id()
                item_key = new_item_key()
                wrappings.append(
                    {
                        "item_id": item_id,
                        "child_key_id": dek_row.id,
                        "wrapped": wrap_item_key(dek, item_key, _item_aad(item_id, child, "photo")),
                    }
                )
                blob_key = new_blob_key(start)
                # Setup only: the files are written without fsync to build fast.
                path = store.root / blob_key[0:2] / blob_key[2:4] / blob_key
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(blob)
                rows.append(
                    {
                        "id": item_id,
                        "kind": "photo",
                        "created_at": start,
                        "content_type": "image/jpeg",
                        "size": len(blob),
                        "meta": seal_item_record(item_key, item_id, "meta", b"{}"),
                    }
                )
                owners.append({"item_id": item_id, "child_id": child})
                blobs.append(
                    {
                        "item_id": item_id,
                        "variant": "original",
                        "blob_key": blob_key,
                        "blob_size": len(blob),
                        "plaintext_size": len(blob),
                        "content_type": "image/jpeg",
                    }
                )
            if n % 100 and n != len(child_ids):
                continue  # setup only: 100 children per transaction
            async with engine.begin() as conn:
                await insert_rows(conn, items, rows)
                await insert_rows(conn, item_children, owners)
                await insert_rows(conn, item_blobs, blobs)
                await insert_rows(conn, item_keys, wrappings)
            rows, owners, blobs, wrappings = [], [], [], []
        built = time.perf_counter() - built

        clock[0] = datetime(2026, 12, 2, tzinfo=UTC)
        began = time.perf_counter()
        report = await rotate(
            keys,
            ring,
            clock[0],
            timedelta(days=35),
            certify=certifier(
                clock[0], new_id(), "epoch", window=timedelta(days=35), provider=ring.kind
            ),
        )
        rotated = time.perf_counter() - began

        async with engine.begin() as conn:
            await conn.execute(update(children).values(placement_end=date(2026, 12, 31)))
        job = Retention(engine, store, keys, ring, settings)
        scheduled, schedule_time = None, 0.0
        if schedule_run:
            began = time.perf_counter()
            scheduled = await job.run(clock[0])
            schedule_time = time.perf_counter() - began

        later = datetime(2028, 1, 10, tzinfo=UTC)
        clock[0] = later
        job = Retention(engine, store, keys, ring, settings)
        peak_reset = reset_peak()
        cpu_before, server_before = cpu_seconds(), server_cpu_seconds(server_pid)
        began = time.perf_counter()
        done = await job.run(later)
        destroy_time = time.perf_counter() - began
        destroy_cpu = cpu_seconds() - cpu_before
        server_cpu = server_cpu_seconds(server_pid) - server_before
        run_peak = peak_since_reset_mb() if peak_reset else None
        left = len([k async for k in store.list()])
        await engine.dispose()

    total = n_children * n_items
    print(f"{n_children} children × {n_items} items = {total} items (built in {built:.0f} s)")
    print(
        f"keys rotate: {report.rewrapped} child keys rewrapped in {rotated:.2f} s "
        f"= {report.rewrapped / rotated:.0f} per second"
    )
    if scheduled is not None:
        print(
            f"retention run setting end dates: {scheduled.rewrapped} keys into shred epochs "
            f"in {schedule_time:.1f} s"
        )
    else:
        print("retention run setting end dates: skipped (keys destroyed from their live epoch)")
    destroyed = sum(done.destroyed.values())
    print(
        f"retention run at term: {destroyed} items destroyed in {destroy_time:.1f} s wall, "
        f"{destroy_cpu:.1f} s CPU ({destroy_time / n_children * 1000:.2f} ms wall, "
        f"{destroy_cpu / n_children * 1000:.2f} ms CPU per child), blobs left: {left}"
    )
    if server_pid is not None:
        print(
            f"database server CPU during that run: {server_cpu:.1f} s "
            f"({server_cpu / n_children * 1000:.2f} ms per child)"
        )
    if run_peak is not None:
        print(f"peak resident memory during the run at term: {run_peak:.0f} MB")
    print(f"peak resident memory of the process: {peak_mb():.0f} MB")
    return {
        "destroy_seconds": destroy_time,
        "destroy_cpu_seconds": destroy_cpu,
        "server_cpu_seconds": server_cpu,
        "peak_mb": run_peak if run_peak is not None else peak_mb(),
        "blobs_left": left,
    }


def rows(quick: bool, n_children: int | None = None) -> list[Row]:
    """The table's retention rows, from a run in a process of its own (its
    peak memory is then the run's alone). ``--quick`` and smaller runs scale
    the 60 s goal by the number of children (the run is linear in them)."""
    n_children = n_children or (20 if quick else 300)
    done = subprocess.run(
        # The run at term from keys in their live epoch: the same destruction,
        # without an hour of one-by-one rewraps into shred epochs to build it.
        [
            sys.executable,
            "-m",
            "bench.retention",
            "--children",
            str(n_children),
            "--no-schedule-run",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["blobs_left"] == 0
    goal = 60 * n_children / 10_000
    size = f"{n_children:,} × 50"
    scaled = "" if n_children == 10_000 else ", goal scaled from 60 s at 10,000"
    return [
        Row(
            measure="retention run destroying 10,000 children × 50 items, wall time",
            unit="s",
            kluis=figures["destroy_seconds"],
            goal=Goal("<", goal, f"< {goal:g} s"),
            note=f"{size}{scaled}",
        ),
        Row(
            measure="retention run, peak resident memory",
            unit="MB",
            kluis=figures["peak_mb"],
            goal=Goal("<", 200, "< 200 MB"),
            note=f"{size}, during the run at term",
        ),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--children", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument(
        "--batch", type=int, default=None, help="children per batch (retention.batch_children)"
    )
    parser.add_argument(
        "--no-schedule-run",
        action="store_true",
        help="skip the run that moves every key into its shred epoch (one rewrap and "
        "commit per key: long on a busy disk); the run at term destroys them all the same",
    )
    parser.add_argument(
        "--database-url",
        default="",
        help="an empty database to run on (default: SQLite in a temporary directory)",
    )
    parser.add_argument(
        "--server-pid",
        type=int,
        default=None,
        help="the database server's postmaster pid, to count its CPU during the run too",
    )
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args()
    figures = asyncio.run(
        main(
            args.children,
            args.items,
            args.batch,
            not args.no_schedule_run,
            args.database_url,
            args.server_pid,
        )
    )
    if args.json:
        print(json.dumps(figures))
