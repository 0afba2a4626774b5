"""The server killed with SIGKILL while uploads stream in, over and over.

Each iteration starts ``kluis serve``, sends a few uploads at once (documents
of random size at a random pace, and a photo with its three variants), and
kills the server at a random moment soon after the first answer. Whatever was answered 201 was
acknowledged; what got no answer may or may not have been committed. After
the last kill the server starts once more and the invariants of
tests/helpers/faults.py hold: every acknowledged record whole, nothing
half-visible (an unanswered upload is listed whole or not at all), no orphan
or missing blob after a sweep, the audit chain verifies, and no server logged
a 5xx or a traceback. Local disk + SQLite and MinIO + PostgreSQL.

The servers sweep orphans as they would in production, only sooner (a grace
of one minute, a sweep at start and every six seconds), beside the uploads
streaming in: after every kill the test counts the orphans and checks that no
live item lost a blob, so a sweep that removed the blob of an upload in flight
or of a record just committed shows at once. The summary it prints says what
the kills left behind, what the servers' own sweeps removed and how long each
orphan lingered, what ``kluis storage sweep --grace-minutes 0`` removed, and
what remained (nothing).

Two kills per backend in the suite, 30 with ``--faults-long``, N with
``--faults-rounds N`` (``KLUIS_FAULTS_ROUNDS=100``: the figures after 100 crashes).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.files import PDF, jpeg_with_secrets
from tests.helpers.faults import (
    Census,
    Ledger,
    audit_verifies,
    census,
    census_lines,
    records_hold,
    rounds,
    sweep_with_no_grace,
)
from tests.helpers.organisation import organisation
from tests.helpers.polling import eventually
from tests.helpers.processes import Client, Server, kluis
from vault.storage.base import blob_key_created

UPLOADS = 4
PIECE = 64 * 1024
#: The servers' sweep: production's, sooner (the grace in whole minutes).
GRACE_MINUTES = 1
#: How long a killed server's leases on its uploads' blobs outlive it.
LEASE_SECONDS = 3
SWEEPS = {
    "KLUIS_UPLOADS_SWEEP_GRACE_MINUTES": str(GRACE_MINUTES),
    "KLUIS_UPLOADS_SWEEP_INTERVAL_MINUTES": "0.1",
    "KLUIS_UPLOADS_LEASE_SECONDS": str(LEASE_SECONDS),
}
SWEPT = re.compile(r"sweeper removed (\d+) orphaned blobs")
MB = 1_000_000


async def slow_upload(
    client: Client, child: str, kind: str, data: bytes, pace: float, name: str
) -> tuple[int | None, Any]:
    """An upload whose file part arrives ``PIECE`` bytes every ``pace`` s;
    (None, None) when the connection died before an answer."""

    async def pieces() -> AsyncIterator[bytes]:
        for at in range(0, len(data), PIECE):
            yield data[at : at + PIECE]
            await asyncio.sleep(pace)

    try:
        return await client.upload_pieces(child, {"kind": kind}, pieces(), name)
    except aiohttp.ClientError:
        return None, None


@dataclasses.dataclass
class Orphans:
    """Every orphan seen after a kill (key -> bytes, when made) and when each
    was first seen gone."""

    seen: dict[str, tuple[int, datetime]] = dataclasses.field(default_factory=dict)
    gone: dict[str, datetime] = dataclasses.field(default_factory=dict)
    #: Live items that lacked a blob at some census (the goal: none ever).
    lacking: set[str] = dataclasses.field(default_factory=set)

    def count(self, found: Census, at: datetime) -> None:
        for key, size in found.orphans.items():
            made = blob_key_created(key)
            assert made is not None
            self.seen.setdefault(key, (size, made))
        for key in self.seen.keys() - found.orphans.keys() - self.gone.keys():
            self.gone[key] = at
        self.lacking |= found.half_visible

    def lingered(self) -> float:
        """The longest an orphan swept so far stayed, in seconds."""
        return max(
            ((at - self.seen[key][1]).total_seconds() for key, at in self.gone.items()),
            default=0.0,
        )


def swept(servers: list[Server]) -> int:
    """Orphans the servers' own sweeps (at start, and every few seconds) removed."""
    return sum(int(m.group(1)) for s in servers for m in SWEPT.finditer(s.output()))


def mb(n: int) -> str:
    return f"{n / MB:.1f} MB"


