"""Benchmark: thumbnails through links from ``kluis serve --workers 2`` against ``--workers 1``.

    .venv/bin/python -m bench.workers [--seconds S] [--rounds R] [--clients N]
                                      [--load-processes P] [--workers W]

One vault (SQLite, local disk, local keyring) in a temporary directory,
served by two real ``kluis serve`` processes at once on two ports: one with
one worker, one with W (2) workers. Clients in P separate processes (N
concurrent requests each, over loopback) fetch thumbnails (about 30 KB)
through signed links, the servers taking turns in slices of S seconds, R
rounds, the order swapped each round, so a host that changes speed weighs
on both sides alike. Every request does the whole work of a real link
answer (verify, policy, audit event, unwrap, decrypt). Server CPU per
request counts every process of the server: supervisor, workers and their
audit writer processes.

Goal (issue 21): W=2 at least 1.7 times the rate of one worker. The load
generator needs CPU too: on a 2-core host the clients and the servers share
the same two cores, which caps what a second worker can add (see the CPU
figures it prints).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import psutil

from bench.ingest import multipart
from bench.links import _load, _warm, photo_jpeg

KLUIS = [sys.executable, "-m", "vault"]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    """A ``kluis serve --workers N`` process on a free port."""

    def __init__(self, env: dict[str, str], workers: int, log: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*KLUIS, "serve", "--port", str(self.port), "--workers", str(workers)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Each server in a scheduling group of its own (Linux's
                # autogroup is per session), as it would be when started
                # by a service manager, not beside this bench's clients.
                start_new_session=True,
            )

    async def ready(self, session: aiohttp.ClientSession) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"kluis serve --workers {self.workers} exited")
            try:
                async with session.get(f"{self.base}/readyz") as answer:
                    if answer.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
        raise SystemExit("a server did not get ready")

    def cpu(self) -> float:
        """CPU seconds of the server's whole process tree so far."""
        root = psutil.Process(self.proc.pid)
        total = 0.0
        for proc in [root, *root.children(recursive=True)]:
            try:
                times = proc.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system + times.children_user + times.children_system
        return total

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(90)


async def setup(base: str, admin: str, session: aiohttp.ClientSession) -> list[str]:
    """An organisation with one child and 20 photos; thumbnail link paths."""
    auth = {"Authorization": f"Bearer {admin}"}

    async def ok(method: str, path: str, body: object, token: str | None = None) -> dict:  # type: ignore[type-arg]
        headers = {"Authorization": f"Bearer {token}"} if token else auth
        async with session.request(method, base + path, json=body, headers=headers) as r:
            assert r.status in (200, 201, 204), (path, r.status, await r.text())
            return await r.json() if r.status != 204 else {}

    location = (await ok("POST", "/v1/locations", {"name": "Bench"}))["id"]
    group = (await ok("POST", "/v1/groups", {"location_id": location, "name": "G"}))["id"]
    staff = await ok("POST", "/v1/people", {"name": "S", "role": "staff"})
    parent = await ok("POST", "/v1/people", {"name": "P", "role": "guardian"})
    await ok("POST", f"/v1/groups/{group}/staff", {"person_id": staff["id"]})
    child = (
        await ok(
            "POST",
            "/v1/children",
            {"first_name": "A", "last_name": "B", "birth_date": "2023-01-01", "group_id": group},
        )
    )["id"]
    await ok(
        "PUT", f"/v1/children/{child}/placement", {"start_date": "2024-01-01", "end_date": None}
    )
    await ok(
        "POST",
        f"/v1/children/{child}/guardians",
        {"person_id": parent["id"], "relation": "contract_parent", "household": "shared"},
    )
    await ok("PUT", f"/v1/children/{child}/consents/photo", {"granted": True}, parent["token"])
    image = photo_jpeg()
    photos = []
    for n in range(20):
        form = multipart({"kind": "photo"}, image, f"p{n}.jpg")
        async with session.post(
            f"{base}/v1/children/{child}/items",
            data=form,
            headers={"Authorization": f"Bearer {staff['token']}"},
        ) as r:
            assert r.status == 201, await r.text()
            photos.append((await r.json())["id"])
    body = {"items": [{"item_id": i, "variant": "thumb"} for i in photos], "ttl_seconds": 3600}
    links = await ok("POST", "/v1/links", body, parent["token"])
    return [urlsplit(entry["url"]).path for entry in links["links"]]


