"""The error boundary: the one place that turns errors into API.md responses."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from vault.db.engine import unreachable
from vault.errors import KluisError, RateLimited, StorageUnavailable

#: Sent with every 401 (RFC 9110 §11.6.1): how to authenticate.
CHALLENGE = 'Bearer realm="kluis"'
#: A 503 says when to come back; storage outages are usually short.
RETRY_UNAVAILABLE = "5"

log = logging.getLogger(__name__)

#: aiohttp's own refusals (no route, wrong method, body too large) in API terms.
HTTP_CODES = {
    400: ("invalid_input", "The request is malformed."),
    404: ("not_found", "There is no such thing, or nothing you are related to."),
    405: ("method_not_allowed", "This method is not allowed on this path; see /openapi.json."),
    413: ("too_large", "The request body is larger than allowed."),
}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    headers = dict(headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", CHALLENGE)
    elif status == 503:
        headers.setdefault("Retry-After", RETRY_UNAVAILABLE)
    response = web.json_response(
        {"error": {"code": code, "message": message}}, status=status, headers=headers
    )
    if status == 408:
        response.force_close()  # the connection is not used again
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except KluisError as exc:
        if exc.status >= 500:
            log.error("%s on %s: %s", exc.code, route_pattern(request), type(exc).__name__)
        headers = None
        if isinstance(exc, RateLimited):
            headers = {"Retry-After": str(exc.retry_after)}
        return error_response(exc.status, exc.code, exc.message, headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code, message = HTTP_CODES.get(exc.status, ("invalid_input", exc.reason))
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return error_response(exc.status, code, message, headers)
    except Exception as exc:
        if unreachable(exc):
            # An outage, not a bug: the operator sees it (no traceback to
            # wade through), the client is told to come back.
            log.error(
                "storage_unavailable on %s: the database is unreachable (%s)",
                route_pattern(request),
                type(exc).__name__,
            )
            return error_response(503, StorageUnavailable.code, StorageUnavailable.default_message)
        # The traceback goes to the log; the client learns nothing of internals.
        log.exception("unhandled error on %s", route_pattern(request))
        return error_response(500, "internal_error", KluisError.default_message)


def route_pattern(request: web.Request) -> str:
    """The route's pattern (``/v1/items/{id}``), never the concrete path.

    Concrete paths of links carry signed tokens, and logs must not.
    """
    info = request.match_info
    resource = info.route.resource if info.route is not None else None
    return resource.canonical if resource is not None else "(unmatched)"
