"""Configuration: defaults, TOML, environment overrides, loud failures."""

from __future__ import annotations

import pickle
import re
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
    assert settings.uploads.camera_time_zone == "Europe/Amsterdam"


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
        ("", {"KLUIS_SERVER_PROT": "1"}, "KLUIS_SERVER_PROT"),
        ("", {"KLUIS_SERVER_TRUSTED_PROXIES": "10.0.0.0/8,proxy"}, "server.trusted_proxies"),
        ("[server]\ntrusted_proxies = [1]\n", {}, "server.trusted_proxies"),
        ("", {"KLUIS_SERVER_PROXY_HEADERS": "x-real-ip"}, "server.proxy_headers"),
        ("", {"KLUIS_DATABASE_URL": "postgresql+asyncpg://kluis:pw@db:5432"}, "database.url"),
        ("", {"KLUIS_DATABASE_URL": "postgresql+asyncpg://kluis:pw@db:5432/"}, "database.url"),
        ("", {"KLUIS_DATABASE_URL": "postgresql+asyncpg:///kluis"}, "database.url"),
        ("", {"KLUIS_DATABASE_URL": "sqlite+aiosqlite://"}, "database.url"),
        ("", {"KLUIS_CRYPTO_SEGMENT_SIZE": "10"}, "crypto.segment_size"),
        ("", {"KLUIS_SERVER_PORT": "70000"}, "server.port"),
        ("", {"KLUIS_STORAGE_BACKEND": "s3"}, "s3_access_key"),
        ("", {"KLUIS_DATABASE_URL": "mysql://x"}, "database.url"),
        ("", {"KLUIS_UPLOADS_CAMERA_TIME_ZONE": "Europe/Amsterdamm"}, "uploads.camera_time_zone"),
        ("", {"KLUIS_UPLOADS_CAMERA_TIME_ZONE": "+01:00"}, "uploads.camera_time_zone"),
        ("", {"KLUIS_UPLOADS_CAMERA_TIME_ZONE": "../../etc/passwd"}, "uploads.camera_time_zone"),
        ('[uploads]\ncamera_time_zone = ""\n', {}, "uploads.camera_time_zone"),
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


@pytest.mark.parametrize("name", ["kluis.example.toml", "kluis.scale.toml", "kluis.compose.toml"])
def test_example_configs_load(name: str) -> None:
    settings = load_settings(
        {
            "KLUIS_CONFIG": str(ROOT / "config" / name),
            "KLUIS_STORAGE_S3_ACCESS_KEY": "a",
            "KLUIS_STORAGE_S3_SECRET_KEY": "b",
        }
    )
    if name in ("kluis.scale.toml", "kluis.compose.toml"):
        assert settings.storage.backend == "s3"
        assert settings.database_url.startswith("postgresql+asyncpg://")
    else:
        assert settings.storage.backend == "local"


def test_a_list_setting_from_toml_and_from_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "k.toml"
    config.write_text('[server]\ntrusted_proxies = ["10.0.0.0/8", "::1"]\n')
    from_file = load_settings({"KLUIS_CONFIG": str(config)})
    assert from_file.server.trusted_proxies == ("10.0.0.0/8", "::1")
    # API.md: comma-separated in the environment, which wins over the file.
    from_env = load_settings(
        {
            "KLUIS_CONFIG": str(config),
            "KLUIS_SERVER_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1,,",
        }
    )
    assert from_env.server.trusted_proxies == ("10.0.0.0/8", "127.0.0.1")
    assert load_settings({"KLUIS_SERVER_TRUSTED_PROXIES": ""}).server.trusted_proxies == ()
    assert load_settings({}).server.trusted_proxies == ()