@pytest.mark.slow
async def test_a_server_killed_mid_upload_loses_nothing_acknowledged(
    deployment: dict[str, str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    env = deployment
    served = {**env, **SWEEPS}
    status, out, err = await kluis(env, "init")
    assert status == 0, err
    admin_token = out.strip().splitlines()[-1]
    chance = random.Random(99)
    ledger = Ledger()
    logs: list[Server] = []
    refused: list[str] = []
    kills = rounds(request.config, 2, 30)
    answered = 0
    orphans = Orphans()
    began = time.monotonic()
    async with aiohttp.ClientSession() as session:
        for i in range(kills):
            server = await Server(served, tmp_path / f"server-{i}.log").start()
            logs.append(server)
            if i == 0:
                staff, guardian, children = await organisation(
                    Client(session, server.base, admin_token)
                )
            here = staff.on(server)
            sent: list[tuple[str, bytes | None]] = []
            tasks = []
            for n in range(UPLOADS):
                child = children[n % len(children)]
                if n == 0:
                    kind, data, name = "photo", jpeg_with_secrets(), "p.jpg"
                else:
                    size = chance.randrange(100_000, 3_000_000)
                    kind, data, name = "observation", PDF + chance.randbytes(size), "o.pdf"
                # A photo's original is cleaned on the way in: not the bytes sent.
                sent.append((child, None if kind == "photo" else data))
                pace = chance.uniform(0.002, 0.02)
                tasks.append(asyncio.create_task(slow_upload(here, child, kind, data, pace, name)))
            # Killed a little after the first answer: some acknowledged, some
            # still streaming in.
            await asyncio.wait(tasks, timeout=30, return_when=asyncio.FIRST_COMPLETED)
            await asyncio.sleep(chance.uniform(0, 0.4))
            assert server.proc is not None
            server.proc.kill()
            await server.proc.wait()
            last_kill = time.monotonic()
            for (child, expected), (code, body) in zip(
                sent, await asyncio.gather(*tasks), strict=True
            ):
                if code == 201:
                    answered += 1
                    ledger.add(body["id"], child, expected)
                elif code is None:
                    ledger.unanswered.append((child, expected))
                else:
                    refused.append(f"kill {i}: {code} {body}")
            # Between two servers (the local store may be opened): what this
            # kill left, and whether a sweep took the blob of a live record.
            orphans.count(await census(env), datetime.now(UTC))
        looped = time.monotonic() - began
        before = await census(env)
        in_loop, logged = len(orphans.gone), swept(logs)
        server = await Server(served, tmp_path / "server-after.log").start()
        logs.append(server)
        started = time.monotonic()
        try:
            # The start-up sweep runs beside the first requests: it must take
            # every orphan already older than the grace, and log that it did.
            now = datetime.now(UTC)
            old = [
                k
                for k in before.orphans
                if (now - orphans.seen[k][1]).total_seconds() > GRACE_MINUTES * 60 + 1
            ]
            if old:
                await eventually(
                    lambda: SWEPT.search(server.output()) is not None,
                    f"the start-up sweep removed {len(old)} orphans older than the grace",
                    within=30,
                    every=0.1,
                )
            start_took = time.monotonic() - started
            broken = await records_hold(staff.on(server), guardian.on(server), ledger)
            at_start = swept([server])
        finally:
            await server.stop()
    after_start = await census(env)
    orphans.count(after_start, datetime.now(UTC))
    # The uploads the last kill cut off hold their leases a little longer;
    # once those ran out, a sweep with no grace must leave no orphan.
    await asyncio.sleep(max(0.0, last_kill + LEASE_SECONDS + 0.5 - time.monotonic()))
    cli_removed, broken_sweep = await sweep_with_no_grace(env)
    broken += broken_sweep
    last = await census(env)
    broken += census_lines(last)
    broken += [f"a live item lacked a blob after a kill: {i}" for i in sorted(orphans.lacking)]
    broken += await audit_verifies(env)
    errors = [line for s in logs for line in s.server_errors()]
    made = sum(size for size, _ in orphans.seen.values())
    print(
        f"\nkilled server ({env.get('KLUIS_STORAGE_BACKEND', 'local')}): {kills} kills in "
        f"{looped:.0f} s, {answered} uploads answered 201, {len(ledger.unanswered)} unanswered, "
        f"{len(refused)} refused\n"
        f"  orphans the kills made: {len(orphans.seen)} ({mb(made)}); removed while the servers "
        f"ran (start-up and periodic sweeps, grace {GRACE_MINUTES} min): {in_loop} ({logged} "
        f"in logged sweeps; a sweep killed before it logs is not counted there), each within "
        f"{orphans.lingered():.0f} s of its making\n"
        f"  after the last kill, before the last start: {len(before.orphans)} orphans "
        f"({mb(before.orphan_bytes)}), {len(before.half_visible)} records half-visible, "
        f"{len(before.missing)} blobs of live records missing\n"
        f"  the last start's sweeps removed {at_start} (the start-up one {start_took:.1f} s "
        f"after ready, {len(old)} due); "
        f"kluis storage sweep --grace-minutes 0 removed {cli_removed}\n"
        f"  left after: {len(last.orphans)} orphans, {len(last.missing)} missing blobs; "
        f"violations: {len(broken)}; server 5xx/tracebacks: {len(errors)}"
    )
    assert refused == []
    # What a user would notice: no acknowledged record lost or cut short, no
    # sweep ever taking the blob of a live record, no orphan left by a sweep
    # with no grace.
    assert broken == []
    assert orphans.lacking == set()
    assert last.orphans == {}
    assert last.missing == set()
    assert errors == []
