"""``kluis serve --workers N``: several processes on one port, as it is run.

A real supervisor with two workers on SQLite and the local keyring (each
worker with its own audit writer process): the answers come from both
(their audit events name two process ids); a worker killed with SIGKILL is
replaced while the port keeps answering; SIGTERM stops everything cleanly
and lets a slow download under way finish, byte for byte.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import re
import signal
import socket
import sqlite3
import time
from pathlib import Path

import aiohttp
import psutil
import pytest

from tests.helpers.organisation import document, organisation
from tests.helpers.processes import Client, Server, kluis, kluis_env
from vault.supervisor import worker_count

pytestmark = [pytest.mark.sqlite, pytest.mark.localdisk, pytest.mark.localkeyring]


def workers_of(server: Server) -> set[int]:
    assert server.proc is not None
    return {child.pid for child in psutil.Process(server.proc.pid).children()}


def worker_pids_in_audit(data: Path, action: str) -> list[int]:
    with sqlite3.connect(data / "kluis.db") as conn:
        rows = conn.execute(
            "SELECT detail FROM audit_events WHERE action = ?", (action,)
        ).fetchall()
    return [json.loads(detail)["worker"] for (detail,) in rows]


async def fresh_fetches(url: str, n: int) -> list[int]:
    """``n`` GETs of ``url``, each on a new connection (the kernel picks a worker)."""
    statuses = []
    for _ in range(n):
        connector = aiohttp.TCPConnector(force_close=True)
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.get(url) as answer,
        ):
            await answer.read()
            statuses.append(answer.status)
    return statuses


async def wait_for(predicate, within: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within:.0f} s: {what}")
        await asyncio.sleep(0.2)


@pytest.mark.slow
async def test_two_workers_answer_and_one_killed_is_replaced(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = kluis_env(KLUIS_DATA_DIR=str(data))
    status, out, err = await kluis(env, "init")
    assert status == 0, err
    server = await Server(env, tmp_path / "serve.log", "--workers", "2").start()
    try:
        await wait_for(lambda: "2 workers serving" in server.output(), 60, "both workers listen")
        async with aiohttp.ClientSession() as session:
            admin = Client(session, server.base, out.strip().splitlines()[-1])
            staff, guardian, children = await organisation(admin)
            sent = document("two workers")
            status, item = await staff.upload(children[0], {"kind": "observation"}, sent, "o.pdf")
            assert status == 201, item
            link = await guardian.ok("POST", f"/v1/items/{item['id']}/links", {"ttl_seconds": 600})
            url = link["url"]
            async with session.get(url) as answer:
                assert answer.status == 200
                assert await answer.read() == sent

            first = workers_of(server)
            assert len(first) == 2
            assert await fresh_fetches(url, 30) == [200] * 30
            seen = set(worker_pids_in_audit(data, "link.use"))
            # Both processes answered, and the events name them (nothing else).
            assert seen == first, (seen, first)

            victim = sorted(first)[0]
            os.kill(victim, signal.SIGKILL)
            # The port keeps answering: the other worker takes every new connection.
            assert await fresh_fetches(url, 10) == [200] * 10
            await wait_for(
                lambda: len(workers_of(server)) == 2 and victim not in workers_of(server),
                90,
                "the supervisor starts another worker",
            )
            replacement = (workers_of(server) - first).pop()
            await wait_for(
                lambda: "listening" in server.output().split("ended with signal 9")[-1],
                60,
                "the new worker listens",
            )
            statuses = await fresh_fetches(url, 30)
            assert statuses == [200] * 30
            assert replacement in set(worker_pids_in_audit(data, "link.use"))
    finally:
        await server.stop()
    assert server.proc is not None
    assert server.proc.returncode == 0, server.output()[-3000:]
    assert server.server_errors() == []
    assert not any(psutil.pid_exists(pid) for pid in first | {replacement})


@pytest.mark.slow
async def test_sigterm_lets_a_slow_download_finish_then_stops_cleanly(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = kluis_env(KLUIS_DATA_DIR=str(data))
    status, out, err = await kluis(env, "init")
    assert status == 0, err
    server = await Server(env, tmp_path / "serve.log", "--workers", "2").start()
    assert server.proc is not None
    await wait_for(lambda: "2 workers serving" in server.output(), 60, "both workers listen")
    workers = workers_of(server)
    async with aiohttp.ClientSession() as session:
        admin = Client(session, server.base, out.strip().splitlines()[-1])
        staff, guardian, children = await organisation(admin)
        # Bigger than what the loopback's socket buffers hold, so the answer
        # is still being written when the signal comes.
        sent = document("large") + os.urandom(24 * 1024 * 1024)
        form = aiohttp.FormData()
        form.add_field("meta", json.dumps({"kind": "observation"}), content_type="application/json")
        form.add_field("file", io.BytesIO(sent), filename="big.pdf")
        async with session.post(
            f"{server.base}/v1/children/{children[0]}/items",
            data=form,
            headers={"Authorization": f"Bearer {staff.token}"},
        ) as answer:
            assert answer.status == 201, await answer.text()
            item = await answer.json()
        link = await guardian.ok("POST", f"/v1/items/{item['id']}/links", {})
        received, signalled = bytearray(), False
        async with session.get(link["url"]) as answer:
            assert answer.status == 200
            async for chunk in answer.content.iter_chunked(256 * 1024):
                received += chunk
                if len(received) >= 2 * 1024 * 1024 and not signalled:
                    server.proc.send_signal(signal.SIGTERM)
                    signalled = True
                await asyncio.sleep(0.04)  # a slow client: about 6 MB/s
        assert signalled, "the download ended before the signal"
        assert len(received) == len(sent)
        assert bytes(received) == sent, "the download came back different"
        # No new connections once stopping (the download above was the last).
        with pytest.raises(aiohttp.ClientConnectionError):
            async with session.get(f"{server.base}/healthz") as answer:
                await answer.read()
    status = await asyncio.wait_for(server.proc.wait(), 60)
    assert status == 0, server.output()[-3000:]
    assert server.server_errors() == []
    assert "all workers stopped" in server.output()
    assert not any(psutil.pid_exists(pid) for pid in workers)
    # Each worker's audit writer ended with it: nothing of this vault runs on.
    leftovers = [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if str(data / "kluis.db") in " ".join(p.info["cmdline"] or [])
    ]
    assert leftovers == []


@pytest.mark.slow
async def test_workers_stop_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    env = kluis_env(KLUIS_DATA_DIR=str(tmp_path / "data"))
    status, _, err = await kluis(env, "init")
    assert status == 0, err
    server = await Server(env, tmp_path / "serve.log", "--workers", "2").start()
    assert server.proc is not None
    await wait_for(lambda: "2 workers serving" in server.output(), 60, "both workers listen")
    workers = workers_of(server)
    assert len(workers) == 2
    server.proc.kill()
    await server.proc.wait()
    # Each worker sees the supervisor's pipe end and stops as on SIGTERM.
    await wait_for(
        lambda: (
            not any(
                psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in workers
            )
        ),
        90,
        "the orphaned workers stop",
    )
    assert server.output().count("stopped (worker") == 2, server.output()[-3000:]


@pytest.mark.parametrize(
    ("text", "count"), [("1", 1), ("3", 3), ("auto", len(os.sched_getaffinity(0)))]
)
def test_worker_counts(text: str, count: int) -> None:
    assert worker_count(text) == count


@pytest.mark.parametrize("text", ["0", "-2", "two", ""])
def test_a_worker_count_that_is_no_count_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="--workers"):
        worker_count(text)


async def test_serve_refuses_a_bad_worker_count(tmp_path: Path) -> None:
    env = kluis_env(KLUIS_DATA_DIR=str(tmp_path / "data"))
    status, _, err = await kluis(env, "serve", "--workers", "none")
    assert status == 2
    assert "--workers must be a number from 1, or 'auto'" in err


async def test_a_worker_that_cannot_start_stops_the_start(tmp_path: Path) -> None:
    env = kluis_env(KLUIS_DATA_DIR=str(tmp_path / "data"))
    status, _, err = await kluis(env, "init")
    assert status == 0, err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        status, _, err = await kluis(env, "serve", "--port", port, "--workers", "2", within=120)
    assert status == 2, err
    assert "cannot listen on 127.0.0.1:" in err
    assert "server.port" in err
    assert "could not start" in err
    assert "Traceback" not in err


class SlowReader:
    """A GET of the first ``length`` bytes of a link on a socket of its own with
    a small receive buffer, read in small pieces at the pace the test sets."""

    def __init__(self, base: str, path: str, length: int) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.address, self.path, self.length = (host, int(port)), path, length
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.setblocking(False)
        self.body = bytearray()
        self.ended = False

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.sock_connect(self.sock, self.address)
        request = (
            f"GET {self.path} HTTP/1.1\r\nHost: {self.address[0]}\r\n"
            f"Range: bytes=0-{self.length - 1}\r\nConnection: close\r\n\r\n"
        )
        await loop.sock_sendall(self.sock, request.encode())
        raw = b""
        while b"\r\n\r\n" not in raw:
            piece = await loop.sock_recv(self.sock, 4096)
            assert piece, f"the server closed before the answer's head: {raw!r}"
            raw += piece
        head, rest = raw.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 206 "), head
        assert f"\r\ncontent-length: {self.length}\r\n".encode() in head.lower(), head
        self.body += rest

    async def read(self) -> None:
        """One small read; ``ended`` once the server closed the connection."""
        loop = asyncio.get_running_loop()
        piece = await asyncio.wait_for(loop.sock_recv(self.sock, 4096), 30)
        self.body += piece
        self.ended = not piece

    def close(self) -> None:
        self.sock.close()


async def _served_download(tmp_path: Path, *serve_args: str) -> tuple[Server, Path, str, bytes]:
    """A running ``kluis serve --workers 2`` (every answer in its access log), and
    a link path to a download far bigger than the loopback's socket buffers."""
    data = tmp_path / "data"
    env = kluis_env(KLUIS_DATA_DIR=str(data), KLUIS_SERVER_ACCESS_LOG="true")
    status, out, err = await kluis(env, "init")
    assert status == 0, err
    server = await Server(env, tmp_path / "serve.log", "--workers", "2", *serve_args).start()
    await wait_for(lambda: "2 workers serving" in server.output(), 60, "both workers listen")
    async with aiohttp.ClientSession() as session:
        admin = Client(session, server.base, out.strip().splitlines()[-1])
        staff, guardian, children = await organisation(admin)
        sent = document("slow reader") + os.urandom(9 * 1024 * 1024)
        status, item = await staff.upload(children[0], {"kind": "observation"}, sent, "big.pdf")
        assert status == 201, item
        link = await guardian.ok("POST", f"/v1/items/{item['id']}/links", {})
    path = "/" + link["url"].split("://", 1)[1].split("/", 1)[1]
    return server, data, path, sent


