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

Two kills per backend in the suite, 30 with ``--faults-long``.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.files import PDF, jpeg_with_secrets
from tests.helpers.faults import (
    Ledger,
    audit_verifies,
    records_hold,
    rounds,
    store_holds_exactly_the_live_blobs,
)
from tests.helpers.organisation import organisation
from tests.helpers.processes import Client, Server, kluis

UPLOADS = 4
PIECE = 64 * 1024


async def slow_upload(
    client: Client, child: str, kind: str, data: bytes, pace: float, name: str
) -> tuple[int | None, Any]:
    """An upload whose file part arrives ``PIECE`` bytes every ``pace`` s;
    (None, None) when the connection died before an answer."""

    async def pieces() -> AsyncIterator[bytes]:
        for at in range(0, len(data), PIECE):
            yield data[at : at + PIECE]
            await asyncio.sleep(pace)

    form = aiohttp.FormData()
    form.add_field("meta", json.dumps({"kind": kind}), content_type="application/json")
    form.add_field("file", pieces(), filename=name, content_type="application/octet-stream")
    try:
        async with client.session.post(
            f"{client.base}/v1/children/{child}/items",
            data=form,
            headers={"Authorization": f"Bearer {client.token}"},
        ) as answer:
            body = await answer.json() if answer.content_type == "application/json" else None
            return answer.status, body
    except aiohttp.ClientError:
        return None, None


@pytest.mark.slow
async def test_a_server_killed_mid_upload_loses_nothing_acknowledged(
    deployment: dict[str, str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    env = deployment
    status, out, err = await kluis(env, "init")
    assert status == 0, err
    admin_token = out.strip().splitlines()[-1]
    chance = random.Random(99)
    ledger = Ledger()
    logs: list[Server] = []
    refused: list[str] = []
    kills = rounds(request.config, 2, 30)
    answered = 0
    async with aiohttp.ClientSession() as session:
        for i in range(kills):
            server = await Server(env, tmp_path / f"server-{i}.log").start()
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
        server = await Server(env, tmp_path / "server-after.log").start()
        logs.append(server)
        try:
            broken = await records_hold(staff.on(server), guardian.on(server), ledger)
        finally:
            await server.stop()
    broken += await store_holds_exactly_the_live_blobs(env)
    broken += await audit_verifies(env)
    print(
        f"\nkilled server: {kills} kills, {answered} uploads answered 201, "
        f"{len(ledger.unanswered)} unanswered; violations: {len(broken)}"
    )
    assert refused == []
    assert broken == []
    assert [line for s in logs for line in s.server_errors()] == []
