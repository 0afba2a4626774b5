"""Vaults for the retention tests, with the batch size a test asks for.

``vaults(batch)`` starts a fresh, initialised vault behind a test client whose
retention runs take ``batch`` children per transaction: on SQLite with the
local disk, and on PostgreSQL with MinIO (the two deployments).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.api import TEST_TOKEN_TTL_DAYS, Api, start
from tests.helpers.s3 import s3_settings
from tests.servers import MinioServer, PostgresServer
from vault.config import AuthSettings, DatabaseSettings, RetentionSettings, Settings

Vaults = Callable[[int], Awaitable[Api]]


@pytest.fixture(
    params=[
        pytest.param("local", marks=[pytest.mark.localdisk, pytest.mark.sqlite]),
        pytest.param("minio", marks=[pytest.mark.minio, pytest.mark.postgres]),
    ]
)
def vaults(request: pytest.FixtureRequest, tmp_path: Path, aiohttp_client: Any) -> Vaults:
    made = 0

    async def make(batch: int) -> Api:
        nonlocal made
        made += 1
        settings = Settings(
            data_dir=tmp_path / f"data-{made}",
            auth=AuthSettings(token_ttl_days=TEST_TOKEN_TTL_DAYS),
            retention=dataclasses.replace(RetentionSettings(), batch_children=batch),
        )
        if request.param == "minio":
            minio: MinioServer = request.getfixturevalue("minio_server")
            postgres: PostgresServer = request.getfixturevalue("postgres_server")
            settings = dataclasses.replace(
                settings,
                database=DatabaseSettings(url=postgres.create_database()),
                storage=s3_settings(minio),
            )
        return await start(settings, aiohttp_client)

    return make
