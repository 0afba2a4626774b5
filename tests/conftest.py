"""Shared fixtures: real servers, stores and databases on every backend.

``store`` runs a test on the local disk and on MinIO; ``db_url`` on SQLite
and PostgreSQL (and ``api``, the whole service, with it); ``key_store`` (and
``provider``) on the local keyring and on a real SoftHSM2 token. With
``VAULT_TEST_REQUIRE_SERVERS=1`` (set by scripts/test) a server that cannot
start fails the run instead of skipping, and the run fails if no MinIO,
PostgreSQL, SoftHSM2 or OpenID Provider test executed. The closing summary counts the tests
that ran on each backend.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.api import Api, configured, start
from tests.helpers.keystores import (
    KeyStore,
    SoftHsm,
    SoftHsmUnavailable,
    local_store,
    softhsm_store,
)
from tests.helpers.s3 import s3_settings
from tests.servers import (
    REQUIRE_SERVERS,
    MinioServer,
    PostgresServer,
    ServerUnavailable,
    unavailable,
)
from vault.config import Settings
from vault.keys import KeyProvider
from vault.storage import BlobStore, LocalDiskStore, S3Store

BACKENDS = {
    "localdisk": "local disk",
    "minio": "MinIO",
    "sqlite": "SQLite",
    "postgres": "PostgreSQL",
    "localkeyring": "local keyring",
    "softhsm": "SoftHSM2 (PKCS#11)",
    "oidc": "OpenID Provider (oidc-provider)",
}
#: The backends that run only where a server or token could be started.
REQUIRED = ("minio", "postgres", "softhsm", "oidc")


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium (scripts/ensure-chromium installs it; scripts/test sets
    ``VAULT_TEST_CHROMIUM``). Missing: a failure under scripts/test, else a skip."""
    path = os.environ.get("VAULT_TEST_CHROMIUM") or shutil.which("chromium")
    if not path or not os.access(path, os.X_OK):
        unavailable(RuntimeError("no chromium; run scripts/ensure-chromium"))
    assert path is not None
    return path


def _cached_minio() -> str:
    script = Path(__file__).resolve().parent.parent / "scripts" / "ensure-minio"
    return subprocess.run(
        [script, "--path"], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture(scope="session")
def minio_server() -> Iterator[MinioServer]:
    try:
        server = MinioServer(os.environ.get("VAULT_TEST_MINIO") or _cached_minio()).start()
    except ServerUnavailable as exc:
        unavailable(exc)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> SoftHsm:
    """A SoftHSM2 token for the session (tests/helpers/keystores.py says why one)."""
    try:
        return SoftHsm.start(tmp_path_factory.mktemp("softhsm"))
    except SoftHsmUnavailable as exc:
        unavailable(exc)
        raise


@pytest.fixture(
    params=[
        pytest.param("local", marks=pytest.mark.localkeyring),
        pytest.param("pkcs11", marks=pytest.mark.softhsm),
    ]
)
def key_store(request: pytest.FixtureRequest, tmp_path: Path) -> KeyStore:
    """An empty key store on each provider: a keyring file, or a token's own prefix."""
    if request.param == "local":
        return local_store(tmp_path / "keyring")
    return softhsm_store(request.getfixturevalue("softhsm"))


@pytest.fixture
async def provider(key_store: KeyStore) -> AsyncIterator[KeyProvider]:
    """An open provider on ``key_store``, with its audit MAC key."""
    async with key_store.opened() as opened:
        yield opened


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer().start()
    except ServerUnavailable as exc:
        unavailable(exc)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(
    params=[
        pytest.param("local", marks=pytest.mark.localdisk),
        pytest.param("minio", marks=pytest.mark.minio),
    ]
)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobStore]:
    """A fresh, empty blob store on each backend."""
    blob_store: BlobStore
    if request.param == "local":
        blob_store = await LocalDiskStore.open(tmp_path / "blobs")
    else:
        server = request.getfixturevalue("minio_server")
        blob_store = await S3Store.open(s3_settings(server))
    try:
        yield blob_store
    finally:
        await blob_store.close()


@pytest.fixture(
    params=[
        pytest.param("sqlite", marks=pytest.mark.sqlite),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a fresh, empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'kluis.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database()


@pytest.fixture
async def api(
    db_url: str, tmp_path: Path, aiohttp_client: Any, request: pytest.FixtureRequest
) -> Api:
    """The whole service behind a test client, on SQLite and PostgreSQL;
    ``@pytest.mark.uploads(...)`` and ``@pytest.mark.settings(...)`` change its
    settings (:func:`tests.helpers.api.configured`)."""
    return await start(configured(request, tmp_path / "data", db_url), aiohttp_client)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded-default settings in a temporary data directory."""
    return Settings(data_dir=tmp_path / "data")


# -- per-backend accounting ---------------------------------------------------

_ran: dict[str, dict[str, int]] = {name: {"passed": 0, "failed": 0} for name in BACKENDS}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--faults-long",
        action="store_true",
        default=False,
        help="run the fault suite (tests/faults/) with many iterations per fault kind, "
        "for a run by hand; also KLUIS_FAULTS_LONG=1",
    )
    parser.addoption(
        "--faults-rounds",
        type=int,
        default=None,
        metavar="N",
        help="run each fault kind of the fault suite exactly N times (per backend), "
        "overriding --faults-long, for a run by hand; also KLUIS_FAULTS_ROUNDS=N",
    )


def pytest_configure(config: pytest.Config) -> None:
    for name, label in BACKENDS.items():
        config.addinivalue_line("markers", f"{name}: runs against {label}")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    counted = report.when == "call" or (report.when == "setup" and report.failed)
    if report.skipped or not counted:
        return
    for name in BACKENDS:
        if name in report.keywords:
            _ran[name]["passed" if report.passed else "failed"] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.section("tests per backend")
    for name, label in BACKENDS.items():
        counts = _ran[name]
        terminalreporter.write_line(
            f"{label} - {counts['passed']} tests passed, {counts['failed']} tests failed"
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not REQUIRE_SERVERS or session.config.option.collectonly:
        return
    missing = [BACKENDS[n] for n in REQUIRED if _ran[n]["passed"] == 0]
    if missing and exitstatus == 0:
        print(f"\nERROR: no test ran on {', '.join(missing)}; they must run in this suite.")
        session.exitstatus = 1
