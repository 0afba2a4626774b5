"""The scale setup of the service behind a test client (the ``api`` fixture,
on SQLite and PostgreSQL, is tests/conftest.py's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers.api import TEST_TOKEN_TTL_DAYS, Api, start
from tests.helpers.s3 import s3_settings
from tests.servers import MinioServer, PostgresServer
from vault.config import AuthSettings, DatabaseSettings, Settings


@pytest.fixture
async def api_s3(
    tmp_path: Path,
    aiohttp_client: Any,
    minio_server: MinioServer,
    postgres_server: PostgresServer,
) -> Api:
    """The scale setup: blobs on a real MinIO, the database on a real PostgreSQL."""
    settings = Settings(
        data_dir=tmp_path / "data",
        database=DatabaseSettings(url=postgres_server.create_database()),
        storage=s3_settings(minio_server),
        auth=AuthSettings(token_ttl_days=TEST_TOKEN_TTL_DAYS),
    )
    return await start(settings, aiohttp_client)
