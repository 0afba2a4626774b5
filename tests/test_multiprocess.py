"""Several processes on one vault, as it is run: two servers and the cron jobs beside them.

Two ``kluis serve`` on one database, one blob store and one key store (the
local keyring, or a SoftHSM2 token), taking uploads, end-date changes and
link fetches in turn, while ``kluis keys rotate`` and ``kluis retention run``
run beside them with ``--now`` moving through the months, as cron would
(and an operator catching up). Afterwards, whatever order things happened in:

* every item that was answered 201 reads back through either server, with
  the bytes that were sent, also after both servers were restarted;
* what retention destroyed stays destroyed: a copy of the database and
  blobs taken before the destruction, opened with today's key store,
  decrypts nothing of the child;
* neither server logged a 5xx or a traceback; ``kluis audit verify`` passes.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import aiohttp
import pytest

from tests.files import jpeg_with_secrets
from tests.helpers.keystores import KeyStore
from tests.helpers.organisation import document, organisation
from tests.helpers.processes import Client, Server, kluis, kluis_env
from vault.audit.log import AuditLog
from vault.db import create_engine
from vault.keys import EpochDestroyed
from vault.keys.provider import audit_sign
from vault.keys.service import KeyDestroyed, KeyService

pytestmark = [pytest.mark.sqlite, pytest.mark.localdisk]

#: The cron runs, in order: catching up a month, half a year, past child one's
#: term (destroyed), and the month after.
CRON = (
    "2027-01-02T03:00:00Z",
    "2027-06-01T03:00:00Z",
    "2028-01-10T03:00:00Z",
    "2028-02-02T03:00:00Z",
)


@pytest.mark.slow
async def test_two_servers_and_the_cron_jobs_on_one_vault(
    tmp_path: Path, key_store: KeyStore
) -> None:
    data = tmp_path / "data"
    env = kluis_env(KLUIS_DATA_DIR=str(data), **key_store.env)
    status, out, err = await kluis(env, "init")
    assert status == 0, err
    admin_token = out.strip().splitlines()[-1]
    servers = [Server(env, tmp_path / f"server-{n}.log") for n in "ab"]
    await asyncio.gather(*(s.start() for s in servers))
    sent: dict[str, tuple[str, bytes | None]] = {}  # item -> (child, bytes; None for a photo)
    try:
        async with aiohttp.ClientSession() as session:
            admin = Client(session, servers[0].base, admin_token)
            staff, guardian, children = await organisation(admin)
            doomed = children[0]

            async def upload(n: int, child: str) -> None:
                client = staff.on(servers[n % 2])
                if n % 3 == 0:
                    status, body = await client.upload(
                        child, {"kind": "photo"}, jpeg_with_secrets(), f"foto-{n}.jpg"
                    )
                    data_sent = None
                else:
                    data_sent = document(f"{child}-{n}")
                    status, body = await client.upload(
                        child, {"kind": "observation"}, data_sent, f"obs-{n}.pdf"
                    )
                assert status == 201, (status, body)
                sent[body["id"]] = (child, data_sent)

            async def cross_fetch(n: int) -> None:
                """A link issued on one server, fetched from the other."""
                if not sent:
                    return
                item = list(sent)[n % len(sent)]
                child, expected = sent[item]
                issuer, other = servers[n % 2], servers[(n + 1) % 2]
                status, link = await guardian.on(issuer).call("POST", f"/v1/items/{item}/links", {})
                if status == 410:
                    assert child == doomed  # only the destroyed child's records go
                    return
                assert status == 201, (status, link)
                got, body = await guardian.fetch(link["url"], other.base)
                if got == 410:
                    assert child == doomed
                    return
                assert got == 200
                assert body == expected if expected is not None else body[:2] == b"\xff\xd8"

            await asyncio.gather(*(upload(n, children[n % 3]) for n in range(9)))
            # Child one's contract ended yesterday (set on the other server).
            await admin.on(servers[1]).ok(
                "PUT",
                f"/v1/children/{doomed}/placement",
                {"start_date": "2024-01-01", "end_date": "2026-11-30"},
            )
            await asyncio.gather(*(cross_fetch(n) for n in range(12)))
            backup = tmp_path / "backup"
            backup.mkdir()
            with (
                sqlite3.connect(data / "kluis.db") as source,
                sqlite3.connect(backup / "kluis.db") as copy,
            ):
                source.backup(copy)  # a consistent online copy, as a nightly backup takes it
            shutil.copytree(data / "blobs", backup / "blobs")

            upload_no = 100
            for moment in CRON:
                cron = [
                    kluis(env, "keys", "rotate", "--now", moment),
                    kluis(env, "retention", "run", "--now", moment),
                ]
                traffic = [upload(upload_no + n, children[1 + n % 2]) for n in range(4)]
                traffic += [cross_fetch(upload_no + n) for n in range(8)]
                upload_no += 10
                results = await asyncio.gather(*cron, *traffic)
                for status, out, err in cast(list[tuple[int, str, str]], results[:2]):
                    assert status == 0, (moment, out, err)

            status, out, _ = await kluis(env, "keys", "status")
            destroyed = {line.split()[0] for line in out.splitlines() if " destroyed " in line}
            assert "shred-2027-12" in destroyed, out  # child one's photos and observations

            await asyncio.gather(*(s.stop() for s in servers))
            await asyncio.gather(*(s.start() for s in servers))  # what survives a restart
            for n in range(len(sent) * 2):
                await cross_fetch(n)
            assert any(child != doomed for child, _ in sent.values())
            for item, (child, _) in sent.items():
                status, _ = await guardian.call("POST", f"/v1/items/{item}/links", {})
                assert status == (410 if child == doomed else 201), (item, child, status)
    finally:
        await asyncio.gather(*(s.stop() for s in servers))

    # The copy from before the destruction, opened with today's key store.
    engine = create_engine(f"sqlite+aiosqlite:///{backup / 'kluis.db'}")
    async with key_store.opened() as provider:
        keys = KeyService(engine, provider, AuditLog(engine, audit_sign(provider), _now), _now)
        try:
            for item, (child, _) in sent.items():
                if child == doomed:
                    with pytest.raises((KeyDestroyed, EpochDestroyed)):
                        await keys.open_item_key(item)
        finally:
            await engine.dispose()
    assert any(child == doomed for child, _ in sent.values())

    for server in servers:
        assert server.server_errors() == [], server.output()[-3000:]
    status, out, err = await kluis(env, "audit", "verify")
    assert status == 0, out + err


def _now() -> datetime:
    return datetime.now(UTC)
