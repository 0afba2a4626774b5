"""What the serving benches share: real servers in processes of their own, and wrk.

* :class:`Served`: a ``kluis serve --workers N`` process on a free port, its
  CPU counted over its whole process tree;
* :func:`vault_env` / :func:`setup`: a fresh vault (``kluis init``) and one
  organisation in it through the API (a child with photo consent, staff, a
  guardian, 20 photos, thumbnail links), the one setup the serving benches use;
* :class:`Nginx` (Debian's nginx, scripts/ensure-nginx) and :class:`Plain`
  (aiohttp's ``FileResponse``, bench/plain.py) serving plain files, each a
  process of its own;
* :func:`wrk`: Debian's wrk (scripts/ensure-wrk) as the load, a process of
  its own, never in a server's event loop; :func:`turns` runs sides in turns
  and counts rate and server CPU per request.

This module only starts and stops processes it owns, in temporary directories.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
import psutil
import pyvips

from bench.ingest import multipart

KLUIS = [sys.executable, "-m", "vault"]
ROOT = Path(__file__).resolve().parent.parent


def photo_jpeg() -> bytes:
    """A 1600×1200 photo whose stored thumb variant is about 30 KB."""
    noise = pyvips.Image.gaussnoise(1600, 1200, sigma=80, mean=128).cast("uchar")
    image = noise.bandjoin([noise, noise]).copy(interpretation="srgb")
    data: bytes = image.jpegsave_buffer(Q=85)
    return data


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tree_cpu(pid: int) -> float:
    """CPU seconds so far of a process and all its descendants."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


