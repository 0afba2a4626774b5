"""Backup, destruction, loss, restore: as an operator runs them, on both setups.

A vault with two children's records is backed up with ``kluis backup``;
then retention destroys one child (its epoch's master key goes); then the
data is lost (database and blob store emptied). ``kluis restore`` brings it
back: the other child's records come back byte-identical through links,
and the destroyed child's stay unreadable (410), reported as such. The
backup holds no key; ``kluis keys backup`` seals the key store with a
passphrase, and restoring it never brings a destroyed key back.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from minio import Minio
from sqlalchemy import text

from tests.helpers.keystores import SoftHsm, softhsm_store
from tests.helpers.organisation import document, organisation
from tests.helpers.processes import Client, Server, kluis, kluis_env
from tests.servers import MinioServer, PostgresServer
from vault.config import load_settings
from vault.db import create_engine
from vault.items import service as items_service
from vault.wiring import open_vault

#: After the doomed child's term (end 2026-11-30, 12 months, 7 days' grace):
#: its shred epoch, shred-2027-12, is over and destroyed.
AFTER_TERM = "2028-01-10T03:00:00Z"
PASSPHRASE = "correct horse battery staple"


def files_under(root: Path) -> Iterator[Path]:
    return (path for path in root.rglob("*") if path.is_file())


async def populated(env: dict[str, str], tmp_path: Path) -> tuple[dict[str, bytes], list[str]]:
    """Two children with records; the first's contract ended. (kept item -> bytes, doomed items)"""
    status, out, err = await kluis(env, "init")
    assert status == 0, err
    server = await Server(env, tmp_path / "before.log").start()
    kept: dict[str, bytes] = {}
    doomed: list[str] = []
    try:
        async with aiohttp.ClientSession() as session:
            admin = Client(session, server.base, out.strip().splitlines()[-1])
            staff, _guardian, children = await organisation(admin)
            for n, child in enumerate(children[:2]):
                for k in range(3):
                    sent = document(f"{child}-{k}") + os.urandom(100_000 * (k + 1))
                    status, item = await staff.upload(
                        child, {"kind": "observation"}, sent, f"o{n}{k}.pdf"
                    )
                    assert status == 201, item
                    if n == 0:
                        doomed.append(item["id"])
                    else:
                        kept[item["id"]] = sent
            await admin.ok(
                "PUT",
                f"/v1/children/{children[0]}/placement",
                {"start_date": "2024-01-01", "end_date": "2026-11-30"},
            )
    finally:
        await server.stop()
    assert server.server_errors() == []
    return kept, doomed


async def check_restored(
    env: dict[str, str], tmp_path: Path, kept: dict[str, bytes], doomed: list[str]
) -> None:
    server = await Server(env, tmp_path / f"after-{len(doomed)}.log").start()
    try:
        async with aiohttp.ClientSession() as session:
            # The guardian's token is in the restored database, as everything else.
            token = (tmp_path / "guardian-token").read_text()
            guardian = Client(session, server.base, token)
            for item, sent in kept.items():
                link = await guardian.ok("POST", f"/v1/items/{item}/links", {})
                status, body = await guardian.fetch(link["url"], server.base)
                assert status == 200
                assert body == sent, "a restored record differs from what was uploaded"
            for item in doomed:
                status, answer = await guardian.call("POST", f"/v1/items/{item}/links", {})
                assert status == 410, (status, answer)
    finally:
        await server.stop()
    assert server.server_errors() == []
    status, out, err = await kluis(env, "audit", "verify")
    assert status == 0, out + err


