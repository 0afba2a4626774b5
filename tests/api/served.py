"""A vault served as ``kluis serve`` serves it, for clients that speak real HTTP.

Embedded defaults (local disk, SQLite, local keyring) in a temporary data
directory, the runner options of ``kluis serve`` (:func:`server_options`),
a real socket on a free loopback port, the event loop in a thread of its
own, so synchronous clients (schemathesis, a generated client, hypothesis
runs) call it as any client would. The organisation of
:func:`tests.api.world.world` is seeded through the API, with a photo, a
diary entry and an observation, so calls with these ids reach the logic.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from aiohttp import web
from sqlalchemy import select

from tests.files import jpeg_with_secrets
from tests.helpers.world import World, world
from vault.api import create_app
from vault.api.app import server_options
from vault.api.resources import DB
from vault.cli import init
from vault.config import ServerSettings, Settings
from vault.db.schema import installation
from vault.directory.people import issue_token
from vault.keys.service import utcnow

T = TypeVar("T")


@dataclasses.dataclass
class HttpApi:
    """The calls of ``tests.api.conftest.Api`` over a real socket (what world() needs)."""

    session: aiohttp.ClientSession
    base: str
    admin: str

    async def call(
        self, method: str, path: str, token: str | None = None, json: Any = None, **kw: Any
    ) -> tuple[int, Any]:
        headers = kw.pop("headers", {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        async with self.session.request(
            method, self.base + path, json=json, headers=headers, **kw
        ) as response:
            ok_json = response.content_type == "application/json"
            return response.status, (await response.json()) if ok_json else None

    async def ok(self, method: str, path: str, json: Any = None, token: str | None = None) -> Any:
        status, body = await self.call(method, path, token or self.admin, json)
        assert status in (200, 201, 204), (method, path, status, body)
        return body

    async def person(self, role: str, name: str = "Someone") -> tuple[str, str]:
        body = await self.ok("POST", "/v1/people", {"name": name, "role": role})
        return body["id"], body["token"]


@dataclasses.dataclass
class Served:
    base: str
    app: web.Application
    admin: str
    w: World
    location: str
    photo: str
    diary: str
    observation: str
    #: Things a run may use up: a person to block, a photo to delete, a hold to lift,
    #: a request to answer.
    victim: str
    spare_staff: str
    spare_photo: str
    hold: str
    request: str
    #: A second admin token, for signing out (which stops the token it comes with).
    spare_token: str
    #: Link paths (/l/…, /h/…, /x/…) the parent or school may fetch.
    link: str
    handover: str
    export: str
    loop: asyncio.AbstractEventLoop

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        """Run ``coroutine`` on the server's loop (to look at its database)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)


async def _seed(api: HttpApi, app: web.Application) -> dict[str, Any]:
    w = await world(api)
    location = (await api.ok("POST", "/v1/locations", {"name": "De Schatkist"}))["id"]
    for kind in ("photo", "diary", "school_handover"):
        await api.ok("PUT", f"/v1/children/{w.child}/consents/{kind}", {"granted": True}, w.parent)
    ids: dict[str, Any] = {"w": w, "location": location}
    for kind, data, name in (
        ("photo", jpeg_with_secrets(), "Zandbak.jpg"),
        ("observation", b"%PDF-1.4\n" + b"0" * 600, "Observatie.pdf"),
    ):
        form = aiohttp.FormData()
        form.add_field("meta", f'{{"kind": "{kind}"}}', content_type="application/json")
        form.add_field("file", io.BytesIO(data), filename=name)
        status, item = await api.call("POST", f"/v1/children/{w.child}/items", w.staff, data=form)
        assert status == 201, item
        ids[kind] = item["id"]
        if kind == "photo":
            form = aiohttp.FormData()
            form.add_field("meta", '{"kind": "photo"}', content_type="application/json")
            form.add_field("file", io.BytesIO(data), filename="Reserve.jpg")
            _, spare = await api.call("POST", f"/v1/children/{w.child}/items", w.staff, data=form)
            ids["spare_photo"] = spare["id"]
    diary = {"kind": "diary", "date": utcnow().date().isoformat(), "text": "Goed gegeten."}
    ids["diary"] = (await api.ok("POST", f"/v1/children/{w.child}/items", diary, w.staff))["id"]
    ids["victim"], _ = await api.person("guardian", "Victim")
    ids["spare_staff"], _ = await api.person("staff", "Reserve")
    hold = {"reason": "Onderzoek"}
    ids["hold"] = (await api.ok("POST", f"/v1/children/{w.child}/holds", hold, w.officer))["id"]
    filed = {"type": "access", "child_id": w.child}
    ids["request"] = (await api.ok("POST", "/v1/requests", filed, w.parent))["id"]

    def path(url: str) -> str:
        return "/" + url.split("/", 3)[3]

    link = await api.ok("POST", f"/v1/items/{ids['photo']}/links", {"ttl_seconds": 3600}, w.parent)
    handover = await api.ok(
        "POST",
        f"/v1/items/{ids['observation']}/handovers",
        {"recipient": "De Regenboog", "max_downloads": 10},
        w.staff,
    )
    export = await api.ok("POST", f"/v1/children/{w.child}/exports", {}, w.parent)
    ids.update(link=path(link["url"]), handover=path(handover["url"]), export=path(export["url"]))
    return ids


@contextlib.contextmanager
def served_vault(data_dir: Path, **server: Any) -> Iterator[Served]:
    settings = Settings(data_dir=data_dir, server=ServerSettings(**server))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def run(coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(300)

    async def start() -> tuple[web.AppRunner, str, str, str, web.Application]:
        with contextlib.redirect_stdout(io.StringIO()):
            assert await init(settings) == 0
        app = create_app(settings)
        runner = web.AppRunner(app, access_log=None, **server_options(settings))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        async with app[DB].connect() as conn:
            admin_id = await conn.scalar(
                select(installation.c.value).where(installation.c.key == "admin_person_id")
            )
        token = await issue_token(app[DB], str(admin_id), utcnow())
        spare = await issue_token(app[DB], str(admin_id), utcnow())
        return runner, f"http://127.0.0.1:{port}", token, spare, app

    runner, base, admin, spare_token, app = run(start())

    async def seed() -> dict[str, Any]:
        async with aiohttp.ClientSession() as session:
            return await _seed(HttpApi(session, base, admin), app)

    try:
        ids = run(seed())
        yield Served(base=base, app=app, admin=admin, spare_token=spare_token, loop=loop, **ids)
    finally:
        run(runner.cleanup())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
