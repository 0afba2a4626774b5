"""The last download of a handover, asked for at once through two servers.

Two ``kluis serve`` processes on one PostgreSQL database (as behind a
balancer): the claim of a download is one conditional UPDATE before the first
byte leaves, so of eight GETs at once, four to each process, one gets the
observation and seven are refused with ``link_expired``. A range probe
before them used no download.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

from tests.files import PDF
from tests.helpers.organisation import organisation
from tests.helpers.processes import Client, Server, kluis, kluis_env
from tests.servers import PostgresServer

pytestmark = [pytest.mark.postgres, pytest.mark.localdisk]


async def test_two_servers_give_the_last_download_once(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    env = kluis_env(
        KLUIS_DATA_DIR=str(tmp_path / "data"),
        KLUIS_DATABASE_URL=postgres_server.create_database(),
    )
    status, out, err = await kluis(env, "init")
    assert status == 0, err
    admin_token = out.strip().splitlines()[-1]
    servers = [Server(env, tmp_path / f"server-{n}.log") for n in "ab"]
    await asyncio.gather(*(s.start() for s in servers))
    try:
        async with aiohttp.ClientSession() as session:
            admin = Client(session, servers[0].base, admin_token)
            staff, guardian, children = await organisation(admin)
            child = children[0]
            staff_id = (await staff.ok("GET", "/v1/me"))["id"]
            await admin.ok("PUT", f"/v1/children/{child}/mentor", {"person_id": staff_id})
            await guardian.ok(
                "PUT", f"/v1/children/{child}/consents/school_handover", {"granted": True}
            )
            status, item = await staff.upload(child, {"kind": "observation"}, PDF, "obs.pdf")
            assert status == 201, item
            asked = {"recipient": "School", "max_downloads": 1}
            link = await staff.ok("POST", f"/v1/items/{item['id']}/handovers", asked)
            path = link["url"][link["url"].index("/", len("http://")) :]

            async def get(n: int, **headers: str) -> tuple[int, bytes]:
                async with session.get(servers[n % 2].base + path, headers=headers) as answer:
                    return answer.status, await answer.read()

            assert await get(1, Range="bytes=0-0") == (206, PDF[:1])
            answers = await asyncio.gather(*(get(n) for n in range(8)))
            assert sorted(status for status, _ in answers) == [200] + [403] * 7
            assert [body for status, body in answers if status == 200] == [PDF]
            for status, body in answers:
                if status == 403:
                    assert json.loads(body)["error"]["code"] == "link_expired"
        for server in servers:
            assert server.server_errors() == []
    finally:
        await asyncio.gather(*(s.stop() for s in servers))
