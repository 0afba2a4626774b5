"""Every bench of the Goals table, in a fixed order, as one table (issue 23 item 5).

    .venv/bin/python -m bench [--quick] [--json PATH] [--compare OLD.json]
                              [--retention-children N]

Order: photo ingest (bench/ingest.py), thumbnails and 5 MB originals through
links against aiohttp's plain ``FileResponse`` (bench/links.py), ``--workers
2`` against ``--workers 1`` and against nginx with 2 workers
(bench/workers.py), a child's export against nginx serving the same ZIP
(bench/export.py), link-fetch p99 under mixed load (bench/fetch_latency.py),
a retention run (bench/retention.py). The serving benches share one vault
served by real ``kluis serve`` processes (bench/serving.py); the load is wrk,
curl or aiohttp clients in processes of their own, never in a server's loop.
Debian's wrk and nginx are installed when missing (scripts/ensure-wrk,
scripts/ensure-nginx).

``--quick`` takes a few minutes on a busy 2-core host: short slices, fewer
rounds, a 200 MB export, 20 children for retention (each row says its size;
the retention goal is then scaled by the number of children). The full run
has 3-second slices, 6 rounds, a 1 GB export and 300 children (about 15
minutes here; ``--retention-children 10000`` for the goal's own size, which
takes far longer to build). The table is printed and written as JSON
(default bench-results/<UTC date and time>.json; the directory is ignored by
git); ``--compare OLD.json`` prints the change from an earlier run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import export, fetch_latency, ingest, links, retention, workers
from bench.serving import ROOT, stage
from bench.table import Row, compare, render, to_json


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _commit() -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return done.stdout.strip() or "?"


async def run(quick: bool, retention_children: int | None) -> list[Row]:
    rows: list[Row] = []
    began = time.perf_counter()

    def got(name: str, new: list[Row]) -> None:
        rows.extend(new)
        print(
            f"bench: {name} done at {time.perf_counter() - began:.0f} s, load average {_load()}",
            file=sys.stderr,
            flush=True,
        )

    async with stage(quick) as served:
        got("vault set up", [])
        got("ingest", await ingest.rows(served))
        got("links", await links.rows(served))
        got("workers", await workers.rows(served))
        got("export", await export.rows(served))
        got("fetch latency", await fetch_latency.rows(served))
    got("retention", await asyncio.to_thread(retention.rows, quick, retention_children))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short slices, small sizes")
    parser.add_argument("--json", type=Path, help="where to write the table as JSON")
    parser.add_argument("--compare", type=Path, help="an earlier run's JSON to compare with")
    parser.add_argument("--retention-children", type=int, help="children in the retention run")
    args = parser.parse_args()

    started = datetime.now(UTC)
    began, load_start = time.perf_counter(), _load()
    rows = asyncio.run(run(args.quick, args.retention_children))
    meta: dict[str, Any] = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "quick": args.quick,
        "cores": os.cpu_count(),
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "commit": _commit(),
        "load_start": load_start,
        "load_end": _load(),
        "seconds": time.perf_counter() - began,
    }
    print(render(rows, meta))
    document = to_json(rows, meta)
    target = args.json or ROOT / "bench-results" / f"{started:%Y-%m-%dT%H%M}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwritten to {target}")
    if args.compare:
        print()
        print(compare(json.loads(args.compare.read_text()), document))


if __name__ == "__main__":
    main()
