"""The resources an application holds, as typed keys, and their lifetimes.

The vault's parts are opened by :func:`vault.wiring.open_vault`, the same
path every command takes (database checked to be at the current schema, blob
store, key provider checked to hold the audit key, audit log, child and item
keys, link-signing secrets), in the :func:`vault` cleanup context, and closed
in the reverse order. A missing audit key or signing secret stops the start
with the reason, never half-way.
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
from vault.db.facts import FactsCache
from vault.db.reads import Reader
from vault.errors import KluisError
from vault.items.damage import DamageLog
from vault.items.sweep import sweep
from vault.keys import KeyProvider
from vault.keys.service import KeyService
from vault.keys.signing import SigningSecrets
from vault.share.delivery import DAMAGE
from vault.share.issuing import Issuer
from vault.storage import BlobStore
from vault.wiring import open_vault

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


async def vault(app: web.Application) -> AsyncIterator[None]:
    """The vault's parts, opened by :func:`vault.wiring.open_vault` as every
    command opens them, and the service's own: the batched reader, the facts
    cache and the link issuer."""
    async with open_vault(app[SETTINGS], clock=app[CLOCK], audit_thread=True) as opened:
        # Refuse to start without what every request may need: a signing
        # secret (open_vault has checked the audit key).
        await opened.signing.current()
        app[DB] = opened.engine
        app[STORE] = opened.blobs
        app[KEYRING] = opened.provider
        app[AUDIT] = opened.audit
        app[KEYS] = opened.keys
        app[SIGNING] = opened.signing
        app[LINKS] = Issuer(opened.signing)
        reader = app[READER] = Reader(opened.engine)
        facts = app[FACTS] = FactsCache(reader, opened.engine)
        app[DAMAGE] = DamageLog(opened.engine, app[CLOCK])
        try:
            yield
        finally:
            facts.close()
            reader.dispose()


async def background_sweep(app: web.Application) -> AsyncIterator[None]:
    """Sweep orphaned blobs after start, without delaying it, and then every
    ``uploads.sweep_interval_minutes`` while the server runs (only one worker
    of ``--workers`` does: create_app). A failed sweep (storage down) is
    logged and tried again at the next turn."""
    uploads = app[SETTINGS].uploads
    grace = timedelta(minutes=uploads.sweep_grace_minutes)
    interval = uploads.sweep_interval_minutes * 60

    async def run() -> None:
        while True:
            try:
                await sweep(app[DB], app[STORE], app[CLOCK](), grace)
            except Exception as exc:  # storage or database away: the next turn tries again
                reason = exc.code if isinstance(exc, KluisError) else type(exc).__name__
                log.warning("orphan sweep stopped: %s; tried again later", reason)
            if interval <= 0:
                return
            await asyncio.sleep(interval)

    task = asyncio.create_task(run())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