async def backup_destroy_restore(
    env: dict[str, str], tmp_path: Path, lose: object, keyring: Path | None
) -> tuple[dict[str, bytes], list[str]]:
    kept, doomed = await populated_with_guardian(env, tmp_path)
    dest = tmp_path / "backup-1"
    status, out, err = await kluis(env, "backup", str(dest))
    assert status == 0, err
    assert f"objects: {len(kept) + len(doomed)}" in out
    assert stat.S_IMODE(dest.stat().st_mode) == 0o700
    # Never the keys: no keyring file, and none of its keys' bytes anywhere.
    assert not [p for p in files_under(dest) if "keyring" in p.name]
    if keyring is not None:
        secrets = _key_material(keyring)
        for path in files_under(dest):
            blob = path.read_bytes()
            assert not any(s in blob for s in secrets), path

    status, out, err = await kluis(env, "retention", "run", "--now", AFTER_TERM)
    assert status == 0, err
    assert "shred-2027-12" in out

    await lose()  # type: ignore[operator]

    # Older than the backup window: refused unless forced, and nothing changed.
    stale = tmp_path / "backup-stale"
    shutil.copytree(dest, stale)
    manifest = json.loads((stale / "manifest.json").read_text())
    manifest["taken_at"] = (datetime.now(UTC) - timedelta(days=40)).isoformat()
    (stale / "manifest.json").write_text(json.dumps(manifest))
    status, out, err = await kluis(env, "restore", str(stale))
    assert status == 1
    assert "crypto.backup_window_days" in err
    assert "--force" in err

    status, out, err = await kluis(env, "restore", str(dest))
    assert status == 0, out + err
    unreadable = f"after the backup was taken: {len(doomed)} records of 1 children"
    assert unreadable in out, out
    # The database was lost with the blobs: nothing to repeat from it, and it says so.
    assert "could not be read" in out
    await check_restored(env, tmp_path, kept, doomed)
    return kept, doomed


async def populated_with_guardian(
    env: dict[str, str], tmp_path: Path
) -> tuple[dict[str, bytes], list[str]]:
    """As :func:`populated`, keeping a guardian's token for after the restore."""
    kept, doomed = await populated(env, tmp_path)
    engine = create_engine(_url(env))
    try:
        async with engine.connect() as conn:
            person = await conn.scalar(
                text("SELECT id FROM people WHERE role = 'guardian' ORDER BY id LIMIT 1")
            )
    finally:
        await engine.dispose()
    status, out, err = await kluis(env, "token", "create", str(person))
    assert status == 0, err
    (tmp_path / "guardian-token").write_text(out.strip().splitlines()[-1])
    return kept, doomed


def _url(env: dict[str, str]) -> str:
    return env.get("KLUIS_DATABASE_URL") or f"sqlite+aiosqlite:///{env['KLUIS_DATA_DIR']}/kluis.db"


def _key_material(keyring: Path) -> list[bytes]:
    body = json.loads(keyring.read_text())["body"]
    found = [base64.b64decode(v["key"]) for v in body["keys"].values() if v["key"]]
    found += [base64.b64decode(v) for v in body["macs"].values()]
    return found


