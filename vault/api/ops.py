"""Operations endpoints: liveness, readiness, metrics and the API document."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import msgspec
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from vault.api.body import answer
from vault.api.errors import error_response
from vault.api.metrics import METRICS, metrics_handler
from vault.api.models.ops import Health, Readiness
from vault.api.openapi import build_document, operation
from vault.api.resources import DB, KEYRING, STORE
from vault.api.routes import route
from vault.db import reachable
from vault.errors import KluisError
from vault.mail import outbox

log = logging.getLogger(__name__)

#: Each readiness check answers within this, or counts as down.
READY_TIMEOUT = 5.0
#: The document, built at its first request (the routes are fixed by then).
DOCUMENT = web.AppKey("openapi_document", dict[str, bytes])


@operation(
    "Liveness: the process is up and answering.",
    tags=["operations"],
    answer=Health,
    auth=False,
)
async def healthz(request: web.Request) -> web.Response:
    return answer(Health(status="ok"))


@operation(
    "Readiness: the database, blob storage and keyring are reachable.",
    tags=["operations"],
    answer=Readiness,
    refusals={503: ("storage_unavailable",)},
    auth=False,
)
async def readyz(request: web.Request) -> web.Response:
    app = request.app
    checks: dict[str, Callable[[], Awaitable[None]]] = {
        "database": lambda: reachable(app[DB]),
        "storage": app[STORE].check,
        "keyring": app[KEYRING].check,
    }
    results = await asyncio.gather(*(_probe(name, check) for name, check in checks.items()))
    status = dict(zip(checks, results, strict=True))
    if all(result == "ok" for result in results):
        return answer(Readiness(status="ready", checks=status))  # type: ignore[arg-type]
    down = ", ".join(name for name, result in status.items() if result != "ok")
    response = error_response(
        503, "storage_unavailable", f"Not ready: {down} unreachable. Check the service's log."
    )
    response.headers["Retry-After"] = "5"
    return response


async def _probe(name: str, check: Callable[[], Awaitable[None]]) -> str:
    try:
        await asyncio.wait_for(check(), READY_TIMEOUT)
    except (KluisError, TimeoutError) as exc:
        log.warning("readiness: %s is down (%s)", name, type(exc).__name__)
        return "down"
    return "ok"


@operation(
    "Prometheus metrics in the text exposition format (with the mail outbox by status).",
    tags=["operations"],
    answer=(200, None),
    content={"text/plain": {"schema": {"type": "string"}}},
    auth=False,
)
async def metrics(request: web.Request) -> web.Response:
    try:
        counts = (await outbox.status(request.app[DB], dead_limit=0)).counts
    except (KluisError, SQLAlchemyError) as exc:
        log.warning("metrics: the outbox cannot be read (%s)", type(exc).__name__)
    else:
        for state, count in counts.items():
            request.app[METRICS].mail_outbox.labels(state).set(count)
    return await metrics_handler(request)


@operation(
    "This API as an OpenAPI 3.1 document.",
    tags=["operations"],
    answer=(200, None),
    content={"application/json": {"schema": {"type": "object"}}},
    auth=False,
)
async def openapi(request: web.Request) -> web.Response:
    cache = request.app[DOCUMENT]
    if "body" not in cache:
        cache["body"] = msgspec.json.encode(build_document(request.app))
    return web.Response(body=cache["body"], content_type="application/json")


def setup(app: web.Application) -> None:
    app[DOCUMENT] = {}
    route(app, "GET", "/healthz", healthz, audit=None)
    route(app, "GET", "/readyz", readyz, audit=None)
    route(app, "GET", "/metrics", metrics, audit=None)
    route(app, "GET", "/openapi.json", openapi, audit=None)
