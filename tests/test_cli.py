"""The kluis command as a user runs it: init, serve, config, on both setups."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.helpers.cli import KLUIS, clean_env, run
from tests.helpers.keystores import SoftHsm, softhsm_store
from tests.servers import MinioServer, PostgresServer, free_port
from vault.tokens import hash_secret, parse_token


@contextmanager
def serving(env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [*KLUIS, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(
                    f"kluis serve exited: {proc.stdout.read() if proc.stdout else ''}"
                )
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=1):
                    break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    raise AssertionError("kluis serve did not answer /healthz in 60 s") from None
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=30)
        serving.last_output = output  # type: ignore[attr-defined]


def get_json(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.localdisk
@pytest.mark.sqlite
def test_init_then_serve_on_embedded_defaults(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = clean_env(KLUIS_DATA_DIR=str(data))
    first = run(env, "init")
    assert first.returncode == 0, first.stderr
    token = first.stdout.strip().splitlines()[-1]
    assert token.startswith("kl_")
    assert len(token) > 40
    # Only a hash of the token is stored.
    db = sqlite3.connect(data / "kluis.db")
    hashes = [row[0] for row in db.execute("SELECT token_hash FROM tokens")]
    db.close()
    token_id, secret = parse_token(token) or ("", "")
    assert hashes == [hash_secret(secret)]
    assert token_id
    assert token.encode() not in (data / "kluis.db").read_bytes()
    for private in (data / "kluis.db", data / "keyring.json"):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600

    second = run(env, "init")
    assert second.returncode == 0
    assert "nothing changed" in second.stdout
    assert token not in second.stdout

    # The access log (off by default: a line per answer costs on the hot path)
    # shows routes only, never a token in a path.
    with serving({**env, "KLUIS_SERVER_ACCESS_LOG": "true"}) as base:
        assert get_json(f"{base}/healthz") == (200, {"status": "ok"})
        status, body = get_json(f"{base}/readyz")
        assert status == 200, body
        status, _ = get_json(f"{base}/v1/items/kl_not_a_real_token_in_a_path")
        assert status == 401
    output = serving.last_output  # type: ignore[attr-defined]
    assert "GET /healthz 200" in output
    assert token not in output
    assert "kl_not_a_real_token_in_a_path" not in output  # the access log shows routes only


@pytest.mark.localdisk
@pytest.mark.sqlite
def test_the_first_admin_token_lives_as_long_as_the_configuration_says(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = clean_env(KLUIS_DATA_DIR=str(data), KLUIS_AUTH_TOKEN_TTL_DAYS="30")
    before = datetime.now(UTC)
    done = run(env, "init")
    assert done.returncode == 0, done.stderr
    db = sqlite3.connect(data / "kluis.db")
    (expires,) = db.execute("SELECT expires_at FROM tokens").fetchone()
    db.close()
    lives = datetime.fromisoformat(expires).replace(tzinfo=UTC) - before
    assert 29.9 < lives.total_seconds() / 86400 < 30.1, expires


@pytest.mark.minio
@pytest.mark.postgres
@pytest.mark.softhsm
def test_init_then_serve_on_minio_and_postgres(
    tmp_path: Path, minio_server: MinioServer, postgres_server: PostgresServer, softhsm: SoftHsm
) -> None:
    root = Path(__file__).resolve().parent.parent
    env = clean_env(
        **softhsm_store(softhsm).env,
        KLUIS_CONFIG=str(root / "config" / "kluis.scale.toml"),
        KLUIS_DATA_DIR=str(tmp_path / "data"),
        KLUIS_SERVER_HOST="127.0.0.1",
        KLUIS_DATABASE_URL=postgres_server.create_database(),
        KLUIS_STORAGE_S3_ENDPOINT=minio_server.endpoint,
        KLUIS_STORAGE_S3_BUCKET="kluis-cli-test",
        KLUIS_STORAGE_S3_ACCESS_KEY=minio_server.access_key,
        KLUIS_STORAGE_S3_SECRET_KEY=minio_server.secret_key,
    )
    first = run(env, "init")
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip().splitlines()[-1].startswith("kl_")
    assert "nothing changed" in run(env, "init").stdout
    with serving(env) as base:
        status, body = get_json(f"{base}/readyz")
        assert status == 200, body
    assert minio_server.secret_key not in serving.last_output  # type: ignore[attr-defined]


@pytest.mark.localdisk
def test_serve_refuses_an_uninitialised_vault(tmp_path: Path) -> None:
    result = run(clean_env(KLUIS_DATA_DIR=str(tmp_path / "empty")), "serve", "--port", "1")
    assert result.returncode == 2
    assert "kluis init" in result.stderr


def test_configuration_error_names_the_key(tmp_path: Path) -> None:
    result = run(clean_env(KLUIS_DATA_DIR=str(tmp_path), KLUIS_SERVER_PROT="1"), "init")
    assert result.returncode == 2
    assert "KLUIS_SERVER_PROT" in result.stderr
    assert not (tmp_path / "kluis.db").exists()


def test_serve_refuses_an_unknown_camera_time_zone(tmp_path: Path) -> None:
    env = clean_env(KLUIS_DATA_DIR=str(tmp_path), KLUIS_UPLOADS_CAMERA_TIME_ZONE="Europe/Amsterdm")
    result = run(env, "serve", "--port", "1")
    assert result.returncode == 2
    assert "uploads.camera_time_zone" in result.stderr
    assert "Europe/Amsterdm" in result.stderr
    assert "IANA" in result.stderr


def test_config_show_masks_secrets(tmp_path: Path) -> None:
    result = run(
        clean_env(KLUIS_KEYRING_PASSPHRASE="hunter2-passphrase", KLUIS_DATA_DIR=str(tmp_path)),
        "config",
        "show",
    )
    assert result.returncode == 0
    shown = json.loads(result.stdout)
    assert shown["keyring"]["passphrase"] == "Secret('********')"
    assert "hunter2" not in result.stdout


@pytest.mark.slow  # runs the kluis command many times
@pytest.mark.localdisk
@pytest.mark.sqlite
def test_keys_rotate_and_status(tmp_path: Path) -> None:
    import asyncio

    from vault.audit.log import AuditLog
    from vault.config import load_settings
    from vault.db import create_engine
    from vault.keys import open_provider
    from vault.keys.provider import audit_sign
    from vault.keys.service import KeyService

    env = clean_env(KLUIS_DATA_DIR=str(tmp_path / "data"))
    assert run(env, "init").returncode == 0

    async def make_child_keys() -> dict[str, int]:
        """25 children's keys; the keys per epoch then (init made the admin's own key,
        issue 18 item 4, in the live epoch of the real clock)."""
        settings = load_settings(env)
        engine = create_engine(settings.database_url)
        november = datetime(2026, 11, 20, tzinfo=UTC)
        provider = await open_provider(settings)
        audit = AuditLog(engine, audit_sign(provider), lambda: november)
        keys = KeyService(engine, provider, audit, clock=lambda: november)
        for i in range(25):
            await keys.create_item_key(f"item-{i}", [(f"child-{i}", "photo")])
        usage = await keys.epoch_usage()
        await engine.dispose()
        await provider.close()
        return usage

    usage = asyncio.run(make_child_keys())
    assert usage["live-2026-11"] >= 25
    moved = sum(n for epoch, n in usage.items() if epoch.startswith("live-2026-11"))
    total = sum(usage.values())
    december = run(env, "keys", "rotate", "--now", "2026-12-02T08:00:00Z")
    assert december.returncode == 0, december.stderr
    assert "live epoch: live-2026-12" in december.stdout
    assert f"child keys rewrapped: {moved}" in december.stdout
    assert "epochs destroyed: none" in december.stdout
    assert f"{moved}/{moved}" in december.stderr  # the progress bar
    status = run(env, "keys", "status", "--now", "2026-12-02T08:00:00Z")
    lines = {line.split()[0]: line for line in status.stdout.splitlines()[1:]}
    assert "retired" in lines["live-2026-11"]
    assert f" {total} " in lines["live-2026-12"]

    later = run(env, "keys", "rotate", "--now", "2027-01-06T00:00:00Z")
    assert "epochs destroyed: live-2026-11" in later.stdout
    status = run(env, "keys", "status", "--now", "2027-01-06T00:00:00Z")
    destroyed = next(line for line in status.stdout.splitlines() if "live-2026-11" in line)
    assert "destroyed" in destroyed
    # When copies of its child keys in backups taken before stop opening:
    # destroyed on 6 January, keyring backups kept at most 35 days.
    assert destroyed.rstrip().endswith("2027-02-10 00:00")
    current = next(line for line in status.stdout.splitlines() if "live-2027-01" in line)
    assert current.rstrip().endswith("2027-04-12 00:00")  # 1 Feb + 35 days + 35 days
    assert "keyring backups are kept at most 35 days" in status.stdout
    bad = run(env, "keys", "rotate", "--now", "next tuesday")
    assert bad.returncode == 2
    assert "ISO 8601" in bad.stderr


@pytest.mark.localdisk
@pytest.mark.sqlite
def test_token_create(tmp_path: Path) -> None:
    env = clean_env(KLUIS_DATA_DIR=str(tmp_path / "data"))
    assert run(env, "init").returncode == 0
    db = sqlite3.connect(tmp_path / "data" / "kluis.db")
    [(admin_id,)] = db.execute("SELECT id FROM people").fetchall()
    db.close()
    made = run(env, "token", "create", admin_id)
    assert made.returncode == 0, made.stderr
    assert parse_token(made.stdout.strip().splitlines()[-1]) is not None
    missing = run(env, "token", "create", "nobody")
    assert missing.returncode == 1
    assert "no person" in missing.stderr


@pytest.mark.localdisk
@pytest.mark.sqlite
def test_storage_sweep(tmp_path: Path) -> None:
    env = clean_env(KLUIS_DATA_DIR=str(tmp_path / "data"))
    assert run(env, "init").returncode == 0
    orphan = tmp_path / "data" / "blobs" / "aa" / "bb" / ("aabb" + "0" * 20 + "00000001")
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"left over from a crash in 1970")
    swept = run(env, "storage", "sweep")
    assert swept.returncode == 0, swept.stderr
    assert "orphans removed: 1" in swept.stdout
    assert not orphan.exists()


@pytest.mark.slow  # runs the kluis command many times
@pytest.mark.localdisk
@pytest.mark.sqlite
def test_keys_rotate_signing(tmp_path: Path) -> None:
    env = clean_env(KLUIS_DATA_DIR=str(tmp_path / "data"))
    assert run(env, "init").returncode == 0
    outputs = [run(env, "keys", "rotate-signing").stdout for _ in range(3)]
    assert "the 2 newest verify" in outputs[0]  # kluis init made the first
    assert "the 3 newest verify" in outputs[2]
    assert "no restart needed" in outputs[2]
    # Kept in the database, sealed; the keyring file holds no signing secret.
    with sqlite3.connect(tmp_path / "data" / "kluis.db") as db:
        assert db.execute("SELECT count(*) FROM signing_secrets").fetchone() == (3,)
    ring = json.loads((tmp_path / "data" / "keyring.json").read_text())
    assert set(ring["body"]) == {"generation", "keys", "macs"}


@pytest.mark.localdisk
@pytest.mark.sqlite
def test_retention_run_from_the_command_line(tmp_path: Path) -> None:
    env = clean_env(KLUIS_DATA_DIR=str(tmp_path / "data"))
    assert run(env, "init").returncode == 0
    dry = run(env, "retention", "run", "--dry-run", "--now", "2030-01-01T00:00:00Z")
    assert dry.returncode == 0, dry.stderr
    assert "children archived (past their window): 0" in dry.stdout
    assert "epochs destroyed: none" in dry.stdout
    real = run(env, "retention", "run")
    assert real.returncode == 0, real.stderr


@pytest.mark.localdisk
@pytest.mark.sqlite
def test_a_damaged_or_locked_keyring_stops_commands_and_is_left_alone(tmp_path: Path) -> None:
    import fcntl

    data = tmp_path / "data"
    env = clean_env(KLUIS_DATA_DIR=str(data), KLUIS_KEYRING_LOCK_TIMEOUT_SECONDS="1")
    assert run(env, "init").returncode == 0
    ring = data / "keyring.json"
    good = ring.read_bytes()
    holder = os.open(data / "keyring.json.lock", os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        started = time.monotonic()
        locked = run(env, "keys", "rotate", "--now", "2027-02-01T00:00:00Z")
        assert time.monotonic() - started < 30
    finally:
        os.close(holder)
    assert locked.returncode == 1
    assert "could not be taken within 1 s" in locked.stderr
    assert ring.read_bytes() == good
    ring.write_text('{"format": "kluis-keyring", "version": 2, "body": ')
    for args in (("serve", "--port", str(free_port())), ("keys", "status"), ("init",)):
        result = run(env, *args)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert "is not valid JSON" in result.stderr
        assert "Traceback" not in result.stderr
    assert ring.read_text() == '{"format": "kluis-keyring", "version": 2, "body": '


@pytest.mark.localdisk
@pytest.mark.sqlite
def test_several_inits_at_once_all_succeed_and_one_creates(tmp_path: Path) -> None:
    env = clean_env(KLUIS_DATA_DIR=str(tmp_path / "data"))
    procs = [
        subprocess.Popen(
            [*KLUIS, "init"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    results = [(proc.wait(timeout=180), *proc.communicate()) for proc in procs]
    assert [status for status, _, _ in results] == [0, 0, 0, 0], results
    tokens = [out for _, out, _ in results if "shown only this once" in out]
    assert len(tokens) == 1  # one admin account, one creator
    with sqlite3.connect(tmp_path / "data" / "kluis.db") as db:
        assert db.execute("SELECT count(*) FROM signing_secrets").fetchone() == (1,)
        assert db.execute("SELECT count(*) FROM people").fetchone() == (1,)
