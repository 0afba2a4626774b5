"""The resources an application holds, as typed keys, and their lifetimes.

Each resource is opened and closed by its own ``cleanup_ctx`` generator, in
order: database (checked to be at the current schema), blob store, key
provider (with the audit log, whose head it signs, and the link-signing
secrets it seals). The key provider is checked at start: a missing audit key
or signing secret stops the start with the reason, never half-way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from vault.audit.log import AuditLog
from vault.config import Settings
from vault.db import create_engine, is_current
from vault.db.facts import FactsCache
from vault.db.reads import Reader
from vault.errors import KluisError
from vault.items.sweep import sweep
from vault.keys import KeyProvider, open_provider
from vault.keys.provider import AUDIT_MAC, audit_sign
from vault.keys.service import KeyService
from vault.keys.signing import SigningSecrets
from vault.share.issuing import Issuer
from vault.storage import BlobStore, open_store
from vault.wiring import SchemaOutdated

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", Settings)
#: The time source; tests set it before the app starts to move through time.
CLOCK: web.AppKey[Callable[[], datetime]] = web.AppKey("clock")
DB = web.AppKey("db", AsyncEngine)
READER = web.AppKey("reader", Reader)
#: Answers kept while the policy's facts stand still (vault.db.facts).
FACTS: web.AppKey[FactsCache[Any, Any]] = web.AppKey("facts")
STORE = web.AppKey("store", BlobStore)
KEYRING = web.AppKey("keyring", KeyProvider)
KEYS = web.AppKey("keys", KeyService)
AUDIT = web.AppKey("audit", AuditLog)
SIGNING = web.AppKey("signing", SigningSecrets)
#: Issues and verifies every kind of signed link (vault.share.issuing).
LINKS = web.AppKey("links", Issuer)


async def database(app: web.Application) -> AsyncIterator[None]:
    engine = create_engine(app[SETTINGS].database_url)
    try:
        if not await is_current(engine):
            raise SchemaOutdated()
        app[DB] = engine
        app[READER] = Reader(engine)
        app[FACTS] = FactsCache(app[READER], engine)
        yield
    finally:
        if FACTS in app:
            app[FACTS].close()
        if READER in app:
            app[READER].dispose()
        await engine.dispose()


async def storage(app: web.Application) -> AsyncIterator[None]:
    store = await open_store(app[SETTINGS])
    app[STORE] = store
    try:
        yield
    finally:
        await store.close()


async def keyring(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    provider = app[KEYRING] = await open_provider(settings)
    try:
        # Refuse to start without what every request may need: the audit key
        # (a MAC that cannot be made fails every call) and a signing secret.
        provider.mac(AUDIT_MAC, b"kluis start-up check")
        app[SIGNING] = SigningSecrets(
            app[DB], provider, refresh_seconds=settings.links.signing_refresh_seconds
        )
        await app[SIGNING].current()
        app[LINKS] = Issuer(app[SIGNING])
        app[AUDIT] = AuditLog(app[DB], audit_sign(provider), app[CLOCK], own_thread=True)
        app[KEYS] = KeyService(app[DB], provider, app[AUDIT], clock=app[CLOCK])
    except BaseException:
        await provider.close()
        raise
    try:
        yield
    finally:
        try:
            await app[AUDIT].close()
        finally:
            await provider.close()


async def background_sweep(app: web.Application) -> AsyncIterator[None]:
    """Sweep orphaned blobs once after start, without delaying it."""

    async def run() -> None:
        grace = timedelta(minutes=app[SETTINGS].uploads.sweep_grace_minutes)
        try:
            await sweep(app[DB], app[STORE], app[CLOCK](), grace)
        except KluisError as exc:
            log.warning("start-up sweep stopped: %s", exc.code)

    task = asyncio.create_task(run())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
