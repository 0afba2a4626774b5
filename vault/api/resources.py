"""The resources an application holds, as typed keys, and their lifetimes.

Each resource is opened and closed by its own ``cleanup_ctx`` generator, in
order: database (checked to be at the current schema), blob store, keyring.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from vault.config import Settings
from vault.crypto import KeyProvider, open_provider
from vault.crypto.keys import KeyService
from vault.db import create_engine, is_current
from vault.errors import KluisError
from vault.storage import BlobStore, open_store

SETTINGS = web.AppKey("settings", Settings)
#: The time source; tests set it before the app starts to move through time.
CLOCK: web.AppKey[Callable[[], datetime]] = web.AppKey("clock")
DB = web.AppKey("db", AsyncEngine)
STORE = web.AppKey("store", BlobStore)
KEYRING = web.AppKey("keyring", KeyProvider)
KEYS = web.AppKey("keys", KeyService)


class SchemaOutdated(KluisError):
    code = "schema_outdated"
    default_message = (
        "The database schema is not current; run 'kluis init' to apply the migrations."
    )


async def database(app: web.Application) -> AsyncIterator[None]:
    engine = create_engine(app[SETTINGS].database_url)
    try:
        if not await is_current(engine):
            raise SchemaOutdated()
        app[DB] = engine
        yield
    finally:
        await engine.dispose()


async def storage(app: web.Application) -> AsyncIterator[None]:
    store = await open_store(app[SETTINGS])
    app[STORE] = store
    try:
        yield
    finally:
        await store.close()


async def keyring(app: web.Application) -> AsyncIterator[None]:
    app[KEYRING] = await open_provider(app[SETTINGS])
    app[KEYS] = KeyService(app[DB], app[KEYRING], clock=app[CLOCK])
    yield
