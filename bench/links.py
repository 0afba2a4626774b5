"""Benchmark: media through signed links against plain files (run by hand).

    .venv/bin/python -m bench.links [--seconds S] [--rounds R] [--clients N]
                                    [--video-mb MB] [--same-process]

With N concurrent clients over loopback, the clients in a separate process
(``--same-process``: in the server's own event loop, as this bench did
before; the client's work then slows the server). Plain files and links
take turns in slices of S seconds, R rounds, the order swapped each round,
so a host that changes speed during the run weighs on both sides alike
(this one did, by a factor of two within minutes):

* thumbnails (about 30 KB) through links, beside the same bytes served
  unencrypted by aiohttp's FileResponse in the same run, as a ratio;
* 5 MB originals, likewise;
* time to first byte of a 64 KiB Range at the end of a large video against
  one at its start (the offset should not matter).

Every link request does the whole work of a real one: verify the token, load
the caller and the item, ask the policy, write the audit event, unwrap the
keys, decrypt. Beside each rate, the server's CPU time per request: all
threads of its process, and its audit writer process.
Goals (issue 6): >= 60% of the plain rate for thumbnails, >= 80% for large
originals, first byte independent of the offset.

:func:`rows` gives the ``python -m bench`` table's rows (issue 23's goals:
server CPU per thumbnail at most 1.5x the plain ``FileResponse``'s, 5 MB
originals at least 80% of its rate), measured differently: ``kluis serve``
and the plain server each a process of their own, wrk as the load
(bench/serving.py). Figures: the table in docs/operations.md.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import multiprocessing
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from bench.ingest import multipart, populate, serve, vault_app, video_source
from bench.serving import Stage, photo_jpeg, spread, turns
from bench.table import Goal, Row

MB = 1_000_000


async def hammer(
    session: aiohttp.ClientSession, urls: list[str], seconds: float, clients: int
) -> float:
    """Requests per second over ``seconds`` with ``clients`` loops (in this loop)."""
    done = 0
    stop = time.perf_counter() + seconds

    async def loop(offset: int) -> None:
        nonlocal done
        i = offset
        while time.perf_counter() < stop:
            async with session.get(urls[i % len(urls)]) as response:
                await response.read()
                assert response.status == 200, response.status
            done += 1
            i += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop(k) for k in range(clients)))
    return done / (time.perf_counter() - started)


def _load(urls: list[str], seconds: float, clients: int) -> float:
    """The load from a process of its own: requests per second."""

    async def run() -> float:
        connector = aiohttp.TCPConnector(limit=clients * 2)
        timeout = aiohttp.ClientTimeout(total=None)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            await hammer(session, urls, _warm(seconds), clients)  # warm the connections
            return await hammer(session, urls, seconds, clients)

    return asyncio.run(run())


def _warm(seconds: float) -> float:
    return min(0.25, seconds / 4)


def _cpu() -> float:
    """CPU seconds of this process and of its audit writer process (the
    service's part of the work; the load process is not counted)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    seconds = usage.ru_utime + usage.ru_stime
    for proc in Path("/proc").iterdir():
        try:
            if b"vault.audit.writer" not in (proc / "cmdline").read_bytes():
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # not a process, or gone meanwhile
        if int(fields[1]) == os.getpid():  # ppid; utime and stime follow at 11, 12
            seconds += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return seconds


class Load:
    """Drives the clients, in another process or (``same_process``) in this loop,
    and counts the server's CPU time per request (see _cpu)."""

    def __init__(self, session: aiohttp.ClientSession, seconds: float, clients: int, same: bool):
        self.session, self.seconds, self.clients, self.same = session, seconds, clients, same
        context = multiprocessing.get_context("spawn")
        self.pool = None if same else context.Pool(1)

    async def run(self, urls: list[str]) -> tuple[float, float]:
        """(requests per second, server CPU milliseconds per request)."""
        if self.pool is None:
            await hammer(self.session, urls, _warm(self.seconds), self.clients)
        before = _cpu()
        if self.pool is None:
            rate = await hammer(self.session, urls, self.seconds, self.clients)
            spent = _cpu() - before
        else:
            pending = self.pool.apply_async(_load, (urls, self.seconds, self.clients))
            rate = await asyncio.to_thread(pending.get)
            # The warm-up ran too; it is counted at the same rate.
            spent = (_cpu() - before) * self.seconds / (self.seconds + _warm(self.seconds))
        return rate, spent * 1000 / max(1.0, rate * self.seconds)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool.join()


async def first_byte(session: aiohttp.ClientSession, url: str, start: int) -> float:
    began = time.perf_counter()
    headers = {"Range": f"bytes={start}-{start + 65535}"}
    async with session.get(url, headers=headers) as response:
        assert response.status == 206
        await response.content.readany()
        elapsed = time.perf_counter() - began
        await response.read()
    return elapsed


@dataclasses.dataclass
class Tally:
    """One kind of request on one server, over every round."""

    requests: float = 0.0
    seconds: float = 0.0
    cpu_ms: float = 0.0
    rates: list[float] = dataclasses.field(default_factory=list)

    def add(self, rate: float, cpu_ms: float, seconds: float) -> None:
        self.requests += rate * seconds
        self.seconds += seconds
        self.cpu_ms += cpu_ms * rate * seconds
        self.rates.append(rate)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu(self) -> float:
        return self.cpu_ms / max(1.0, self.requests)


async def main(seconds: float, rounds: int, clients: int, video_mb: int, same: bool) -> None:
    photo = photo_jpeg()
    original = os.urandom(5 * MB)
    with tempfile.TemporaryDirectory(prefix="kluis-bench-") as tmp:
        app = await vault_app(Path(tmp) / "data")
        runner, base = await serve(app)
        child, token, _ = await populate(app)
        auth = {"Authorization": f"Bearer {token}"}
        timeout = aiohttp.ClientTimeout(total=None)
        connector = aiohttp.TCPConnector(limit=clients * 2)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:

            async def upload(kind: str, data: object, name: str) -> str:
                form = multipart({"kind": kind}, data, name)
                async with session.post(
                    f"{base}/v1/children/{child}/items", data=form, headers=auth
                ) as r:
                    assert r.status == 201, await r.text()
                    return str((await r.json())["id"])

            async def links(item_ids: list[str], variant: str) -> list[str]:
                body = {
                    "items": [{"item_id": i, "variant": variant} for i in item_ids],
                    "ttl_seconds": 3600,
                }
                async with session.post(f"{base}/v1/links", json=body, headers=auth) as r:
                    answer = await r.json()
                return [base + urlsplit(entry["url"]).path for entry in answer["links"]]

            photos = [await upload("photo", photo, f"t{i}.jpg") for i in range(20)]
            thumb_urls = await links(photos, "thumb")
            async with session.get(thumb_urls[0]) as r:
                thumb_bytes = await r.read()
            thumb_size = len(thumb_bytes)
            pdf = b"%PDF-1.4\n" + original
            documents = [await upload("observation", pdf, f"d{i}.pdf") for i in range(4)]
            document_urls = await links(documents, "original")
            video = await upload("video", video_source(video_mb * MB, os.urandom(1 << 20)), "v.mp4")
            [video_url] = await links([video], "original")

            # The same bytes, unencrypted, from aiohttp's FileResponse, served
            # beside the vault in the same loop.
            plain_dir = Path(tmp) / "plain"
            plain_dir.mkdir()
            (plain_dir / "thumb.jpg").write_bytes(thumb_bytes)
            (plain_dir / "large.bin").write_bytes(pdf)
            plain_app = web.Application()

            async def file(request: web.Request) -> web.FileResponse:
                return web.FileResponse(plain_dir / request.match_info["name"])

            plain_app.router.add_get("/{name}", file)
            plain_runner, plain_base = await serve(plain_app)

            # Plain and links take turns in short slices, the order swapped
            # every round: a machine that speeds up or slows down during the
            # run (shared hosts do) weighs on both sides alike.
            load = Load(session, seconds, clients, same)
            kinds = {
                "thumbs": {"plain": [f"{plain_base}/thumb.jpg"], "links": thumb_urls},
                "large": {"plain": [f"{plain_base}/large.bin"], "links": document_urls},
            }
            tally = {(kind, side): Tally() for kind in kinds for side in ("plain", "links")}
            for n in range(rounds):
                for kind, sides in kinds.items():
                    for side in ("plain", "links") if n % 2 == 0 else ("links", "plain"):
                        rate, cpu = await load.run(sides[side])
                        tally[kind, side].add(rate, cpu, seconds)
            load.close()
            await plain_runner.cleanup()

            size = video_mb * MB
            starts = [await first_byte(session, video_url, 0) for _ in range(20)]
            ends = [await first_byte(session, video_url, size - 65536) for _ in range(20)]
        await runner.cleanup()

    def line(kind: str, label: str) -> float:
        plain, linked = tally[kind, "plain"], tally[kind, "links"]
        ratios = sorted(k / p for k, p in zip(linked.rates, plain.rates, strict=True))
        print(
            f"{label}: plain {plain.rate:7.1f}/s, through links {linked.rate:7.1f}/s, "
            f"ratio {linked.rate / plain.rate:.0%} (rounds {ratios[0]:.0%} to {ratios[-1]:.0%}); "
            f"server CPU per request {plain.cpu:.2f} / {linked.cpu:.2f} ms"
        )
        return linked.rate / plain.rate

    where = "in the server's loop" if same else "in a separate process"
    print(
        f"{clients} concurrent clients {where}, loopback; {rounds} rounds of "
        f"{seconds:g} s per side and kind, plain and links in turn"
    )
    thumbs_ratio = line("thumbs", f"thumbnails ({thumb_size / 1000:.0f} KB)")
    large_ratio = line("large", "5 MB originals")
    print(
        f"first byte of a 64 KiB Range in a {video_mb} MB video: "
        f"at the start {statistics.median(starts) * 1000:.1f} ms, "
        f"at the end {statistics.median(ends) * 1000:.1f} ms (medians of 20)"
    )
    ratios = {"thumbs_ratio": round(thumbs_ratio, 3), "large_ratio": round(large_ratio, 3)}
    print(json.dumps(ratios))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=2, help="per slice")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--video-mb", type=int, default=1000)
    parser.add_argument("--same-process", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.rounds, args.clients, args.video_mb, args.same_process))


