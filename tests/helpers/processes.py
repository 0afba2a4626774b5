"""Real ``kluis`` processes for the tests: servers on free ports, and commands.

Each server's output goes to a file, so a test can read its log afterwards
(for tracebacks and 5xx lines) without a pipe filling up.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import sys
import time
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from tests.servers import free_port

KLUIS = [sys.executable, "-m", "vault"]


def kluis_env(**extra: str) -> dict[str, str]:
    """The environment of a ``kluis`` process: this one's, without ``KLUIS_*``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLUIS_")}
    env.update(extra)
    return env


async def kluis(
    env: dict[str, str], *args: str, within: float = 180, launcher: list[str] | None = None
) -> tuple[int, str, str]:
    """Run a ``kluis`` command to its end: (exit status, stdout, stderr).
    ``launcher``: other arguments to Python than ``-m vault`` (a module that
    runs the command its own way: tests/helpers/killpoint.py)."""
    proc = await asyncio.create_subprocess_exec(
        *(KLUIS if launcher is None else [sys.executable, *launcher]),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), within)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


class Server:
    """``kluis serve`` in a process of its own."""

    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        self.env, self.log, self.args = env, log, args
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, within: float = 60) -> Server:
        handle = self.log.open("ab")
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *KLUIS,
                "serve",
                "--port",
                str(self.port),
                *self.args,
                env=self.env,
                stdout=handle,
                stderr=asyncio.subprocess.STDOUT,
            )
        finally:
            handle.close()
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession() as session:
            while True:
                if self.proc.returncode is not None:
                    raise AssertionError(f"kluis serve exited:\n{self.output()[-3000:]}")
                try:
                    async with session.get(f"{self.base}/readyz") as answer:
                        if answer.status == 200:
                            return self
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"kluis serve was not ready:\n{self.output()[-3000:]}")
                await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def server_errors(self) -> list[str]:
        """Log lines that say the server failed: a 5xx answered, or a traceback."""
        return [
            line
            for line in self.output().splitlines()
            if re.search(r"kluis\.access: \S+ \S+ 5\d\d ", line)
            or "Traceback" in line
            or " ERROR " in line
        ]


class Client:
    """JSON calls to one server as one person."""

    def __init__(self, session: aiohttp.ClientSession, base: str, token: str) -> None:
        self.session, self.base, self.token = session, base, token

    def as_(self, token: str) -> Client:
        return Client(self.session, self.base, token)

    def on(self, server: Server) -> Client:
        return Client(self.session, server.base, self.token)

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.session.request(
            method,
            self.base + path,
            json=body,
            headers={"Authorization": f"Bearer {self.token}"},
        ) as answer:
            data = await answer.json() if answer.content_type == "application/json" else None
            return answer.status, data

    async def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, data = await self.call(method, path, body)
        assert status in (200, 201, 204), (method, path, status, data)
        return data

    async def upload(
        self, child: str, meta: dict[str, Any], data: bytes, name: str
    ) -> tuple[int, Any]:
        # A file object: aiohttp sends it in pieces (raw bytes of many MB would
        # go in one write, with a warning).
        return await self.upload_pieces(child, meta, io.BytesIO(data), name)

    async def upload_pieces(
        self,
        child: str,
        meta: dict[str, Any],
        file: io.BytesIO | AsyncIterable[bytes],
        name: str,
    ) -> tuple[int, Any]:
        """An upload whose file part is ``file``: sent as fast as it reads, or,
        an async iterable, piece by piece at the pace it gives them."""
        form = aiohttp.FormData()
        form.add_field("meta", json.dumps(meta), content_type="application/json")
        form.add_field("file", file, filename=name, content_type="application/octet-stream")
        async with self.session.post(
            f"{self.base}/v1/children/{child}/items",
            data=form,
            headers={"Authorization": f"Bearer {self.token}"},
        ) as answer:
            body = await answer.json() if answer.content_type == "application/json" else None
            return answer.status, body

    async def fetch(self, url: str, base: str | None = None) -> tuple[int, bytes]:
        """GET a link's URL, on ``base`` instead of the host it names if given."""
        if base is not None:
            url = base + url[url.index("/", len("http://")) :]
        async with self.session.get(url) as answer:
            return answer.status, await answer.read()


@contextlib.asynccontextmanager
async def initialised(
    env: dict[str, str], log: Path, *args: str
) -> AsyncIterator[tuple[Server, Client]]:
    """``kluis init`` on a fresh vault, then ``kluis serve *args`` on it: the
    server and an admin :class:`Client` with the token ``init`` printed. The
    server is stopped on leaving (its log stays readable)."""
    status, out, err = await kluis(env, "init")
    assert status == 0, err
    server = await Server(env, log, *args).start()
    try:
        async with aiohttp.ClientSession() as session:
            yield server, Client(session, server.base, out.strip().splitlines()[-1])
    finally:
        await server.stop()
