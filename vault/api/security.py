"""Response headers every answer carries, and an access log without secrets."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from vault.api.errors import route_pattern
from vault.config import ServerSettings

_DEFAULTS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; sandbox",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response: web.StreamResponse = await handler(request)
    for name, value in _DEFAULTS.items():
        response.headers.setdefault(name, value)
    return response


class AccessLogger(AbstractAccessLogger):
    """Logs method, route pattern, status, size and time; never the path or query.

    Only answers with a 5xx status, unless ``every`` (``server.access_log``):
    formatting and writing a line per request is a cost on the hot path of
    link answers, which the audit log records one by one anyway.
    """

    every = False

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        if response.status < 500 and not self.every:
            return
        route = route_pattern(request) if isinstance(request, web.Request) else "(unmatched)"
        self.logger.info(
            "%s %s %s %s %.1fms",
            request.method,
            route,
            response.status,
            response.body_length,
            time * 1000,
        )


class EveryAccessLogger(AccessLogger):
    """A line for every answer (``server.access_log = true``)."""

    every = True


def access_logger_class(settings: ServerSettings) -> type[AccessLogger]:
    return EveryAccessLogger if settings.access_log else AccessLogger


access_log = logging.getLogger("kluis.access")
