"""Configuration: defaults, TOML, environment overrides, loud failures."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from vault.config import Secret, Settings, load_settings
from vault.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_embedded_defaults() -> None:
    settings = load_settings({})
    assert settings == Settings()
    assert settings.storage.backend == "local"
    assert settings.database_url.startswith("sqlite+aiosqlite:///")
    assert settings.database_url.endswith("/data/kluis.db")
    assert settings.keyring_path == Path("data/keyring.json")
    assert (settings.server.host, settings.server.port) == ("127.0.0.1", 8080)


def test_toml_then_environment(tmp_path: Path) -> None:
    config = tmp_path / "k.toml"
    config.write_text(
        'data_dir = "/srv/kluis"\n[server]\nport = 9000\n[storage]\nbackend = "s3"\n'
        's3_access_key = "ak"\ns3_secret_key = "sk"\n'
    )
    settings = load_settings(
        {
            "KLUIS_CONFIG": str(config),
            "KLUIS_SERVER_PORT": "9100",
            "KLUIS_STORAGE_S3_SECURE": "true",
        }
    )
    assert settings.data_dir == Path("/srv/kluis")
    assert settings.server.port == 9100
    assert settings.storage.backend == "s3"
    assert settings.storage.s3_secure is True
    assert settings.storage.s3_secret_key.reveal() == "sk"


@pytest.mark.parametrize(
    ("text", "env", "named"),
    [
        ("[server]\nprot = 1\n", {}, "server.prot"),
        ("[srever]\nport = 1\n", {}, "srever"),
        ("", {"KLUIS_SERVER_PORT": "eighty"}, "server.port"),
        ("", {"KLUIS_STORAGE_BACKEND": "ftp"}, "storage.backend"),
        ("", {"KLUIS_STORAGE_S3_SECURE": "maybe"}, "storage.s3_secure"),
        ("", {"KLUIS_SERVR_PORT": "1"}, "KLUIS_SERVR_PORT"),
        ("", {"KLUIS_CRYPTO_SEGMENT_SIZE": "10"}, "crypto.segment_size"),
        ("", {"KLUIS_SERVER_PORT": "70000"}, "server.port"),
        ("", {"KLUIS_STORAGE_BACKEND": "s3"}, "s3_access_key"),
        ("", {"KLUIS_DATABASE_URL": "mysql://x"}, "database.url"),
        ("[server\n", {}, "not valid TOML"),
    ],
)
def test_bad_configuration_names_the_culprit(
    tmp_path: Path, text: str, env: dict[str, str], named: str
) -> None:
    config = tmp_path / "k.toml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_settings({"KLUIS_CONFIG": str(config), **env})


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings({"KLUIS_CONFIG": str(tmp_path / "absent.toml")})


def test_secrets_never_show() -> None:
    settings = load_settings(
        {
            "KLUIS_STORAGE_BACKEND": "s3",
            "KLUIS_STORAGE_S3_ACCESS_KEY": "AKIAEXAMPLE",
            "KLUIS_STORAGE_S3_SECRET_KEY": "very-secret-value",
            "KLUIS_KEYRING_PASSPHRASE": "correct horse",
            "KLUIS_DATABASE_URL": "postgresql+asyncpg://kluis:dbpassword@db/kluis",
        }
    )
    dumped = repr(settings) + str(settings.redacted())
    for secret in ("AKIAEXAMPLE", "very-secret-value", "correct horse", "dbpassword"):
        assert secret not in str(settings.redacted())
    for secret in ("very-secret-value", "correct horse", "AKIAEXAMPLE", "dbpassword"):
        assert secret not in dumped
    with pytest.raises(TypeError):
        pickle.dumps(Secret("x"))


@pytest.mark.parametrize("name", ["kluis.example.toml", "kluis.scale.toml"])
def test_example_configs_load(name: str) -> None:
    settings = load_settings(
        {
            "KLUIS_CONFIG": str(ROOT / "config" / name),
            "KLUIS_STORAGE_S3_ACCESS_KEY": "a",
            "KLUIS_STORAGE_S3_SECRET_KEY": "b",
        }
    )
    if name == "kluis.scale.toml":
        assert settings.storage.backend == "s3"
        assert settings.database_url.startswith("postgresql+asyncpg://")
    else:
        assert settings.storage.backend == "local"


def test_sign_in_and_mail_settings_from_toml_and_environment(tmp_path: Path) -> None:
    config = tmp_path / "k.toml"
    config.write_text(
        '[mail]\nsmtp_host = "smtp.example.org"\nsender = "Kluis <k@example.org>"\n'
        '[auth]\ntotp_required_roles = ["staff", "privacy_officer"]\n'
        '[links]\npublic_url = "https://kluis.example.org"\n'
        '[oidc]\nissuer = "https://login.example.org/tenant/v2.0"\nclient_id = "kluis"\n'
    )
    settings = load_settings(
        {
            "KLUIS_CONFIG": str(config),
            "KLUIS_MAIL_SMTP_PORT": "2525",
            "KLUIS_MAIL_STARTTLS": "always",
            "KLUIS_MAIL_USERNAME": "kluis",
            "KLUIS_MAIL_PASSWORD": "smtp-password",
            "KLUIS_AUTH_SESSION_HOURS_STAFF": "8",
            "KLUIS_AUTH_TOKEN_TTL_DAYS": "90",
            "KLUIS_OIDC_CLIENT_SECRET": "oidc-secret",
            "KLUIS_OIDC_SCOPES": "openid, email",
        }
    )
    assert settings.mail.smtp_host == "smtp.example.org"
    assert settings.mail.smtp_port == 2525
    assert settings.mail.starttls == "always"
    assert settings.mail.password.reveal() == "smtp-password"
    assert settings.auth.totp_required_roles == ("staff", "privacy_officer")
    assert settings.auth.session_hours_staff == 8
    assert settings.auth.session_hours_guardian == 720
    assert settings.auth.token_ttl_days == 90
    assert settings.oidc.scopes == ("openid", "email")
    assert settings.oidc.client_secret.reveal() == "oidc-secret"
    dumped = str(settings.redacted()) + repr(settings)
    assert "smtp-password" not in dumped
    assert "oidc-secret" not in dumped
    defaults = Settings()
    assert (defaults.mail.smtp_port, defaults.mail.starttls) == (587, "auto")
    assert defaults.auth.token_ttl_days == 365
    assert defaults.oidc.scopes == ("openid", "email", "profile")


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"KLUIS_AUTH_TOTP_REQUIRED_ROLES": "staff,teacher"}, "teacher"),
        ({"KLUIS_MAIL_STARTTLS": "sometimes"}, "mail.starttls"),
        ({"KLUIS_MAIL_SMTP_HOST": "smtp.example.org"}, "mail.sender"),
        ({"KLUIS_MAIL_STARTTLS": "never", "KLUIS_MAIL_USERNAME": "u"}, "in clear"),
        ({"KLUIS_OIDC_ISSUER": "https://idp.example.org"}, "oidc.client_id"),
        (
            {
                "KLUIS_OIDC_ISSUER": "https://idp.example.org",
                "KLUIS_OIDC_CLIENT_ID": "k",
                "KLUIS_OIDC_CLIENT_SECRET": "s",
            },
            "links.public_url",
        ),
        (
            {
                "KLUIS_OIDC_ISSUER": "https://idp.example.org",
                "KLUIS_OIDC_CLIENT_ID": "k",
                "KLUIS_OIDC_CLIENT_SECRET": "s",
                "KLUIS_LINKS_PUBLIC_URL": "https://k.example.org",
                "KLUIS_OIDC_SCOPES": "email",
            },
            "openid",
        ),
    ],
)
def test_bad_sign_in_and_mail_settings_are_named(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_settings(env)
