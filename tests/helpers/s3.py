"""Storage settings pointing at a test MinIO server, a fresh bucket by default."""

from __future__ import annotations

import secrets

from tests.servers import MinioServer
from vault.config import Secret, StorageSettings


def s3_settings(
    server: MinioServer, bucket: str | None = None, **overrides: object
) -> StorageSettings:
    values: dict[str, object] = {
        "backend": "s3",
        "s3_endpoint": server.endpoint,
        "s3_bucket": bucket or f"t-{secrets.token_hex(6)}",
        "s3_access_key": Secret(server.access_key),
        "s3_secret_key": Secret(server.secret_key),
        "s3_part_size_mb": 5,
        "timeout_seconds": 5.0,
    }
    values.update(overrides)
    return StorageSettings(**values)  # type: ignore[arg-type]
