"""Real MinIO and PostgreSQL servers for the test run.

Each starts on a free loopback port with its data in a temporary directory,
and is stopped and removed at the end of the session. The MinIO binary is
built by ``scripts/ensure-minio`` into a cache outside the repository
(``VAULT_TEST_MINIO`` names it); PostgreSQL comes from Debian's packages
(``scripts/ensure-postgres``).
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pytest

#: Set by scripts/test: a server that cannot start fails the run instead of skipping.
REQUIRE_SERVERS = os.environ.get("VAULT_TEST_REQUIRE_SERVERS") == "1"


class ServerUnavailable(RuntimeError):
    pass


def unavailable(exc: Exception) -> NoReturn:
    """A server the test needs could not start: a failure under scripts/test
    (``REQUIRE_SERVERS``), else a skip."""
    if REQUIRE_SERVERS:
        pytest.fail(f"test server unavailable: {exc}")
    pytest.skip(f"test server unavailable: {exc}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(
    predicate: Callable[[], bool],
    timeout: float,
    what: str,
    proc: subprocess.Popen[bytes],
    log: Path,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerUnavailable(f"{what} exited early:\n{log.read_text()[-2000:]}")
        if predicate():
            return
        time.sleep(0.1)
    raise ServerUnavailable(
        f"{what} did not become ready in {timeout:.0f}s:\n{log.read_text()[-2000:]}"
    )


class MinioServer:
    def __init__(self, binary: str) -> None:
        if not binary or not os.access(binary, os.X_OK):
            raise ServerUnavailable(
                f"no MinIO binary at {binary!r}; run scripts/ensure-minio (VAULT_TEST_MINIO)"
            )
        self.binary = binary
        self.dir = Path(tempfile.mkdtemp(prefix="kluis-minio-"))
        self.port = free_port()
        self.endpoint = f"127.0.0.1:{self.port}"
        self.access_key = "kluis-test"
        self.secret_key = secrets.token_hex(16)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> MinioServer:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.dir),
            "MINIO_ROOT_USER": self.access_key,
            "MINIO_ROOT_PASSWORD": self.secret_key,
            "MINIO_BROWSER": "off",
            "MINIO_UPDATE": "off",
        }
        log = self.dir / "minio.log"
        (self.dir / "data").mkdir(exist_ok=True)  # kept across a kill() and start()
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    "server",
                    str(self.dir / "data"),
                    "--address",
                    self.endpoint,
                    "--console-address",
                    f"127.0.0.1:{free_port()}",
                    "--quiet",
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        _wait(self._live, 60, "MinIO", self.proc, log)
        return self

    def _live(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"http://{self.endpoint}/minio/health/live", timeout=1
            ) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def kill(self) -> None:
        """Gone at once (SIGKILL), its data kept: ``start()`` brings it back on
        the same address (the fault suite's store outage)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def postgres_bindir() -> str:
    explicit = os.environ.get("VAULT_TEST_PG_BINDIR")
    if explicit:
        return explicit
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    if not candidates:
        raise ServerUnavailable("PostgreSQL is not installed; run scripts/ensure-postgres")
    return os.path.dirname(candidates[-1])


class PostgresServer:
    """A private PostgreSQL cluster, run as the ``postgres`` user when we are root."""

    def __init__(self) -> None:
        self.bindir = postgres_bindir()
        self.dir = Path(tempfile.mkdtemp(prefix="kluis-pg-"))
        self.port = free_port()
        self.user = "kluis"
        self.proc: subprocess.Popen[bytes] | None = None
        # PostgreSQL refuses to run as root: drop to the Debian package's user.
        self._as: dict[str, object] = {}
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise ServerUnavailable("running as root but there is no 'postgres' user") from None
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self._as = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}

    def _run(self, *args: str) -> None:
        result = subprocess.run(  # type: ignore[call-overload]
            list(args),
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            cwd=self.dir,
            **self._as,
        )
        if result.returncode != 0:
            raise ServerUnavailable(f"{args[0]} failed: {result.stderr[-2000:]}")

    def start(self) -> PostgresServer:
        """Start the cluster, creating it the first time (after :meth:`crash`,
        the same cluster recovers from its WAL)."""
        data = self.dir / "data"
        if not data.exists():
            self._run(
                f"{self.bindir}/initdb",
                "-D",
                str(data),
                "-U",
                self.user,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-instructions",
            )
        log = self.dir / "postgres.log"
        with log.open("ab") as out:
            self.proc = subprocess.Popen(  # type: ignore[call-overload]
                [
                    f"{self.bindir}/postgres",
                    "-D",
                    str(data),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.dir),
                    "-c",
                    "fsync=off",
                    "-c",
                    "max_connections=200",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                **self._as,
            )
        _wait(self._accepting, 60, "PostgreSQL", self.proc, log)
        return self

    def _accepting(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                pass
        except OSError:
            return False
        result = subprocess.run(
            [f"{self.bindir}/pg_isready", "-h", "127.0.0.1", "-p", str(self.port)],
            capture_output=True,
            check=False,
        )
        return result.returncode == 0

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A fresh, empty database; returns its SQLAlchemy URL."""
        name = f"t_{secrets.token_hex(6)}"
        subprocess.run(
            [
                f"{self.bindir}/psql",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-d",
                "postgres",
                "-qc",
                f"CREATE DATABASE {name}",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        return self.url(name)

    def crash(self) -> None:
        """Immediate shutdown (SIGQUIT): every connection and open transaction
        cut, no checkpoint; :meth:`start` recovers it (the fault suite's
        database restart mid-transaction)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # SIGINT, the "fast" shutdown: sessions a test left open are ended
            # (the "smart" one, SIGTERM, waited for them: 20 s, then a kill).
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
