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

:func:`rows` gives the ``python -m bench`` table's rows: the same ratio with
wrk as the load, and 5 MB originals from ``--workers 2`` against nginx with 2
workers (issue 23, goal at least 80%). Figures: the table in
docs/operations.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import tempfile
from pathlib import Path

import aiohttp
import psutil

from bench.links import _load, _warm
from bench.serving import Served, Stage, setup, spread, turns, vault_env
from bench.table import Goal, Row


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
        env, admin = await vault_env(Path(tmp))
        servers = {1: Served(env, 1, Path(tmp) / "one.log")}
        servers[workers] = Served(env, workers, Path(tmp) / "many.log")
        pool = multiprocessing.get_context("spawn").Pool(processes)
        try:
            async with aiohttp.ClientSession() as session:
                for server in servers.values():
                    await server.ready(session)
                paths = (await setup(servers[1].base, admin, session)).paths
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


async def rows(stage: Stage) -> list[Row]:
    """The table's worker rows: thumbnails through links with 2 workers
    against 1 (issue 21), and 5 MB originals with 2 workers against nginx
    with 2 workers serving the same bytes as a plain file; wrk as the load."""
    seconds, rounds = (1, 2) if stage.quick else (3, 6)
    one, two = await stage.kluis(1), await stage.kluis(2)
    thumbs = await turns(
        {"one": (one, stage.world.paths), "two": (two, stage.world.paths)},
        seconds,
        rounds,
        connections=16,
    )
    nginx = stage.nginx(2)
    large = await turns(
        {"nginx": (nginx, ["/large.bin"]), "two": (two, stage.documents)},
        seconds,
        rounds,
        connections=8,
    )
    sides = f"{rounds} rounds of {seconds:g} s in turns"
    return [
        Row(
            measure="thumbnails through links, --workers 2 against --workers 1",
            unit="/s",
            baseline_name="--workers 1",
            baseline=thumbs["one"].rate,
            kluis=thumbs["two"].rate,
            ratio=thumbs["two"].rate / thumbs["one"].rate,
            spread=spread(thumbs["two"], thumbs["one"]),
            cpu_ms=(thumbs["one"].cpu_ms, thumbs["two"].cpu_ms),
            goal=Goal(">=", 1.7, ">= 1.7x"),
            note=f"wrk 16 connections, {sides}",
        ),
        Row(
            measure="5 MB original through a link, --workers 2, rate",
            unit="/s",
            baseline_name="nginx, 2 workers",
            baseline=large["nginx"].rate,
            kluis=large["two"].rate,
            ratio=large["two"].rate / large["nginx"].rate,
            spread=spread(large["two"], large["nginx"]),
            cpu_ms=(large["nginx"].cpu_ms, large["two"].cpu_ms),
            goal=Goal(">=", 0.8, ">= 0.8"),
            note=f"wrk 8 connections, {sides}",
        ),
    ]
