"""PostgreSQL crashed mid-transaction under load, then back: refusals, not errors; recovery.

A PostgreSQL cluster of the test's own is shut down at once (SIGQUIT: every
connection and open transaction cut) while clients upload records, list them
and fetch them through links, and started again a moment later (it recovers
from its WAL). Kluis is not restarted. While the database is away a call is
refused with 503 (``storage_unavailable``) and the JSON error body, never a
500 or a traceback; once it is back every call succeeds again. Afterwards:
every record answered 201 reads back whole, an upload answered 503 is listed
whole or not at all, the store holds exactly the live blobs after a sweep,
and the audit chain verifies.

One crash in the suite, 8 with ``--faults-long``.
"""

from __future__ import annotations

import asyncio
import collections
import io
import logging
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from sqlalchemy import select

from tests.files import PDF
from tests.helpers.api import Api, start
from tests.helpers.faults import rounds
from tests.helpers.items import upload
from tests.helpers.world import World, world
from tests.servers import PostgresServer
from vault.api.resources import DB, KEYRING, STORE
from vault.audit.verify import verify as verify_chain
from vault.config import DatabaseSettings, Settings
from vault.db.schema import item_blobs, items
from vault.items.sweep import sweep
from vault.keys.provider import audit_check

pytestmark = [pytest.mark.postgres, pytest.mark.localdisk]

CLIENTS = 4
RECORD = 150_000
#: A call may take this long to be answered while the database is away.
BOUND = 30.0


@pytest.fixture
def own_postgres(postgres_server: PostgresServer) -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


class Load:
    """Clients uploading, listing and fetching until told to stop."""

    def __init__(self, api: Api, w: World, chance: random.Random) -> None:
        self.api, self.w, self.chance = api, w, chance
        self.acknowledged: dict[str, bytes] = {}
        self.unanswered: list[bytes] = []  # answered 503: committed or not
        self.statuses: collections.Counter[str] = collections.Counter()
        self.bad: list[str] = []
        self.stop = asyncio.Event()

    def _note(self, what: str, status: int, body: Any) -> bool:
        self.statuses[f"{what} {status}"] += 1
        if status < 500:
            return True
        code = body["error"]["code"] if isinstance(body, dict) and "error" in body else None
        if (status, code) != (503, "storage_unavailable"):
            self.bad.append(f"{what}: {status} {body}")
        return False

    async def client(self) -> None:
        api, w = self.api, self.w
        while not self.stop.is_set():
            data = PDF + self.chance.randbytes(RECORD)
            status, item = await asyncio.wait_for(
                upload(api, w.staff, w.child, {"kind": "observation"}, io.BytesIO(data), "o.pdf"),
                BOUND,
            )
            if self._note("upload", status, item):
                assert status == 201, item
                self.acknowledged[item["id"]] = data
            else:
                self.unanswered.append(data)
            status, listing = await asyncio.wait_for(
                api.call("GET", f"/v1/children/{w.child}/items", w.staff), BOUND
            )
            self._note("listing", status, listing)
            if not self.acknowledged:
                continue
            item_id = self.chance.choice(list(self.acknowledged))
            status, link = await asyncio.wait_for(
                api.call("POST", f"/v1/items/{item_id}/links", w.parent, {}), BOUND
            )
            if not self._note("link", status, link):
                continue
            answer = await asyncio.wait_for(api.client.get(urlsplit(link["url"]).path), BOUND)
            if answer.content_type == "application/json":
                self._note("fetch", answer.status, await answer.json())
            else:
                self._note("fetch", answer.status, None)
                body = await answer.read()
                if (answer.status, body) != (200, self.acknowledged[item_id]):
                    self.bad.append(f"fetch {item_id}: {answer.status}, {len(body)} bytes")


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


async def test_postgres_crashed_mid_transaction_then_back(
    own_postgres: PostgresServer,
    tmp_path: Path,
    aiohttp_client: Any,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    postgres = own_postgres
    settings = Settings(
        data_dir=tmp_path / "data", database=DatabaseSettings(url=postgres.create_database())
    )
    api = await start(settings, aiohttp_client)
    app = api.client.app
    w = await world(api)
    chance = random.Random(11)
    load = Load(api, w, chance)
    crashes = rounds(request.config, 1, 8)
    with caplog.at_level(logging.INFO):
        clients = [asyncio.create_task(load.client()) for _ in range(CLIENTS)]
        try:
            for _ in range(crashes):
                await asyncio.sleep(chance.uniform(0.5, 1.5))
                await asyncio.to_thread(postgres.crash)
                await asyncio.sleep(chance.uniform(0.3, 1.5))
                await asyncio.to_thread(postgres.start)
            # Back: the load goes on a while; from now on everything succeeds.
            await asyncio.sleep(2)
            load.statuses.clear()
            await asyncio.sleep(2)
        finally:
            load.stop.set()
            await asyncio.gather(*clients)
    after = dict(load.statuses)

    print(
        f"\ndatabase crash: {crashes} crashes, {len(load.acknowledged)} records, "
        f"{len(load.unanswered)} uploads refused; after recovery {after}; bad {len(load.bad)}"
    )
    assert load.bad == []
    assert after, "no call after the recovery"
    assert all(key.endswith(("200", "201")) for key in after), after
    listed: set[str] = set()
    cursor: str | None = ""
    while cursor is not None:  # every page, not only the first 200
        page = f"/v1/children/{w.child}/items?limit=200" + (
            f"&cursor={quote(cursor)}" if cursor else ""
        )
        listing = await api.ok("GET", page, token=w.staff)
        listed |= {i["id"] for i in listing["items"]}
        cursor = listing["next_cursor"]
    assert set(load.acknowledged) <= listed
    for extra in listed - set(load.acknowledged):
        link = await api.ok("POST", f"/v1/items/{extra}/links", {}, w.parent)
        answer = await api.client.get(urlsplit(link["url"]).path)
        assert await answer.read() in load.unanswered, "a refused upload listed, not whole"
    for item_id, data in load.acknowledged.items():
        link = await api.ok("POST", f"/v1/items/{item_id}/links", {}, w.parent)
        answer = await api.client.get(urlsplit(link["url"]).path)
        assert (answer.status, await answer.read()) == (200, data), item_id
    await sweep(app[DB], app[STORE], datetime.now(UTC) + timedelta(days=1), timedelta(0))
    assert {key async for key in app[STORE].list()} == await live_blobs(api)
    chain = await verify_chain(app[DB], audit_check(app[KEYRING]))
    assert chain.ok, chain.problems
    assert not any(r.exc_info for r in caplog.records), [
        r.getMessage() for r in caplog.records if r.exc_info
    ][:3]
