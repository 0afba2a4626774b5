"""Typed configuration, built once at start and frozen.

Sources, later ones winning: the embedded defaults below, the TOML file named
by ``KLUIS_CONFIG`` (examples in ``config/``), then ``KLUIS_*`` environment
variables (``KLUIS_DATA_DIR``, ``KLUIS_STORAGE_BACKEND``,
``KLUIS_STORAGE_S3_ENDPOINT``: section and key in upper case joined by ``_``).
A list setting is a TOML array, or in the environment a comma-separated
value (``KLUIS_SERVER_TRUSTED_PROXIES=10.0.0.0/8,127.0.0.1``).
An unknown key or section in the file, an unknown key of a known section in
the environment (``KLUIS_SERVER_PROT``), or a value of the wrong type, stops
the start with a :class:`ConfigError` that names it. Other ``KLUIS_*``
variables are not Kluis's (Kubernetes makes ``KLUIS_SERVICE_HOST`` and
``KLUIS_PORT`` for a Service named ``kluis``; a compose ``.env`` may hold
``KLUIS_DB_PASSWORD``): they are ignored, with one warning line naming them.
Secrets are held in :class:`Secret`, whose ``repr`` is masked, so a settings
dump never shows them.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from vault.errors import ConfigError
from vault.policy import KINDS, ROLES

ENV_PREFIX = "KLUIS_"
ENV_CONFIG_FILE = "KLUIS_CONFIG"

log = logging.getLogger(__name__)


@typing.final
class Secret:
    """A configuration secret: masked in ``repr``/``str``, refuses pickling."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('********')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> typing.NoReturn:
        raise TypeError("secrets cannot be pickled")


@dataclasses.dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    #: A connection that has not sent a whole request head this long after it
    #: opened (or after its last answer) is closed: aiohttp's keep-alive timer,
    #: its only one that runs before a request's head is complete.
    header_timeout_seconds: float = 60.0
    #: A request body that sends nothing for this long is cut (408): an idle
    #: time-out per read, so a slow but steady upload of a large video passes.
    #: aiohttp has no body time-out of its own; 0 turns this one off.
    body_timeout_seconds: float = 60.0
    #: Addresses or networks (``10.0.0.0/8``) of the reverse proxies in front:
    #: only from these are the forwarding headers believed, right to left
    #: (vault/api/proxies.py). Empty: the TCP peer is the client.
    trusted_proxies: tuple[str, ...] = ()
    #: Which headers the trusted proxies set: ``x-forwarded``
    #: (``X-Forwarded-For`` and ``X-Forwarded-Proto``: Caddy, nginx, HAProxy,
    #: most balancers) or ``forwarded`` (RFC 7239). Only one family is read: a
    #: proxy passes the other on from the client untouched.
    proxy_headers: Literal["x-forwarded", "forwarded"] = "x-forwarded"
    #: A line in the access log (``kluis.access``) for every answer. Off, only
    #: answers with a 5xx status get one: an INFO line per request cost about
    #: 5% of a link answer's CPU, and the audit log has every use anyway.
    access_log: bool = False
    #: The event loop (vault/loops.py): ``auto`` takes uvloop where it is
    #: installed, else asyncio's own; ``asyncio`` or ``uvloop`` insist.
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"


@dataclasses.dataclass(frozen=True, repr=False)
class DatabaseSettings:
    #: SQLAlchemy URL; empty means SQLite (aiosqlite) at ``<data_dir>/kluis.db``.
    url: str = ""

    def __repr__(self) -> str:
        return f"DatabaseSettings(url={_hide_password(self.url)!r})"


@dataclasses.dataclass(frozen=True)
class StorageSettings:
    backend: Literal["local", "s3"] = "local"
    #: Local disk root; empty means ``<data_dir>/blobs``.
    path: str = ""
    s3_endpoint: str = "127.0.0.1:9000"
    s3_bucket: str = "kluis"
    s3_access_key: Secret = dataclasses.field(default_factory=lambda: Secret(""))
    s3_secret_key: Secret = dataclasses.field(default_factory=lambda: Secret(""))
    s3_secure: bool = False
    s3_region: str = ""
    s3_create_bucket: bool = True
    #: Multipart part size; S3 needs at least 5 MiB. Memory per upload is about
    #: (s3_parallel_parts + 1) parts.
    s3_part_size_mb: int = 16
    s3_parallel_parts: int = 2
    #: Connect/read timeout, so an unreachable store fails fast instead of hanging.
    timeout_seconds: float = 10.0