def _answered(server: Server, reader: SlowReader) -> bool:
    """Whether the server has finished answering ``reader`` (its access log
    line: the length there counts the head too, under 2 KB)."""
    found = re.findall(r"kluis\.access: GET /l/\{token\} 206 (\d+) ", server.output())
    return any(0 < int(n) - reader.length < 2048 for n in found)


@pytest.mark.slow
async def test_sigterm_delivers_what_is_still_buffered_when_the_download_handler_ends(
    tmp_path: Path,
) -> None:
    # A rolling restart while parents download: a worker may stop only once the
    # last byte of each answer has left its buffers, not as soon as the handler
    # returned after its last write (the bytes still queued would be cut off).
    server, _, path, sent = await _served_download(tmp_path)
    assert server.proc is not None
    # Slow readers: the server's socket buffers stay full, and each answer ends
    # at another point of the kernel's wake-ups of the writer (every ~1 MB on
    # loopback), so some handlers return with their last writes still queued in
    # the worker's own transport buffer.
    readers = [SlowReader(server.base, path, 8 * 2**20 + i * 61 * 1024) for i in range(16)]
    try:
        for reader in readers:
            await reader.start()
        server.proc.send_signal(signal.SIGTERM)
        # About 1 MB/s each until its handler has written its last byte (its
        # access log line); then nothing for a while (a parent's phone that
        # went to sleep), time for a worker that does not wait to stop.
        deadline = time.monotonic() + 90
        while waiting := [r for r in readers if not r.ended and not _answered(server, r)]:
            assert time.monotonic() < deadline, "the download handlers did not finish"
            for reader in waiting:
                await reader.read()
                if reader.ended:
                    assert len(reader.body) == reader.length, (
                        f"cut off at {len(reader.body)} of {reader.length}"
                    )
            await asyncio.sleep(0.004)
        queued = [r.length - len(r.body) for r in readers]
        await asyncio.sleep(3)
        for reader in readers:
            while not reader.ended:
                await reader.read()
    finally:
        for reader in readers:
            reader.close()
    short = [(r.length, r.length - len(r.body)) for r in readers if len(r.body) != r.length]
    assert short == [], f"(length, bytes missing) of the cut answers; queued: {queued}"
    for reader in readers:
        assert (
            hashlib.sha256(reader.body).digest() == hashlib.sha256(sent[: reader.length]).digest()
        )
    status = await asyncio.wait_for(server.proc.wait(), 60)
    assert status == 0, server.output()[-3000:]
    assert server.server_errors() == []
    assert "all workers stopped" in server.output()


@pytest.mark.slow
async def test_sigterm_with_a_client_that_never_reads_stops_within_the_shutdown_timeout(
    tmp_path: Path,
) -> None:
    server, _, path, sent = await _served_download(tmp_path, "--shutdown-timeout", "3")
    assert server.proc is not None
    reader = SlowReader(server.base, path, len(sent))
    try:
        await reader.start()
        await asyncio.sleep(1)  # the server's buffers fill; the client reads no more
        began = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        status = await asyncio.wait_for(server.proc.wait(), 60)
        took = time.monotonic() - began
    finally:
        reader.close()
    assert len(reader.body) < len(sent)
    # The shutdown timeout ends the stop, well before the supervisor's kill.
    assert status == 0, server.output()[-3000:]
    assert took < 3 + 4, f"the stop took {took:.1f} s"  # was 6.7 s: twice the timeout
    assert "at the shutdown timeout; closing them" in server.output()
    assert "did not stop; killing it" not in server.output()
    assert "all workers stopped" in server.output()