def _load_cpu(servers: list[Served]) -> float:
    """CPU seconds so far of the load processes (this process's other children)."""
    skip = {server.proc.pid for server in servers}
    total = 0.0
    for child in psutil.Process().children():
        if child.pid in skip:
            continue
        try:
            times = child.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def _results(jobs: list) -> list[float]:  # type: ignore[type-arg]
    return [float(job.get()) for job in jobs]


async def main(seconds: float, rounds: int, clients: int, processes: int, workers: int) -> None:
    with tempfile.TemporaryDirectory(prefix="kluis-bench-workers-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KLUIS_")}
        env["KLUIS_DATA_DIR"] = str(Path(tmp) / "data")
        init = await asyncio.to_thread(
            subprocess.run, [*KLUIS, "init"], env=env, capture_output=True, text=True
        )
        assert init.returncode == 0, init.stderr
        admin = init.stdout.strip().splitlines()[-1]
        servers = {1: Served(env, 1, Path(tmp) / "one.log")}
        servers[workers] = Served(env, workers, Path(tmp) / "many.log")
        pool = multiprocessing.get_context("spawn").Pool(processes)
        try:
            async with aiohttp.ClientSession() as session:
                for server in servers.values():
                    await server.ready(session)
                paths = await setup(servers[1].base, admin, session)
                async with session.get(servers[1].base + paths[0]) as r:
                    size = len(await r.read())
            rates: dict[int, list[float]] = {n: [] for n in servers}
            cpu: dict[int, list[float]] = {n: [] for n in servers}
            load_cpu: dict[int, list[float]] = {n: [] for n in servers}
            for n in range(rounds):
                order = list(servers) if n % 2 == 0 else list(reversed(servers))
                for count in order:
                    server = servers[count]
                    urls = [server.base + p for p in paths]
                    before, load_before = server.cpu(), _load_cpu(list(servers.values()))
                    jobs = [
                        pool.apply_async(_load, (urls[k::processes] or urls, seconds, clients))
                        for k in range(processes)
                    ]
                    rate = sum(await asyncio.to_thread(_results, jobs))
                    # The warm-up (bench.links._warm) ran too, at about the same rate.
                    spent = (server.cpu() - before) * seconds / (seconds + _warm(seconds))
                    loaded = _load_cpu(list(servers.values())) - load_before
                    rates[count].append(rate)
                    cpu[count].append(spent * 1000 / max(1.0, rate * seconds))
                    load_cpu[count].append(
                        loaded * 1000 / max(1.0, rate * (seconds + _warm(seconds)))
                    )
        finally:
            pool.close()
            pool.join()
            for server in servers.values():
                server.stop()

    one, many = rates[1], rates[workers]
    ratios = sorted(m / o for m, o in zip(many, one, strict=True))
    print(
        f"thumbnails ({size / 1000:.0f} KB) through links, {processes} load processes x "
        f"{clients} clients, {rounds} rounds of {seconds:g} s per server, in turns"
    )
    for count in servers:
        rate, per = statistics.mean(rates[count]), statistics.mean(cpu[count])
        print(
            f"--workers {count}: {rate:7.1f}/s "
            f"(rounds {min(rates[count]):.0f} to {max(rates[count]):.0f}), "
            f"server CPU per request {per:.2f} ms ({rate * per / 1000:.2f} cores), "
            f"load generator {statistics.mean(load_cpu[count]):.2f} ms per request"
        )
    ratio = statistics.mean(many) / statistics.mean(one)
    print(
        f"ratio --workers {workers} / --workers 1: {ratio:.2f}x "
        f"(rounds {ratios[0]:.2f}x to {ratios[-1]:.2f}x); host cores: {os.cpu_count()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(json.dumps({"ratio": round(ratio, 3)}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3, help="per slice")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--clients", type=int, default=8, help="concurrent requests per process")
    parser.add_argument("--load-processes", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.rounds, args.clients, args.load_processes, args.workers))