async def rows(stage: Stage) -> list[Row]:
    """The table's link rows: kluis serve (1 worker) against the plain
    ``FileResponse`` process for the same bytes, wrk as the load."""
    seconds, rounds = (1, 2) if stage.quick else (3, 6)
    kluis, plain = await stage.kluis(1), stage.plain()
    thumbs = await turns(
        {"plain": (plain, ["/thumb.jpg"]), "links": (kluis, stage.world.paths)},
        seconds,
        rounds,
        connections=8,
    )
    large = await turns(
        {"plain": (plain, ["/large.bin"]), "links": (kluis, stage.documents)},
        seconds,
        rounds,
        connections=8,
    )
    size = (stage.www / "thumb.jpg").stat().st_size
    sides = f"wrk 8 connections, {rounds} rounds of {seconds:g} s in turns"
    return [
        Row(
            measure="thumbnail link answer, server CPU per request",
            unit="ms",
            baseline_name="plain FileResponse",
            baseline=thumbs["plain"].cpu_ms,
            kluis=thumbs["links"].cpu_ms,
            ratio=thumbs["links"].cpu_ms / thumbs["plain"].cpu_ms,
            spread=spread(thumbs["links"], thumbs["plain"], cost=True),
            cpu_ms=(thumbs["plain"].cpu_ms, thumbs["links"].cpu_ms),
            goal=Goal("<=", 1.5, "<= 1.5x"),
            note=f"{size / 1000:.0f} KB; {thumbs['plain'].rate:,.0f}/s plain, "
            f"{thumbs['links'].rate:,.0f}/s links; {sides}",
        ),
        Row(
            measure="5 MB original through a link, rate",
            unit="/s",
            baseline_name="plain FileResponse",
            baseline=large["plain"].rate,
            kluis=large["links"].rate,
            ratio=large["links"].rate / large["plain"].rate,
            spread=spread(large["links"], large["plain"]),
            cpu_ms=(large["plain"].cpu_ms, large["links"].cpu_ms),
            goal=Goal(">=", 0.8, ">= 0.8"),
            note=sides,
        ),
    ]
