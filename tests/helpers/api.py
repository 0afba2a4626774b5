"""An initialised vault behind an aiohttp test client, with a clock the test moves.

The ``api`` and ``api_s3`` fixtures (tests/api/conftest.py) build one with
:func:`start` from :func:`configured` settings; tests that need other
settings call them themselves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from tests.helpers.databases import at_head
from vault.api import create_app
from vault.api.resources import CLOCK, DB
from vault.cli import init
from vault.config import DatabaseSettings, Settings, UploadSettings
from vault.db import create_engine
from vault.db.schema import installation
from vault.directory.people import issue_token


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclasses.dataclass
class Api:
    client: TestClient[web.Request, web.Application]
    clock: Clock
    admin: str

    async def call(
        self, method: str, path: str, token: str | None = None, json: Any = None, **kw: Any
    ) -> tuple[int, Any]:
        headers = kw.pop("headers", {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        response = await self.client.request(method, path, json=json, headers=headers, **kw)
        body = await response.json() if response.content_type == "application/json" else None
        return response.status, body

    async def ok(self, method: str, path: str, json: Any = None, token: str | None = None) -> Any:
        status, body = await self.call(method, path, token or self.admin, json)
        assert status in (200, 201, 204), (method, path, status, body)
        return body

    async def person(self, role: str, name: str = "Someone") -> tuple[str, str]:
        body = await self.ok("POST", "/v1/people", {"name": name, "role": role})
        return body["id"], body["token"]


#: The tests travel years ahead (retention); their tokens live as long.
TEST_TOKEN_TTL_DAYS = 3650


def configured(
    request: pytest.FixtureRequest, data_dir: Path, db_url: str, **sections: Any
) -> Settings:
    """Settings for a test: ``@pytest.mark.uploads(video_max_mb=5)`` changes the
    upload settings, ``@pytest.mark.settings(auth={...}, mail={...})`` any section,
    as do ``sections`` given here; tokens live :data:`TEST_TOKEN_TTL_DAYS`."""
    marker = request.node.get_closest_marker("uploads")
    uploads = UploadSettings(**(marker.kwargs if marker else {}))
    wanted: dict[str, dict[str, Any]] = {"auth": {"token_ttl_days": TEST_TOKEN_TTL_DAYS}}
    for source in (sections, *(m.kwargs for m in request.node.iter_markers("settings"))):
        for section, values in source.items():
            wanted.setdefault(section, {}).update(values)
    base = Settings(data_dir=data_dir, database=DatabaseSettings(url=db_url), uploads=uploads)
    return dataclasses.replace(
        base,
        **{
            name: dataclasses.replace(getattr(base, name), **values)
            for name, values in wanted.items()
        },
    )


async def start(settings: Settings, aiohttp_client: Any, **server: Any) -> Api:
    """``server``: keyword arguments for the test server (``host=...``). A
    database still empty starts at the head schema, copied from one migrated
    once (:mod:`tests.helpers.databases`)."""
    db_url = settings.database_url
    await at_head(db_url)
    assert await init(settings) == 0
    engine = create_engine(db_url)
    async with engine.connect() as conn:
        admin_id = await conn.scalar(
            select(installation.c.value).where(installation.c.key == "admin_person_id")
        )
    clock = Clock()
    ttl = timedelta(days=settings.auth.token_ttl_days)
    token = await issue_token(engine, str(admin_id), clock.now, ttl)
    await engine.dispose()
    app = create_app(settings)
    app[CLOCK] = cast(Callable[[], datetime], clock)
    client = await aiohttp_client(app, server_kwargs=server)
    assert client.app[DB] is not None
    return Api(client, clock, token)
