"""S3 settings that cannot work are said so in one line naming the setting.

At the store's level (a bucket name S3 refuses, an endpoint with a scheme,
nothing listening, wrong credentials, a missing bucket it may not create)
and as ``kluis init`` shows them: exit status 2 for configuration, one line
on stderr, no traceback, nothing created.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.processes import kluis, kluis_env
from tests.helpers.s3 import s3_settings
from tests.servers import MinioServer, free_port
from vault.config import Secret, StorageSettings
from vault.errors import ConfigError
from vault.storage import S3Store, StorageUnavailable


def settings(**values: object) -> StorageSettings:
    base: dict[str, object] = {
        "backend": "s3",
        "s3_endpoint": f"127.0.0.1:{free_port()}",
        "s3_access_key": Secret("x"),
        "s3_secret_key": Secret("y"),
        "timeout_seconds": 1.0,
    }
    return StorageSettings(**{**base, **values})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bucket",
    ["My_Bucket", "ab", "x" * 64, "-kluis", "kluis-", "192.168.1.1", "kluis..data", "xn--kluis"],
)
async def test_a_bucket_name_s3_refuses_is_a_configuration_error(bucket: str) -> None:
    with pytest.raises(ConfigError, match=r"storage\.s3_bucket") as raised:
        await S3Store.open(settings(s3_bucket=bucket))
    assert "\n" not in raised.value.message


@pytest.mark.parametrize("endpoint", ["http://minio:9000", "minio:9000/kluis"])
async def test_an_endpoint_with_a_scheme_or_path_is_a_configuration_error(endpoint: str) -> None:
    with pytest.raises(ConfigError, match=r"storage\.s3_endpoint"):
        await S3Store.open(settings(s3_endpoint=endpoint))


async def test_nothing_listening_names_the_endpoint() -> None:
    with pytest.raises(StorageUnavailable, match=r"storage\.s3_endpoint.*Connection refused"):
        await S3Store.open(settings())


@pytest.mark.minio
async def test_wrong_credentials_and_a_missing_bucket_are_named(
    minio_server: MinioServer,
) -> None:
    wrong = s3_settings(minio_server, s3_secret_key=Secret("not-the-secret"))
    with pytest.raises(StorageUnavailable, match=r"storage\.s3_access_key") as raised:
        await S3Store.open(wrong)
    assert "not-the-secret" not in raised.value.message
    absent = s3_settings(minio_server, s3_create_bucket=False)
    with pytest.raises(ConfigError, match=r"storage\.s3_create_bucket"):
        await S3Store.open(absent)


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"KLUIS_STORAGE_S3_BUCKET": "Kluis_Data"}, "storage.s3_bucket"),
        ({"KLUIS_STORAGE_S3_ENDPOINT": "https://s3.example.org"}, "storage.s3_endpoint"),
        ({"KLUIS_DATABASE_URL": "postgresql+asyncpg://kluis:pw@db:5432"}, "database.url"),
    ],
)
async def test_kluis_init_says_it_in_one_line(
    tmp_path: Path, variables: dict[str, str], named: str
) -> None:
    env = kluis_env(
        KLUIS_DATA_DIR=str(tmp_path / "data"),
        KLUIS_STORAGE_BACKEND="s3",
        KLUIS_STORAGE_S3_ACCESS_KEY="x",
        KLUIS_STORAGE_S3_SECRET_KEY="y",
        **variables,
    )
    status, _out, err = await kluis(env, "init")
    assert status == 2, err
    lines = [line for line in err.splitlines() if "alembic" not in line]
    assert len(lines) == 1, err
    assert lines[0].startswith("kluis: configuration error: ")
    assert named in lines[0]
    assert "pw" not in err.replace("postgresql", "")
    assert not (tmp_path / "data" / "keyring.json").exists()


async def test_kluis_init_on_an_unreachable_store_says_which(tmp_path: Path) -> None:
    env = kluis_env(
        KLUIS_DATA_DIR=str(tmp_path / "data"),
        KLUIS_STORAGE_BACKEND="s3",
        KLUIS_STORAGE_S3_ENDPOINT=f"127.0.0.1:{free_port()}",
        KLUIS_STORAGE_S3_ACCESS_KEY="x",
        KLUIS_STORAGE_S3_SECRET_KEY="y",
        KLUIS_STORAGE_TIMEOUT_SECONDS="1",
    )
    status, _, err = await kluis(env, "init")
    assert status == 1
    lines = [line for line in err.splitlines() if "alembic" not in line]
    assert len(lines) == 1, err
    assert "storage.s3_endpoint" in lines[0]
    assert "Traceback" not in err