@dataclasses.dataclass(frozen=True)
class KeyringSettings:
    """Where the master keys live (docs/operations.md, "Keys"): ``local``, a file
    shared by the processes of one host; ``pkcs11``, a token (an HSM)."""

    backend: Literal["local", "pkcs11"] = "local"
    #: Keyring file; empty means ``<data_dir>/keyring.json``.
    path: str = ""
    #: Optional passphrase that seals the keyring file (scrypt + AES-256-GCM).
    passphrase: Secret = dataclasses.field(default_factory=lambda: Secret(""))
    #: How long a change waits for the keyring file's lock before it gives up.
    lock_timeout_seconds: float = 5.0
    #: The PKCS#11 module (a shared library), e.g. /usr/lib/softhsm/libsofthsm2.so.
    pkcs11_module: str = ""
    pkcs11_token_label: str = ""
    #: The token's user PIN: from the environment (KLUIS_KEYRING_PKCS11_PIN),
    #: never the TOML file, or from ``pkcs11_pin_file``.
    pkcs11_pin: Secret = dataclasses.field(default_factory=lambda: Secret(""))
    pkcs11_pin_file: str = ""
    #: Put before every object label, so several vaults can share one token.
    pkcs11_label_prefix: str = "kluis:"

    def pin(self) -> str:
        """The PIN, from the environment or its file; ``ConfigError`` if unreadable."""
        if self.pkcs11_pin:
            return self.pkcs11_pin.reveal()
        if not self.pkcs11_pin_file:
            return ""
        try:
            return Path(self.pkcs11_pin_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"keyring.pkcs11_pin_file ({self.pkcs11_pin_file}) cannot be read: {exc.strerror}."
            ) from None


@dataclasses.dataclass(frozen=True)
class CryptoSettings:
    #: Plaintext bytes per AEAD segment of a stored blob (see docs/crypto.md).
    segment_size: int = 65536
    #: How long old live master keys are kept after rotation, so that a database
    #: backup taken within this window can still be restored.
    backup_window_days: int = 35


@dataclasses.dataclass(frozen=True)
class UploadSettings:
    #: Size caps per kind of file, enforced while the upload streams in.
    photo_max_mb: int = 40
    video_max_mb: int = 4096
    document_max_mb: int = 50
    #: Width × height above which an image is refused before it is decoded.
    max_pixels: int = 100_000_000
    #: Blobs no committed row names are swept once older than this.
    sweep_grace_minutes: int = 60
    #: How often a running ``kluis serve`` sweeps (worker 0 of ``--workers``),
    #: besides once at its start; 0: only at start.
    sweep_interval_minutes: float = 10.0
    #: An upload's lease on the blobs it writes (vault/items/pending.py): the
    #: sweeper leaves them alone while it runs, whatever the grace. Renewed
    #: every third of this while the upload lives; the blobs of a server
    #: killed mid-upload are swept once it ran out (and the grace passed).
    lease_seconds: float = 120.0
    #: Uploads stored at once per process; more wait before their file is
    #: read (TCP holds the senders back), so uploads cannot starve link
    #: fetches (bench/fetch_latency.py).
    parallel: int = 4
    #: The ceilings of the work done on a video after upload (docs/media.md,
    #: "Variants of a video"): longer videos get no ``web`` rendition, larger
    #: frames (width × height) no variant at all; the original is served as it is.
    video_max_seconds: int = 1800
    video_max_pixels: int = 4096 * 2160
    #: The IANA zone (``Europe/Amsterdam``) of the clocks of cameras whose
    #: EXIF carries no offset, and of a client's ``taken_at`` without one;
    #: also the zone whose day a file is of (its diary entry, its export
    #: folder). Answers are UTC whatever it is (vault/items/when.py).
    camera_time_zone: str = "Europe/Amsterdam"

    @property
    def camera_zone(self) -> ZoneInfo:
        """:attr:`camera_time_zone` as a zone (checked at start by :func:`validate`)."""
        return ZoneInfo(self.camera_time_zone)


