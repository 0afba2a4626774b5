"""``kluis serve`` on uvloop, on asyncio's own loop, and where uvloop is absent;
and its access log, quiet by default on answers that went well.

Real processes on SQLite and the local keyring. An observation uploaded on
one server is fetched through a link on each of the others (the hot path on
every loop); the log's start line names the loop that runs.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.helpers.organisation import document, organisation
from tests.helpers.processes import Client, Server, kluis, kluis_env

pytestmark = [pytest.mark.sqlite, pytest.mark.localdisk, pytest.mark.localkeyring]

ACCESS = re.compile(r"kluis\.access: GET /l/\{token\} 200 ")


def loop_of(server: Server) -> str:
    found = re.findall(r"serving on \S+ \(event loop: (\w+)\)", server.output())
    assert found, server.output()[-2000:]
    return str(found[-1])


@pytest.mark.slow
async def test_the_server_serves_on_every_loop_and_logs_every_answer_only_when_asked(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    env = kluis_env(KLUIS_DATA_DIR=str(data))
    status, out, err = await kluis(env, "init")
    assert status == 0, err
    token = out.strip().splitlines()[-1]
    # An installation without uvloop: an import of it fails.
    absent = tmp_path / "no-uvloop" / "uvloop"
    absent.mkdir(parents=True)
    (absent / "__init__.py").write_text("raise ImportError('uvloop is not installed here')\n")
    runs = {
        "uvloop": env,
        "asyncio": {**env, "KLUIS_SERVER_EVENT_LOOP": "asyncio", "KLUIS_SERVER_ACCESS_LOG": "true"},
        "absent": {**env, "PYTHONPATH": str(absent.parent)},
    }
    url = ""
    sent = document("every loop")
    for name, run_env in runs.items():
        server = await Server(run_env, tmp_path / f"{name}.log").start()
        try:
            async with aiohttp.ClientSession() as session:
                if not url:
                    admin = Client(session, server.base, token)
                    staff, guardian, children = await organisation(admin)
                    status, item = await staff.upload(
                        children[0], {"kind": "observation"}, sent, "o.pdf"
                    )
                    assert status == 201, item
                    path = f"/v1/items/{item['id']}/links"
                    url = (await guardian.ok("POST", path, {"ttl_seconds": 600}))["url"]
                for _ in range(3):
                    async with session.get(server.base + urlsplit(url).path) as answer:
                        assert answer.status == 200
                        assert await answer.read() == sent
        finally:
            await server.stop()
        assert server.proc is not None
        assert server.proc.returncode == 0, server.output()[-2000:]
        assert server.server_errors() == []
        assert loop_of(server) == ("asyncio" if name != "uvloop" else "uvloop")
        lines = ACCESS.findall(server.output())
        # The access log has a line for every answer only when asked for it.
        assert len(lines) == (3 if name == "asyncio" else 0), server.output()[-2000:]


async def test_a_server_told_to_use_uvloop_where_it_is_absent_does_not_start(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    env = kluis_env(KLUIS_DATA_DIR=str(data))
    status, _, err = await kluis(env, "init")
    assert status == 0, err
    absent = tmp_path / "no-uvloop" / "uvloop"
    absent.mkdir(parents=True)
    (absent / "__init__.py").write_text("raise ImportError('uvloop is not installed here')\n")
    run_env = {**env, "PYTHONPATH": str(absent.parent), "KLUIS_SERVER_EVENT_LOOP": "uvloop"}
    status, _, err = await kluis(run_env, "serve", "--port", "0", within=60)
    assert status != 0
    assert "server.event_loop is 'uvloop' but uvloop is not installed" in err