class Server(Protocol):
    base: str

    def cpu(self) -> float: ...


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
        return tree_cpu(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(90)


async def vault_env(tmp: Path) -> tuple[dict[str, str], str]:
    """A fresh vault in ``tmp`` (``kluis init``): the environment to serve it, the admin token."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLUIS_")}
    env["KLUIS_DATA_DIR"] = str(tmp / "data")
    init = await asyncio.to_thread(
        subprocess.run, [*KLUIS, "init"], env=env, capture_output=True, text=True
    )
    assert init.returncode == 0, init.stderr
    return env, init.stdout.strip().splitlines()[-1]


@dataclasses.dataclass
class World:
    """What the clients need: thumbnail link paths, who uploads and lists, where."""

    paths: list[str]
    staff: str
    parent: str
    child: str


class Api:
    """JSON calls to one server as the admin (or a given token)."""

    def __init__(self, base: str, admin: str, session: aiohttp.ClientSession) -> None:
        self.base, self.admin, self.session = base, admin, session

    async def ok(self, method: str, path: str, body: object, token: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token or self.admin}"}
        async with self.session.request(method, self.base + path, json=body, headers=headers) as r:
            assert r.status in (200, 201, 204), (path, r.status, await r.text())
            return await r.json() if r.status != 204 else {}

    async def upload(self, child: str, kind: str, data: object, name: str, token: str) -> str:
        async with self.session.post(
            f"{self.base}/v1/children/{child}/items",
            data=multipart({"kind": kind}, data, name),
            headers={"Authorization": f"Bearer {token}"},
        ) as r:
            assert r.status == 201, await r.text()
            return str((await r.json())["id"])

    async def links(self, items: list[str], variant: str, token: str) -> list[str]:
        body = {"items": [{"item_id": i, "variant": variant} for i in items], "ttl_seconds": 7200}
        answer = await self.ok("POST", "/v1/links", body, token)
        return [urlsplit(entry["url"]).path for entry in answer["links"]]


async def setup(base: str, admin: str, session: aiohttp.ClientSession, photos: int = 20) -> World:
    """An organisation with one child with photo consent and ``photos`` photos."""
    api = Api(base, admin, session)
    location = (await api.ok("POST", "/v1/locations", {"name": "Bench"}))["id"]
    group = (await api.ok("POST", "/v1/groups", {"location_id": location, "name": "G"}))["id"]
    staff = await api.ok("POST", "/v1/people", {"name": "S", "role": "staff"})
    parent = await api.ok("POST", "/v1/people", {"name": "P", "role": "guardian"})
    await api.ok("POST", f"/v1/groups/{group}/staff", {"person_id": staff["id"]})
    child = (
        await api.ok(
            "POST",
            "/v1/children",
            {"first_name": "A", "last_name": "B", "birth_date": "2023-01-01", "group_id": group},
        )
    )["id"]
    await api.ok(
        "PUT", f"/v1/children/{child}/placement", {"start_date": "2024-01-01", "end_date": None}
    )
    await api.ok(
        "POST",
        f"/v1/children/{child}/guardians",
        {"person_id": parent["id"], "relation": "contract_parent", "household": "shared"},
    )
    await api.ok("PUT", f"/v1/children/{child}/consents/photo", {"granted": True}, parent["token"])
    image = photo_jpeg()
    items = [
        await api.upload(child, "photo", image, f"p{n}.jpg", staff["token"]) for n in range(photos)
    ]
    paths = await api.links(items, "thumb", parent["token"])
    return World(paths, staff["token"], parent["token"], child)


def _open_to_workers(path: Path) -> None:
    """nginx's workers run as another user: let them through the temporary directories."""
    for part in [path, *path.parents]:
        if str(part).startswith(tempfile.gettempdir()) and part != Path(tempfile.gettempdir()):
            part.chmod(0o755)


class Nginx:
    """Debian's nginx with ``workers`` worker processes serving ``www``, on a free port."""

    def __init__(self, www: Path, workers: int) -> None:
        binary = subprocess.run(
            [str(ROOT / "scripts" / "ensure-nginx")], capture_output=True, text=True, check=True
        ).stdout.strip()
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        root = Path(tempfile.mkdtemp(prefix="kluis-bench-nginx-"))
        self.root = root
        _open_to_workers(www)
        for item in www.iterdir():
            item.chmod(0o644)
        temps = " ".join(
            f"{kind}_temp_path {root / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (root / "nginx.conf").write_text(
            f"daemon off; worker_processes {workers}; pid {root / 'nginx.pid'};\n"
            f"error_log {root / 'error.log'};\nevents {{ worker_connections 1024; }}\n"
            f"http {{ access_log off; sendfile on; tcp_nopush on; {temps}\n"
            f"  server {{ listen 127.0.0.1:{self.port}; root {www}; }} }}\n"
        )
        self.proc = subprocess.Popen(
            [binary, "-p", str(root), "-c", str(root / "nginx.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _wait_for_port(self.port, self.proc, "nginx")

    def cpu(self) -> float:
        return tree_cpu(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Plain:
    """aiohttp's ``FileResponse`` serving ``www`` (bench/plain.py), a process of its own."""

    def __init__(self, www: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.plain", str(www), str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _wait_for_port(self.port, self.proc, "the plain FileResponse server")

    def cpu(self) -> float:
        return tree_cpu(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{what} did not start") from None
            time.sleep(0.05)


WRK_SCRIPT = """
local paths = {%s}
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n %% #paths) + 1])
end
done = function(summary, latency, requests)
  io.write(string.format(
    'WRKJSON {"requests": %%d, "duration_us": %%d, "status_errors": %%d, ' ..
    '"socket_errors": %%d, "p50_us": %%d, "p99_us": %%d}\\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


def wrk_binary() -> str:
    return subprocess.run(
        [str(ROOT / "scripts" / "ensure-wrk")], capture_output=True, text=True, check=True
    ).stdout.strip()


@dataclasses.dataclass
class Burst:
    """One wrk run: what it counted and what the server spent meanwhile."""

    requests: int
    seconds: float
    server_cpu: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_ms(self) -> float:
        return self.server_cpu * 1000 / max(1, self.requests)


async def wrk(
    server: Server, paths: list[str], seconds: float, connections: int, threads: int = 1
) -> Burst:
    """wrk against ``server`` for ``seconds``, cycling through ``paths``."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % ", ".join(json.dumps(p) for p in paths))
    try:
        before = server.cpu()
        done = await asyncio.to_thread(
            subprocess.run,
            [
                wrk_binary(),
                f"-t{threads}",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "30s",
                "-s",
                script.name,
                server.base,
            ],
            capture_output=True,
            text=True,
        )
        spent = server.cpu() - before
    finally:
        os.unlink(script.name)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"wrk failed: {done.stderr or done.stdout}")
    figures = json.loads(line.removeprefix("WRKJSON "))
    if figures["status_errors"] or figures["socket_errors"]:
        raise SystemExit(f"wrk saw errors against {server.base}{paths[0]}: {figures}")
    return Burst(figures["requests"], figures["duration_us"] / 1e6, spent, figures["p99_us"] / 1000)


@dataclasses.dataclass
class Side:
    """One side of a comparison over every round."""

    bursts: list[Burst] = dataclasses.field(default_factory=list)

    @property
    def rate(self) -> float:
        return sum(b.requests for b in self.bursts) / sum(b.seconds for b in self.bursts)

    @property
    def cpu_ms(self) -> float:
        requests = sum(b.requests for b in self.bursts)
        return sum(b.server_cpu for b in self.bursts) * 1000 / max(1, requests)


async def turns(
    sides: dict[str, tuple[Server, list[str]]],
    seconds: int,
    rounds: int,
    connections: int,
    threads: int = 1,
) -> dict[str, Side]:
    """Each side in turn for ``seconds``, ``rounds`` times, the order reversed
    every round, so a host that changes speed weighs on every side alike.
    A short warm-up per side first (not counted)."""
    for server, paths in sides.values():
        await wrk(server, paths, 1, connections, threads)
    tally = {name: Side() for name in sides}
    names = list(sides)
    for n in range(rounds):
        for name in names if n % 2 == 0 else reversed(names):
            server, paths = sides[name]
            tally[name].bursts.append(await wrk(server, paths, seconds, connections, threads))
    return tally


def spread(kluis: Side, baseline: Side, cost: bool = False) -> tuple[float, float]:
    """Lowest and highest per-round ratio (of rates, or of CPU per request if ``cost``)."""
    pairs = zip(kluis.bursts, baseline.bursts, strict=True)
    ratios = [(k.cpu_ms / b.cpu_ms) if cost else (k.rate / b.rate) for k, b in pairs]
    return min(ratios), max(ratios)


MB = 1_000_000


class Stage:
    """One vault served for every serving bench of a ``python -m bench`` run.

    The vault (SQLite, local disk, local keyring) in a temporary directory,
    one organisation with ``photos`` photos and four 5 MB documents with
    links to them, and the same bytes as plain files in ``www`` (``thumb.jpg``,
    ``large.bin``) for the baselines. Servers start on first use: ``kluis
    serve`` with 1 and with 2 workers (both on the same vault), the plain
    ``FileResponse`` process, nginx with 1 or 2 workers. :meth:`close` stops
    them all and removes the directory.
    """

    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.tmp = Path(tempfile.mkdtemp(prefix="kluis-bench-"))
        self.www = self.tmp / "www"
        self.www.mkdir()
        self._servers: dict[int, Served] = {}
        self._nginx: dict[int, Nginx] = {}
        self._plain: Plain | None = None
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))

    async def start(self) -> None:
        self.env, self.admin = await vault_env(self.tmp)
        one = await self.kluis(1)
        self.world = await setup(one.base, self.admin, self.session, 5 if self.quick else 20)
        api = Api(one.base, self.admin, self.session)
        pdf = b"%PDF-1.4\n" + os.urandom(5 * MB)
        documents = [
            await api.upload(self.world.child, "observation", pdf, f"d{i}.pdf", self.world.staff)
            for i in range(4)
        ]
        self.documents = await api.links(documents, "original", self.world.parent)
        async with self.session.get(one.base + self.world.paths[0]) as r:
            assert r.status == 200
            (self.www / "thumb.jpg").write_bytes(await r.read())
        (self.www / "large.bin").write_bytes(pdf)

    async def kluis(self, workers: int) -> Served:
        if workers not in self._servers:
            server = Served(self.env, workers, self.tmp / f"serve-{workers}.log")
            await server.ready(self.session)
            self._servers[workers] = server
        return self._servers[workers]

    def nginx(self, workers: int) -> Nginx:
        if workers not in self._nginx:
            self._nginx[workers] = Nginx(self.www, workers)
        return self._nginx[workers]

    def plain(self) -> Plain:
        if self._plain is None:
            self._plain = Plain(self.www)
        return self._plain

    async def close(self) -> None:
        await self.session.close()
        for process in [*self._servers.values(), *self._nginx.values(), self._plain]:
            if process is not None:
                process.stop()
        for nginx in self._nginx.values():
            shutil.rmtree(nginx.root, ignore_errors=True)
        shutil.rmtree(self.tmp, ignore_errors=True)


@contextlib.asynccontextmanager
async def stage(quick: bool) -> AsyncIterator[Stage]:
    made = Stage(quick)
    try:
        await made.start()
        yield made
    finally:
        await made.close()