@dataclasses.dataclass(frozen=True)
class LinkSettings:
    #: Absolute base for link URLs (https://vault.example.org); empty: the
    #: scheme and host of the request that asked for the link.
    public_url: str = ""
    media_default_ttl_seconds: int = 300
    media_max_ttl_seconds: int = 3600
    handover_default_days: int = 7
    handover_max_days: int = 14
    handover_default_downloads: int = 3
    handover_max_downloads: int = 10
    export_max_ttl_hours: int = 24
    #: How often a process reads the signing secrets again (a rotation on
    #: another instance is honoured within this time, or at once when a link
    #: signed with the new secret arrives).
    signing_refresh_seconds: int = 30


@dataclasses.dataclass(frozen=True)
class RetentionSettings:
    """Months after the placement's end date that each category is kept."""

    photo_months: int = 12
    video_months: int = 12
    diary_months: int = 12
    observation_months: int = 12
    medical_months: int = 12
    child_protection_months: int = 24
    invoice_months: int = 84
    annual_statement_months: int = 84
    contract_months: int = 84
    #: Days after the term before keys are destroyed; a hold still stops it.
    grace_days: int = 7
    #: Days a person's own data (name, e-mail) is kept after nothing links
    #: them to a living record any more (vault/directory/links.py); then the
    #: retention run destroys it. Two years: the seeds' term for staff data.
    person_term_days: int = 730
    #: Children a retention run destroys in one transaction (their keys, item
    #: marks and certificates), before their blobs are deleted together.
    batch_children: int = 200

    def term_months(self, category: str) -> int:
        months: int = getattr(self, f"{category}_months")
        return months


@dataclasses.dataclass(frozen=True)
class PolicySettings:
    #: How long after the contract ends guardians and staff still see the
    #: records (DOMAIN.md: 8 weeks; the app terms speak of 6).
    window_weeks: int = 8


@dataclasses.dataclass(frozen=True)
class AuthSettings:
    #: Failed logins from one address (and, for password sign-ins, on one
    #: account) within the window before it gets 429.
    max_failures: int = 10
    failure_window_seconds: int = 900
    #: How long a session lives after sign-in, by role: guardians' (the
    #: parent app on a phone) long, everyone else's a working day.
    session_hours_staff: int = 12
    session_hours_guardian: int = 720
    #: How long a bearer token issued by an admin or the command line lives.
    token_ttl_days: int = 365
    #: Roles that must sign in with a one-time code (TOTP) besides the
    #: password; e.g. ["staff", "location_manager", "privacy_officer"].
    totp_required_roles: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class MailSettings:
    """Outgoing mail (docs/operations.md, "Mail"). No ``smtp_host``: mail is
    kept in the outbox and ``kluis mail status`` says so."""

    smtp_host: str = ""
    smtp_port: int = 587
    #: ``auto``: STARTTLS when the server offers it; ``always``: refuse to
    #: send without it; ``never``: plain SMTP (a relay on the same host).
    starttls: Literal["auto", "always", "never"] = "auto"
    username: str = ""
    password: Secret = dataclasses.field(default_factory=lambda: Secret(""))
    #: The From address, e.g. "Kluis <kluis@example.org>".
    sender: str = ""
    #: A CA bundle (PEM) to verify the server's certificate with; empty: the
    #: system's.
    ca_file: str = ""
    timeout_seconds: float = 30.0
    #: Delivery attempts before a message is given up (dead letter).
    max_attempts: int = 12
    #: The first retry waits this long; each next one twice as long, at most
    #: an hour.
    retry_seconds: float = 30.0
    #: How often an idle sender looks for due mail.
    poll_seconds: float = 5.0


@dataclasses.dataclass(frozen=True)
class OidcSettings:
    """Staff single sign-on with OpenID Connect; empty ``issuer``: off."""

    issuer: str = ""
    client_id: str = ""
    client_secret: Secret = dataclasses.field(default_factory=lambda: Secret(""))
    scopes: tuple[str, ...] = ("openid", "email", "profile")


@dataclasses.dataclass(frozen=True)
class JobSettings:
    """The durable job queue in the database (vault/jobs/, docs/operations.md, "Jobs")."""

    #: A running job's lease: its worker renews it every third of this; a job
    #: whose lease ran out (its worker was killed) is taken up again.
    lease_seconds: float = 60.0
    #: Attempts before a job that keeps failing ends as ``failed``.
    max_attempts: int = 3
    #: The wait before the first retry; it doubles with every further attempt.
    retry_seconds: float = 30.0
    #: How often an idle worker looks for work queued by another process.
    poll_seconds: float = 2.0
    #: Finished jobs' rows are removed after this many days (failed ones stay).
    keep_days: int = 30


