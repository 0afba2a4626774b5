"""Setting a vault up (``kluis init``): everything processes would otherwise race for.

Creates what is missing, in order: the data directory, the key store (the
keyring file, or nothing on a token), the blob store, the database schema
(Alembic migrations), the audit and e-mail MAC keys, the current month's live
master key, the ``directory`` master key, the fixed master keys for
one-time-code secrets (``totp``) and the mail outbox (``mail``), the first
link-signing secret, and the admin account. Run again, it changes nothing.

Sealing directory text stored in clear before migration 0014a needs the key
provider, which migrations do not have: so the schema is brought to the
revision before the one that drops the clear columns
(:func:`vault.db.migrate.stop_before_sealing`), every such row is sealed
(:func:`vault.directory.sealing.seal_existing`), and only then are the
remaining migrations applied, all under the installation lock.

Several at once (``docker compose up --scale``, a rollout) are safe: each
waits for the installation lock (PostgreSQL: an advisory lock; SQLite: a
lock file beside the database), so one creates and the others find it done.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from vault.audit.log import AuditLog
from vault.config import Settings
from vault.db import create_engine, is_current, locks, upgrade
from vault.db.migrate import drops_clear_text, stop_before_sealing
from vault.directory.people import ensure_admin
from vault.directory.sealing import Sealer, compact, seal_existing
from vault.keys import epochs, open_provider, signing
from vault.keys.local import LocalKeyring
from vault.keys.provider import AUDIT_MAC, DIRECTORY_KEY, EMAIL_MAC, MAIL_KEY, TOTP_KEY, audit_sign
from vault.keys.service import KeyService
from vault.storage import open_store

#: How long a ``kluis init`` waits for another one to finish.
LOCK_WAIT_SECONDS = 300


@dataclasses.dataclass
class Initialised:
    created: list[str]
    #: The admin account's first token, when this run created the account.
    admin_token: str | None


async def initialise(settings: Settings, now: datetime) -> Initialised:
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    created: list[str] = []
    engine = create_engine(settings.database_url)
    try:
        async with locks.held(
            engine,
            "init",
            wait=LOCK_WAIT_SECONDS,
            busy="Another 'kluis init' has been running for minutes; check it, then try again.",
        ):
            keyring_existed = settings.keyring_path.exists()
            provider = await open_provider(settings, create=True)
            try:
                if isinstance(provider, LocalKeyring) and not keyring_existed:
                    created.append(f"keyring at {settings.keyring_path}")
                store = await open_store(settings)
                await store.close()
                migrated = not await is_current(engine)
                scrub = await drops_clear_text(engine)
                before = await stop_before_sealing(engine)
                if before is not None:
                    await upgrade(engine, before)
                names = {info.name for info in await provider.list_keys()}
                await provider.create_mac_key(AUDIT_MAC)
                await provider.create_mac_key(EMAIL_MAC)
                keys = KeyService(
                    engine,
                    provider,
                    AuditLog(engine, audit_sign(provider), lambda: now),
                    lambda: now,
                )
                live = epochs.live(now).name
                await keys.ensure_master(live, now)
                await keys.ensure_master(DIRECTORY_KEY, now)
                for name in (live, DIRECTORY_KEY):
                    if name not in names:
                        created.append(f"master key {name}")
                for fixed in (TOTP_KEY, MAIL_KEY):
                    if fixed not in names:
                        await provider.create_key(fixed, now)
                        created.append(f"master key {fixed}")
                sealer = Sealer(engine, keys, provider)
                sealed = await seal_existing(sealer)
                if sealed.total:
                    created.append(
                        f"sealed directory text kept in clear before: {sealed.people} people, "
                        f"{sealed.places} locations and groups, {sealed.holds} holds"
                    )
                if not await is_current(engine):
                    await upgrade(engine)
                if scrub:
                    # Clear columns were dropped in this run: no byte of them stays.
                    await compact(engine)
                if migrated:
                    created.append("database schema (migrations applied)")
                legacy = (
                    provider.legacy_signing_secrets() if isinstance(provider, LocalKeyring) else []
                )
                if await signing.ensure(engine, provider, now, legacy):
                    created.append("link-signing secret")
                if legacy and isinstance(provider, LocalKeyring):
                    await provider.forget_legacy_signing_secrets()
                token = await ensure_admin(
                    engine, sealer, now, timedelta(days=settings.auth.token_ttl_days)
                )
            finally:
                await provider.close()
    finally:
        await engine.dispose()
    return Initialised(created, token)
