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
within 3x of p99 under fetch-only load. :func:`rows` gives the
``python -m bench`` table's row (on the table's shared vault).
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
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.ingest import multipart
from bench.serving import Served, Stage, World, setup, vault_env
from bench.table import Goal, Row

PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)
DOCUMENT = 2 * 1024 * 1024


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


Runs = dict[str, list[dict[str, Any]]]


async def measure(
    server: Served, world: World, seconds: float, rounds: int, clients: int, processes: int
) -> tuple[Runs, dict[str, list[float]]]:
    """Fetch-only and mixed slices in turns: each slice's latencies and counts,
    and the server's CPU milliseconds per answered request."""
    pool = multiprocessing.get_context("spawn").Pool(processes)
    results: Runs = {"fetch-only": [], "mixed": []}
    cpu: dict[str, list[float]] = {"fetch-only": [], "mixed": []}
    try:
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
    return results, cpu


async def rows(stage: Stage) -> list[Row]:
    """The table's latency row (issue 18 item 7): p99 of link fetches under
    mixed load against fetch-only, 200 clients in two load processes."""
    seconds, rounds = (3, 2) if stage.quick else (10, 4)
    server = await stage.kluis(1)
    results, cpu = await measure(server, stage.world, seconds, rounds, 200, 2)
    p99s = {
        kind: [_quantile(r["latencies"], 0.99) * 1000 for r in runs]
        for kind, runs in results.items()
    }
    ratios = [m / f for m, f in zip(p99s["mixed"], p99s["fetch-only"], strict=True)]
    mixed, alone = statistics.median(p99s["mixed"]), statistics.median(p99s["fetch-only"])
    return [
        Row(
            measure="link-fetch p99, 200 clients, mixed load against fetch-only",
            unit="ms",
            baseline_name="fetch-only p99",
            baseline=alone,
            kluis=mixed,
            ratio=mixed / alone,
            spread=(min(ratios), max(ratios)),
            cpu_ms=(statistics.mean(cpu["fetch-only"]), statistics.mean(cpu["mixed"])),
            goal=Goal("<=", 3.0, "<= 3x"),
            note=f"aiohttp clients in 2 processes, {rounds} rounds of {seconds} s in turns; "
            "CPU per answered request of any kind",
        )
    ]


async def main(seconds: float, rounds: int, clients: int, processes: int) -> None:
    with tempfile.TemporaryDirectory(prefix="kluis-bench-fetch-") as tmp:
        env, admin = await vault_env(Path(tmp))
        server = Served(env, 1, Path(tmp) / "server.log")
        try:
            async with aiohttp.ClientSession() as session:
                await server.ready(session)
                world = await setup(server.base, admin, session)
            results, cpu = await measure(server, world, seconds, rounds, clients, processes)
        finally:
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
