"""MinIO killed mid-upload and mid-download, then back: clean refusals, no hang, recovery.

A MinIO of the test's own (the session's is shared) is killed with SIGKILL
while an upload streams in and while a download streams out, and started
again on the same address with its data:

* the upload answers 503 ``storage_unavailable`` and leaves no record;
* a fetch while the store is away answers 503 before any byte;
* a download under way ends with a short prefix and a closed connection
  (or whole, had it all been read already), within a bound, never a hang;
* once MinIO is back, uploads and downloads work again without restarting
  Kluis; every acknowledged record reads back whole, the store holds exactly
  the live blobs after a sweep, the audit chain verifies, and nothing is
  logged as an error but the refusals the outage caused, with no traceback.

One outage cycle in the suite, 8 with ``--faults-long``.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import random
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from tests.files import PDF
from tests.helpers.api import Api, start
from tests.helpers.faults import rounds
from tests.helpers.items import form, upload
from tests.helpers.links import link
from tests.helpers.s3 import s3_settings
from tests.helpers.world import world
from tests.servers import MinioServer
from vault.api.resources import DB, KEYRING, STORE
from vault.audit.verify import verify as verify_chain
from vault.config import Settings
from vault.db.schema import item_blobs, items
from vault.items.sweep import sweep
from vault.keys.provider import audit_check

pytestmark = [pytest.mark.minio, pytest.mark.sqlite]

RECORD = 6 * 1024 * 1024 + 99
#: How long an answer may take to end once the store is gone (two store
#: time-outs of 2 s and a retry, with room for a busy host).
BOUND = 20.0


@pytest.fixture
def own_minio(minio_server: MinioServer) -> Iterator[MinioServer]:
    server = MinioServer(minio_server.binary).start()
    try:
        yield server
    finally:
        server.stop()


def small_window(addr_info: tuple[Any, ...]) -> socket.socket:
    """A client that reads slowly: the kernel must not buffer the whole answer."""
    sock = socket.socket(addr_info[0], addr_info[1], addr_info[2])
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    return sock


async def live_blobs(api: Api) -> set[str]:
    async with api.client.app[DB].connect() as conn:
        return set(
            (
                await conn.scalars(
                    select(item_blobs.c.blob_key)
                    .join(items, items.c.id == item_blobs.c.item_id)
                    .where(items.c.destroyed_at.is_(None))
                )
            ).all()
        )


async def upload_during_outage(api: Api, token: str, child: str, minio: MinioServer) -> Any:
    """An upload whose store dies after its first 2 MB: (status, body)."""
    data = PDF + os.urandom(RECORD)

    async def pieces() -> AsyncIterator[bytes]:
        for at in range(0, len(data), 256 * 1024):
            if at == 2 * 1024 * 1024:
                await asyncio.to_thread(minio.kill)
            yield data[at : at + 256 * 1024]
            await asyncio.sleep(0.01)

    body = form({"kind": "observation"}, pieces(), "o.pdf")
    return await asyncio.wait_for(
        api.call("POST", f"/v1/children/{child}/items", token, data=body), BOUND
    )


async def download_during_outage(url: str, minio: MinioServer) -> tuple[int, bytes, str]:
    """Read 300 KB, kill the store, read on: (status, body, whole | closed)."""
    connector = aiohttp.TCPConnector(socket_factory=small_window)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def go() -> tuple[int, bytes, str]:
            async with session.get(url) as answer:
                received = bytearray()
                killed = False
                try:
                    async for chunk in answer.content.iter_chunked(64 * 1024):
                        received += chunk
                        if len(received) >= 300_000 and not killed:
                            await asyncio.to_thread(minio.kill)
                            killed = True
                except aiohttp.ClientPayloadError:
                    return answer.status, bytes(received), "closed"
                return answer.status, bytes(received), "whole"

        return await asyncio.wait_for(go(), BOUND)


async def test_minio_killed_mid_upload_and_mid_download_then_back(
    own_minio: MinioServer,
    tmp_path: Path,
    aiohttp_client: Any,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    minio = own_minio
    settings = Settings(data_dir=tmp_path / "data", storage=s3_settings(minio, timeout_seconds=2.0))
    api = await start(settings, aiohttp_client)
    app = api.client.app
    w = await world(api)
    chance = random.Random(5)
    acknowledged: dict[str, bytes] = {}
    refusals = 0
    endings: list[str] = []

    async def acknowledge() -> str:
        data = PDF + chance.randbytes(RECORD)
        status, item = await upload(
            api, w.staff, w.child, {"kind": "observation"}, io.BytesIO(data), "o.pdf"
        )
        assert status == 201, item
        acknowledged[item["id"]] = data
        return str(item["id"])

    cycles = rounds(request.config, 1, 8)
    with caplog.at_level(logging.INFO):
        for _ in range(cycles):
            record = await acknowledge()
            # Mid-upload: refused cleanly, nothing left.
            status, body = await upload_during_outage(api, w.staff, w.child, minio)
            assert (status, body["error"]["code"]) == (503, "storage_unavailable"), body
            refusals += 1
            listing = await api.ok("GET", f"/v1/children/{w.child}/items", token=w.staff)
            assert {i["id"] for i in listing["items"]} == set(acknowledged)
            # Away: a fetch is refused before its first byte.
            path = await link(api, w.parent, record)
            answer = await asyncio.wait_for(api.client.get(path), BOUND)
            assert answer.status == 503, await answer.text()
            assert (await answer.json())["error"]["code"] == "storage_unavailable"
            refusals += 1
            # Back, and Kluis did not need a restart.
            await asyncio.to_thread(minio.start)
            record = await acknowledge()
            # Mid-download: a prefix, then the end of the connection.
            url = str(api.client.make_url(await link(api, w.parent, record)))
            status, got, ending = await download_during_outage(url, minio)
            assert status == 200
            data = acknowledged[record]
            assert data.startswith(got)
            assert ending == ("whole" if got == data else "closed"), (len(got), ending)
            endings.append(ending)
            await asyncio.to_thread(minio.start)

    print(
        f"\nstore outage: {cycles} cycles, {refusals} refusals, downloads {endings}, "
        f"{len(acknowledged)} records"
    )
    for item_id, data in acknowledged.items():
        answer = await api.client.get(await link(api, w.parent, item_id))
        assert (answer.status, await answer.read()) == (200, data), item_id
    await sweep(app[DB], app[STORE], datetime.now(UTC) + timedelta(days=1), timedelta(0))
    assert {key async for key in app[STORE].list()} == await live_blobs(api)
    chain = await verify_chain(app[DB], audit_check(app[KEYRING]))
    assert chain.ok, chain.problems
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert all("storage_unavailable" in m for m in errors), errors
    assert not any(r.exc_info for r in caplog.records), "no traceback for a store outage"
