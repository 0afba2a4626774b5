"""The application factory: ``create_app(settings)``, no globals."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from vault.api import (
    accounts,
    audit,
    consents,
    directory,
    directory_rectify,
    exports,
    items,
    links,
    mine,
    oidc,
    ops,
    publications,
    rectification,
    register,
    reports,
    resources,
    retention,
    rights,
    services,
)
from vault.api import jobs as jobs_api
from vault.api.audit import audit_middleware
from vault.api.auth import auth_middleware
from vault.api.body import MAX_JSON_BODY
from vault.api.errors import error_middleware
from vault.api.metrics import METRICS, Metrics, metrics_middleware
from vault.api.resources import CLOCK, SETTINGS
from vault.api.security import security_headers
from vault.api.trail import WORKER
from vault.config import Settings
from vault.keys.service import utcnow
from vault.media.images import configure_vips
from vault.web import serve as web_app

LINGERING_SECONDS = 1.0


def server_options(settings: Settings) -> dict[str, Any]:
    """What ``kluis serve`` hands aiohttp's runner beside the app.

    aiohttp's keep-alive timer is the only one that runs while a request
    head arrives, so it is the header time-out; bodies have their own (see
    :func:`vault.api.body.idle_limited`). After an answer that did not read
    the whole body (413 on a Content-Length, 408), aiohttp reads and drops
    what still comes for ``lingering_time`` so the client sees the answer;
    a second is enough for that and no longer feeds a hostile client.
    """
    return {
        "keepalive_timeout": settings.server.header_timeout_seconds,
        "lingering_time": LINGERING_SECONDS,
    }


def create_app(settings: Settings, *, worker: int | None = None, jobs: int = 0) -> web.Application:
    """The service. ``worker``: this process is worker number ``worker`` of
    ``kluis serve --workers N`` (its events carry its process id; only the
    first sweeps orphaned blobs after its start). ``jobs``: job workers run
    beside the API (``kluis serve --jobs``; vault/api/jobs.py)."""
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
    if worker is not None:
        app[WORKER] = worker
    app[jobs_api.SLOTS] = jobs
    app.cleanup_ctx.extend([resources.vault, services.accounts, services.mail, jobs_api.workers])
    if not worker:
        app.cleanup_ctx.append(resources.background_sweep)
    ops.setup(app)
    directory.setup(app)
    directory_rectify.setup(app)
    consents.setup(app)
    items.setup(app)
    rectification.setup(app)
    links.setup(app)
    publications.setup(app)
    retention.setup(app)
    rights.setup(app)
    register.setup(app)
    reports.setup(app)
    audit.setup(app)
    exports.setup(app)
    accounts.setup(app)
    oidc.setup(app)
    mine.setup(app)
    web_app.setup(app)
    return app
