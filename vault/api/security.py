"""Response headers every answer carries, and an access log without secrets."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from vault.api.errors import route_pattern

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
    """Logs method, route pattern, status, size and time; never the path or query."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        route = route_pattern(request) if isinstance(request, web.Request) else "(unmatched)"
        self.logger.info(
            "%s %s %s %s %.1fms",
            request.method,
            route,
            response.status,
            response.body_length,
            time * 1000,
        )


access_log = logging.getLogger("kluis.access")
