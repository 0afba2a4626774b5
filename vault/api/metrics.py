"""Prometheus metrics, one registry per application (no process globals)."""

from __future__ import annotations

import time

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from vault.api.errors import route_pattern
from vault.share.delivery import ENDED

#: The status label of an answer whose client went away before its end: its
#: own label, so a 5xx alert does not fire on video seeks and cancelled downloads.
ABORTED = "aborted"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "kluis_http_requests",
            "HTTP requests answered, by route pattern and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "kluis_http_request_duration_seconds",
            "Time to answer an HTTP request (headers and body), by route pattern.",
            ["method", "route"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "kluis_http_requests_in_flight", "Requests being answered now.", registry=self.registry
        )
        self.mail_outbox = Gauge(
            "kluis_mail_outbox_messages",
            "Mail in the outbox (all processes), by status: pending, sending, sent, dead.",
            ["status"],
            registry=self.registry,
        )
        self.mail_deliveries = Counter(
            "kluis_mail_deliveries",
            "Delivery attempts by this process, by outcome: sent, retry, dead.",
            ["outcome"],
            registry=self.registry,
        )

        self.integrity_errors = Counter(
            "kluis_integrity_errors",
            "Stored blobs that failed their integrity check while served, by route and "
            "stage (before_headers: a clean error; in_body: the connection was closed).",
            ["route", "stage"],
            registry=self.registry,
        )
        self._children: dict[tuple[str, str, int | str], tuple[Counter, Histogram]] = {}

    def mail_delivered(self, outcome: str) -> None:
        self.mail_deliveries.labels(outcome).inc()

    def answered(self, method: str, route: str, status: int | str, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            # prometheus_client checks and locks on every labels() call: each
            # route's children are looked up once.
            children = self._children[key] = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


METRICS = web.AppKey("metrics", Metrics)


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    metrics = request.app[METRICS]
    started = time.perf_counter()
    status: int | str = 500
    metrics.in_flight.inc()
    try:
        response: web.StreamResponse = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        metrics.in_flight.dec()
        elapsed = time.perf_counter() - started
        route = route_pattern(request)
        ending = request.get(ENDED)
        if ending is not None:
            if ending.outcome == "integrity_error":
                stage = "in_body" if ending.in_body else "before_headers"
                metrics.integrity_errors.labels(route, stage).inc()
            # An answer cut short counts as what cut it: the client (its own
            # label) or the failure that ended it.
            status = ABORTED if ending.status is None else ending.status
        metrics.answered(request.method, route, status, elapsed)


async def metrics_handler(request: web.Request) -> web.Response:
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
