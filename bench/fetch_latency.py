"""Benchmark: link-fetch latency under fetch-only load against mixed load.

    .venv/bin/python -m bench.fetch_latency [--seconds S] [--rounds R]
                                            [--clients N] [--load-processes P]

One vault (SQLite, local disk, local keyring) in a temporary directory,
served by one real ``kluis serve`` process. N clients (200), spread over P
separate processes (never in the server's loop), run in slices of S
seconds, R rounds, the two kinds of slice taking turns (the order swapped
each round, so a host that changes speed weighs on both alike):

* fetch-only: every client fetches thumbnails through signed links;
* mixed: half the clients fetch, a quarter upload 2 MB documents, a quarter
  list a child's records (issue 18: uploads and listings starved fetches,
  p99 141 ms -> 2.03 s).

It prints p50 and p99 of the link fetches in each, their ratio, the rates
and server CPU per request. Goal (issue 18, item 7): p99 under mixed load
within 3x of p99 under fetch-only load.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from bench.ingest import multipart
from bench.links import photo_jpeg
from bench.workers import Served

KLUIS = [sys.executable, "-m", "vault"]
PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)
DOCUMENT = 2 * 1024 * 1024


class World:
    """What the clients need: link paths, who uploads, where, who lists."""

    def __init__(self, paths: list[str], staff: str, child: str) -> None:
        self.paths, self.staff, self.child = paths, staff, child


async def setup(base: str, admin: str, session: aiohttp.ClientSession) -> World:
    auth = {"Authorization": f"Bearer {admin}"}

    async def ok(method: str, path: str, body: object, token: str | None = None) -> Any:
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
        async with session.post(
            f"{base}/v1/children/{child}/items",
            data=multipart({"kind": "photo"}, image, f"p{n}.jpg"),
            headers={"Authorization": f"Bearer {staff['token']}"},
        ) as r:
            assert r.status == 201, await r.text()
            photos.append((await r.json())["id"])
    body = {"items": [{"item_id": i, "variant": "thumb"} for i in photos], "ttl_seconds": 7200}
    links = await ok("POST", "/v1/links", body, parent["token"])
    paths = [urlsplit(entry["url"]).path for entry in links["links"]]
    return World(paths, staff["token"], child)


def _clients(
    base: str, world: dict[str, Any], seconds: float, clients: int, mixed: bool, seed: int
) -> dict[str, Any]:
    """One load process: ``clients`` concurrent clients for ``seconds``."""
    return asyncio.run(_run(base, world, seconds, clients, mixed, seed))


async def _run(
    base: str, world: dict[str, Any], seconds: float, clients: int, mixed: bool, seed: int
) -> dict[str, Any]:
    latencies: list[float] = []
    counts: collections.Counter[str] = collections.Counter()
    document = PDF + os.urandom(DOCUMENT)
    staff = {"Authorization": f"Bearer {world['staff']}"}
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def client(k: int) -> None:
            chance = random.Random(seed * 1000 + k)
            # Mixed: clients 0, 1 of every 4 fetch, 2 uploads, 3 lists.
            role = "fetch" if not mixed else ("fetch", "fetch", "upload", "listing")[k % 4]
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    if role == "fetch":
                        path = chance.choice(world["paths"])
                        async with session.get(base + path) as r:
                            await r.read()
                            status = r.status
                    elif role == "upload":
                        form = multipart({"kind": "observation"}, document, "o.pdf")
                        async with session.post(
                            f"{base}/v1/children/{world['child']}/items", data=form, headers=staff
                        ) as r:
                            await r.read()
                            status = r.status
                    else:
                        async with session.get(
                            f"{base}/v1/children/{world['child']}/items", headers=staff
                        ) as r:
                            await r.read()
                            status = r.status
                except aiohttp.ClientError:
                    status = 0
                elapsed = time.perf_counter() - started
                counts[f"{role} {status}"] += 1
                if role == "fetch" and status == 200:
                    latencies.append(elapsed)

        await asyncio.gather(*(client(k) for k in range(clients)))
    return {"latencies": latencies, "counts": dict(counts)}


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def main(seconds: float, rounds: int, clients: int, processes: int) -> None:
    with tempfile.TemporaryDirectory(prefix="kluis-bench-fetch-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KLUIS_")}
        env["KLUIS_DATA_DIR"] = str(Path(tmp) / "data")
        init = await asyncio.to_thread(
            subprocess.run, [*KLUIS, "init"], env=env, capture_output=True, text=True
        )
        assert init.returncode == 0, init.stderr
        admin = init.stdout.strip().splitlines()[-1]
        server = Served(env, 1, Path(tmp) / "server.log")
        pool = multiprocessing.get_context("spawn").Pool(processes)
        results: dict[str, list[dict[str, Any]]] = {"fetch-only": [], "mixed": []}
        cpu: dict[str, list[float]] = {"fetch-only": [], "mixed": []}
        try:
            async with aiohttp.ClientSession() as session:
                await server.ready(session)
                world = await setup(server.base, admin, session)
            shared = {"paths": world.paths, "staff": world.staff, "child": world.child}
            per = max(1, clients // processes)
            for n in range(rounds):
                kinds = ["fetch-only", "mixed"] if n % 2 == 0 else ["mixed", "fetch-only"]
                for kind in kinds:
                    before = server.cpu()
                    jobs = [
                        pool.apply_async(
                            _clients,
                            (server.base, shared, seconds, per, kind == "mixed", n * 10 + p),
                        )
                        for p in range(processes)
                    ]
                    parts = [await asyncio.to_thread(job.get) for job in jobs]
                    spent = server.cpu() - before
                    merged: dict[str, Any] = {
                        "latencies": [x for part in parts for x in part["latencies"]],
                        "counts": sum(
                            (collections.Counter(part["counts"]) for part in parts),
                            collections.Counter(),
                        ),
                    }
                    results[kind].append(merged)
                    answered = sum(merged["counts"].values())
                    cpu[kind].append(spent * 1000 / max(1, answered))
        finally:
            pool.close()
            pool.join()
            server.stop()

    print(
        f"link fetches (thumbnails) with {clients} clients in {processes} load processes, "
        f"{rounds} rounds of {seconds:g} s per kind, in turns; host cores {os.cpu_count()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    p99s: dict[str, list[float]] = {}
    for kind, runs in results.items():
        p50s = [_quantile(r["latencies"], 0.5) * 1000 for r in runs]
        p99s[kind] = [_quantile(r["latencies"], 0.99) * 1000 for r in runs]
        counts: collections.Counter[str] = sum((r["counts"] for r in runs), collections.Counter())
        rates = {k: round(v / (seconds * rounds), 1) for k, v in sorted(counts.items())}
        print(
            f"{kind:10s}: p50 {statistics.median(p50s):7.1f} ms, p99 "
            f"{statistics.median(p99s[kind]):7.1f} ms (rounds {min(p99s[kind]):.0f} to "
            f"{max(p99s[kind]):.0f}); per s {rates}; server CPU per request "
            f"{statistics.mean(cpu[kind]):.2f} ms"
        )
    ratios = sorted(m / f for m, f in zip(p99s["mixed"], p99s["fetch-only"], strict=True))
    ratio = statistics.median(p99s["mixed"]) / statistics.median(p99s["fetch-only"])
    print(
        f"p99 mixed / fetch-only: {ratio:.2f}x (rounds {ratios[0]:.2f}x to {ratios[-1]:.2f}x); "
        f"goal at most 3x: {'met' if ratio <= 3 else 'NOT met'}"
    )
    print(json.dumps({"p99_ratio": round(ratio, 3)}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10, help="per slice")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--load-processes", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.rounds, args.clients, args.load_processes))