@dataclasses.dataclass(frozen=True)
class VideoSettings:
    """How video variants are made (vault/media/video_variants.py, docs/media.md)."""

    #: Debian's ffmpeg and ffprobe (scripts/ensure-media installs them).
    ffmpeg: str = "ffmpeg"
    ffprobe: str = "ffprobe"
    #: Threads for the decoder and the encoder of one job.
    threads: int = 2
    #: The niceness ffmpeg runs at, so link answers come first on a busy host.
    nice: int = 10
    #: Address space one ffmpeg may map (RLIMIT_AS), in MB.
    memory_mb: int = 2048
    #: A job's time limit: this many seconds per second of video, and at least
    #: ``min_seconds``.
    seconds_per_second: float = 10.0
    min_seconds: float = 120.0
    #: The ``web`` rendition: H.264 High at this CRF and x264 preset, at most
    #: ``web_max_lines`` on the shorter side (1080: 1920×1080 or 1080×1920).
    web_crf: int = 23
    web_preset: Literal[
        "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow"
    ] = "veryfast"
    web_max_lines: int = 1080


@dataclasses.dataclass(frozen=True)
class Processor:
    """One processor (verwerker) of the register: an organisation that handles
    the records on the organisation's behalf (hosting, the app's supplier, the
    financial administration). A child's report names them per category as
    its recipients. In the file: one ``[[processors]]`` table each."""

    name: str = ""
    purpose: str = ""
    #: Where it processes ("Netherlands (EU)"): the report says it.
    location: str = ""
    #: The kinds of records it handles; empty: every kind (hosting, backups).
    categories: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("data")
    server: ServerSettings = dataclasses.field(default_factory=ServerSettings)
    database: DatabaseSettings = dataclasses.field(default_factory=DatabaseSettings)
    storage: StorageSettings = dataclasses.field(default_factory=StorageSettings)
    keyring: KeyringSettings = dataclasses.field(default_factory=KeyringSettings)
    crypto: CryptoSettings = dataclasses.field(default_factory=CryptoSettings)
    uploads: UploadSettings = dataclasses.field(default_factory=UploadSettings)
    links: LinkSettings = dataclasses.field(default_factory=LinkSettings)
    retention: RetentionSettings = dataclasses.field(default_factory=RetentionSettings)
    policy: PolicySettings = dataclasses.field(default_factory=PolicySettings)
    auth: AuthSettings = dataclasses.field(default_factory=AuthSettings)
    mail: MailSettings = dataclasses.field(default_factory=MailSettings)
    oidc: OidcSettings = dataclasses.field(default_factory=OidcSettings)
    jobs: JobSettings = dataclasses.field(default_factory=JobSettings)
    video: VideoSettings = dataclasses.field(default_factory=VideoSettings)
    #: The processor register (``[[processors]]``); none by default.
    processors: tuple[Processor, ...] = ()

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'kluis.db').resolve()}"

    @property
    def storage_path(self) -> Path:
        return Path(self.storage.path) if self.storage.path else self.data_dir / "blobs"

    @property
    def keyring_path(self) -> Path:
        return Path(self.keyring.path) if self.keyring.path else self.data_dir / "keyring.json"

    def redacted(self) -> dict[str, Any]:
        """A dump safe to print or log: secrets masked, database password hidden."""
        out: dict[str, Any] = {"data_dir": str(self.data_dir)}
        for section in _SECTIONS:
            values = {}
            for f in dataclasses.fields(getattr(self, section)):
                value = getattr(getattr(self, section), f.name)
                values[f.name] = repr(value) if isinstance(value, Secret) else value
            out[section] = values
        out["database"]["url"] = _hide_password(self.database.url)
        out["processors"] = [dataclasses.asdict(p) for p in self.processors]
        return out


_SECTIONS = (
    "server",
    "database",
    "storage",
    "keyring",
    "crypto",
    "uploads",
    "links",
    "retention",
    "policy",
    "auth",
    "mail",
    "oidc",
    "jobs",
    "video",
)


