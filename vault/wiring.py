"""Opening a vault's parts in one place, for the service and every command.

``open_vault(settings)`` gives the database engine (checked to be at the
current schema), the key provider (checked to hold the audit key), the audit
log, the child and item keys, the link-signing secrets and, when asked, the
blob store, and closes them in the reverse order. ``kluis init`` is the one
caller that may meet a vault that is not set up yet (:mod:`vault.installation`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from vault.audit.log import AuditLog
from vault.config import Settings
from vault.db import create_engine, is_current
from vault.errors import KluisError
from vault.keys import KeyProvider, open_provider
from vault.keys.provider import AUDIT_MAC, audit_sign
from vault.keys.service import KeyService
from vault.keys.signing import SigningSecrets
from vault.storage import BlobStore, open_store

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


class SchemaOutdated(KluisError):
    code = "schema_outdated"
    default_message = (
        "The database is not initialised or its schema is not current; run 'kluis init'."
    )


@dataclasses.dataclass
class Vault:
    settings: Settings
    engine: AsyncEngine
    provider: KeyProvider
    audit: AuditLog
    keys: KeyService
    signing: SigningSecrets
    store: BlobStore | None

    @property
    def blobs(self) -> BlobStore:
        assert self.store is not None, "opened without the blob store"
        return self.store


@contextlib.asynccontextmanager
async def open_vault(
    settings: Settings,
    *,
    clock: Clock = utcnow,
    store: bool = True,
    audit_thread: bool = False,
) -> AsyncIterator[Vault]:
    """The vault's parts, open; ``SchemaOutdated`` or ``KeyringError`` with the
    reason when it cannot be used. ``audit_thread``: on a SQLite file, the
    audit log commits in a thread of its own (the service)."""
    async with contextlib.AsyncExitStack() as stack:
        engine = create_engine(settings.database_url)
        stack.push_async_callback(engine.dispose)
        if not await is_current(engine):
            raise SchemaOutdated()
        blob_store = await open_store(settings) if store else None
        if blob_store is not None:
            stack.push_async_callback(blob_store.close)
        provider = await open_provider(settings)
        stack.push_async_callback(provider.close)
        # A start without the audit key fails here, with the reason, not at
        # the first request.
        provider.mac(AUDIT_MAC, b"kluis start-up check")
        audit = AuditLog(engine, audit_sign(provider), clock, own_thread=audit_thread)
        stack.push_async_callback(audit.close)
        signing = SigningSecrets(
            engine, provider, refresh_seconds=settings.links.signing_refresh_seconds
        )
        yield Vault(
            settings=settings,
            engine=engine,
            provider=provider,
            audit=audit,
            keys=KeyService(engine, provider, audit, clock),
            signing=signing,
            store=blob_store,
        )
