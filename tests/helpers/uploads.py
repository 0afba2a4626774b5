"""A running vault for upload tests, and an upload that waits half-way.

Shared by the tests of what other processes (a sweep, a retention run) do
beside a server's uploads under way.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from tests.helpers.organisation import document, organisation
from tests.helpers.processes import Client, Server, kluis, kluis_env
from vault.storage import LocalDiskStore

PIECE = 64 * 1024


def big_document() -> bytes:
    """A PDF of about 2 MB (its head sniffs as PDF; the rest is a comment)."""
    return document("slow") + b"% " + secrets.token_hex(1_000_000).encode() + b"\n"


async def paused_upload(
    client: Client, child: str, data: bytes, resume: asyncio.Event
) -> tuple[int, Any]:
    """An observation upload that sends the first half of the file, then waits for ``resume``."""

    async def pieces() -> AsyncIterator[bytes]:
        half = len(data) // 2
        for at in range(0, len(data), PIECE):
            if at >= half:
                await resume.wait()
            yield data[at : at + PIECE]

    return await client.upload_pieces(child, {"kind": "observation"}, pieces(), "o.pdf")


async def until(check: Any, within: float) -> bool:
    """Poll ``check()`` (async) until true or ``within`` s passed; whether it came true."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


@contextlib.asynccontextmanager
async def vault(
    tmp_path: Path, db_url: str, **settings: str
) -> AsyncIterator[tuple[dict[str, str], Server, Client, Client, str, LocalDiskStore]]:
    """A running server with an organisation: (env, server, staff, guardian, a child, store)."""
    data = tmp_path / "data"
    env = kluis_env(KLUIS_DATA_DIR=str(data), KLUIS_DATABASE_URL=db_url, **settings)
    status, out, err = await kluis(env, "init")
    assert status == 0, err
    server = await Server(env, tmp_path / "server.log").start()
    store = await LocalDiskStore.open(data / "blobs")
    try:
        async with aiohttp.ClientSession() as session:
            admin = Client(session, server.base, out.strip().splitlines()[-1])
            staff, guardian, children = await organisation(admin)
            yield env, server, staff, guardian, children[0], store
    finally:
        await server.stop()
        await store.close()
