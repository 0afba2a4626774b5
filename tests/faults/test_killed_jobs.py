"""Retention and rotation killed with SIGKILL mid-run never wedge the next run.

A real ``kluis retention run`` or ``kluis keys rotate`` (with a ``--now`` in
the future, as an operator catching up gives it) is killed at a random child
while it works, over and over, beside a running server; the next run is
started at once each time and must not be refused ("another run under
way": the lock dies with its process, there is no lease to wait out, from
any clock). Afterwards runs with the real clock and with a far-future
``--now`` finish, and:

* the service still creates children (201: a future ``--now`` never destroys
  the live epoch the real clock writes into) and takes uploads;
* the invariants of tests/helpers/faults.py: every acknowledged record whole
  (the one child past its term destroyed, every record of it), listings
  exact, no orphan or missing blob after a sweep, the audit chain verifies,
  no 5xx or traceback in the server's log.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
from pathlib import Path

import aiohttp
import pytest

from tests.helpers.faults import (
    Ledger,
    audit_verifies,
    records_hold,
    rounds,
    store_holds_exactly_the_live_blobs,
)
from tests.helpers.organisation import document
from tests.helpers.processes import KLUIS, Client, Server, kluis

CHILDREN = 16
#: Far enough that every record of a child whose placement ended in 2025 is due.
FAR = "2031-03-01T03:00:00Z"
PROGRESS = re.compile(rb"(\d+)/(\d+)")


async def setup(admin: Client, ledger: Ledger) -> tuple[Client, Client, Client, str, str]:
    """Staff, a guardian, ``CHILDREN`` children with one record each; the last
    child's placement then ends in 2025 (its records are due under ``FAR``).
    Returns (staff, guardian, privacy officer, group, the guardian's person id)."""
    location = (await admin.ok("POST", "/v1/locations", {"name": "De Boomhut"}))["id"]
    group = (await admin.ok("POST", "/v1/groups", {"location_id": location, "name": "Rupsjes"}))[
        "id"
    ]
    staff_row = await admin.ok("POST", "/v1/people", {"name": "Sanne", "role": "staff"})
    parent = await admin.ok("POST", "/v1/people", {"name": "Ouder", "role": "guardian"})
    await admin.ok("POST", f"/v1/groups/{group}/staff", {"person_id": staff_row["id"]})
    officer = await admin.ok("POST", "/v1/people", {"name": "Fenna", "role": "privacy_officer"})
    staff, guardian = admin.as_(staff_row["token"]), admin.as_(parent["token"])
    child = ""
    for n in range(CHILDREN):
        child = await new_child(admin, group, n)
        await admin.ok(
            "POST",
            f"/v1/children/{child}/guardians",
            {"person_id": parent["id"], "relation": "contract_parent", "household": "shared"},
        )
        data = document(f"record of child {n}")
        status, item = await staff.upload(child, {"kind": "observation"}, data, f"o{n}.pdf")
        assert status == 201, item
        ledger.add(item["id"], child, data)
    await admin.ok(
        "PUT",
        f"/v1/children/{child}/placement",
        {"start_date": "2024-01-01", "end_date": "2025-01-31"},
    )
    ledger.doomed.add(child)
    return staff, guardian, admin.as_(officer["token"]), group, parent["id"]


async def new_child(admin: Client, group: str, n: int) -> str:
    child: str = (
        await admin.ok(
            "POST",
            "/v1/children",
            {
                "first_name": f"Kind{n}",
                "last_name": "Test",
                "birth_date": "2023-04-02",
                "group_id": group,
            },
        )
    )["id"]
    await admin.ok(
        "PUT", f"/v1/children/{child}/placement", {"start_date": "2024-01-01", "end_date": None}
    )
    return child


async def kill_mid_run(env: dict[str, str], args: tuple[str, ...], at: int) -> tuple[str, bytes]:
    """Start ``kluis *args``; SIGKILL it once its progress bar reaches ``at``.

    Returns how it went (``killed``: mid-run, holding its lock; ``finished``:
    it ended before the kill; ``idle``: it had nothing to show progress on)
    and what it wrote on stderr."""
    proc = await asyncio.create_subprocess_exec(
        *KLUIS,
        *args,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    seen = b""
    try:
        while True:
            chunk = await asyncio.wait_for(proc.stderr.read(4096), 120)
            if not chunk:
                await proc.wait()
                return ("finished" if b"/" in seen else "idle"), seen
            seen += chunk
            counts = PROGRESS.findall(seen)
            if counts and int(counts[-1][0]) >= min(at, int(counts[-1][1]) - 1):
                os.kill(proc.pid, signal.SIGKILL)
                await proc.wait()
                return "killed", seen
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


def future(month: int) -> str:
    """The first of a month from January 2027 on, at 03:00 (a cron's moment)."""
    year, index = divmod(month, 12)
    return f"{2027 + year:04d}-{index + 1:02d}-01T03:00:00Z"


@pytest.mark.slow
async def test_killed_retention_and_rotation_runs_never_wedge_the_next(
    deployment: dict[str, str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # Two children per batch, so that kills land between and inside the
    # batches' transactions, not only after the one batch 16 children make.
    env = {**deployment, "KLUIS_RETENTION_BATCH_CHILDREN": "2"}
    status, out, err = await kluis(env, "init")
    assert status == 0, err
    server = await Server(env, tmp_path / "server.log").start()
    ledger = Ledger()
    outcomes: dict[str, dict[str, int]] = {
        "retention": {"killed": 0, "finished": 0, "idle": 0},
        "rotate": {"killed": 0, "finished": 0, "idle": 0},
    }
    refused: list[str] = []
    chance = random.Random(18)  # the same kill points on every run of the suite
    try:
        async with aiohttp.ClientSession() as session:
            admin = Client(session, server.base, out.strip().splitlines()[-1])
            staff, guardian, officer, group, parent = await setup(admin, ledger)
            for i in range(rounds(request.config, 2, 40)):
                # Retention and rotation in turn: retention moves every live
                # child key back into the real month's epoch, so the next
                # rotation (to a later month each time) has them all to move.
                for job, args in (
                    ("retention", ("retention", "run", "--now", future(i))),
                    ("rotate", ("keys", "rotate", "--now", future(i))),
                ):
                    how, said = await kill_mid_run(env, args, chance.randrange(1, CHILDREN // 2))
                    outcomes[job][how] += 1
                    if b"under way" in said or b"Error" in said:
                        refused.append(f"{job} {i}: {said[-300:]!r}")
            # After the last kill, at once: with the real clock, then far ahead.
            last: tuple[tuple[str, ...], ...] = (
                ("retention", "run"),
                ("retention", "run", "--now", FAR),
                ("keys", "rotate"),
            )
            for final in last:
                status, printed, err = await kluis(env, *final, within=120)
                assert status == 0, (final, printed[-300:], err[-2000:])
            # The real month's live epoch lives on: the service works as before.
            late = await new_child(admin, group, 99)
            await admin.ok(
                "POST",
                f"/v1/children/{late}/guardians",
                {
                    "person_id": parent,
                    "relation": "contract_parent",
                    "household": "shared",
                },
            )
            data = document("after the runs")
            status, item = await staff.upload(late, {"kind": "observation"}, data, "late.pdf")
            assert status == 201, item
            ledger.add(item["id"], late, data)
            broken = await records_hold(staff, guardian, ledger, officer)
    finally:
        await server.stop()
    broken += await store_holds_exactly_the_live_blobs(env)
    broken += await audit_verifies(env)
    print(f"\nkilled jobs: {outcomes}; refused: {len(refused)}; violations: {len(broken)}")
    assert refused == []
    assert broken == []
    assert server.server_errors() == []
    # The kills landed while the runs held their lock, not only before or after.
    assert outcomes["retention"]["killed"] >= 1, outcomes
    assert outcomes["rotate"]["killed"] >= 1, outcomes
