"""One real ``kluis serve`` (embedded defaults) and one Chromium for every
browser test of the web app: the world is made once through the API."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from playwright.async_api import Browser, async_playwright

from tests.helpers.processes import Client, Server, kluis, kluis_env
from tests.helpers.smtp import SmtpServer
from tests.helpers.webapp import ARTIFACTS, World, make_world

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def axe_source() -> str:
    """The pinned axe-core (scripts/ensure-axe-core; scripts/test sets VAULT_TEST_AXE)."""
    path = (
        os.environ.get("VAULT_TEST_AXE")
        or subprocess.run(
            [ROOT / "scripts" / "ensure-axe-core"], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    return Path(path).read_text()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[Server, World]]:
    folder = tmp_path_factory.mktemp("webapp")
    smtp = SmtpServer().start()
    env = kluis_env(
        KLUIS_DATA_DIR=str(folder / "data"),
        KLUIS_MAIL_SMTP_HOST="127.0.0.1",
        KLUIS_MAIL_SMTP_PORT=str(smtp.port),
        KLUIS_MAIL_SENDER="Kluis <kluis@kinderopvang.example>",
        KLUIS_MAIL_POLL_SECONDS="0.2",
    )
    status, out, err = await kluis(env, "init")
    assert status == 0, err
    server = await Server(env, folder / "server.log").start()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        async with aiohttp.ClientSession() as session:
            admin = Client(session, server.base, out.strip().splitlines()[-1])
            world = await make_world(admin, smtp, folder)
            yield server, world
        assert server.server_errors() == [], server.output()[-3000:]
    finally:
        await server.stop()
        smtp.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
        )
        try:
            yield launched
        finally:
            await launched.close()
