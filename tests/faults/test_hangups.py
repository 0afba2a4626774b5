"""A client that hangs up mid-body is not a server error.

A browser seeking in a video, or a parent cancelling an export download,
closes the connection while the answer streams. The server logs it at info as
``aborted`` with the bytes sent, puts it on the record as the outcome of a
second audit event, counts it under its own status label in /metrics, and
never as a 5xx or with a traceback.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import time
from pathlib import Path

import aiohttp
import pytest

from tests.files import MP4_HEAD
from tests.helpers.organisation import organisation
from tests.helpers.polling import eventually
from tests.helpers.processes import Client, Server, kluis, kluis_env

pytestmark = [pytest.mark.localdisk, pytest.mark.sqlite]

VIDEO = MP4_HEAD + os.urandom(12 * 1024 * 1024)


def small_window(addr_info: tuple[object, ...]) -> socket.socket:
    """A client socket with a small receive buffer, as a player that stops
    reading has: without it the kernel's autotuned buffers (tens of MB on
    loopback) can swallow the whole answer before the client hangs up, and
    the server never sees it go."""
    family, kind, proto = addr_info[0], addr_info[1], addr_info[2]
    sock = socket.socket(family, kind, proto)  # type: ignore[arg-type]
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    return sock


def counts(metrics: str, route: str) -> dict[str, float]:
    """Requests answered on ``route`` by status label."""
    out: dict[str, float] = {}
    pattern = r'^kluis_http_requests_total\{method="GET",route="(.*?)",status="(\w+)"\} (\S+)$'
    for got_route, status, value in re.findall(pattern, metrics, re.M):
        if got_route == route:
            out[status] = out.get(status, 0) + float(value)
    return out


async def hang_up(session: aiohttp.ClientSession, url: str, after: int, **headers: str) -> None:
    """Read ``after`` bytes of the answer, then close the connection."""
    async with session.get(url, headers=headers) as answer:
        assert answer.status in (200, 206)
        got = 0
        async for chunk in answer.content.iter_chunked(64 * 1024):
            got += len(chunk)
            if got >= after:
                break
        answer.close()  # the connection goes with it, as a browser's does


async def test_hang_ups_are_aborted_not_errors(tmp_path: Path) -> None:
    env = kluis_env(KLUIS_DATA_DIR=str(tmp_path / "data"))
    status, out, err = await kluis(env, "init")
    assert status == 0, err
    server = await Server(env, tmp_path / "server.log").start()
    try:
        connector = aiohttp.TCPConnector(socket_factory=small_window)
        async with aiohttp.ClientSession(connector=connector) as session:
            admin = Client(session, server.base, out.strip().splitlines()[-1])
            staff, guardian, children = await organisation(admin)
            status, video = await staff.upload(children[0], {"kind": "video"}, VIDEO, "clip.mp4")
            assert status == 201, video
            link = await guardian.ok("POST", f"/v1/items/{video['id']}/links", {})
            export = await guardian.ok("POST", f"/v1/children/{children[0]}/exports", {})
            before = await (await session.get(f"{server.base}/metrics")).text()

            await hang_up(session, link["url"], 300_000)  # watching, then gone
            await hang_up(session, link["url"], 100_000, Range="bytes=3000000-")  # a seek
            await hang_up(session, export["url"], 500_000)  # a cancelled export

            def three_aborted() -> bool:
                return server.output().count(" aborted by the client after ") >= 3

            await eventually(three_aborted, "three hang-ups logged as aborted", within=10)
            # The count follows the log line (the audit event is written in
            # between): wait for the answers to be counted, not just logged.
            deadline = time.monotonic() + 10
            while True:
                after = await (await session.get(f"{server.base}/metrics")).text()
                aborted = [counts(after, r).get("aborted") for r in ("/l/{token}", "/x/{token}")]
                if aborted == [2, 1] or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            log = await guardian.ok("GET", f"/v1/children/{children[0]}/access-log")
    finally:
        await server.stop()

    for route in ("/l/{token}", "/x/{token}"):
        then, now = counts(before, route), counts(after, route)
        fives = {s: n for s, n in now.items() if s.startswith("5")}
        assert fives == {s: n for s, n in then.items() if s.startswith("5")}, (route, now)
    assert counts(after, "/l/{token}").get("aborted") == 2
    assert counts(after, "/x/{token}").get("aborted") == 1
    lines = [line for line in server.output().splitlines() if "aborted by the client" in line]
    assert all(" INFO " in line for line in lines), lines
    assert all(re.search(r"after \d+ of \d+ bytes", line) for line in lines), lines
    assert server.server_errors() == []
    outcomes = [e["outcome"] for e in log["events"] if e["action"] in ("link.use", "export.use")]
    assert outcomes.count("aborted") == 3, outcomes
    assert outcomes.count("ok") == 3, outcomes  # each was on the record before its bytes left
