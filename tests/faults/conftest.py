"""The fault suite's fixtures: a vault on each storage backend.

``served`` is an initialised vault behind a test client on the local disk with
SQLite, and on MinIO with PostgreSQL (the two deployments the suite must hold
on). ``deployment`` is the environment of real ``kluis`` processes on the same two,
for the fault tests that kill and restart processes.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.api import Api, start
from tests.helpers.processes import kluis_env
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


@pytest.fixture(
    params=[
        pytest.param("local", marks=[pytest.mark.localdisk, pytest.mark.sqlite]),
        pytest.param("minio", marks=[pytest.mark.minio, pytest.mark.postgres]),
    ]
)
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The environment of real ``kluis`` processes on one vault: the local disk
    with SQLite, or MinIO with PostgreSQL (a fresh database and bucket)."""
    env = kluis_env(KLUIS_DATA_DIR=str(tmp_path / "data"))
    if request.param == "minio":
        minio: MinioServer = request.getfixturevalue("minio_server")
        postgres: PostgresServer = request.getfixturevalue("postgres_server")
        env.update(
            KLUIS_DATABASE_URL=postgres.create_database(),
            KLUIS_STORAGE_BACKEND="s3",
            KLUIS_STORAGE_S3_ENDPOINT=minio.endpoint,
            KLUIS_STORAGE_S3_BUCKET=f"faults-{secrets.token_hex(6)}",
            KLUIS_STORAGE_S3_ACCESS_KEY=minio.access_key,
            KLUIS_STORAGE_S3_SECRET_KEY=minio.secret_key,
        )
    return env
