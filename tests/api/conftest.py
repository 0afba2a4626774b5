"""An initialised vault behind a test client, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers.api import Api, start
from tests.helpers.s3 import s3_settings
from tests.servers import MinioServer, PostgresServer
from vault.config import DatabaseSettings, Settings, UploadSettings


@pytest.fixture
async def api(
    db_url: str, tmp_path: Path, aiohttp_client: Any, request: pytest.FixtureRequest
) -> Api:
    """``@pytest.mark.uploads(video_max_mb=5)`` changes the upload settings."""
    marker = request.node.get_closest_marker("uploads")
    uploads = UploadSettings(**(marker.kwargs if marker else {}))
    settings = Settings(
        data_dir=tmp_path / "data", database=DatabaseSettings(url=db_url), uploads=uploads
    )
    return await start(settings, aiohttp_client)


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
    )
    return await start(settings, aiohttp_client)
