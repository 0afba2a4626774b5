"""The application factory: ``create_app(settings)``, no globals."""

from __future__ import annotations

from aiohttp import web

from vault.api import (
    accounts,
    audit,
    consents,
    directory,
    exports,
    items,
    links,
    oidc,
    ops,
    resources,
    retention,
    services,
)
from vault.api.audit import audit_middleware
from vault.api.auth import auth_middleware
from vault.api.errors import error_middleware
from vault.api.metrics import METRICS, Metrics, metrics_middleware
from vault.api.resources import CLOCK, SETTINGS
from vault.api.security import security_headers
from vault.config import Settings
from vault.keys.service import utcnow
from vault.media.images import configure_vips

#: JSON bodies are small; uploads stream and set their own limits per kind.
MAX_JSON_BODY = 1024 * 1024


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[
            metrics_middleware,
            security_headers,
            error_middleware,
            audit_middleware,
            auth_middleware,
        ],
        client_max_size=MAX_JSON_BODY,
    )
    configure_vips()
    app[SETTINGS] = settings
    app[CLOCK] = utcnow
    app[METRICS] = Metrics()
    app.cleanup_ctx.extend(
        [
            resources.database,
            resources.storage,
            resources.keyring,
            services.accounts,
            services.mail,
            resources.background_sweep,
        ]
    )
    ops.setup(app)
    directory.setup(app)
    consents.setup(app)
    items.setup(app)
    links.setup(app)
    retention.setup(app)
    audit.setup(app)
    exports.setup(app)
    accounts.setup(app)
    oidc.setup(app)
    return app
