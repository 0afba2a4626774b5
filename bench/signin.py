"""Benchmark: password sign-ins per second on one core, with the chosen Argon2id.

    .venv/bin/python -m bench.signin [--sign-ins N] [--clients C]

Runs, in one go:

* the hash alone: Argon2id checks of one password on one thread
  (``vault.accounts.passwords``' parameters), a rate and CPU per check;
* a real ``kluis serve`` (SQLite, local disk, embedded defaults) pinned to
  one core with ``sched_setaffinity`` (its audit writer thread with it), that
  C clients sign in to with ``POST /v1/sessions`` (right password, so no
  throttling), and, as the baseline in the same run on the same server,
  the same number of plain authenticated calls (``GET /v1/me/sessions``).

Printed: rates, CPU per request of the server process, all its threads
(psutil), and the ratio of a sign-in to a plain call.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import aiohttp
import psutil
from sqlalchemy import select

from vault.accounts.passwords import MEMORY_KIB, PARALLELISM, TIME_COST, hasher
from vault.config import load_settings
from vault.db.schema import outbox
from vault.mail.outbox import open_message
from vault.wiring import open_vault

PASSWORD = "correct horse battery staple"  # noqa: S105 - the benchmark's own account
CORE = 0


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def hash_alone(count: int) -> tuple[float, float]:
    ph = hasher()
    stored = ph.hash(PASSWORD)
    os.sched_setaffinity(0, {CORE})
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        ph.verify(stored, PASSWORD)
    wall, spent = time.perf_counter() - started, time.process_time() - cpu
    return count / wall, spent / count


def _cpu(proc: psutil.Process) -> float:
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            times = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


async def _kluis(env: dict[str, str], *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vault", *args, env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out
    return out.decode()


async def _fire(
    session: aiohttp.ClientSession, count: int, clients: int, request: Mapping[str, object]
) -> None:
    queue = iter(range(count))

    async def client() -> None:
        for _ in queue:
            async with session.request(**request) as answer:  # type: ignore[arg-type]
                await answer.read()
                assert answer.status in (200, 201), answer.status

    await asyncio.gather(*(client() for _ in range(clients)))


async def served(count: int, clients: int) -> dict[str, tuple[float, float]]:
    with tempfile.TemporaryDirectory(prefix="kluis-bench-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KLUIS_")}
        env["KLUIS_DATA_DIR"] = str(Path(tmp) / "data")
        env["KLUIS_AUTH_MAX_FAILURES"] = "1000000"
        admin = (await _kluis(env, "init")).strip().splitlines()[-1]
        port = _port()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "vault",
            "serve",
            "--port",
            str(port),
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            preexec_fn=lambda: os.sched_setaffinity(0, {CORE}),
        )
        base = f"http://127.0.0.1:{port}"
        results: dict[str, tuple[float, float]] = {}
        try:
            async with aiohttp.ClientSession() as session:
                for _ in range(300):
                    try:
                        async with session.get(f"{base}/readyz") as answer:
                            if answer.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.1)
                token = await _sign_up(session, base, admin, env)
                server = psutil.Process(proc.pid)
                calls = {
                    "sign-in (POST /v1/sessions)": {
                        "method": "POST",
                        "url": f"{base}/v1/sessions",
                        "json": {"email": "bench@example.org", "password": PASSWORD},
                    },
                    "plain call (GET /v1/me/sessions)": {
                        "method": "GET",
                        "url": f"{base}/v1/me/sessions",
                        "headers": {"Authorization": f"Bearer {token}"},
                    },
                }
                for name, request in calls.items():
                    await _fire(session, clients * 2, clients, request)  # warm up
                    cpu, started = _cpu(server), time.perf_counter()
                    await _fire(session, count, clients, request)
                    wall = time.perf_counter() - started
                    results[name] = (count / wall, (_cpu(server) - cpu) / count)
        finally:
            proc.terminate()
            await proc.wait()
    return results


async def _sign_up(
    session: aiohttp.ClientSession, base: str, admin: str, env: dict[str, str]
) -> str:
    """An invited guardian who accepted the mailed link; their session's token."""
    auth = {"Authorization": f"Bearer {admin}"}
    async with session.post(
        f"{base}/v1/people",
        json={"name": "B", "email": "bench@example.org", "role": "guardian"},
        headers=auth,
    ) as answer:
        person = (await answer.json())["id"]
    async with session.post(f"{base}/v1/people/{person}/invitations", headers=auth) as answer:
        assert answer.status == 201
    # No SMTP server here: the link is read from the outbox, with the vault's key.
    async with open_vault(load_settings(env), store=False) as vault:
        async with vault.engine.connect() as conn:
            row = (await conn.execute(select(outbox.c.id, outbox.c.sealed))).one()
        message = await open_message(vault.provider, row.id, row.sealed)
    match = re.search(r"/invite/(ki_\S+)", message.text)
    assert match is not None
    async with session.post(
        f"{base}/v1/invitations/{match[1]}/accept", json={"password": PASSWORD}
    ) as answer:
        return str((await answer.json())["token"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sign-ins", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--hashes", type=int, default=100)
    args = parser.parse_args()
    print(
        f"Argon2id m={MEMORY_KIB} KiB, t={TIME_COST}, p={PARALLELISM}; "
        f"one core (CPU {CORE}); host: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
    )
    rate, cpu = hash_alone(args.hashes)
    print(f"hash alone, one thread: {rate:7.1f} checks/s, {cpu * 1000:6.1f} ms CPU per check")
    results = asyncio.run(served(args.sign_ins, args.clients))
    for name, (rate, cpu) in results.items():
        print(f"{name:<34} {rate:7.1f} /s, {cpu * 1000:6.1f} ms CPU per request")
    (sign_rate, _), (plain_rate, _) = results.values()
    print(f"a sign-in costs {plain_rate / sign_rate:.1f} plain calls")


if __name__ == "__main__":
    main()