#: (variable, what happens): "ignored" (a warning names it, the start goes on),
#: "setting" (it configures Kluis), or the setting an error names.
FOREIGN = [
    # Kubernetes, for a Service named "kluis" in the namespace.
    ("KLUIS_SERVICE_HOST", "ignored"),
    ("KLUIS_SERVICE_PORT", "ignored"),
    ("KLUIS_SERVICE_PORT_HTTP", "ignored"),
    ("KLUIS_PORT", "ignored"),
    ("KLUIS_PORT_8080_TCP", "ignored"),
    ("KLUIS_PORT_8080_TCP_ADDR", "ignored"),
    ("KLUIS_PORT_8080_TCP_PORT", "ignored"),
    ("KLUIS_PORT_8080_TCP_PROTO", "ignored"),
    # A compose .env handed to the container.
    ("KLUIS_DB_PASSWORD", "ignored"),
    ("KLUIS_IMAGE_TAG", "ignored"),
    # A section's name alone, or a misspelt section: not Kluis's.
    ("KLUIS_SERVER", "ignored"),
    ("KLUIS_SERVR_PORT", "ignored"),
    # Kluis's own.
    ("KLUIS_SERVER_PORT", "setting"),
    ("KLUIS_DATA_DIR", "setting"),
    ("KLUIS_STORAGE_S3_BUCKET", "setting"),
    # A known section with an unknown key: a typo, which must not pass.
    ("KLUIS_SERVER_PROT", "server.prot"),
    ("KLUIS_STORAGE_S3_BUCKTE", "storage.s3_buckte"),
    ("KLUIS_DATABASE_PASSWORD", "database.password"),
]


@pytest.mark.parametrize(("variable", "outcome"), FOREIGN)
def test_foreign_variables_are_ignored_typos_in_a_section_stop_the_start(
    variable: str, outcome: str, caplog: pytest.LogCaptureFixture
) -> None:
    value = {"KLUIS_SERVER_PORT": "9001", "KLUIS_DATA_DIR": "/srv/k"}.get(variable, "tcp://x:1")
    env = {variable: value}
    if outcome not in ("ignored", "setting"):
        with pytest.raises(ConfigError, match=f"{outcome.replace('.', '[.]')}.*{variable}"):
            load_settings(env)
        return
    with caplog.at_level("WARNING", logger="vault.config"):
        settings = load_settings(env)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    if outcome == "ignored":
        assert settings == Settings()
        assert len(warnings) == 1
        assert variable in warnings[0]
        assert value not in warnings[0]  # names only, never a value
    else:
        assert settings != Settings()
        assert warnings == []


def test_many_foreign_variables_make_one_warning_line(caplog: pytest.LogCaptureFixture) -> None:
    env = {name: "x" for name, outcome in FOREIGN if outcome == "ignored"}
    with caplog.at_level("WARNING", logger="vault.config"):
        load_settings({**env, "KLUIS_SERVER_PORT": "9001"})
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "\n" not in warnings[0]
    assert all(name in warnings[0] for name in env)


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


def test_the_processor_register(tmp_path: Path) -> None:
    assert Settings().processors == ()
    example = load_settings({"KLUIS_CONFIG": str(ROOT / "config" / "kluis.example.toml")})
    assert len(example.processors) >= 3
    assert all(p.name and p.purpose and p.location for p in example.processors)
    config = tmp_path / "k.toml"
    config.write_text(
        '[[processors]]\nname = "Hosting"\npurpose = "Servers"\nlocation = "NL"\n'
        '[[processors]]\nname = "Boekhouder"\npurpose = "Facturen"\nlocation = "NL"\n'
        'categories = ["invoice", "contract"]\n'
    )
    settings = load_settings({"KLUIS_CONFIG": str(config)})
    assert [(p.name, p.categories) for p in settings.processors] == [
        ("Hosting", ()),
        ("Boekhouder", ("invoice", "contract")),
    ]
    assert settings.redacted()["processors"][1]["name"] == "Boekhouder"
    for text, says in [
        ('[[processors]]\nname = "X"\npurpose = "Y"\ncategories = ["fotos"]\n', "fotos"),
        ('[[processors]]\nname = "X"\n', "processors[0] needs a name and a purpose"),
        ('[[processors]]\nname = "X"\npurpose = "Y"\nlocaton = "NL"\n', "processors[0].locaton"),
        ('[[processors]]\nname = "X"\npurpose = "Y"\n' * 2, "a second time"),
        ('processors = ["Hosting"]\n', "[[processors]]"),
    ]:
        config.write_text(text)
        with pytest.raises(ConfigError, match=re.escape(says)):
            load_settings({"KLUIS_CONFIG": str(config)})
    with pytest.raises(ConfigError, match="cannot come from the environment"):
        load_settings({"KLUIS_PROCESSORS": "Hosting"})