def _hide_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:********@{host}"


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from defaults, the TOML file and the environment."""
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    config_file = env.get(ENV_CONFIG_FILE)
    if config_file:
        path = Path(config_file)
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{ENV_CONFIG_FILE} names {path}, which does not exist.") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
        keyring = raw.get("keyring")
        if isinstance(keyring, dict) and "pkcs11_pin" in keyring:
            raise ConfigError(
                f"{path} holds keyring.pkcs11_pin in clear; remove it and set "
                "KLUIS_KEYRING_PKCS11_PIN or keyring.pkcs11_pin_file instead."
            )
    origins = _apply_environment(raw, env)
    try:
        settings: Settings = _build(Settings, raw, where="")
    except ConfigError as exc:
        # Name the variable the user actually set, not only the setting.
        message = exc.message
        for dotted, variable in origins.items():
            if dotted in message:
                message = message.replace(dotted, f"{dotted} (from {variable})", 1)
        raise ConfigError(message) from None
    validate(settings)
    return settings


def _apply_environment(raw: dict[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    """Merge ``KLUIS_*`` variables into ``raw``; return setting → variable name.

    Only ``KLUIS_<SECTION>_<KEY>`` with a known section (and the top-level
    settings, ``KLUIS_DATA_DIR``) is configuration; an unknown key there stops
    the start in :func:`_build`, since a typo must not pass silently. Other
    ``KLUIS_*`` names are someone else's and are ignored with one warning.
    """
    origins: dict[str, str] = {}
    foreign: list[str] = []
    top_level = {f.name for f in dataclasses.fields(Settings)} - set(_SECTIONS)
    # Longest first, so a section whose name holds a ``_`` is matched whole.
    sections = sorted(_SECTIONS, key=len, reverse=True)
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_CONFIG_FILE:
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        if rest in top_level:
            raw[rest] = value
            origins[rest] = name
            continue
        section = next((s for s in sections if rest.startswith(f"{s}_")), None)
        key = rest[len(section) + 1 :] if section is not None else ""
        if section is None or not key:
            foreign.append(name)
            continue
        section_raw = raw.setdefault(section, {})
        if not isinstance(section_raw, dict):
            raise ConfigError(f"[{section}] must be a table.")
        section_raw[key] = value
        origins[f"{section}.{key}"] = name
    if foreign:
        known = ", ".join(f"KLUIS_{s.upper()}_*" for s in _SECTIONS)
        # Names only: a foreign variable's value may be someone's password.
        log.warning(
            "ignoring environment variables that are not Kluis settings: %s "
            "(settings are KLUIS_DATA_DIR, KLUIS_CONFIG and %s)",
            ", ".join(sorted(foreign)),
            known,
        )
    return origins


def _build(cls: type[Any], raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"[{where}] must be a table.")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        dotted = ", ".join(f"{where}.{k}" if where else k for k in unknown)
        raise ConfigError(f"Unknown setting {dotted}: remove it or check its spelling.")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        key = f"{where}.{name}" if where else name
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            values[name] = _build(typing.cast(type[Any], hint), value, key)
        elif _table_list(hint) is not None:
            values[name] = _build_tables(typing.cast(type[Any], _table_list(hint)), value, key)
        else:
            values[name] = _coerce(hint, value, key)
    return cls(**values)


def _table_list(hint: Any) -> Any:
    """The dataclass of a ``tuple[SomeTable, ...]`` setting (an array of tables), or None."""
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        if dataclasses.is_dataclass(item):
            return item
    return None


def _build_tables(cls: type[Any], raw: Any, key: str) -> tuple[Any, ...]:
    if not isinstance(raw, list) or not all(isinstance(entry, dict) for entry in raw):
        raise ConfigError(
            f"Setting {key} is a list of tables: write each as [[{key}]] in the config file "
            "(it cannot come from the environment)."
        )
    return tuple(_build(cls, entry, f"{key}[{n}]") for n, entry in enumerate(raw))


def _coerce(hint: Any, value: Any, key: str) -> Any:
    """Turn a TOML value or an environment string into the annotated type."""
    from_env = isinstance(value, str)
    origin = typing.get_origin(hint)
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            choices = ", ".join(repr(a) for a in allowed)
            raise ConfigError(f"Setting {key} is {value!r}; it must be one of {choices}.")
        return value
    if origin in (typing.Union, types.UnionType):
        raise ConfigError(f"Setting {key} has an unsupported type.")  # pragma: no cover
    if origin in (list, tuple):
        return _coerce_list(origin, typing.get_args(hint)[0], value, key)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if from_env and value.lower() in ("1", "true", "yes", "on"):
            return True
        if from_env and value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"Setting {key} must be true or false, not {value!r}.")
    if hint is int or hint is float:
        if isinstance(value, bool):
            raise ConfigError(f"Setting {key} must be a number, not {value!r}.")
        try:
            number = hint(value)
        except (TypeError, ValueError):
            raise ConfigError(f"Setting {key} must be a number, not {value!r}.") from None
        if number < 0:
            raise ConfigError(f"Setting {key} must not be negative.")
        return number
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"Setting {key} must be a string.")
        return value
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"Setting {key} must be a non-empty path.")
        return Path(value)
    if hint is Secret:
        if not isinstance(value, str):
            raise ConfigError(f"Setting {key} must be a string.")
        return Secret(value)
    raise ConfigError(f"Setting {key} has an unsupported type.")  # pragma: no cover


def _coerce_list(container: type[Any], item: Any, value: Any, key: str) -> Any:
    """A TOML array, or an environment string split at commas (blanks dropped)."""
    if isinstance(value, str):
        items: list[Any] = [part.strip() for part in value.split(",") if part.strip()]
    elif isinstance(value, list):
        items = value
    else:
        raise ConfigError(f"Setting {key} must be a list (a TOML array, or comma-separated).")
    if item is not str or not all(isinstance(v, str) for v in items):
        raise ConfigError(f"Setting {key} must be a list of strings.")
    return container(items)


def _check_zone(key: str, name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ConfigError(
            f"Setting {key} is {name!r}, which is no IANA time zone; give one such as "
            "'Europe/Amsterdam' (the list: the tz database, /usr/share/zoneinfo)."
        ) from None


def validate(settings: Settings) -> None:
    """Cross-field checks that a type alone cannot express."""
    if settings.server.port > 65535:
        raise ConfigError("Setting server.port must be at most 65535.")
    if settings.server.header_timeout_seconds <= 0:
        raise ConfigError("Setting server.header_timeout_seconds must be more than 0.")
    seg = settings.crypto.segment_size
    if not 4096 <= seg <= 16 * 1024 * 1024:
        raise ConfigError("Setting crypto.segment_size must be between 4096 and 16777216 bytes.")
    if settings.storage.backend == "s3":
        if settings.storage.s3_part_size_mb < 5:
            raise ConfigError("Setting storage.s3_part_size_mb must be at least 5 (an S3 limit).")
        if not settings.storage.s3_access_key or not settings.storage.s3_secret_key:
            raise ConfigError(
                "storage.backend is 's3' but storage.s3_access_key or storage.s3_secret_key "
                "is empty; set them (KLUIS_STORAGE_S3_ACCESS_KEY, KLUIS_STORAGE_S3_SECRET_KEY)."
            )
    if settings.uploads.sweep_grace_minutes < 0 or settings.uploads.sweep_interval_minutes < 0:
        raise ConfigError(
            "Settings uploads.sweep_grace_minutes and uploads.sweep_interval_minutes must not "
            "be negative."
        )
    if settings.uploads.lease_seconds < 1:
        raise ConfigError("Setting uploads.lease_seconds must be at least 1.")
    if settings.uploads.parallel < 1:
        raise ConfigError("Setting uploads.parallel must be at least 1.")
    _check_zone("uploads.camera_time_zone", settings.uploads.camera_time_zone)
    if settings.auth.max_failures < 1:
        raise ConfigError("Setting auth.max_failures must be at least 1.")
    if settings.jobs.lease_seconds < 1 or settings.jobs.max_attempts < 1:
        raise ConfigError("Settings jobs.lease_seconds and jobs.max_attempts must be at least 1.")
    if settings.jobs.poll_seconds <= 0:
        raise ConfigError("Setting jobs.poll_seconds must be more than 0.")
    if settings.video.threads < 1 or settings.video.web_max_lines < 144:
        raise ConfigError(
            "Setting video.threads must be at least 1 and video.web_max_lines at least 144."
        )
    if not 0 <= settings.video.web_crf <= 51 or settings.video.nice > 19:
        raise ConfigError("Setting video.web_crf must be 0 to 51 and video.nice at most 19.")
    if settings.video.memory_mb < 256:
        raise ConfigError("Setting video.memory_mb must be at least 256.")
    if settings.storage.s3_parallel_parts < 1:
        raise ConfigError("Setting storage.s3_parallel_parts must be at least 1.")
    keyring = settings.keyring
    if keyring.backend == "pkcs11" and not keyring.pkcs11_module:
        raise ConfigError(
            "keyring.backend is 'pkcs11' but keyring.pkcs11_module is empty; set it to the "
            "token's PKCS#11 library (KLUIS_KEYRING_PKCS11_MODULE)."
        )
    if keyring.backend == "pkcs11" and not keyring.pkcs11_token_label:
        raise ConfigError(
            "keyring.backend is 'pkcs11' but keyring.pkcs11_token_label is empty; name the "
            "token (KLUIS_KEYRING_PKCS11_TOKEN_LABEL)."
        )
    for entry in settings.server.trusted_proxies:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ConfigError(
                f"Setting server.trusted_proxies holds {entry!r}, which is neither an address "
                "nor a network (10.0.0.0/8, 127.0.0.1, ::1)."
            ) from None
    unknown_roles = sorted(set(settings.auth.totp_required_roles) - set(ROLES))
    if unknown_roles:
        raise ConfigError(
            f"Setting auth.totp_required_roles names unknown role(s) {', '.join(unknown_roles)}; "
            f"roles are {', '.join(ROLES)}."
        )
    if settings.mail.starttls == "never" and settings.mail.username:
        raise ConfigError(
            "mail.starttls is 'never' but mail.username is set: the password would cross the "
            "network in clear. Use 'auto' or 'always', or send through a relay without login."
        )
    if settings.mail.smtp_host and not settings.mail.sender:
        raise ConfigError("mail.smtp_host is set but mail.sender is empty; set the From address.")
    if settings.mail.max_attempts < 1:
        raise ConfigError("Setting mail.max_attempts must be at least 1.")
    oidc = settings.oidc
    if oidc.issuer:
        if not oidc.client_id or not oidc.client_secret:
            raise ConfigError(
                "oidc.issuer is set but oidc.client_id or oidc.client_secret is empty; set them "
                "(KLUIS_OIDC_CLIENT_ID, KLUIS_OIDC_CLIENT_SECRET)."
            )
        if "openid" not in oidc.scopes:
            raise ConfigError("Setting oidc.scopes must include 'openid'.")
        if not settings.links.public_url:
            raise ConfigError(
                "oidc.issuer is set but links.public_url is empty; single sign-on returns to "
                "{public_url}/auth/oidc/callback and {public_url}/app/, so set it."
            )
    _validate_processors(settings.processors)
    _validate_database_url(settings.database_url)


def _validate_processors(processors: tuple[Processor, ...]) -> None:
    seen: set[str] = set()
    for n, processor in enumerate(processors):
        where = f"processors[{n}]"
        if not processor.name.strip() or not processor.purpose.strip():
            raise ConfigError(f"Setting {where} needs a name and a purpose.")
        if processor.name in seen:
            raise ConfigError(f"Setting {where} names {processor.name!r} a second time.")
        seen.add(processor.name)
        unknown = sorted(set(processor.categories) - set(KINDS))
        if unknown:
            raise ConfigError(
                f"Setting {where}.categories names unknown kind(s) {', '.join(unknown)}; "
                f"kinds are {', '.join(KINDS)} (or leave it empty for every kind)."
            )


def _validate_database_url(url: str) -> None:
    if not (url.startswith("sqlite+aiosqlite://") or url.startswith("postgresql+asyncpg://")):
        raise ConfigError(
            "Setting database.url must start with sqlite+aiosqlite:// or postgresql+asyncpg://."
        )
    # Parsed by hand, not by the database layer: this module imports no vendor.
    scheme, _, rest = url.partition("://")
    where, _, tail = rest.partition("/")
    database = tail.split("?", 1)[0]
    if scheme.startswith("sqlite"):
        if not database or database == ":memory:":
            raise ConfigError(
                "Setting database.url names no SQLite file (sqlite+aiosqlite:////path/kluis.db); "
                "leave it empty for <data_dir>/kluis.db."
            )
        return
    host = where.rpartition("@")[2]
    if not host:
        raise ConfigError(
            "Setting database.url names no PostgreSQL host "
            "(postgresql+asyncpg://USER:PASSWORD@HOST:5432/DATABASE)."
        )
    if not database or "/" in database:
        raise ConfigError(
            f"Setting database.url ({_hide_password(url)}) names no database; end it with "
            "the database's name: postgresql+asyncpg://USER:PASSWORD@HOST:5432/DATABASE."
        )
