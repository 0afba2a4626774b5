"""docker-compose.yml runs what it claims (checked without a Docker engine).

The file is loaded by compose-go, the loader of Docker Compose v2
(scripts/compose-config: schema, interpolation, merges, consistency), as
`docker compose config` would; then what it sets up is checked: pinned images
with health checks that work in those images, two Kluis replicas reachable
only through Caddy with TLS, Kluis believing forwarding headers from Caddy's
address alone, Kluis never given MinIO's root credentials, the admin token in
a file rather than the log, and the settings Kluis builds from it. The MinIO
policy the init container installs is applied to a real MinIO server and
shown to be enough for Kluis and no more.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from minio import Minio
from minio.credentials.providers import StaticProvider
from minio.error import S3Error
from minio.minioadmin import MinioAdmin

from tests.servers import REQUIRE_SERVERS, MinioServer
from vault.config import Secret, StorageSettings, load_settings
from vault.storage import S3Store, check_settings

ROOT = Path(__file__).resolve().parent.parent
SECRETS = {
    "KLUIS_DB_PASSWORD": secrets.token_hex(12),
    "MINIO_ROOT_USER": "minio-admin",
    "MINIO_ROOT_PASSWORD": secrets.token_hex(12),
    "KLUIS_S3_SECRET": secrets.token_hex(12),
}


def checker() -> str:
    path = os.environ.get("VAULT_TEST_COMPOSE_CONFIG")
    if not path:
        script = ROOT / "scripts" / "ensure-compose-config"
        path = subprocess.run(
            [script, "--path"], capture_output=True, text=True, check=True
        ).stdout.strip()
    if not os.access(path, os.X_OK):
        message = f"no compose-config at {path}; run scripts/ensure-compose-config"
        if REQUIRE_SERVERS:
            pytest.fail(message)
        pytest.skip(message)
    return path


def compose_config(
    compose: Path, env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KLUIS_", "MINIO_"))}
    return subprocess.run(
        [checker(), str(compose)],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd or compose.parent,
    )


@pytest.fixture(scope="module")
def project() -> dict[str, Any]:
    result = compose_config(ROOT / "docker-compose.yml", SECRETS)
    assert result.returncode == 0, result.stderr
    loaded: dict[str, Any] = json.loads(result.stdout)
    return loaded


def test_it_does_not_load_without_its_secrets() -> None:
    result = compose_config(ROOT / "docker-compose.yml", {})
    assert result.returncode == 1
    for name in SECRETS:
        assert f"set {name} in .env" in result.stderr


def test_a_broken_compose_file_is_refused(tmp_path: Path) -> None:
    """The checker checks: a misspelt key, a service that is not there."""
    text = (ROOT / "docker-compose.yml").read_text()
    shutil.copy(ROOT / "Caddyfile", tmp_path / "Caddyfile")
    for broken in (
        text.replace('    command: ["server", "/data"]', '    comand: ["server", "/data"]', 1),
        text.replace(
            "      kluis-init:\n        condition:", "      kluis-setup:\n        condition:", 1
        ),
    ):
        assert broken != text
        (tmp_path / "docker-compose.yml").write_text(broken)
        assert compose_config(tmp_path / "docker-compose.yml", SECRETS).returncode == 1


def test_images_are_pinned_and_health_checks_fit_them(project: dict[str, Any]) -> None:
    services = project["services"]
    for name, service in services.items():
        image = service["image"]
        if name.startswith("kluis"):
            assert image == "kluis:local"
            assert service["build"]["context"] == str(ROOT)
            continue
        _repository, _, tag = image.partition(":")
        assert tag not in ("", "latest"), image
        assert re.search(r"\d", tag), image
    assert services["minio"]["image"].startswith("minio/minio:RELEASE.")
    assert services["db"]["image"].startswith("postgres:15.")
    # The MinIO image has no curl; it ships mc.
    assert services["minio"]["healthcheck"]["test"] == ["CMD", "mc", "ready", "local"]
    assert services["db"]["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    # The Kluis image has Python, not curl; Caddy's (Alpine) has busybox wget.
    for name in ("kluis-1", "kluis-2"):
        test = services[name]["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "-c"]
        assert "/readyz" in test[3]
    assert services["caddy"]["healthcheck"]["test"][:2] == ["CMD", "wget"]
    # The Dockerfile's base is pinned too, and brings pg_dump of the server's major version.
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11\.\d+-slim-bookworm$", dockerfile, re.M)
    assert "postgresql-client-15" in dockerfile


def test_two_replicas_only_behind_caddy_with_tls(project: dict[str, Any]) -> None:
    services = project["services"]
    replicas = [
        n for n, s in services.items() if (s.get("command") or [])[:2] == ["kluis", "serve"]
    ]
    assert sorted(replicas) == ["kluis-1", "kluis-2"]
    published = {n for n, s in services.items() if s.get("ports")}
    assert published == {"caddy"}
    caddyfile = (ROOT / "Caddyfile").read_text()
    assert re.search(r"^\s*reverse_proxy kluis-1:8080 kluis-2:8080 \{", caddyfile, re.M)
    assert re.search(r"^\s*tls internal$", caddyfile, re.M)
    assert not re.search(r"^\s*log\b", caddyfile, re.M)  # link paths carry tokens
    mount = next(v for v in services["caddy"]["volumes"] if v["target"] == "/etc/caddy/Caddyfile")
    assert mount["source"] == str(ROOT / "Caddyfile")
    for name in replicas:
        env = services[name]["environment"]
        assert env["KLUIS_LINKS_PUBLIC_URL"] == "https://localhost"
        assert services[name]["stop_grace_period"] in ("75s", "1m15s")
        assert "--shutdown-timeout" in services[name]["command"]
        assert services[name]["init"] is True


def test_only_caddys_address_is_a_trusted_proxy(project: dict[str, Any]) -> None:
    services = project["services"]
    caddy = services["caddy"]["networks"]["backend"]["ipv4_address"]
    subnet = project["networks"]["backend"]["ipam"]["config"][0]["subnet"]
    assert ipaddress.ip_address(caddy) in ipaddress.ip_network(subnet)
    for name in ("kluis-1", "kluis-2", "kluis-init"):
        assert services[name]["environment"]["KLUIS_SERVER_TRUSTED_PROXIES"] == caddy


def test_kluis_never_gets_the_minio_root_credentials(project: dict[str, Any]) -> None:
    services = project["services"]
    for name in ("kluis-init", "kluis-1", "kluis-2"):
        env = services[name]["environment"]
        assert SECRETS["MINIO_ROOT_PASSWORD"] not in json.dumps(env)
        assert env["KLUIS_STORAGE_S3_SECRET_KEY"] == SECRETS["KLUIS_S3_SECRET"]
    init = services["minio-init"]
    assert init["image"].startswith("minio/mc:RELEASE.")
    script = init["command"][0]
    assert "mc mb --ignore-existing root/kluis" in script
    assert "mc admin user add root kluis" in script


def test_the_admin_token_goes_to_a_file_on_its_own_volume(project: dict[str, Any]) -> None:
    services = project["services"]
    command = services["kluis-init"]["command"]
    assert command[:2] == ["kluis", "init"]
    token = command[command.index("--token-file") + 1]
    holders = [
        name
        for name, service in services.items()
        for volume in service.get("volumes", [])
        if volume["source"] == "kluis-admin"
    ]
    assert holders == ["kluis-init"]
    mount = next(v for v in services["kluis-init"]["volumes"] if v["source"] == "kluis-admin")
    assert token.startswith(mount["target"] + "/")
    for name in ("kluis-1", "kluis-2"):
        assert services[name]["depends_on"]["kluis-init"]["condition"] == (
            "service_completed_successfully"
        )


def test_kluis_settings_as_the_replicas_build_them(project: dict[str, Any]) -> None:
    env = dict(project["services"]["kluis-1"]["environment"])
    assert env["KLUIS_CONFIG"] == "/opt/kluis/config/kluis.compose.toml"
    env["KLUIS_CONFIG"] = str(ROOT / "config" / "kluis.compose.toml")
    settings = load_settings(env)
    check_settings(settings)
    assert settings.server.trusted_proxies == ("172.30.0.10",)
    assert settings.links.public_url == "https://localhost"
    assert settings.database_url.startswith("postgresql+asyncpg://kluis:")
    assert settings.database_url.endswith("@db:5432/kluis")
    assert settings.storage.backend == "s3"
    assert settings.storage.s3_create_bucket is False  # the user may not create buckets
    assert settings.storage.s3_access_key.reveal() == "kluis"
    # The keyring lives on the volume the replicas share.
    keys = next(v for v in project["services"]["kluis-1"]["volumes"] if v["source"] == "kluis-keys")
    assert settings.keyring.backend == "local"
    assert str(settings.keyring_path).startswith(keys["target"] + "/")


@pytest.mark.minio
async def test_the_minio_policy_is_enough_for_kluis_and_no_more(
    project: dict[str, Any], minio_server: MinioServer, tmp_path: Path
) -> None:
    policy = json.loads(project["configs"]["kluis-s3-policy"]["content"])
    root = Minio(
        minio_server.endpoint,
        access_key=minio_server.access_key,
        secret_key=minio_server.secret_key,
        secure=False,
    )
    for bucket in ("kluis", "not-kluis"):
        if not root.bucket_exists(bucket):
            root.make_bucket(bucket)
    admin = MinioAdmin(
        endpoint=minio_server.endpoint,
        credentials=StaticProvider(minio_server.access_key, minio_server.secret_key),
        secure=False,
    )
    secret = secrets.token_hex(12)
    admin.policy_add("kluis-bucket", policy=policy)
    admin.user_add("kluis", secret)
    admin.attach_policy(["kluis-bucket"], user="kluis")

    as_kluis = StorageSettings(
        backend="s3",
        s3_endpoint=minio_server.endpoint,
        s3_bucket="kluis",
        s3_access_key=Secret("kluis"),
        s3_secret_key=Secret(secret),
        s3_create_bucket=False,
        s3_part_size_mb=5,
        timeout_seconds=5.0,
    )
    store = await S3Store.open(as_kluis)
    try:
        key = "policy" + secrets.token_hex(8)

        async def body() -> Any:
            yield os.urandom(6 * 1024 * 1024)  # more than a part: a multipart upload

        assert await store.put(key, body()) == 6 * 1024 * 1024
        assert len(b"".join([c async for c in store.get(key, 0, 10)])) == 10
        assert key in [k async for k in store.list("policy")]
        await store.check()
        await store.delete(key)
        assert not await store.exists(key)
    finally:
        await store.close()

    user = Minio(minio_server.endpoint, access_key="kluis", secret_key=secret, secure=False)
    with pytest.raises(S3Error, match="AccessDenied"):
        user.make_bucket("kluis-another")
    with pytest.raises(S3Error, match="AccessDenied"):
        list(user.list_objects("not-kluis"))
    with pytest.raises(S3Error, match="AccessDenied"):
        user.put_object("not-kluis", "x", __import__("io").BytesIO(b"x"), 1)
    with pytest.raises(S3Error, match="AccessDenied"):
        user.remove_bucket("kluis")
