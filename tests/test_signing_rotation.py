"""Signing rotations in quick succession, with real processes on one vault.

Two ``kluis serve`` on one SQLite database and keyring, and ``kluis keys
rotate-signing`` run twice, a moment apart, as an operator would. A reads
the secrets at every request (its refresh is 0 s: it stands for the
instance whose 30-second refresh has just come, or that just read them
after a miss), B keeps its copy for the default 30 s. Every link A signs,
with whichever secret is newest in the database at that moment, must be
answered 200 by B at once; no link may get 403 ``link_invalid`` because B
read the secrets a moment before the second rotation committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import NamedTuple

import aiohttp
import pytest

from tests.helpers.organisation import document, organisation
from tests.helpers.processes import Client, Server, kluis, kluis_env

pytestmark = [pytest.mark.sqlite, pytest.mark.localdisk, pytest.mark.localkeyring, pytest.mark.slow]


class Pair(NamedTuple):
    """Two servers on one vault, an observation in it, and its family."""

    env: dict[str, str]
    a: Server
    b: Server
    guardian: Client
    child: str
    item: str
    sent: bytes


@contextlib.asynccontextmanager
async def two_servers(tmp_path: Path, eager: str, sent: bytes) -> AsyncIterator[Pair]:
    """Servers ``a`` and ``b`` on one vault, ``eager`` of them reading the
    secrets at every request, with ``sent`` uploaded as an observation; each
    server's log is checked for errors once both have stopped."""
    env = kluis_env(KLUIS_DATA_DIR=str(tmp_path / "data"))
    status, out, err = await kluis(env, "init")
    assert status == 0, err
    every = {**env, "KLUIS_LINKS_SIGNING_REFRESH_SECONDS": "0"}
    a = Server(every if eager == "a" else env, tmp_path / "a.log")
    b = Server(every if eager == "b" else env, tmp_path / "b.log")
    await asyncio.gather(a.start(), b.start())
    try:
        async with aiohttp.ClientSession() as session:
            admin = Client(session, a.base, out.strip().splitlines()[-1])
            staff, guardian, children = await organisation(admin)
            status, item = await staff.upload(children[0], {"kind": "observation"}, sent, "o.pdf")
            assert status == 201, item
            yield Pair(env, a, b, guardian, children[0], item["id"], sent)
    finally:
        await asyncio.gather(a.stop(), b.stop())
    for server in (a, b):
        assert server.server_errors() == [], server.output()[-3000:]


async def test_links_signed_between_and_after_quick_rotations_verify_on_the_other_server(
    tmp_path: Path,
) -> None:
    async with two_servers(tmp_path, "a", document("quick rotations")) as pair:
        env, a, b, guardian, _child, item, sent = pair

        async def rotations() -> None:
            # The second starts 0.6 s after the first: their commits come
            # well within a second of each other.
            first = asyncio.create_task(kluis(env, "keys", "rotate-signing"))
            await asyncio.sleep(0.6)
            results = [await kluis(env, "keys", "rotate-signing"), await first]
            assert [s for s, _, _ in results] == [0, 0], results

        rotating = asyncio.create_task(rotations())
        fetched: list[tuple[float, str, int]] = []
        began, until = time.monotonic(), float("inf")
        while time.monotonic() < until:
            if rotating.done() and until == float("inf"):
                await rotating
                until = time.monotonic() + 3
            link = await guardian.on(a).ok("POST", f"/v1/items/{item}/links", {})
            for server in (b, a):
                status, body = await guardian.fetch(link["url"], server.base)
                fetched.append((round(time.monotonic() - began, 2), server.log.stem, status))
                if status == 200:
                    assert body == sent
        refused = [f for f in fetched if f[2] != 200]
        assert refused == [], f"(s, server, status) refused of {len(fetched)}: {refused}"


async def test_a_link_issued_right_after_two_rotations_survives_a_third(tmp_path: Path) -> None:
    """A keeps its copy of the secrets for the default 30 s and has signed
    once; two rotations, then a link and an export issued on A at once, then
    a third rotation. Both were issued after the second rotation, so they
    must be signed with its secret, which the third keeps: B (which reads
    the secrets at every request) and A answer them 200."""
    async with two_servers(tmp_path, "b", document("rotated under a link")) as pair:
        env, a, b, guardian, child, item, sent = pair
        first = await guardian.on(a).ok("POST", f"/v1/items/{item}/links", {})
        assert (await guardian.fetch(first["url"], a.base))[0] == 200

        async def rotate() -> None:
            status, _, err = await kluis(env, "keys", "rotate-signing")
            assert status == 0, err

        await rotate()
        await rotate()
        link = await guardian.on(a).ok("POST", f"/v1/items/{item}/links", {"ttl_seconds": 3600})
        made = await guardian.on(a).ok("POST", f"/v1/children/{child}/exports", {})
        await rotate()
        for server in (b, a):
            status, body = await guardian.fetch(link["url"], server.base)
            assert (server.log.stem, status) == (server.log.stem, 200), body
            assert body == sent
            status, body = await guardian.fetch(made["url"], server.base)
            assert (server.log.stem, status) == (server.log.stem, 200), body
        # The first link's secret fell off the kept three: B, which had
        # it, says so (still 403 link_invalid); a forged link is only invalid.
        status, body = await guardian.fetch(first["url"], b.base)
        assert status == 403
        error = json.loads(body)["error"]
        assert error["code"] == "link_invalid"
        assert "retired" in error["message"]
        assert "new one" in error["message"]
        forged = link["url"][:-4] + ("AAAA" if not link["url"].endswith("AAAA") else "BBBB")
        status, body = await guardian.fetch(forged, b.base)
        error = json.loads(body)["error"]
        assert (status, error["code"]) == (403, "link_invalid")
        assert "retired" not in error["message"]