@pytest.mark.slow
@pytest.mark.sqlite
@pytest.mark.localdisk
@pytest.mark.localkeyring
async def test_backup_destroy_restore_on_sqlite(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = kluis_env(KLUIS_DATA_DIR=str(data))

    async def lose() -> None:
        for path in data.glob("kluis.db*"):
            path.unlink()
        shutil.rmtree(data / "blobs")

    kept, doomed = await backup_destroy_restore(env, tmp_path, lose, data / "keyring.json")

    # Over a database that is still there: what it had erased since the
    # backup (a record deleted on request) is erased again.
    erased = sorted(kept)[0]
    settings = load_settings(env)
    async with open_vault(settings) as vault:
        await items_service.destroy(
            vault.engine, vault.blobs, vault.keys, erased, datetime.now(UTC)
        )
    status, out, err = await kluis(env, "restore", str(tmp_path / "backup-1"))
    assert status == 0, out + err
    assert "erased again: 1 records" in out, out
    del kept[erased]
    await check_restored(env, tmp_path, kept, [*doomed, erased])


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.minio
@pytest.mark.localkeyring
async def test_backup_destroy_restore_on_postgres_and_minio(
    tmp_path: Path, minio_server: MinioServer, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    bucket = "kluis-backup-test"
    env = kluis_env(
        KLUIS_DATA_DIR=str(tmp_path / "data"),
        KLUIS_DATABASE_URL=url,
        KLUIS_STORAGE_BACKEND="s3",
        KLUIS_STORAGE_S3_ENDPOINT=minio_server.endpoint,
        KLUIS_STORAGE_S3_BUCKET=bucket,
        KLUIS_STORAGE_S3_ACCESS_KEY=minio_server.access_key,
        KLUIS_STORAGE_S3_SECRET_KEY=minio_server.secret_key,
        KLUIS_STORAGE_S3_PART_SIZE_MB="5",
    )
    client = Minio(
        minio_server.endpoint,
        access_key=minio_server.access_key,
        secret_key=minio_server.secret_key,
        secure=False,
    )

    async def lose() -> None:
        engine = create_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.execute(text("DROP SCHEMA public CASCADE"))
                await conn.execute(text("CREATE SCHEMA public"))
        finally:
            await engine.dispose()
        names = [o.object_name for o in client.list_objects(bucket, recursive=True)]
        assert names
        for name in names:
            client.remove_object(bucket, name)

    await backup_destroy_restore(env, tmp_path, lose, tmp_path / "data" / "keyring.json")


@pytest.mark.sqlite
@pytest.mark.localdisk
@pytest.mark.localkeyring
async def test_a_key_backup_is_sealed_and_never_brings_a_destroyed_key_back(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    env = kluis_env(KLUIS_DATA_DIR=str(data))
    status, out, err = await kluis(env, "init")
    assert status == 0, err
    status, out, err = await kluis(env, "keys", "backup", "--help")
    assert "WARNING" in out
    assert "backup_window_days" in out
    secret = tmp_path / "passphrase"
    secret.write_text(PASSPHRASE + "\n")
    sealed = tmp_path / "keys.backup"
    status, out, err = await kluis(
        env, "keys", "backup", str(sealed), "--passphrase-file", str(secret)
    )
    assert status == 0, err
    assert stat.S_IMODE(sealed.stat().st_mode) == 0o600
    raw = sealed.read_bytes()
    for material in _key_material(data / "keyring.json"):
        assert base64.b64encode(material) not in raw
        assert material not in raw
    assert b"live-" not in raw  # even the epochs' names are sealed

    # A wrong passphrase opens nothing.
    wrong = tmp_path / "wrong"
    wrong.write_text("not the passphrase at all\n")
    status, _, err = await kluis(
        env, "keys", "restore", str(sealed), "--passphrase-file", str(wrong)
    )
    assert status == 1
    assert "passphrase" in err

    # A master key destroyed after the key backup stays destroyed when it is restored.
    status, out, err = await kluis(env, "keys", "status")
    live = next(line.split()[0] for line in out.splitlines() if line.startswith("live-"))
    await _destroy_key(data / "keyring.json", live)
    status, out, err = await kluis(
        env, "keys", "restore", str(sealed), "--passphrase-file", str(secret)
    )
    assert status == 0, err
    assert "keys brought back: none" in out
    assert json.loads((data / "keyring.json").read_text())["body"]["keys"][live]["key"] is None

    # A lost keyring comes back from it.
    (data / "keyring.json").unlink()
    status, out, err = await kluis(
        env, "keys", "restore", str(sealed), "--passphrase-file", str(secret)
    )
    assert status == 0, err
    assert "signing" in out


async def _destroy_key(keyring: Path, name: str) -> None:
    from vault.keys.local import LocalKeyring

    ring = await LocalKeyring.open(keyring)
    assert await ring.destroy_key(name, datetime.now(UTC))


@pytest.mark.softhsm
async def test_a_key_store_on_a_token_cannot_be_exported(tmp_path: Path, softhsm: SoftHsm) -> None:
    env = kluis_env(KLUIS_DATA_DIR=str(tmp_path / "data"), **softhsm_store(softhsm).env)
    status, _out, err = await kluis(
        env, "keys", "backup", str(tmp_path / "k"), "--passphrase-file", "/nonexistent"
    )
    assert status == 1
    assert "PKCS#11" in err
    assert "cannot be exported" in err
    assert not (tmp_path / "k").exists()
