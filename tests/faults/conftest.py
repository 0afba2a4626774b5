"""The fault suite's fixtures: a vault on each storage backend.

``served`` is an initialised vault behind a test client on the local disk with
SQLite, and on MinIO with PostgreSQL (the two deployments the suite must hold
on). The fault tests that kill and restart processes start their own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers.api import Api, start
from tests.helpers.s3 import s3_settings
from tests.servers import MinioServer, PostgresServer
from vault.config import DatabaseSettings, Settings


@pytest.fixture(
    params=[
        pytest.param("local", marks=[pytest.mark.localdisk, pytest.mark.sqlite]),
        pytest.param("minio", marks=[pytest.mark.minio, pytest.mark.postgres]),
    ]
)
async def served(request: pytest.FixtureRequest, tmp_path: Path, aiohttp_client: Any) -> Api:
    if request.param == "local":
        settings = Settings(data_dir=tmp_path / "data")
    else:
        minio: MinioServer = request.getfixturevalue("minio_server")
        postgres: PostgresServer = request.getfixturevalue("postgres_server")
        settings = Settings(
            data_dir=tmp_path / "data",
            database=DatabaseSettings(url=postgres.create_database()),
            storage=s3_settings(minio),
        )
    return await start(settings, aiohttp_client)
